/* metrics.c -- metric updates and the Prometheus text format. See metrics.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

const double docq_rpc_latency_bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                          0.1,    0.25,  0.5,    1,     2.5,  5,     10};
const int docq_rpc_latency_nbounds = sizeof(docq_rpc_latency_bounds) / sizeof(double);
const double docq_ai_latency_bounds[] = {0.01, 0.05, 0.1, 0.25, 0.5, 1,   2.5,  5,
                                         10,   30,   60,  120,  300, 600, 1800};
const int docq_ai_latency_nbounds = sizeof(docq_ai_latency_bounds) / sizeof(double);

void docq_histogram_init(docq_histogram *h, const double *bounds, int nbounds) {
    memset(h, 0, sizeof(*h));
    h->bounds = bounds;
    h->nbounds = nbounds < DOCQ_HISTOGRAM_MAX_BUCKETS ? nbounds : DOCQ_HISTOGRAM_MAX_BUCKETS;
}

void docq_histogram_observe_ns(docq_histogram *h, uint64_t ns) {
    double s = (double)ns / 1e9;
    int i = 0;
    while (i < h->nbounds && s > h->bounds[i]) i++;
    atomic_fetch_add_explicit(&h->counts[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_ns, ns, memory_order_relaxed);
}

void docq_buf_printf(docq_buf *b, const char *fmt, ...) {
    for (;;) {
        va_list ap;
        size_t room = b->cap - b->len;
        va_start(ap, fmt);
        int n = b->data && !b->oom ? vsnprintf(b->data + b->len, room, fmt, ap) : -1;
        va_end(ap);
        if (b->oom) return;
        if (n >= 0 && (size_t)n < room) {
            b->len += (size_t)n;
            return;
        }
        size_t need = b->len + (n > 0 ? (size_t)n : 0) + 1;
        size_t cap = b->cap ? b->cap * 2 : 4096;
        while (cap < need) cap *= 2;
        char *grown = realloc(b->data, cap);
        if (!grown) {
            b->oom = 1;
            if (b->data) b->data[b->len] = '\0';
            return;
        }
        b->data = grown;
        b->cap = cap;
        if (b->len == 0) b->data[0] = '\0';
    }
}

void docq_buf_free(docq_buf *b) {
    free(b->data);
    memset(b, 0, sizeof(*b));
}

void docq_metrics_family(docq_buf *b, const char *name, const char *type, const char *help) {
    docq_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void docq_metrics_sample(docq_buf *b, const char *name, const char *labels, double value) {
    if (labels && *labels)
        docq_buf_printf(b, "%s{%s} %.17g\n", name, labels, value);
    else
        docq_buf_printf(b, "%s %.17g\n", name, value);
}

void docq_metrics_histogram(docq_buf *b, const char *name, const char *labels, const docq_histogram *h) {
    const char *sep = labels && *labels ? "," : "";
    const char *l = labels ? labels : "";
    uint64_t cumulative = 0;
    for (int i = 0; i <= h->nbounds; i++) {
        cumulative += atomic_load_explicit(&h->counts[i], memory_order_relaxed);
        if (i < h->nbounds)
            docq_buf_printf(b, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, l, sep, h->bounds[i],
                            (unsigned long long)cumulative);
        else
            docq_buf_printf(b, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, l, sep,
                            (unsigned long long)cumulative);
    }
    double sum = (double)atomic_load_explicit(&h->sum_ns, memory_order_relaxed) / 1e9;
    if (*l) {
        docq_buf_printf(b, "%s_sum{%s} %.9g\n%s_count{%s} %llu\n", name, l, sum, name, l,
                        (unsigned long long)cumulative);
    } else {
        docq_buf_printf(b, "%s_sum %.9g\n%s_count %llu\n", name, sum, name, (unsigned long long)cumulative);
    }
}
