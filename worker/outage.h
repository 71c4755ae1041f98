/* outage.h -- what the worker does when a Redis command works or fails.
 *
 * Every part of the worker (loop.c, tasks.c, recovery.c) reports each Redis
 * command's fate here. A failure marks Redis unusable (both connections
 * dropped, the read in flight forgotten) and schedules the reconnect, which
 * the loop makes (loop.h, step 1), after a backoff of OUTAGE_BACKOFF_MIN_MS
 * doubling up to OUTAGE_BACKOFF_MAX_MS; a success resets the backoff. The
 * outage is logged once, when it starts. */
#ifndef DOCQ_WORKER_OUTAGE_H
#define DOCQ_WORKER_OUTAGE_H

#include "error.h"
#include "worker.h"

#define OUTAGE_BACKOFF_MIN_MS 100   /* First wait before reconnecting to Redis... */
#define OUTAGE_BACKOFF_MAX_MS 2000  /* ...doubling up to this. */

/* A Redis command worked: the next outage starts with a short backoff. */
void outage_redis_worked(worker_loop *w);

/* A Redis command failed (unreachable or refused): stop using Redis until it
 * is reconnected. Whatever was pending stays in Redis; slots keep their
 * state. */
void outage_redis_failed(worker_loop *w, const docq_error *why);

#endif
