/* watch.h -- WatchStatus: the streaming calls and the per-process watch index.
 *
 * A watch_hub holds every open watch of one server process in an index keyed
 * by task id. One subscriber thread (subscriber.h, wired to the hub by
 * server.c) receives each change published by the state-changing scripts and
 * hands it to the hub, which fans it out to the watches of that task: no
 * watcher ever polls Redis.
 *
 * Opening a watch (on the cq thread that received the call): register in the
 * index first, then read the snapshot, so that a change made in between is
 * caught by the subscription (and a duplicate is dropped by its version).
 *
 * Delivery: the index keeps, per watched task, the newest record known
 * (the larger version wins; the same version with another queue_position
 * updates the position). A watch sends that record when it is newer than
 * what the watch last sent, one SEND_MESSAGE at a time: a change arriving
 * while a send is in flight waits, and only the newest one is sent when the
 * send completes. A slow reader thus costs one record per task, never a
 * growing queue, and sees a gap in versions instead. After a terminal state
 * has been sent, the watch ends with OK.
 *
 * Memory: a record with a result is packed as soon as it is known and its
 * result dropped, so the hub holds one copy of it, shared by the sends of
 * every watch of the task (each sends a copy of the byte buffer, which
 * shares its slices). The packed bytes are counted (watch_hub_held_bytes);
 * results are held within DOCQ_WATCH_RESULT_BYTES, and a watch that would
 * need a result past it ends with RESOURCE_EXHAUSTED, to read it with
 * GetStatus: never silently.
 *
 * Threads, and who touches what: the hub's mutex guards the index, every
 * watched task's record and every watch's fields, and is the lock of every
 * watch's stream (call_stream.h): it is held around every grpc_call_start_batch
 * on a watch's call, so that batches on one call are never started
 * concurrently. A watch's batches are started by whichever thread holds the
 * mutex (the cq thread that opened it, the cq thread that received a
 * completion, or the subscriber thread); their completions arrive on the
 * queue of the cq thread that received the call. A watch is freed, by the
 * thread that saw its last batch complete, only once every batch started on
 * it has completed. */
#ifndef DOCQ_WATCH_H
#define DOCQ_WATCH_H

#include <stddef.h>
#include <stdint.h>

#include "caller_counts.h"
#include "caller.h"
#include "redis.h"
#include "reply.h"
#include "server_metrics.h"
#include "task.h"

typedef struct watch_hub watch_hub;

/* Create an empty hub for cfg, counting each watch in per_caller (the
 * server's open streams of each caller, caller_counts.h). Both are borrowed: they
 * must outlive the hub. Nothing runs yet. Returns NULL with err set when out
 * of memory. */
watch_hub *watch_hub_create(const docq_config *cfg, caller_counts *per_caller, docq_error *err);

/* Open a watch by caller on call for task_id (already validated), sending
 * only versions above after_version; redis (the calling server thread's
 * connection) reads the snapshot; metrics (may be NULL) counts how it ends.
 * key (key_len bytes, copied; NULL when the caller was not named by an API
 * key) is checked again by watch_hub_revoke.
 * Returns DOCQ_OK when the watch has taken
 * the call over: it holds its own reference and ends the call itself.
 * Otherwise returns DOCQ_ERR with out set to the status to answer
 * (NOT_FOUND for an unknown task or one caller may not see, as GetStatus;
 * RESOURCE_EXHAUSTED when caller already has DOCQ_MAX_WATCHES_PER_CALLER
 * watches open; UNAVAILABLE when Redis is down or the server is shutting
 * down; INTERNAL) and the call is left to the caller untouched. */
int watch_open(watch_hub *h, docq_redis *redis, grpc_call *call, const docq_caller *caller, const char *key,
               size_t key_len, const char *task_id, uint64_t after_version, rpc_metrics *metrics,
               rpc_reply *out);

/* Refuse new watches from now on and end every open watch with UNAVAILABLE
 * "server shutting down; reopen the watch" (after its send in flight, if
 * any, completes). The cq threads must still be running, to carry the
 * completions. */
void watch_hub_shutdown(watch_hub *h);

/* Free the hub. Every watch must have ended (the server's queues drained)
 * and the subscriber that feeds it must be stopped. */
void watch_hub_free(watch_hub *h);

/* The bytes of Task messages the hub holds for its watches (a gauge; safe
 * from any thread). A record with a result is held once, packed, however
 * many watches follow it; results are held within DOCQ_WATCH_RESULT_BYTES:
 * a watch whose next message would not fit ends with RESOURCE_EXHAUSTED
 * telling to read the task with GetStatus. */
size_t watch_hub_held_bytes(watch_hub *h);

/* After a reload of the API keys: end every open watch opened with a key
 * auth no longer knows with UNAUTHENTICATED "API key revoked". Returns how
 * many were ended. */
size_t watch_hub_revoke(watch_hub *h, docq_auth *auth);

/* The number of open watches (a gauge; safe from any thread). */
size_t watch_hub_open_count(watch_hub *h);

/* -- For the subscriber thread (subscriber.h), through server.c ------------- */

/* 1 when, since the most watches were open (*peak, counted from the last
 * time this returned 1), at least min_closed and at least half of them have
 * ended (*open are left), or when none is left and at least min_closed / 8
 * ended; else 0. Then it is time to give the memory they used back to the
 * operating system. Halving makes a wave of N ending watches cost at most
 * log2(N) + 1 trims. */
int watch_hub_trim_due(watch_hub *h, size_t min_closed, size_t *peak, size_t *open);

/* 1 when at least one watch follows the task whose id is the len bytes at
 * id, else 0. */
int watch_hub_watching(watch_hub *h, const char *id, size_t len);

/* A record read from an event or from Redis: when it is newer than the one
 * the index holds for its task (see above), it replaces it (t is moved out
 * and left cleared) and is offered to the task's watches. Ignored when
 * nobody watches the task. */
void watch_hub_update(watch_hub *h, docq_task *t);

/* The task is gone from Redis (expired, or Redis lost it): end its watches
 * with NOT_FOUND. */
void watch_hub_gone(watch_hub *h, const char *task_id);

/* The ids of every watched task, as a malloc'd array of *n ids (free it),
 * or NULL with *n = 0 (none, or out of memory). */
char (*watch_hub_ids(watch_hub *h, size_t *n))[DOCQ_TASK_ID_MAX];

/* For each shard s < nshards, set need[s] to 1 when a watched task of that
 * shard is PENDING (its queue position must be refreshed), else 0. Returns
 * how many shards need it. */
int watch_hub_pending_shards(watch_hub *h, unsigned char *need, int nshards);

/* Apply fresh group progress: read[s] is how many entries of shard s's
 * stream the consumer group has read, -1 when unknown, or any other negative
 * value to leave the shard alone. Every watched PENDING task of a refreshed
 * shard whose position changed is offered to its watches. */
void watch_hub_positions(watch_hub *h, const int64_t *read, int nshards);

/* The earliest queue deadline (Unix ms) of a watched PENDING task, or
 * earlier (tasks that ended or stopped being watched since may still count
 * until watch_hub_expired runs); 0 when none is known. Cheap: no scan. */
int64_t watch_hub_next_deadline(watch_hub *h);

/* The ids of every watched PENDING task whose queue deadline is at or
 * before now_ms (Unix ms), as a malloc'd array of *n ids (free it), or NULL
 * with *n = 0; recomputes what watch_hub_next_deadline returns. Reading
 * those tasks (docq_store_get with a ttl) ends them FAILURE, and the
 * change reaches their watches as any other. */
char (*watch_hub_expired(watch_hub *h, int64_t now_ms, size_t *n))[DOCQ_TASK_ID_MAX];

#endif
