/* cancels.h -- how a worker learns that a task it runs was cancelled
 * (cancels.c). */
#ifndef DOCQ_WORKER_CANCELS_H
#define DOCQ_WORKER_CANCELS_H

#include <stdint.h>

#include "worker.h"

/* Allocate the cancels state. Returns DOCQ_OK or DOCQ_ERR when memory runs
 * out. */
int cancels_init(worker_loop *w);

/* Free the cancels state. */
void cancels_free(worker_loop *w);

/* Once, before the worker takes its first entry: note where each shard's
 * cancels stream ends now, so that every cancel from then on is seen. Does
 * nothing once done. Returns DOCQ_OK, or the Redis failure with why set
 * (try again with the next connection). */
int cancels_mark(worker_loop *w, docq_error *why);

/* When due (every CANCELS_POLL_MS while some slot is busy): read what the
 * cancels streams of the shards of the busy slots got since the last read,
 * in one pipeline on the cmd connection, and end every slot whose task is
 * among them: abort its AI call (or drop its pending retry or unwritten
 * outcome), acknowledge its entry and free it. */
void cancels_poll(worker_loop *w);

/* The time of the next read (INT64_MAX when no slot is busy). */
int64_t cancels_next_ms(const worker_loop *w);

#endif
