/* redis.h -- one owned, self-reconnecting connection to Redis (a standalone
 * node or a Redis Cluster), scripts and pipelines.
 *
 * A docq_redis belongs to one thread at a time (hiredis contexts are not
 * thread-safe). It connects lazily: every command first (re)connects if the
 * connection is down, so a process serves again as soon as Redis is back.
 * After a failed connect to a node it waits DOCQ_REDIS_RETRY_MS before trying
 * that node again and fails fast meanwhile, so a dead Redis does not stall
 * every request by a connect timeout.
 *
 * Cluster mode. The first connect asks the first seed that answers (the
 * address, then its further seeds: docq_redis_addr) `INFO cluster`. When it
 * says cluster_enabled:1, the docq_redis loads the slot map (CLUSTER SHARDS,
 * cluster.h) and becomes one connection per primary: each command goes to
 * the primary serving the hash slot of its first key (a script's first key;
 * keyless commands such as PING go to the "home" node, any that answers).
 * Every docq script and command touches keys of one slot ({sN}), as a
 * cluster requires. Topology changes are followed:
 *   - MOVED: the slot map takes the new owner and the command is sent there;
 *   - ASK: the command is sent once to the named node, after ASKING;
 *     at most 5 redirections per command, then DOCQ_EUNAVAIL;
 *   - a connection error, a node that cannot be reached, CLUSTERDOWN or a
 *     MOVED mark the map stale: it is loaded again from the first node that
 *     answers before the next command, at most every 100 ms, backing off to
 *     1 s while no node gives a map covering every slot (meanwhile the old
 *     map is used). A command whose node cannot be reached is routed once
 *     more after that refresh (a failover may have given its slot to a
 *     replica); otherwise the command that met the error fails with
 *     DOCQ_EUNAVAIL (or is resent, by the rules of docq_pipeline_run), so
 *     callers answer UNAVAILABLE and clients retry, as with a standalone
 *     Redis down. */
#ifndef DOCQ_REDIS_H
#define DOCQ_REDIS_H

#include <hiredis.h>

#include "config.h"
#include "error.h"

#define DOCQ_REDIS_RETRY_MS 200

/* A Lua script, identified by the index in the connection's SHA cache.
 * docq's scripts are the .lua files of common/lua/, generated into
 * docq_lua_scripts (docq_lua.h, cmake/lua.cmake), whose slots are their
 * enum ids. */
typedef struct docq_script {
    int slot;                 /* Unique small index, < DOCQ_MAX_SCRIPTS. */
    const char *src;          /* Lua source. */
    const char *cluster_src;  /* The source run in a Redis Cluster (events by
                               * SPUBLISH, not PUBLISH), or NULL: src. */
} docq_script;
#define DOCQ_MAX_SCRIPTS 32

typedef struct docq_redis docq_redis;

/* Create a disconnected connection object for addr (copied). timeout_ms
 * bounds connecting and each command. Returns NULL when out of memory. */
docq_redis *docq_redis_create(const docq_redis_addr *addr, long timeout_ms);

/* Close the connection and free r. NULL is fine. */
void docq_redis_free(docq_redis *r);

/* Connect now if not connected (AUTH and SELECT included): the node, or in
 * a cluster the home node (and the slot map). Returns DOCQ_OK or
 * DOCQ_EUNAVAIL with the reason. */
int docq_redis_connect(docq_redis *r, docq_error *err);

/* Drop every connection (the next command reconnects; a cluster's slot map
 * is then refreshed). */
void docq_redis_disconnect(docq_redis *r);

/* The live hiredis context of the node (a cluster's home node), or NULL
 * while disconnected. The context stays owned by r; a caller that sees it
 * fail must call docq_redis_disconnect. */
redisContext *docq_redis_context(docq_redis *r);

/* 1 once r found a Redis Cluster behind its address, else 0 (standalone, or
 * not connected yet). */
int docq_redis_is_cluster(const docq_redis *r);

/* The live context of the node serving key (len bytes): connected first
 * (and r made ready, as docq_redis_connect); standalone, the one node.
 * Owned by r, as docq_redis_context's. Returns NULL with err set
 * (DOCQ_EUNAVAIL) when that node cannot be reached or no node is known to
 * serve the key's slot. */
redisContext *docq_redis_key_context(docq_redis *r, const char *key, size_t len, docq_error *err);

/* Run one command given as an argument vector (binary-safe): a pipeline of
 * one command (see below, whose retry rules apply).
 * Returns the reply (the caller frees it with freeReplyObject), or NULL with
 * err set: DOCQ_EUNAVAIL when Redis cannot be reached (the connection is
 * dropped) or answered that it runs no command for now (LOADING, BUSY,
 * MASTERDOWN, TRYAGAIN or CLUSTERDOWN: the connection is kept), DOCQ_ERR
 * when Redis answered another error (err->msg holds its text, e.g.
 * "NOGROUP ...") or memory ran out. */
redisReply *docq_redis_command(docq_redis *r, int argc, const char **argv, const size_t *argvlen,
                               docq_error *err);

/* Run a script with EVALSHA, loading it first on this connection when Redis
 * does not know it yet (new connection, restarted Redis). argv holds nkeys
 * keys then the arguments. Returns as docq_redis_command. */
redisReply *docq_redis_eval(docq_redis *r, const docq_script *script, int nkeys, int argc,
                            const char **argv, const size_t *argvlen, docq_error *err);

/* A pipeline: commands queued without touching any connection, then sent
 * together on one docq_redis, their replies read in order: one round trip
 * for all of them.
 *
 * Queueing copies the arguments, so they need not outlive the call, and
 * writes nothing to the connection: the thread that owns the connection may
 * go on using it (docq_redis_command...) between queueing and running.
 *
 * docq_pipeline_run keeps the rules of docq_redis_command for each command:
 *   - the connection is made (or remade) first; when that fails, every
 *     command fails with DOCQ_EUNAVAIL;
 *   - every script the pipeline uses is loaded on the connection before
 *     anything is sent (SCRIPT LOAD, once per connection), and a command
 *     answered NOSCRIPT (Redis lost its scripts in between) did not run and
 *     is sent once more as EVAL with the script's source, which no NOSCRIPT
 *     can refuse;
 *   - when the connection fails while replies are outstanding (a write or a
 *     read fails or times out), the commands whose replies were read keep
 *     them, and those still outstanding may or may not have run. If the
 *     connection had been open before this run (it may have died while
 *     idle), they are sent once more on a fresh connection, else they fail
 *     with DOCQ_EUNAVAIL. So every queued command must be safe to repeat,
 *     as docq's scripts are (their contracts in store.c say how);
 *   - each command is sent at most once more for NOSCRIPT and at most once
 *     more for a lost connection; Redis running commands in the order sent,
 *     a command's retry runs after the first try of every command queued
 *     after it.
 *
 * Typical use, by the one thread that owns both p and r:
 *     i = docq_pipeline_eval(p, &script, ...);  (more commands...)
 *     docq_pipeline_run(p, r);
 *     rc = docq_pipeline_reply(p, i, &rep, &err); (each command's outcome)
 *     docq_pipeline_reset(p);                   (before the next batch) */
typedef struct docq_pipeline docq_pipeline;

/* Create an empty pipeline. Returns NULL when out of memory. */
docq_pipeline *docq_pipeline_create(void);

/* Free p, its queued commands and their replies. NULL is fine. */
void docq_pipeline_free(docq_pipeline *p);

/* Queue an EVALSHA of script, as docq_redis_eval takes it (argv: nkeys keys
 * then the arguments; binary-safe, argvlen NULL: strlen of each). Returns
 * its index in the pipeline (0, 1, ... in queueing order), or DOCQ_ERR with
 * err set when out of memory. */
int docq_pipeline_eval(docq_pipeline *p, const docq_script *script, int nkeys, int argc,
                       const char **argv, const size_t *argvlen, docq_error *err);

/* Send every queued command on r and read every reply, by the rules above.
 * Afterwards each command has its outcome (docq_pipeline_reply). Running a
 * pipeline twice without a reset in between sends nothing the second time. */
void docq_pipeline_run(docq_pipeline *p, docq_redis *r);

/* Ask that the run confirm its writes on replicas: after each round's
 * commands, on the same connection and in the same round trip, a
 * `WAIT replicas ms` is sent, which Redis answers once that many replicas
 * acknowledged every write of the connection so far, or after ms with how
 * many did. replicas 0 (the default after a reset) sends no WAIT. Calling it
 * again replaces the request; it applies to the whole pipeline, so one WAIT
 * covers every command of the batch. Redis replication is asynchronous: a
 * confirmed write is on that many replicas, not a consensus. */
void docq_pipeline_wait_replicas(docq_pipeline *p, int replicas, long ms);

/* After docq_pipeline_run with a WAIT asked for: DOCQ_OK when every WAIT of
 * the run counted at least the replicas asked for, else DOCQ_EUNAVAIL with
 * err saying why ("confirmed on only K of N replicas within W ms", a WAIT
 * error, or a connection lost after writes were sent, whose writes no WAIT
 * can then vouch for). Only commands that succeeded may have written; what
 * they wrote stays written either way. */
int docq_pipeline_replicated(const docq_pipeline *p, docq_error *err);

/* The outcome of command i after docq_pipeline_run: DOCQ_OK with *rep its
 * reply (owned by the pipeline until the next reset), or the error that
 * docq_redis_command would have returned (DOCQ_EUNAVAIL, DOCQ_ERR) with err
 * filled (err may be NULL) and *rep NULL. */
int docq_pipeline_reply(const docq_pipeline *p, int i, const redisReply **rep, docq_error *err);

/* Forget every command and free every reply; p is empty again (and keeps
 * its memory for the next batch). */
void docq_pipeline_reset(docq_pipeline *p);

#endif
