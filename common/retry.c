/* retry.c -- the retry policy: transient failures and backoff. See retry.h. */
#include "retry.h"

int docq_retry_status_transient(long http_status) {
    return http_status == 429 || (http_status >= 500 && http_status <= 599);
}

long docq_retry_delay_ms(uint32_t failures, long base_ms, long max_ms, long retry_after_ms,
                         uint64_t rnd) {
    long d = base_ms < max_ms ? base_ms : max_ms;
    for (uint32_t i = 1; i < failures && d < max_ms; i++) d = d > max_ms / 2 ? max_ms : d * 2;
    long low = d / 2;
    long wait = low + (long)(rnd % (uint64_t)(d - low + 1));
    if (retry_after_ms > wait) wait = retry_after_ms < max_ms ? retry_after_ms : max_ms;
    return wait;
}

uint64_t docq_random_next(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}
