/* loop.h -- the worker's single-threaded event loop.
 *
 * One loop drives up to DOCQ_WORKER_CONCURRENCY AI calls at once. It holds a
 * fixed table of slots; a slot is busy from the moment its stream entry is
 * received until what its task came to is written to Redis, so the loop never
 * takes more entries than it has free slots (tasks.c). Each turn of the loop:
 *
 *   1. while Redis is unusable, tries again to connect both Redis
 *      connections (with a backoff of 100 ms growing to 2 s), re-creates the
 *      consumer groups and then re-reads its own pending entries;
 *   2. when due (every 300 ms while a slot is busy), reads the cancels
 *      streams of the shards it holds tasks of and stops the tasks
 *      cancelled meanwhile (see Cancelling, below);
 *   3. writes the outcomes and transient-failure records that are waiting
 *      (kept in their slots until Redis takes them, so nothing decided is
 *      lost while Redis is down), and starts the retries whose backoff is
 *      over;
 *   4. when due (every DOCQ_HEARTBEAT_MS), refreshes the claim on every busy
 *      slot's entry and, with free slots, reclaims entries that other
 *      workers abandoned (recovery.c), cutting a blocked read short first;
 *   5. unless stopping, sends one XREADGROUP for as many entries as it has
 *      free slots on the `rd` connection, without waiting for the reply;
 *   6. waits in ai_client_poll for AI traffic, the reply on `rd`, the stop
 *      descriptor or the next timer, then starts the tasks read
 *      (docq_store_start on the `cmd` connection, then the AI call) and
 *      handles the calls that completed.
 *
 * Redis applies XREADGROUP's COUNT to each stream, so a read over k streams
 * may return k * COUNT entries. To stay within its free slots the loop reads:
 *
 *   - with at least as many free slots as shards: every shard at once with
 *     COUNT free / shards, blocking up to 1 s (a blocked read is served by
 *     the first stream that gets entries, Redis serving each in turn);
 *   - with fewer free slots than shards (a busy worker, or one configured
 *     with a concurrency below the shard count): `free` shards at a time with
 *     COUNT 1, without blocking, each read starting where the last one
 *     stopped; after a round over every shard that found nothing it pauses
 *     100 ms. (Blocking on some shards would leave the others' entries
 *     waiting for the BLOCK to end.)
 *   - in a Redis Cluster, where a command may only name keys of one slot and
 *     each shard is a slot of its own: one shard at a time, with COUNT free,
 *     on the connection to the primary serving it, without blocking, in
 *     turn; after a round over every shard that found nothing it pauses
 *     100 ms (so an idle worker sends about 10 reads a second per shard,
 *     and picks up a new task within about 100 ms). A shard whose primary
 *     cannot be reached is paused alone (outage.h) and skipped meanwhile.
 *
 * Cancelling: CancelTask ends a STARTED task as CANCELLED in Redis and
 * appends its id to its shard's cancels stream (P:{sN}:cancels), in one
 * script. The heartbeat is too slow to carry that (DOCQ_HEARTBEAT_MS, 5 s by
 * default), and a blocking read of the cancels streams on `rd` would share
 * the connection with the XREADGROUP (and a Redis Cluster with one slot per
 * shard allows no read over several shards), so the loop polls: every 300 ms
 * while it has busy slots it reads, without blocking, the entries each busy
 * shard's cancels stream got since the last it saw, all in one pipeline on
 * `cmd` (routed by slot in a cluster). A slot whose task is named ends at
 * once: its AI call is aborted (curl_multi_remove_handle: the AI service
 * sees the connection closed), or its pending retry or unwritten outcome is
 * dropped; its entry is acknowledged and the slot freed. No retry, no
 * dead-letter: every fenced write of the task finds it no longer STARTED
 * (cancels.c). An idle worker sends nothing for this.
 *
 * Stopping: when the stop descriptor becomes readable the loop reads and
 * reclaims no new entries and starts no retries (tasks waiting for one are
 * left at once), lets the calls in flight finish and their outcomes be
 * written for up to DOCQ_SHUTDOWN_GRACE_MS, heartbeating them meanwhile, then
 * returns. Tasks still unfinished stay STARTED with their entries pending in
 * Redis, to be reclaimed by another worker once idle for
 * DOCQ_VISIBILITY_TIMEOUT_MS (see task.h): that is the at-least-once
 * contract, not a failure. */
#ifndef DOCQ_WORKER_LOOP_H
#define DOCQ_WORKER_LOOP_H

#include "config.h"
#include "error.h"

typedef struct worker_loop worker_loop;

/* Create a loop for cfg (borrowed: it must outlive the loop). stop_fd is a
 * descriptor that becomes readable when the worker must stop (main passes a
 * signalfd); the loop only polls it and never reads or closes it. Nothing is
 * connected yet. curl_global_init must have been called. Returns NULL with
 * err set when memory runs out or the HTTP client cannot be set up. */
worker_loop *worker_loop_create(const docq_config *cfg, int stop_fd, docq_error *err);

/* Serve tasks until stop_fd becomes readable and the shutdown is complete
 * (see above). Redis outages are ridden out, never returned. Returns DOCQ_OK
 * after a stop, DOCQ_ECONFLICT with err naming the setting when ours differ
 * from the deployment's shape recorded in Redis (shape.h), or DOCQ_ERR with
 * err set when the HTTP client's poll fails (calls in flight are then
 * abandoned to be delivered again, as after a conflict). */
int worker_loop_run(worker_loop *w, docq_error *err);

/* The loop's metrics (worker_metrics.h), for the observer to serve. */
struct worker_metrics *worker_loop_metrics(worker_loop *w);

/* Abort any call still in flight, close both Redis connections and free w.
 * NULL is fine. */
void worker_loop_free(worker_loop *w);

#endif
