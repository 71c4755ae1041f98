/* shape.h -- the deployment's shape, recorded in Redis so that a worker or
 * server set up differently from the rest refuses to start.
 *
 * A deployment is the servers and workers that share one DOCQ_KEY_PREFIX in
 * one Redis. Its shape is what they must agree on for tasks to flow: the
 * number of shards (DOCQ_SHARDS) and the consumer group (DOCQ_GROUP). It is
 * one string key, <prefix>:shape = "shards=<n> group=<name>", written by the
 * first server with SET NX (so the first one wins, atomically) and read by
 * everyone else. A server also adds its prefix to the registry
 * docq-deployments (a set outside every prefix: a key with no ':'),
 * so that a worker whose prefix no server has used can tell its prefix is
 * wrong and name the ones that exist.
 *
 * Only servers record, at start and then at each health PING (one SET NX
 * GET a second), so that after Redis loses its data the shape is back within
 * a second. A worker started before any server (an empty Redis, or both
 * starting at once) works meanwhile and looks again every second until a
 * server has recorded the shape. */
#ifndef DOCQ_SHAPE_H
#define DOCQ_SHAPE_H

#include "error.h"
#include "redis.h"

#define DOCQ_SHAPE_REGISTRY "docq-deployments"

typedef struct docq_shape {
    const char *prefix; /* DOCQ_KEY_PREFIX. Borrowed. */
    long shards;        /* DOCQ_SHARDS. */
    const char *group;  /* DOCQ_GROUP. Borrowed. */
} docq_shape;

/* Check s against the shape recorded in Redis; when record is set (servers),
 * record s first if none is (registering its prefix then). Returns:
 *   DOCQ_OK         the recorded shape is s;
 *   DOCQ_ENOTFOUND  nothing recorded for s->prefix, and no other prefix is
 *                   registered either (a worker before any server);
 *   DOCQ_ECONFLICT  another shape is recorded, or (worker) nothing is for
 *                   s->prefix while other prefixes are: err names the setting
 *                   (DOCQ_SHARDS, DOCQ_GROUP, DOCQ_KEY_PREFIX) and both values;
 *   else the Redis failure (DOCQ_EUNAVAIL...), with err set. */
int docq_shape_check(docq_redis *r, const docq_shape *s, int record, docq_error *err);

#endif
