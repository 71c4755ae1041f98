/* task.h -- the task model: states, ids, document ids and the task record.
 *
 * The life of a task
 * ------------------
 * A task is one document's trip through docq. Its record lives in Redis as a
 * hash (see store.h for the keys) and its place in the queue is one entry of
 * its shard's stream. The states, and who moves a task between them:
 *
 *   PENDING   SubmitDoc stores the record and adds the stream entry in one
 *             atomic script: a task is never half-created, and a task that
 *             exists is always queued or finished. With a request_id the
 *             same script first looks up the caller's request key
 *             (store.h): a request id already used names its task, and
 *             the submit answers that task as it is now instead of making
 *             one (nor counting it against the rate limit), so retries
 *             of one request, however many arrive at once, make one task.
 *             With a queue_timeout the record holds a deadline: a task
 *             still PENDING past it never starts (below).
 *   STARTED   A worker received the entry (XREADGROUP, or XAUTOCLAIM from a
 *             dead worker; either way it is now in the group's pending list
 *             under that worker's name) and, in one script, set started_at,
 *             attempts + 1 and deliveries + 1 when another worker (or none)
 *             started the task last: a worker re-reading its own pending
 *             entry after a Redis outage counts no delivery. The worker then
 *             calls the AI service, and while it
 *             holds the task it refreshes its claim every DOCQ_HEARTBEAT_MS
 *             (XCLAIM ... JUSTID), however long the call takes.
 *             A transient AI failure (no answer, timeout, HTTP 429 or 5xx)
 *             keeps the task STARTED: one script adds 1 to failures and sets
 *             error to the reason, the worker waits a jittered exponential
 *             backoff (at least what Retry-After asked), then a fenced script
 *             starts the next attempt (STARTED -> STARTED, attempts + 1).
 *             A worker that dies, is killed or stops past its grace leaves
 *             the task STARTED with its entry pending; once the entry has been
 *             idle for DOCQ_VISIBILITY_TIMEOUT_MS a live worker reclaims it
 *             and starts it again (STARTED -> STARTED, attempts + 1,
 *             deliveries + 1). Worker losses are thus counted in deliveries,
 *             apart from the AI's failures, and do not use up the retries.
 *   SUCCESS   The AI answered 2xx; result holds its body (error is cleared).
 *   FAILURE   The AI answered a permanent error (any other non-2xx), or a
 *             transient one on the DOCQ_MAX_ATTEMPTS-th failure, or the
 *             entry was delivered more than DOCQ_MAX_DELIVERIES times (a
 *             poison entry: the start script moves it to the shard's
 *             dead-letter stream instead of starting it); error says which.
 *             Or the task stayed PENDING past its queue deadline: it ends
 *             FAILURE "expired in queue after N s" in whichever script meets
 *             it first: the worker's start script (which then starts
 *             nothing: the worker acknowledges the entry, no AI call), or
 *             the read script of GetStatus and WatchStatus (the server's
 *             subscriber reads each watched PENDING task as its deadline
 *             passes, so a watch ends with no worker running and no
 *             GetStatus). The entry of a task the read script ended stays
 *             in the stream until a worker receives it, finds the task
 *             terminal and acknowledges it.
 *             SUCCESS and FAILURE are terminal: the finishing script writes
 *             the outcome, acknowledges and deletes the stream entry and sets
 *             the record's expiry (DOCQ_RESULT_TTL_S; a request key naming
 *             the task is made to outlive the record) in one atomic step, and
 *             refuses to write when the record is already terminal or was
 *             started again by a newer attempt (fencing by attempt).
 *   CANCELLED CancelTask stopped a PENDING or STARTED task (cancel.lua: one
 *             script sets the state, finished_at, error "cancelled by the
 *             caller" and the record's expiry). Terminal too. A PENDING
 *             task's entry stays in the stream: the worker that receives it
 *             finds the task terminal (start.lua) and only acknowledges it,
 *             so the AI never sees the task. A STARTED task's id is also
 *             appended to its shard's cancels stream, which the workers
 *             holding tasks of that shard read every few hundred ms: the one
 *             running it aborts its AI call (or drops its pending retry) and
 *             acknowledges the entry (worker/cancels.c). Every later write of
 *             the worker (retry, restart, finish, dead-letter) finds the task
 *             no longer STARTED and writes nothing, so whichever of the cancel
 *             and the outcome runs first is the only ending.
 *
 * At-least-once: an entry leaves the stream only with its outcome, so a crash
 * anywhere before that leaves it pending and it is delivered again; the
 * fencing above makes the first outcome the only one, even when a worker that
 * was presumed dead (a zombie) comes back with an answer. An AI call may thus
 * be repeated after a crash, never lost. Nothing unacknowledged is ever
 * trimmed: entries are deleted one by one as their outcome is written.
 *
 * Versions and watchers: every script that changes a record adds 1 to its
 * `version` (submit sets 1) and, in the same atomic step, publishes the whole
 * record on its shard's events channel (store.h, event.h). Versions of one
 * task are thus totally ordered and each is published exactly once, with
 * the record as that change left it. A server streams them to the task's
 * watchers (WatchStatus): a watcher that subscribed before reading the task
 * misses no version, and one that reconnects asks for the versions after
 * the last it saw. A script that refuses to write (a stale finish, a repeat)
 * changes nothing and publishes nothing. Any new state-changing script must
 * do the same: bump the version and publish, in the script itself.
 *
 * Queue position: the submit script also stores `seq`, the entry's number in
 * its stream (entries-added right after its XADD). While the task is PENDING
 * its position is seq minus the number of entries the consumer group has
 * read (1 = the next to be taken). It is computed when read (GetStatus,
 * WatchStatus), never stored: it changes with other tasks' progress, not
 * with this task's version.
 *
 * Task ids: "s<shard>-<32 hex digits>", 128 random bits from getrandom. The
 * shard prefix lets any server find the record without a lookup. */
#ifndef DOCQ_TASK_H
#define DOCQ_TASK_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

/* Numbers match docq.v1.Task.State. */
typedef enum docq_task_state {
    DOCQ_STATE_UNSPECIFIED = 0,
    DOCQ_STATE_PENDING = 1,
    DOCQ_STATE_STARTED = 2,
    DOCQ_STATE_SUCCESS = 3,
    DOCQ_STATE_FAILURE = 4,
    DOCQ_STATE_CANCELLED = 5
} docq_task_state;

#define DOCQ_DOC_ID_MAX 256   /* Longest doc_id, in bytes. */
#define DOCQ_TASK_ID_MAX 48   /* Room for any task id and its NUL. */
#define DOCQ_MAX_SHARDS 1024
#define DOCQ_OWNER_MAX 128    /* Room for an owner (a caller id) and its NUL. */
#define DOCQ_REQUEST_ID_MAX 64 /* Longest request_id, in bytes. */

typedef struct docq_task {
    char task_id[DOCQ_TASK_ID_MAX];
    char doc_id[DOCQ_DOC_ID_MAX + 1];
    docq_task_state state;
    char *result;           /* AI answer (owned, NUL-terminated) or NULL. */
    size_t result_len;      /* Bytes in result, which may hold NULs. */
    char *error;            /* Failure reason (owned) or NULL. */
    char *owner;            /* Caller id of the submitter when it was authenticated (owned), or
                             * NULL: the task belongs to no one. Never sent to clients. */
    uint32_t attempts;      /* AI calls started, retries and re-deliveries included. */
    uint32_t deliveries;    /* Times the queue handed the task to a worker (1 unless one stopped). */
    int64_t created_at_ms;  /* Unix milliseconds; 0 when unset. */
    int64_t started_at_ms;
    int64_t finished_at_ms;
    uint64_t version;       /* Grows by 1 with each change of the record; 1 when submitted. */
    uint64_t seq;           /* The queue entry's number in its stream (entries-added after
                             * its XADD); 0 when unknown. */
    int64_t deadline_ms;    /* Unix ms after which a task still PENDING expires (its queue
                             * timeout); 0: none. Never sent to clients. */
    uint32_t queue_position;/* While PENDING: 1 = next to be taken; 0 = not pending or
                             * unknown. Computed, not stored in the record. */
} docq_task;

/* Name of a state ("PENDING"...), "STATE_UNSPECIFIED" for unknown values. */
const char *docq_task_state_name(docq_task_state s);

/* Parse a state name as stored in Redis. Returns DOCQ_OK or DOCQ_EINVAL. */
int docq_task_state_parse(const char *name, size_t len, docq_task_state *out);

/* 1 for SUCCESS, FAILURE and CANCELLED, else 0. */
int docq_task_state_terminal(docq_task_state s);

/* Check a client-supplied request_id: 1 to DOCQ_REQUEST_ID_MAX bytes of
 * printable ASCII (0x20 to 0x7e). Returns DOCQ_OK or DOCQ_EINVAL with a
 * message saying what is wrong and where. */
int docq_request_id_validate(const char *s, size_t len, docq_error *err);

/* Check a client-supplied doc_id: 1 to DOCQ_DOC_ID_MAX bytes of valid UTF-8
 * without control characters (C0, DEL, C1). Returns DOCQ_OK or DOCQ_EINVAL
 * with a message saying what is wrong and where. */
int docq_doc_id_validate(const char *s, size_t len, docq_error *err);

/* 1 when the len bytes at s are valid UTF-8 (no overlong forms, surrogates
 * or code points above U+10FFFF; NULs allowed), else 0. For text that goes
 * into a proto3 string field, such as an AI answer. */
int docq_utf8_valid(const char *s, size_t len);

/* Write nbytes (at most 64) random bytes from getrandom (drawn in blocks
 * into a pool of the calling thread's) into buf as 2 * nbytes lowercase hex
 * digits and a NUL (cap must hold them). Returns DOCQ_OK, or DOCQ_ERR if the
 * system has no randomness to give. */
int docq_random_hex(char *buf, size_t cap, size_t nbytes, docq_error *err);

/* Make a new task id for shard into buf (at least DOCQ_TASK_ID_MAX bytes).
 * Returns DOCQ_OK, or DOCQ_ERR if the system has no randomness to give. */
int docq_task_id_new(int shard, char *buf, size_t cap, docq_error *err);

/* Check a client-supplied task id and return its shard through *shard.
 * Returns DOCQ_OK or DOCQ_EINVAL with the reason. The shard is not checked
 * against the configured count (the caller does that). */
int docq_task_id_parse(const char *s, size_t len, int *shard, docq_error *err);

/* The shard of task_id, a task id already known to be well formed (made by
 * docq_task_id_new, accepted by docq_task_id_parse, or read back from our own
 * stream entries and records): the decimal number between its leading 's'
 * and the dash. Nothing is checked: the digits after the first byte are read
 * up to the first non-digit (at most 9 of them), 0 when there is none and for
 * an empty string. The one place this parse is written. */
int docq_task_id_shard(const char *task_id);

/* The shard for a caller: a stable hash of its identity mod shards. */
int docq_shard_for(const char *caller, size_t len, int shards);

/* Set one field of t from a stored record's field/value pair (names as in
 * store.h). Unknown fields are ignored so that newer writers can add some.
 * Returns DOCQ_OK, DOCQ_EINVAL for a malformed value, DOCQ_ERR when out of
 * memory. */
int docq_task_set_field(docq_task *t, const char *name, size_t nlen, const char *val, size_t vlen);

/* Free what t owns and reset it to all zeros. */
void docq_task_clear(docq_task *t);

#endif
