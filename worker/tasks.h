/* tasks.h -- a task's life in a slot of the worker: start, AI call, retries
 * with backoff, outcome (tasks.c). */
#ifndef DOCQ_WORKER_TASKS_H
#define DOCQ_WORKER_TASKS_H

#include <stdint.h>

#include "worker.h"

/* Handle one stream entry [id, [field, value, ...] or nil] received from
 * shard: start its task in a free slot, or acknowledge it when it has none.
 * Returns DOCQ_OK, or DOCQ_EUNAVAIL after a Redis failure. */
int tasks_take_entry(worker_loop *w, int shard, const redisReply *e, entry_source from);

/* Write the outcomes and failure records that wait in their slots; stops at
 * the first Redis failure. */
void tasks_flush_writes(worker_loop *w);

/* Start the retries whose backoff is over. */
void tasks_start_due_retries(worker_loop *w);

/* Take the AI calls that finished and write what they decided (or keep it
 * while Redis is unusable). */
void tasks_collect_results(worker_loop *w);

/* Stopping: give up the slots waiting for a retry. Their entries stay
 * pending, to be reclaimed by another worker; the tasks stay STARTED. */
void tasks_leave_waiting(worker_loop *w);

/* The earliest retry_at_ms of the waiting slots, or INT64_MAX. */
int64_t tasks_next_retry_ms(const worker_loop *w);

/* Free what s holds and put it back on the free list. */
void slot_release(worker_loop *w, slot *s);

#endif
