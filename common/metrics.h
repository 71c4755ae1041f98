/* metrics.h -- Prometheus metrics: counters, gauges, histograms and their
 * text exposition format.
 *
 * A metric is a plain struct of atomics that any thread updates without a
 * lock (relaxed increments); the scraping thread reads them while they move,
 * which Prometheus tolerates (each sample is read atomically). Each binary
 * declares its metrics where it owns them and writes its own exposition with
 * the docq_metrics_* writers below, so that names, labels and help texts
 * stay in one place per binary. */
#ifndef DOCQ_METRICS_H
#define DOCQ_METRICS_H

#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

typedef struct docq_counter {
    atomic_uint_fast64_t v;
} docq_counter;

typedef struct docq_gauge {
    atomic_int_fast64_t v;
} docq_gauge;

static inline void docq_counter_add(docq_counter *c, uint64_t n) {
    atomic_fetch_add_explicit(&c->v, n, memory_order_relaxed);
}
static inline uint64_t docq_counter_get(const docq_counter *c) {
    return atomic_load_explicit(&c->v, memory_order_relaxed);
}
static inline void docq_counter_set(docq_counter *c, uint64_t n) {
    atomic_store_explicit(&c->v, n, memory_order_relaxed);
}
static inline void docq_gauge_add(docq_gauge *g, int64_t n) {
    atomic_fetch_add_explicit(&g->v, n, memory_order_relaxed);
}
static inline void docq_gauge_set(docq_gauge *g, int64_t n) {
    atomic_store_explicit(&g->v, n, memory_order_relaxed);
}
static inline int64_t docq_gauge_get(const docq_gauge *g) {
    return atomic_load_explicit(&g->v, memory_order_relaxed);
}

#define DOCQ_HISTOGRAM_MAX_BUCKETS 20

/* A histogram of durations with fixed upper bounds in seconds. */
typedef struct docq_histogram {
    const double *bounds;  /* Ascending upper bounds, seconds (static storage). */
    int nbounds;           /* At most DOCQ_HISTOGRAM_MAX_BUCKETS. */
    atomic_uint_fast64_t counts[DOCQ_HISTOGRAM_MAX_BUCKETS + 1]; /* Last: +Inf. */
    atomic_uint_fast64_t sum_ns;
} docq_histogram;

/* Bounds for request latencies (0.5 ms to 10 s) and for AI calls (10 ms to
 * 30 min). */
extern const double docq_rpc_latency_bounds[];
extern const int docq_rpc_latency_nbounds;
extern const double docq_ai_latency_bounds[];
extern const int docq_ai_latency_nbounds;

/* Set h up (zeroed) with bounds, which must outlive it. */
void docq_histogram_init(docq_histogram *h, const double *bounds, int nbounds);

/* Record one duration in nanoseconds. */
void docq_histogram_observe_ns(docq_histogram *h, uint64_t ns);

/* Write "# HELP name help" and "# TYPE name type" (counter, gauge,
 * histogram). */
void docq_metrics_family(docq_buf *b, const char *name, const char *type, const char *help);

/* Write one sample "name{labels} value"; labels is the inside of the braces
 * (e.g. `method="SubmitDoc",code="OK"`), or NULL/"" for none. */
void docq_metrics_sample(docq_buf *b, const char *name, const char *labels, double value);

/* Write the standard process families of the calling process:
 * process_cpu_seconds_total, process_resident_memory_bytes,
 * process_open_fds, process_max_fds and process_start_time_seconds (Linux
 * /proc; a value that cannot be read is left out). */
void docq_metrics_process(docq_buf *b);

/* Write a histogram's _bucket (cumulative, le=...), _sum and _count lines. */
void docq_metrics_histogram(docq_buf *b, const char *name, const char *labels, const docq_histogram *h);

#endif
