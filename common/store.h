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
 *                         result, error, deliveries (real deliveries:
 *                         starts by another worker than the one that started
 *                         the task last, see docq_store_start), consumer
 *                         (who started it last), failures
 *                         (transient AI failures so far: the retry budget),
 *                         failed_attempt, restarted_from, finished_by (the
 *                         attempts whose failure, restart and outcome were
 *                         written: a resent script changes nothing),
 *                         version (1 when submitted, + 1 with each change),
 *                         seq (the entry's number in its stream:
 *                         entries-added after its XADD), owner (the caller
 *                         id of an authenticated submitter; absent when
 *                         callers are addresses), deadline (Unix ms: created_at
 *                         + queue_timeout; absent: no limit), request_key
 *                         (the P:{sN}:req:... key naming this task, when
 *                         submitted with a request_id). No expiry until the
 *                         task finishes, then DOCQ_RESULT_TTL_S.
 *   P:{sN}:<dead>         Stream: the shard's dead-letter stream (<dead> =
 *                         DOCQ_DEAD_STREAM). One entry per task whose queue
 *                         entry was delivered more than DOCQ_MAX_DELIVERIES
 *                         times: task_id, doc_id, entry_id, deliveries,
 *                         dead_at. Appended to by docq, trimmed to about
 *                         DOCQ_DEAD_MAXLEN entries (XADD MAXLEN ~).
 *   P:{sN}:cancels        Stream: the ids of the shard's tasks cancelled while
 *                         STARTED (field task_id), appended by CancelTask's
 *                         script and read by the workers holding tasks of the
 *                         shard, which abort those calls (worker/cancels.c).
 *                         Trimmed to about DOCQ_CANCELS_MAXLEN entries.
 *   P:{sN}:events         Pub/sub channel (not a key): every script that
 *                         changes a record of the shard publishes the whole
 *                         record there in the same atomic step (event.h).
 *
 *   P:{sN}:req:<caller>:<hex>  Hash: a request id of the caller (<hex>: its
 *                         bytes in lowercase hex, so that no ':' of either
 *                         part can make two callers' keys one), N = the
 *                         caller's shard. Fields task_id, doc_id and until
 *                         (Unix ms: created_at + DOCQ_REQUEST_ID_TTL_S). No
 *                         expiry while its task is unfinished; when the task
 *                         ends, it expires at the later of until and the
 *                         record's own expiry (lib/ended.lua), so it never
 *                         goes before the record it names.
 *
 *   P:{sN}:rate:<caller>  Sorted set: the caller's SubmitDoc rate limit, a
 *                         sliding log (ratelimit.h), N = the caller's shard.
 *   P:{sN}:rate-read:<caller>  The same for GetStatus, WatchStatus,
 *                         ListTasks and DeleteTask.
 *   P:{sN}:owned:<caller> Sorted set: the caller's index of its tasks for
 *                         ListTasks, N = the caller's shard (where its tasks
 *                         are). Member a task id, score its created_at
 *                         (ms) times 1000, raised to one above the
 *                         index's highest so that each submit sorts above
 *                         every earlier one. Added to by the submit script;
 *                         an entry whose record is gone is dropped by the
 *                         list script when it meets it, by a submit when it
 *                         is among the two oldest, and by DeleteTask.
 *   P:{sN}:deleted:<task_id>  String: DeleteTask's receipt (the member of
 *                         the call that deleted the task), for 60 s, so that
 *                         the script sent again after a lost reply answers
 *                         its own deletion as done.
 *
 * Every key of one task and of its queue share the hash tag {sN}, so each
 * step below, one script of common/lua/ (its file named in the contract),
 * touches one hash slot and runs unchanged on Redis Cluster.
 *
 * All functions take a docq_redis owned by the calling thread and return
 * DOCQ_OK, DOCQ_EUNAVAIL (Redis unreachable), DOCQ_ERR (Redis refused; the
 * message says why) or the status documented with the function. */
#ifndef DOCQ_STORE_H
#define DOCQ_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "ratelimit.h"
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

/* Write the request key of caller's request_id (len bytes) in shard into
 * buf: "P:{sN}:req:<caller>:<request_id in lowercase hex>". Returns DOCQ_OK,
 * or DOCQ_EINVAL when it does not fit cap. */
int docq_key_request(char *buf, size_t cap, const char *prefix, int shard, const char *caller,
                     const char *request_id, size_t len);

/* What a SubmitDoc asks beyond its document (docq_store_submit_queue). */
typedef struct docq_submit_opts {
    const char *request_id;   /* The caller's request id (1 to DOCQ_REQUEST_ID_MAX bytes), or
                               * NULL: every submit is a new task. Borrowed until queued. */
    size_t request_id_len;
    long request_ttl_s;       /* DOCQ_REQUEST_ID_TTL_S: least life of the request id. */
    int64_t queue_timeout_ms; /* The queue timeout; 0: none. */
    long result_ttl_s;        /* DOCQ_RESULT_TTL_S, for a known task that expires meanwhile. */
} docq_submit_opts;

/* What docq_store_submit_result found. */
typedef struct docq_submitted {
    int64_t created_at_ms;           /* The task's creation time (0: its record expired). */
    int known;                       /* 1: the request id named a task already (no new one). */
    char task_id[DOCQ_TASK_ID_MAX];  /* The task: the new one, or the one the request id names. */
    docq_task_state state;           /* Its state now (PENDING for a new task); UNSPECIFIED when
                                      * the record of a known one has expired. */
} docq_submitted;

/* Check caller's SubmitDoc limit and, when it admits the request, store a
 * new PENDING task and queue it: one script, one round trip, atomically.
 * owner (a caller id, or NULL or "" for none) is stored in the record's
 * owner field: the task then belongs to that caller (rpc_status.c).
 * task_id must come from docq_task_id_new for shard, which must be caller's
 * shard (the limit key lives in it). limit may have limit 0 (no limit).
 * Returns DOCQ_OK with *created_at_ms the stored creation time, or
 * DOCQ_ELIMITED when the limit refused (nothing was stored); *rate is filled
 * in both cases. Either both the record and the entry exist afterwards or
 * neither does. */
int docq_store_submit(docq_redis *r, const char *prefix, int shard, const char *task_id,
                      const char *doc_id, size_t doc_len, const char *caller, const char *owner,
                      const docq_rate_policy *limit, int64_t *created_at_ms,
                      docq_rate_result *rate, docq_error *err);

/* Read a task into out (cleared first; free with docq_task_clear), with its
 * queue position in the consumer group `group` while it is PENDING, in one
 * round trip. With ttl_s > 0 (DOCQ_RESULT_TTL_S), a PENDING task past its
 * queue deadline is ended FAILURE "expired in queue after N s" first (a
 * change, published; the record expires after ttl_s) and read so; with 0
 * it only reads. Returns DOCQ_ENOTFOUND when there is no such record
 * (never created, or finished and expired). */
int docq_store_get(docq_redis *r, const char *prefix, const char *group, const char *task_id, long ttl_s,
                   docq_task *out, docq_error *err);

/* Pipelined steps (redis.h): a step's _queue function queues its commands
 * in a pipeline and fills a ticket; once the pipeline has run, its _result
 * function reads the step's outcome through the ticket. A _queue function
 * that fails (DOCQ_EINVAL, or DOCQ_ERR when out of memory, when a command of
 * the step may already be queued: it then runs unread) leaves the ticket
 * unusable. The commands are safe to send twice, as redis.h requires. */
typedef struct docq_store_ticket {
    int first;                /* Index of the step's first command. */
    int shape;                /* Which commands it queued (store.c's business). */
    docq_rate_policy policy;  /* The limit the step checks (limit 0: none). */
} docq_store_ticket;

/* docq_store_submit, queued, with opts (NULL: none). Its result returns as
 * docq_store_submit, with out filled on DOCQ_OK. With a request id, in the
 * same script: when caller's request key (docq_key_request) names a task
 * already, no task is made and nothing is counted by the limit (nor
 * refused by it): DOCQ_OK with out->known = 1, that task's id and its
 * state now (a PENDING one past its deadline is ended first, as
 * docq_store_get does), or DOCQ_EEXISTS (out->task_id set) when it was
 * submitted for another doc_id. Otherwise the new task is stored as
 * docq_store_submit does, with the request key naming it (store.h). With a
 * queue timeout the record gets its deadline. */
int docq_store_submit_queue(docq_pipeline *pl, const char *prefix, int shard, const char *task_id,
                            const char *doc_id, size_t doc_len, const char *caller, const char *owner,
                            const docq_rate_policy *limit, const docq_submit_opts *opts,
                            docq_store_ticket *ticket, docq_error *err);
int docq_store_submit_result(const docq_pipeline *pl, const docq_store_ticket *ticket, docq_submitted *out,
                             docq_rate_result *rate, docq_error *err);

/* Who reads a task, for the read limit of docq_store_read_queue. */
typedef struct docq_reader {
    const char *caller;       /* The caller's id (borrowed until queued). */
    int shard;                /* The caller's shard: where its limit key lives. */
    docq_rate_policy policy;  /* Its read limit (DOCQ_READ_RATE_LIMIT); limit 0: none. */
} docq_reader;

/* GetStatus's Redis work: count the read against reader's read limit (key
 * kind DOCQ_RATE_READ, as docq_rate_check counts it) and, when admitted,
 * read task_id as docq_store_get does (ending it when past its queue
 * deadline, with ttl_s as there). When the limit key and the task share
 * a shard (a caller reading its own task), one script does both and a
 * refused read reads nothing; otherwise the check and the read are two
 * commands, both sent (the read's reply is ignored when the limit refuses).
 * With no limit (reader NULL or limit 0) only the read is queued.
 * The result: DOCQ_OK with out (cleared first) and *rate filled,
 * DOCQ_ELIMITED with *rate filled, DOCQ_ENOTFOUND (the read was counted),
 * or the errors of docq_redis_eval. */
int docq_store_read_queue(docq_pipeline *pl, const char *prefix, const char *group, const char *task_id,
                          const docq_reader *reader, long ttl_s, docq_store_ticket *ticket, docq_error *err);
int docq_store_read_result(const docq_pipeline *pl, const docq_store_ticket *ticket, const char *task_id,
                           docq_rate_result *rate, docq_task *out, docq_error *err);

/* Write the cancels stream key of shard into buf: "P:{sN}:cancels". */
void docq_key_cancels(char *buf, size_t cap, const char *prefix, int shard);

#define DOCQ_CANCELS_MAXLEN 1000                      /* About how many entries a cancels stream keeps. */
#define DOCQ_CANCEL_REASON "cancelled by the caller"  /* The error a cancelled task shows. */

/* CancelTask's Redis work, one script (common/lua/cancel.lua): count the
 * call against reader's read limit (as docq_store_read_queue counts a read;
 * a refused cancel changes nothing) and, when admitted, cancel task_id: a
 * PENDING or STARTED task becomes CANCELLED (finished_at, error
 * DOCQ_CANCEL_REASON, the record expiring after ttl_s, a new version
 * published); a STARTED one is also announced on its shard's cancels stream
 * for the worker running it. An ended task is left as it is. With owner (an
 * authenticated caller's id; NULL or "": callers are not authenticated) a
 * task that owner did not submit is left as it is and reported missing.
 * The limit key must share the task's shard (reader->shard is the task's):
 * when it does not, check the limit apart first (docq_rate_check) and pass
 * reader NULL, as with no limit. Returns DOCQ_EINVAL (nothing queued) when
 * it does not. The result, as docq_store_read_result's: DOCQ_OK with out
 * the task as the cancel left it (cleared first) and *rate filled,
 * DOCQ_ELIMITED, DOCQ_ENOTFOUND, or the errors of docq_redis_eval. Safe to
 * send twice (a cancel sent again finds the task CANCELLED). */
int docq_store_cancel_queue(docq_pipeline *pl, const char *prefix, const char *group, const char *task_id,
                            const docq_reader *reader, const char *owner, long ttl_s,
                            docq_store_ticket *ticket, docq_error *err);
int docq_store_cancel_result(const docq_pipeline *pl, const docq_store_ticket *ticket, const char *task_id,
                             docq_rate_result *rate, docq_task *out, docq_error *err);

/* Queue the read of shard's cancels stream after the entry id after ("":
 * none seen yet) for up to count entries (common/lua/cancels.lua; reads
 * only). Returns the command's index, or DOCQ_ERR when out of memory. */
int docq_store_cancels_queue(docq_pipeline *pl, const char *prefix, int shard, const char *after, long count,
                             docq_error *err);

/* The outcome of the read queued as command i, once pl has run: DOCQ_OK
 * with *rep the reply (owned by pl until its reset), an array whose first
 * element is the id of the last entry read (after itself when none; with
 * after "", the stream's newest entry, or "0-0") and whose further
 * elements are the task ids read, oldest first (all checked to be
 * strings, the id shorter than 48 bytes); or the errors of docq_redis_eval. */
int docq_store_cancels_result(const docq_pipeline *pl, int i, const redisReply **rep, docq_error *err);

/* How many entries of shard's stream the consumer group has read, into
 * *read; -1 when Redis cannot tell (no stream or group yet). One round trip;
 * with docq_queue_position it refreshes the position of every PENDING task
 * of the shard at once. */
int docq_store_group_read(docq_redis *r, const char *prefix, int shard, const char *group,
                          int64_t *read, docq_error *err);

/* Write the dead-letter stream key of shard into buf: "P:{sN}:<dead>". */
void docq_key_dead(char *buf, size_t cap, const char *prefix, const char *dead, int shard);

/* The queue settings every worker-side step shares (strings borrowed). */
typedef struct docq_queue {
    const char *prefix;   /* DOCQ_KEY_PREFIX. */
    const char *group;    /* DOCQ_GROUP. */
    const char *dead;     /* DOCQ_DEAD_STREAM. */
    long max_deliveries;  /* DOCQ_MAX_DELIVERIES. */
    long ttl_s;           /* DOCQ_RESULT_TTL_S. */
    long dead_maxlen;     /* DOCQ_DEAD_MAXLEN: about how many entries a dead-letter stream keeps. */
    const char *consumer; /* This worker's consumer name in the group. */
} docq_queue;

/* What docq_store_start found. */
typedef struct docq_start {
    uint32_t attempt;     /* The new attempt number: the worker's fencing token. */
    uint32_t failures;    /* Transient AI failures recorded before this start. */
    uint32_t deliveries;  /* Real deliveries of the task, this one included. */
    int dead;             /* 1: not started, delivered too often: dead-letter it. */
    int expired;          /* 1: not started, past its queue deadline: now FAILURE; ack the entry. */
} docq_start;

/* The worker q->consumer has just received an entry for task_id (read or
 * reclaimed): mark the task STARTED (attempts + 1, started_at = now,
 * consumer = q->consumer), atomically, counting a delivery (the record's
 * deliveries + 1) when another consumer, or none, started the task last: a
 * worker re-reading its own pending entry after a Redis outage, or this step
 * sent again after a lost reply, counts no new delivery (common/lua/start.lua).
 * On DOCQ_OK with out->dead == 0 the worker runs the task with out->attempt
 * as its fencing token.
 * When the task would be delivered more than q->max_deliveries times,
 * nothing is written: DOCQ_OK with out->dead == 1 and out->deliveries set;
 * the worker then calls docq_store_dead_letter.
 * When the task is PENDING past its queue deadline, it is not started but
 * ended FAILURE "expired in queue after N s" (published, expiring after
 * q->ttl_s): DOCQ_OK with out->expired == 1; the worker acknowledges the
 * entry and never calls the AI.
 * Returns DOCQ_ENOTFOUND when the record is gone and DOCQ_ECONFLICT when the
 * task is already terminal: in both cases the entry is only to be acked. */
int docq_store_start(docq_redis *r, const docq_queue *q, const char *task_id, docq_start *out,
                     docq_error *err);

/* Dead-letter task_id, whose entry entry_id docq_store_start found delivered
 * more than q->max_deliveries times to q->consumer: append it to the shard's
 * dead-letter stream (trimmed to about q->dead_maxlen entries), end the task
 * as FAILURE with an error saying so (the record expires after q->ttl_s),
 * and acknowledge and delete the entry, in one step
 * (common/lua/dead_letter.lua). On DOCQ_OK, *deliveries is the count
 * recorded. Returns DOCQ_ENOTFOUND when the record is gone and
 * DOCQ_ECONFLICT when the task is already terminal (as when this step is
 * sent again after a lost reply): the entry is then only to be acked. */
int docq_store_dead_letter(docq_redis *r, const docq_queue *q, const char *task_id, const char *entry_id,
                           uint32_t *deliveries, docq_error *err);

/* Write a task's outcome: state SUCCESS with value as result, or FAILURE
 * with value as error (a SUCCESS also clears the error an earlier, failed
 * attempt left); set finished_at and the record's expiry (ttl_s);
 * acknowledge and delete the stream entry entry_id of group, all in one step.
 * The write happens only while the task is STARTED by this same attempt;
 * otherwise nothing is written and DOCQ_ECONFLICT is returned (the entry is
 * still acknowledged when the task is terminal or gone, and left to its
 * newer owner when a newer attempt is running). Sent again by the same
 * attempt after it wrote, it returns DOCQ_OK and changes nothing. */
int docq_store_finish(docq_redis *r, const char *prefix, const char *group, const char *task_id,
                      const char *entry_id, uint32_t attempt, docq_task_state state,
                      const char *value, size_t value_len, long ttl_s, docq_error *err);

/* Acknowledge and delete a stream entry without touching any record (for
 * entries whose task is gone or already finished). */
int docq_store_ack(docq_redis *r, const char *prefix, int shard, const char *group,
                   const char *entry_id, docq_error *err);

/* Record a transient AI failure of attempt: failures + 1 and error = value
 * (value_len bytes), while the task stays STARTED, so that the task shows the
 * last error while it waits for its retry. On DOCQ_OK, *failures is the new
 * count. Returns DOCQ_ECONFLICT when the task is no longer STARTED by this
 * attempt (nothing is written). A second call for the same attempt returns
 * the same count and changes nothing. */
int docq_store_retry(docq_redis *r, const char *prefix, const char *task_id, uint32_t attempt,
                     const char *value, size_t value_len, uint32_t *failures, docq_error *err);

/* Begin the retry of a task whose attempt `attempt` failed transiently:
 * attempts + 1 and started_at = now, only while the task is still STARTED by
 * that attempt. On DOCQ_OK, *next is the new attempt (the new fencing token).
 * Returns DOCQ_ECONFLICT when the task moved on (another worker took it over,
 * or it is terminal): the worker then drops it without acknowledging. A
 * second call for the same attempt returns the same *next, changing nothing. */
int docq_store_restart(docq_redis *r, const char *prefix, const char *task_id, uint32_t attempt,
                       uint32_t *next, docq_error *err);

/* Heartbeat: reset the idle time of the entries ids[0..n-1] of shard's stream
 * (XCLAIM ... JUSTID, which does not count a delivery) where they are still
 * pending under consumer, so that no live worker's entry is reclaimed. An
 * entry that another consumer owns now, or that is no longer pending, is left
 * alone and marked with lost[i] = 1 (else 0). */
int docq_store_heartbeat(docq_redis *r, const char *prefix, int shard, const char *group,
                         const char *consumer, const char *const *ids, size_t n, int *lost,
                         docq_error *err);

/* Delete the consumers of group on shard's stream that hold no pending
 * entry and are named consumer (NULL or "": none) or have been idle for
 * idle_ms or more (XINFO CONSUMERS, XGROUP DELCONSUMER, in one script). A
 * consumer with a pending entry is never deleted. *deleted: how many were. */
int docq_store_prune(docq_redis *r, const char *prefix, int shard, const char *group, const char *consumer,
                     long idle_ms, long long *deleted, docq_error *err);

/* Reclaim: XAUTOCLAIM for consumer up to count entries of shard's stream
 * that have been idle for min_idle_ms or more, scanning the group's pending
 * list from cursor (an entry id; "0-0" from the start), which is updated to
 * where the next call should go on ("0-0" after a full pass; cursor holds at
 * least 48 bytes). On DOCQ_OK, *entries is the array of claimed entries, each
 * [id, [field, value, ...]], owned by the caller (freeReplyObject). Entries
 * that were deleted from the stream while pending are dropped from the
 * pending list by Redis and are not among them. */
int docq_store_reclaim(docq_redis *r, const char *prefix, int shard, const char *group,
                       const char *consumer, long min_idle_ms, char *cursor, long count,
                       redisReply **entries, docq_error *err);

/* Write a worker's consumer name into buf: "<host>-<pid>-<16 hex digits>",
 * the last 64 random bits (getrandom), so that two workers never share a
 * name even when their pods share a host name and both are PID 1. Returns
 * DOCQ_OK, DOCQ_EINVAL when it does not fit in cap, or DOCQ_ERR when the
 * system has no randomness to give. */
int docq_consumer_name(char *buf, size_t cap, const char *host, long pid, docq_error *err);

/* Write the key of caller's index of its tasks in shard into buf:
 * "P:{sN}:owned:<caller>". Returns DOCQ_OK, or DOCQ_EINVAL when it does not
 * fit cap. */
int docq_key_owned(char *buf, size_t cap, const char *prefix, int shard, const char *caller);

#define DOCQ_LIST_MAX 1000              /* Largest ListTasks page_size. */
#define DOCQ_LIST_DEFAULT 50            /* page_size 0. */
#define DOCQ_LIST_PAGE_BYTES (3L << 20) /* A page stops once its records hold this many bytes (one
                                         * record at least), to stay within gRPC's default 4 MiB. */
#define DOCQ_LIST_SCAN_MIN 2000         /* Entries a list step may look at: this, or twice the page
                                         * size when more (a states filter may skip many). */
#define DOCQ_LIST_TOKEN_MAX 160         /* Room for a page token and its NUL. */

/* Which page of a caller's tasks docq_store_list_queue reads. */
typedef struct docq_list_query {
    int page_size;                     /* 1 to DOCQ_LIST_MAX. */
    int64_t after_score;               /* Start strictly after the index entry (after_score, */
    char after_id[DOCQ_TASK_ID_MAX];   /* after_id) in (score desc, id desc) order; -1: newest. */
    const char *owner;                 /* Only records whose owner is it; NULL: any record. */
    const docq_task_state *states;     /* Only these states (nstates of them); 0: all. */
    size_t nstates;
} docq_list_query;

/* One page of tasks (docq_store_list_result). Free with docq_task_page_clear. */
typedef struct docq_task_page {
    docq_task *tasks;                 /* n tasks, newest first (owned). */
    size_t n;
    int more;                         /* 1: entries follow (next_*), 0: the last page. */
    int64_t next_score;               /* The last entry looked at, where the next page starts */
    char next_id[DOCQ_TASK_ID_MAX];   /* after (not always a task of this page: see states). */
} docq_task_page;

/* Free what page owns and reset it to all zeros. */
void docq_task_page_clear(docq_task_page *page);

/* ListTasks's Redis work, one script (common/lua/list.lua): count a read
 * against reader's read limit and, when admitted, read the page q of
 * reader's tasks (its index, in its shard), dropping the index entries of
 * records that are gone. At most DOCQ_LIST_SCAN_MIN (or 2 * page_size)
 * entries are looked at, so a page may hold fewer than page_size tasks
 * (none, with a states filter) while more follow. The result: DOCQ_OK with
 * *page (cleared first) and *rate, DOCQ_ELIMITED with *rate, or the errors
 * of docq_redis_eval. */
int docq_store_list_queue(docq_pipeline *pl, const char *prefix, const char *group, const docq_reader *reader,
                          const docq_list_query *q, docq_store_ticket *ticket, docq_error *err);
int docq_store_list_result(const docq_pipeline *pl, const docq_store_ticket *ticket, docq_rate_result *rate,
                           docq_task_page *page, docq_error *err);

/* Write the page token of the index entry (score, task_id) into buf (at
 * least DOCQ_LIST_TOKEN_MAX bytes): opaque to clients (hex of
 * "<score>.<task_id>"). */
void docq_list_token_format(char *buf, size_t cap, int64_t score, const char *task_id);

/* Parse a page token into *score and task_id (DOCQ_TASK_ID_MAX bytes).
 * Returns DOCQ_OK, or DOCQ_EINVAL for anything docq_list_token_format
 * could not have written. Pure. */
int docq_list_token_parse(const char *tok, int64_t *score, char *task_id, docq_error *err);

/* DeleteTask's Redis work, one script (common/lua/delete.lua): count the
 * call against reader's read limit and, when admitted, delete task_id when
 * it is reader's and has ended (SUCCESS, FAILURE, CANCELLED): its record,
 * its entry in reader's index and the request key its record names
 * (request_key, or request_id under "P:{sN}:req:<caller>:") when that key
 * is reader's and still names the task. The task is the
 * caller's when owner (the caller id of an authenticated caller) is its
 * record's owner, or, owner NULL (a caller that is an address), when it is
 * in reader's index (reader submitted it). A task of another shard than
 * reader's is never the caller's: DOCQ_ENOTFOUND, the call only counted.
 * Sent again after a lost reply (redis.h), it finds its receipt and
 * answers DOCQ_OK once more.
 * The result: DOCQ_OK (deleted), DOCQ_ENOTFOUND (no such task of the
 * caller), DOCQ_ECONFLICT (it has not ended; *state says where it is),
 * DOCQ_ELIMITED, or the errors of docq_redis_eval; *rate is filled but for
 * those errors. */
int docq_store_delete_queue(docq_pipeline *pl, const char *prefix, const char *task_id, const docq_reader *reader,
                            const char *owner, docq_store_ticket *ticket, docq_error *err);
int docq_store_delete_result(const docq_pipeline *pl, const docq_store_ticket *ticket, docq_rate_result *rate,
                             docq_task_state *state, docq_error *err);

/* The Lua source of the submit script (for benchmarks that measure what
 * Redis alone can do of SubmitDoc's work). Static storage. */
const char *docq_store_submit_script(void);

#endif
