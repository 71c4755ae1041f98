/* worker_metrics.c -- docq-worker's counters and /metrics page. See
 * worker_metrics.h. */
#include <stdio.h>

#include "worker_metrics.h"

static const char *outcome_names[OUTCOME_N] = {"success", "failure", "dead_lettered", "superseded",
                                                 "cancelled", "expired"};
static const char *error_names[AI_ERR_N] = {"connect", "timeout", "http_4xx", "http_5xx",
                                            "http_other", "body", "other"};

void worker_metrics_init(worker_metrics *m) {
    for (int i = 0; i < OUTCOME_N; i++) docq_counter_set(&m->tasks[i], 0);
    for (int i = 0; i < AI_ERR_N; i++) docq_counter_set(&m->ai_errors[i], 0);
    docq_counter_set(&m->retries, 0);
    docq_counter_set(&m->dead_lettered, 0);
    docq_gauge_set(&m->ai_in_flight, 0);
    docq_gauge_set(&m->ready, 0);
    docq_gauge_set(&m->queue_known, 0);
    docq_gauge_set(&m->queue_length, 0);
    docq_gauge_set(&m->group_lag, 0);
    docq_histogram_init(&m->ai_latency, docq_ai_latency_bounds, docq_ai_latency_nbounds);
}

/* The kind of a failed call. */
static ai_error_kind kind_of(const ai_result *r) {
    if (r->status == AI_CALL_TOO_LARGE) return AI_ERR_BODY;
    if (r->status == AI_CALL_FAILED)
        return r->failure == AI_FAILURE_CONNECT ? AI_ERR_CONNECT
             : r->failure == AI_FAILURE_TIMEOUT ? AI_ERR_TIMEOUT
                                                : AI_ERR_OTHER;
    if (r->http_status >= 200 && r->http_status <= 299) return AI_ERR_BODY;
    if (r->http_status >= 400 && r->http_status <= 499) return AI_ERR_HTTP_4XX;
    if (r->http_status >= 500 && r->http_status <= 599) return AI_ERR_HTTP_5XX;
    return AI_ERR_HTTP_OTHER;
}

void worker_metrics_ai_error(worker_metrics *m, const ai_result *r) { docq_counter_add(&m->ai_errors[kind_of(r)], 1); }

void worker_metrics_loop_state(worker_metrics *m, int ready, int in_flight) {
    docq_gauge_set(&m->ready, ready);
    docq_gauge_set(&m->ai_in_flight, in_flight);
}

/* One family of counters with one label, a sample per name. */
static void write_labelled(docq_buf *out, const char *name, const char *help, const char *label,
                           const char *const *names, const docq_counter *counters, int n) {
    char labels[64];
    docq_metrics_family(out, name, "counter", help);
    for (int i = 0; i < n; i++) {
        snprintf(labels, sizeof(labels), "%s=\"%s\"", label, names[i]);
        docq_metrics_sample(out, name, labels, (double)docq_counter_get(&counters[i]));
    }
}

/* A family with a single sample. */
static void write_one(docq_buf *out, const char *name, const char *type, const char *help, double value) {
    docq_metrics_family(out, name, type, help);
    docq_metrics_sample(out, name, NULL, value);
}

void worker_metrics_write(const worker_metrics *m, docq_buf *out) {
    write_labelled(out, "docq_tasks_total",
                   "Tasks this worker ended, by outcome (superseded: another worker took the task over, "
                   "or it was cancelled, and this one's outcome was not written; cancelled: "
                   "CancelTask stopped it here).",
                   "outcome", outcome_names, m->tasks, OUTCOME_N);
    docq_metrics_family(out, "docq_ai_request_duration_seconds", "histogram",
                        "Duration of each AI call (retries included), whatever its end.");
    docq_metrics_histogram(out, "docq_ai_request_duration_seconds", NULL, &m->ai_latency);
    write_labelled(out, "docq_ai_errors_total", "Failed AI calls, by kind.", "kind", error_names, m->ai_errors,
                   AI_ERR_N);
    write_one(out, "docq_ai_calls_in_flight", "gauge", "AI calls in flight now.",
              (double)docq_gauge_get(&m->ai_in_flight));
    write_one(out, "docq_retries_total", "counter", "Retry attempts started after a transient AI failure.",
              (double)docq_counter_get(&m->retries));
    write_one(out, "docq_dead_lettered_total", "counter",
              "Queue entries moved to a dead-letter stream (delivered more than DOCQ_MAX_DELIVERIES times).",
              (double)docq_counter_get(&m->dead_lettered));
    write_one(out, "docq_worker_ready", "gauge", "1 while Redis is usable and the consumer group joined, else 0.",
              (double)docq_gauge_get(&m->ready));
    if (docq_gauge_get(&m->queue_known)) {
        write_one(out, "docq_queue_length", "gauge",
                  "Entries in the queue streams of every shard (waiting or running; refreshed every "
                  "DOCQ_METRICS_REFRESH_MS).",
                  (double)docq_gauge_get(&m->queue_length));
        write_one(out, "docq_consumer_group_lag", "gauge",
                  "Entries of every shard not yet delivered to any worker of the group (refreshed every "
                  "DOCQ_METRICS_REFRESH_MS).",
                  (double)docq_gauge_get(&m->group_lag));
    }
    docq_metrics_process(out);
}
