/* store.h -- tasks and queues in Redis: the key layout and the atomic steps.
 *
 * Key layout (P = DOCQ_KEY_PREFIX, N = shard number, 0 <= N < DOCQ_SHARDS):
 *
 *   P:{sN}:tasks          Stream: the shard's queue. One entry per queued task,
 *                         fields task_id and doc_id. Read by the consumer group
 *                         DOCQ_GROUP; an entry is acknowledged and deleted in
 *                         the same step that writes its task's outcome.
 *   P:{sN}:task:<task_id> Hash: the task record. Fields doc_id, state
 *                         (PENDING, STARTED, SUCCESS, FAILURE), attempts,
 *                         created_at, started_at, finished_at (Unix ms, from
 *                         Redis TIME so that every process shares one clock),
 *                         result, error, version (1 when submitted, + 1 with
 *                         each change), seq (the entry's number in its stream:
 *                         entries-added after its XADD). No expiry until the
 *                         task finishes, then DOCQ_RESULT_TTL_S.
 *   P:{sN}:events         Pub/sub channel (not a key): every script that
 *                         changes a record of the shard publishes the whole
 *                         record there in the same atomic step (event.h).
 *
 * Every key of one task and of its queue share the hash tag {sN}, so each
 * script below touches one hash slot and runs unchanged on Redis Cluster.
 *
 * All functions take a docq_redis owned by the calling thread and return
 * DOCQ_OK, DOCQ_EUNAVAIL (Redis unreachable), DOCQ_ERR (Redis refused; the
 * message says why) or the status documented with the function. */
#ifndef DOCQ_STORE_H
#define DOCQ_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "redis.h"
#include "task.h"

/* Write the stream key of shard into buf: "P:{sN}:tasks". */
void docq_key_stream(char *buf, size_t cap, const char *prefix, int shard);

/* Write the record key of task_id (which carries its shard) into buf. */
void docq_key_task(char *buf, size_t cap, const char *prefix, const char *task_id, int shard);

/* Write the events channel of shard into buf: "P:{sN}:events". */
void docq_key_events(char *buf, size_t cap, const char *prefix, int shard);

/* The queue position of a PENDING task whose entry is number seq of its
 * stream, when the consumer group has read `read` entries of it: seq - read,
 * at least 1 (an entry read but not yet started is next in line), 1 = next.
 * 0 (unknown) when seq is 0 or read is negative. Pure. */
uint32_t docq_queue_position(uint64_t seq, int64_t read);

/* Store a new PENDING task and queue it, atomically. task_id must come from
 * docq_task_id_new for shard. On DOCQ_OK, *created_at_ms is the stored
 * creation time. Either both the record and the entry exist afterwards or
 * neither does. */
int docq_store_submit(docq_redis *r, const char *prefix, int shard, const char *task_id,
                      const char *doc_id, size_t doc_len, int64_t *created_at_ms, docq_error *err);

/* Read a task into out (cleared first; free with docq_task_clear), with its
 * queue position in the consumer group `group` while it is PENDING, in one
 * round trip. Returns DOCQ_ENOTFOUND when there is no such record (never
 * created, or finished and expired). */
int docq_store_get(docq_redis *r, const char *prefix, const char *group, const char *task_id,
                   docq_task *out, docq_error *err);

/* How many entries of shard's stream the consumer group has read, into
 * *read; -1 when Redis cannot tell (no stream or group yet). One round trip;
 * with docq_queue_position it refreshes the position of every PENDING task
 * of the shard at once. */
int docq_store_group_read(docq_redis *r, const char *prefix, int shard, const char *group,
                          int64_t *read, docq_error *err);

/* Mark a task STARTED by a worker that has just read its entry: attempts + 1
 * and started_at = now, atomically. On DOCQ_OK, *attempt is the new attempt
 * number (the worker's fencing token for docq_store_finish).
 * Returns DOCQ_ENOTFOUND when the record is gone and DOCQ_ECONFLICT when the
 * task is already terminal: in both cases the entry is only to be acked. */
int docq_store_start(docq_redis *r, const char *prefix, const char *task_id, uint32_t *attempt,
                     docq_error *err);

/* Write a task's outcome: state SUCCESS with value as result, or FAILURE
 * with value as error; set finished_at and the record's expiry (ttl_s);
 * acknowledge and delete the stream entry entry_id of group, all in one step.
 * The write happens only while the task is STARTED by this same attempt;
 * otherwise nothing is written and DOCQ_ECONFLICT is returned (the entry is
 * still acknowledged when the task is terminal or gone, and left to its
 * newer owner when a newer attempt is running). */
int docq_store_finish(docq_redis *r, const char *prefix, const char *group, const char *task_id,
                      const char *entry_id, uint32_t attempt, docq_task_state state,
                      const char *value, size_t value_len, long ttl_s, docq_error *err);

/* Acknowledge and delete a stream entry without touching any record (for
 * entries whose task is gone or already finished). */
int docq_store_ack(docq_redis *r, const char *prefix, int shard, const char *group,
                   const char *entry_id, docq_error *err);

#endif
