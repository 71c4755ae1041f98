/* histogram.c -- log-linear latency histogram. See histogram.h. */
#include <string.h>

#include "histogram.h"

/* Bucket of a value: exact below 128, then the top 7 significant bits. */
static unsigned bucket_of(uint64_t v) {
    if (v < 128) return (unsigned)v;
    unsigned msb = 63u - (unsigned)__builtin_clzll(v);
    unsigned shift = msb - 6;
    unsigned idx = 128 + (shift - 1) * 64 + (unsigned)((v >> shift) - 64);
    return idx < DOCQ_HIST_BUCKETS ? idx : DOCQ_HIST_BUCKETS - 1;
}

/* The middle of bucket idx. */
static uint64_t bucket_value(unsigned idx) {
    if (idx < 128) return idx;
    unsigned shift = (idx - 128) / 64 + 1;
    uint64_t m = (idx - 128) % 64 + 64;
    return (m << shift) + (((uint64_t)1 << shift) >> 1);
}

void docq_hist_init(docq_hist *h) {
    for (unsigned i = 0; i < DOCQ_HIST_BUCKETS; i++) atomic_init(&h->counts[i], 0);
    atomic_init(&h->total, 0);
    atomic_init(&h->sum_us, 0);
    atomic_init(&h->max_us, 0);
}

void docq_hist_record(docq_hist *h, uint64_t us) {
    atomic_fetch_add_explicit(&h->counts[bucket_of(us)], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->total, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_us, us, memory_order_relaxed);
    uint64_t cur = atomic_load_explicit(&h->max_us, memory_order_relaxed);
    while (us > cur && !atomic_compare_exchange_weak_explicit(&h->max_us, &cur, us, memory_order_relaxed,
                                                              memory_order_relaxed)) {
    }
}

void docq_hist_merge(docq_hist *dst, const docq_hist *src) {
    for (unsigned i = 0; i < DOCQ_HIST_BUCKETS; i++)
        atomic_fetch_add_explicit(&dst->counts[i], atomic_load_explicit(&src->counts[i], memory_order_relaxed),
                                  memory_order_relaxed);
    atomic_fetch_add(&dst->total, atomic_load(&src->total));
    atomic_fetch_add(&dst->sum_us, atomic_load(&src->sum_us));
    uint64_t m = atomic_load(&src->max_us);
    if (m > atomic_load(&dst->max_us)) atomic_store(&dst->max_us, m);
}

uint64_t docq_hist_quantile(const docq_hist *h, double q) {
    uint64_t total = 0;
    for (unsigned i = 0; i < DOCQ_HIST_BUCKETS; i++)
        total += atomic_load_explicit(&h->counts[i], memory_order_relaxed);
    if (total == 0) return 0;
    uint64_t max = atomic_load_explicit(&h->max_us, memory_order_relaxed);
    if (q >= 1.0) return max;
    uint64_t rank = (uint64_t)(q * (double)total) + 1, seen = 0;
    for (unsigned i = 0; i < DOCQ_HIST_BUCKETS; i++) {
        seen += atomic_load_explicit(&h->counts[i], memory_order_relaxed);
        if (seen >= rank) {
            uint64_t v = bucket_value(i);
            return v < max ? v : max;
        }
    }
    return max;
}
