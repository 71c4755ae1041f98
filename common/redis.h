/* redis.h -- one owned, self-reconnecting connection to Redis, and scripts.
 *
 * A docq_redis belongs to one thread at a time (hiredis contexts are not
 * thread-safe). It connects lazily: every command first (re)connects if the
 * connection is down, so a process serves again as soon as Redis is back.
 * After a failed connect it waits DOCQ_REDIS_RETRY_MS before trying again and
 * fails fast meanwhile, so a dead Redis does not stall every request by a
 * connect timeout. */
#ifndef DOCQ_REDIS_H
#define DOCQ_REDIS_H

#include <hiredis.h>

#include "config.h"
#include "error.h"

#define DOCQ_REDIS_RETRY_MS 200

/* A Lua script, identified by the index in the connection's SHA cache. */
typedef struct docq_script {
    int slot;         /* Unique small index, < DOCQ_MAX_SCRIPTS. */
    const char *src;  /* Lua source. */
} docq_script;
#define DOCQ_MAX_SCRIPTS 16

typedef struct docq_redis docq_redis;

/* Create a disconnected connection object for addr (copied). timeout_ms
 * bounds connecting and each command. Returns NULL when out of memory. */
docq_redis *docq_redis_create(const docq_redis_addr *addr, long timeout_ms);

/* Close the connection and free r. NULL is fine. */
void docq_redis_free(docq_redis *r);

/* Connect now if not connected (AUTH and SELECT included). Returns DOCQ_OK or
 * DOCQ_EUNAVAIL with the reason. */
int docq_redis_connect(docq_redis *r, docq_error *err);

/* Drop the connection (the next command reconnects). */
void docq_redis_disconnect(docq_redis *r);

/* The live hiredis context, or NULL while disconnected. The context stays
 * owned by r; a caller that sees it fail must call docq_redis_disconnect. */
redisContext *docq_redis_context(docq_redis *r);

/* Run one command given as an argument vector (binary-safe).
 * A command that fails on a connection that was already open (it may have
 * died while idle) is sent once more on a fresh one, so commands must be safe
 * to repeat (docq's scripts are written so).
 * Returns the reply (the caller frees it with freeReplyObject), or NULL with
 * err set: DOCQ_EUNAVAIL when Redis cannot be reached (the connection is
 * dropped), DOCQ_ERR when Redis answered an error (err->msg holds its text,
 * e.g. "NOGROUP ..."). */
redisReply *docq_redis_command(docq_redis *r, int argc, const char **argv, const size_t *argvlen,
                               docq_error *err);

/* Run a script with EVALSHA, loading it first on this connection when Redis
 * does not know it yet (new connection, restarted Redis). argv holds nkeys
 * keys then the arguments. Returns as docq_redis_command. */
redisReply *docq_redis_eval(docq_redis *r, const docq_script *script, int nkeys, int argc,
                            const char **argv, const size_t *argvlen, docq_error *err);

#endif
