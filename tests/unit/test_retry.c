/* test_retry.c -- the retry policy (common/retry.c): which failures are
 * transient and how long the worker waits before each retry. */
#include <stdint.h>

#include "check.h"
#include "retry.h"

static void transient_statuses(void) {
    static const long transient[] = {429, 500, 502, 503, 504, 599};
    static const long permanent[] = {100, 301, 400, 401, 403, 404, 408, 409, 413, 422, 428, 430, 499, 600};
    for (size_t i = 0; i < sizeof(transient) / sizeof(transient[0]); i++)
        CHECK_MSG(docq_retry_status_transient(transient[i]) == 1, "%ld", transient[i]);
    for (size_t i = 0; i < sizeof(permanent) / sizeof(permanent[0]); i++)
        CHECK_MSG(docq_retry_status_transient(permanent[i]) == 0, "%ld", permanent[i]);
}

/* The top of the jitter range: rnd = step - step / 2 gives exactly the step. */
static long step_of(uint32_t failures, long base, long max) {
    long hi = 0;
    for (uint64_t r = 0; r < 4096; r++) {
        long d = docq_retry_delay_ms(failures, base, max, 0, r);
        if (d > hi) hi = d;
    }
    return hi;
}

static void backoff_doubles_to_max(void) {
    CHECK_INT_EQ(step_of(1, 100, 60000), 100);
    CHECK_INT_EQ(step_of(2, 100, 60000), 200);
    CHECK_INT_EQ(step_of(3, 100, 60000), 400);
    CHECK_INT_EQ(step_of(4, 100, 60000), 800);
    CHECK_INT_EQ(step_of(5, 1000, 5000), 5000); /* 16000 capped. */
    CHECK_INT_EQ(step_of(1, 1000, 300), 300);   /* A base above the maximum is capped too. */
    /* Huge failure counts neither overflow nor pass the maximum. */
    CHECK_INT_EQ(docq_retry_delay_ms(UINT32_MAX, 1000, 86400000, 0, 0), 43200000);
    CHECK_INT_EQ(docq_retry_delay_ms(64, 3600000, 86400000, 0, UINT64_MAX) <= 86400000, 1);
}

static void jitter_within_half_to_full(void) {
    long lo = 1L << 40, hi = 0;
    uint64_t state = 42;
    for (int i = 0; i < 10000; i++) {
        long d = docq_retry_delay_ms(3, 250, 60000, 0, docq_random_next(&state));
        CHECK_MSG(d >= 500 && d <= 1000, "wait %ld outside [500, 1000]", d);
        if (d < lo) lo = d;
        if (d > hi) hi = d;
    }
    /* 10000 draws over 501 values reach both ends. */
    CHECK_INT_EQ(lo, 500);
    CHECK_INT_EQ(hi, 1000);
    /* A 1 ms step still waits: 0 or 1 ms, never negative. */
    CHECK(docq_retry_delay_ms(1, 1, 1, 0, 7) >= 0);
}

static void retry_after_raises_wait(void) {
    /* Below the jittered wait: no effect. */
    CHECK_INT_EQ(docq_retry_delay_ms(1, 1000, 60000, 100, 0), 500);
    /* Above it: the wait is what the AI asked for. */
    CHECK_INT_EQ(docq_retry_delay_ms(1, 1000, 60000, 30000, 0), 30000);
    CHECK_INT_EQ(docq_retry_delay_ms(1, 1000, 60000, 60000, 0), 60000);
    /* Never past the maximum. */
    CHECK_INT_EQ(docq_retry_delay_ms(1, 1000, 60000, 3600000, 0), 60000);
    CHECK_INT_EQ(docq_retry_delay_ms(2, 50, 1000, 3600000, 99), 1000);
}

static void random_sequence(void) {
    uint64_t a = 7, b = 7, c = 8;
    uint64_t first = docq_random_next(&a);
    CHECK(first == docq_random_next(&b));
    CHECK(first != docq_random_next(&c));
    int odd = 0;
    for (int i = 0; i < 1000; i++) odd += (int)(docq_random_next(&a) & 1);
    CHECK_MSG(odd > 400 && odd < 600, "%d odd numbers in 1000", odd);
}

CHECK_MAIN(
    CHECK_CASE(transient_statuses, "only HTTP 429 and 5xx answers are transient"),
    CHECK_CASE(backoff_doubles_to_max,
               "the backoff step doubles from the base with each failure up to the maximum"),
    CHECK_CASE(jitter_within_half_to_full,
               "the jittered wait lies between half the step and the whole step and uses that "
               "whole range"),
    CHECK_CASE(retry_after_raises_wait,
               "a Retry-After raises the wait to what it asks, but never past the maximum"),
    CHECK_CASE(random_sequence, "the random sequence is repeatable from a seed and spreads"))
