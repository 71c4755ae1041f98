/* histogram.h -- a latency histogram that threads can record into at once.
 *
 * Log-linear buckets (as HdrHistogram does): exact below 128 µs, then 64
 * buckets per power of two, so any reported value is within 1.6% of the
 * truth, from 1 µs to days. Recording is a relaxed atomic increment, so one
 * thread may record while another reads a snapshot (the progress line). */
#ifndef DOCQ_HISTOGRAM_H
#define DOCQ_HISTOGRAM_H

#include <stdatomic.h>
#include <stdint.h>

#define DOCQ_HIST_BUCKETS 2176

typedef struct docq_hist {
    atomic_uint_fast64_t counts[DOCQ_HIST_BUCKETS];
    atomic_uint_fast64_t total;  /* Values recorded. */
    atomic_uint_fast64_t sum_us; /* Their sum, for the mean. */
    atomic_uint_fast64_t max_us; /* The largest, exact. */
} docq_hist;

/* Zero h (also a valid way to initialize one). */
void docq_hist_init(docq_hist *h);

/* Record one value, in microseconds. */
void docq_hist_record(docq_hist *h, uint64_t us);

/* Add every count of src into dst. */
void docq_hist_merge(docq_hist *dst, const docq_hist *src);

/* The value at quantile q (0..1), in microseconds: the middle of the bucket
 * holding it (the exact maximum for q = 1). 0 when nothing was recorded. */
uint64_t docq_hist_quantile(const docq_hist *h, double q);

#endif
