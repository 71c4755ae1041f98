/* worker_metrics.h -- what docq-worker counts, and its /metrics page.
 *
 * The loop's thread updates the counters (atomics, metrics.h) as tasks
 * move; the observer's threads (observe.h) read them for the HTTP endpoint
 * and write the queue gauges they refresh from Redis. No lock is needed. */
#ifndef DOCQ_WORKER_METRICS_H
#define DOCQ_WORKER_METRICS_H

#include "ai_client.h"
#include "metrics.h"

/* What became of a task this worker took: the label values of
 * docq_tasks_total{outcome}. */
typedef enum task_outcome {
    OUTCOME_SUCCESS,       /* SUCCESS written. */
    OUTCOME_FAILURE,       /* FAILURE written (permanent, or out of attempts). */
    OUTCOME_DEAD_LETTERED, /* Delivered too often: moved to the dead-letter stream, FAILURE. */
    OUTCOME_SUPERSEDED,    /* Not written: another worker took the task over meanwhile, or it was
                            * cancelled just before the outcome was written. */
    OUTCOME_CANCELLED,     /* Cancelled while here: its AI call aborted or its retry dropped. */
    OUTCOME_EXPIRED,       /* Past its queue_timeout when received: FAILURE, no AI call. */
    OUTCOME_N
} task_outcome;

/* Why an AI call failed: the label values of docq_ai_errors_total{kind}. */
typedef enum ai_error_kind {
    AI_ERR_CONNECT,    /* Could not connect (refused, unresolvable, unreachable). */
    AI_ERR_TIMEOUT,    /* DOCQ_AI_TIMEOUT_MS or DOCQ_AI_CONNECT_TIMEOUT_MS passed. */
    AI_ERR_HTTP_4XX,   /* Answered 4xx (429 included). */
    AI_ERR_HTTP_5XX,   /* Answered 5xx. */
    AI_ERR_HTTP_OTHER, /* Answered another non-2xx status. */
    AI_ERR_BODY,       /* A 2xx answer whose body was refused (too large, not UTF-8). */
    AI_ERR_OTHER,      /* Any other transport error (reset, protocol...). */
    AI_ERR_N
} ai_error_kind;

typedef struct worker_metrics {
    docq_counter tasks[OUTCOME_N];      /* Tasks ended here, by outcome. */
    docq_histogram ai_latency;          /* Every AI call, whatever its end. */
    docq_counter ai_errors[AI_ERR_N];   /* Failed AI calls, by kind. */
    docq_gauge ai_in_flight;            /* AI calls in flight now. */
    docq_counter retries;               /* Retry attempts started. */
    docq_counter dead_lettered;         /* Entries moved to a dead-letter stream. */
    docq_gauge ready;                   /* 1: Redis usable and the consumer group joined. */
    docq_gauge queue_known;             /* 1: the last refresh read every shard. */
    docq_gauge queue_length;            /* Entries in the queue streams (waiting or running). */
    docq_gauge group_lag;               /* Entries the group has not yet delivered. */
} worker_metrics;

/* Zero m and set up its histogram. */
void worker_metrics_init(worker_metrics *m);

/* Count a failed AI call by what r says (see ai_error_kind). */
void worker_metrics_ai_error(worker_metrics *m, const ai_result *r);

/* The loop's state at the top of a turn: Redis usable (and the group
 * joined), and the AI calls in flight. */
void worker_metrics_loop_state(worker_metrics *m, int ready, int in_flight);

/* Write the whole page (every family with HELP and TYPE, then the process
 * metrics) into out. */
void worker_metrics_write(const worker_metrics *m, docq_buf *out);

#endif
