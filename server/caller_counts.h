/* caller_counts.h -- a per-caller counter table: what each caller holds open.
 *
 * gRPC enforces the per-call and per-connection bounds itself (server.c,
 * INPUT_LIMIT_ARGS). docq counts what outlives a call's arrival itself: the open long-lived
 * streams of each caller (DOCQ_MAX_WATCHES_PER_CALLER): WatchStatus, health
 * Watch and reflection streams, in one caller_counts table that the server
 * owns and every stream service shares (thread-safe: its own mutex, taken
 * last, so that it may be taken under the watch hub's). A stream without an
 * API key or certificate counts against its address (caller.h). */
#ifndef DOCQ_CALLER_COUNTS_H
#define DOCQ_CALLER_COUNTS_H

#include <stddef.h>

/* How many things each caller holds, by caller id. Thread-safe. */
typedef struct caller_counts caller_counts;

/* One caller's count, handed out by caller_counts_acquire. */
typedef struct caller_count caller_count;

/* An empty table, or NULL when out of memory. */
caller_counts *caller_counts_create(void);

/* Free the table and every count left in it. NULL is fine. */
void caller_counts_free(caller_counts *t);

/* Add one to the count of caller id (NUL-terminated, as docq_caller holds
 * it) when that count is below max (0: no maximum). Returns DOCQ_OK with
 * *out the caller's count (give it back with caller_counts_release),
 * DOCQ_ELIMITED when the caller already holds max, or DOCQ_ERR when out of
 * memory. */
int caller_counts_acquire(caller_counts *t, const char *id, long max, caller_count **out);

/* Take one off c, which caller_counts_acquire handed out; a count that
 * reaches 0 leaves the table (c is then freed). NULL is fine. */
void caller_counts_release(caller_counts *t, caller_count *c);

/* The count of caller id (0 when it holds nothing). */
long caller_counts_get(caller_counts *t, const char *id);

/* The refusal of a stream past DOCQ_MAX_WATCHES_PER_CALLER (printf format:
 * the limit, then the caller id). */
#define STREAM_LIMIT_DETAILS                                                                  \
    "too many open streams (WatchStatus, health Watch and reflection count together): at most " \
    "%ld per caller (%s); end one first"

/* A stream's place in its caller's count, given back when it ends. */
typedef struct stream_hold {
    caller_counts *table;  /* Borrowed: the server's. */
    caller_count *count;   /* NULL: nothing held (released, or never taken). */
} stream_hold;

/* Give h's count back, once (later calls do nothing). NULL is fine. */
void stream_hold_release(stream_hold *h);

#endif
