/* clock.h -- the monotonic clock, for timers, backoffs and latencies (never
 * for dates: those come from Redis TIME or CLOCK_REALTIME). */
#ifndef DOCQ_CLOCK_H
#define DOCQ_CLOCK_H

#include <stdint.h>

/* Monotonic time in milliseconds, from an arbitrary origin (boot). */
int64_t docq_now_ms(void);

/* Monotonic time in nanoseconds, from the same origin. */
int64_t docq_now_ns(void);

#endif
