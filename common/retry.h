/* retry.h -- which AI failures deserve another try, and how long to wait.
 *
 * The worker's retry policy, kept apart from its event loop so that it can be
 * tested alone.
 *
 * Transient or permanent. A failed AI call is transient when the same request
 * may well succeed later: no answer at all (connection refused or reset,
 * connect or total timeout), HTTP 429 Too Many Requests, or any 5xx. Any other
 * answer that is not 2xx (400, 404, 422...) is permanent: the same request
 * would fail the same way, so the task fails at once.
 *
 * Backoff. Before the retry that follows the n-th transient failure of a task
 * the worker waits d = min(max, base * 2^(n-1)), drawn uniformly from
 * [d/2, d] ("equal jitter": tasks that failed together, say when the AI
 * service restarted, do not all come back at the same instant, and the wait
 * still has a floor). When the failed answer carried Retry-After, the wait is
 * at least what it asked for, but never more than max, so that a misbehaving
 * service cannot park a task for days. */
#ifndef DOCQ_RETRY_H
#define DOCQ_RETRY_H

#include <stdint.h>

/* 1 when an answer with this HTTP status is worth another try (429 or
 * 5xx), else 0. Only for answers that are not 2xx. */
int docq_retry_status_transient(long http_status);

/* The wait before the retry that follows the failures-th transient failure
 * (failures >= 1), in milliseconds, per the rule above. base_ms and max_ms
 * are positive; retry_after_ms is what the answer asked for, 0 for nothing;
 * rnd is a uniformly random number that picks the point within the jitter
 * range. */
long docq_retry_delay_ms(uint32_t failures, long base_ms, long max_ms, long retry_after_ms,
                         uint64_t rnd);

/* The next number of a fast pseudo-random sequence (splitmix64) kept in
 * *state; any seed is fine. For jitter, not for anything secret. */
uint64_t docq_random_next(uint64_t *state);

#endif
