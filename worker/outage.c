/* outage.c -- Redis outages of the worker. See outage.h. */
#include "clock.h"
#include "log.h"
#include "outage.h"

void outage_redis_worked(worker_loop *w) { w->backoff_ms = OUTAGE_BACKOFF_MIN_MS; }

/* Drop both connections and schedule a reconnect after the backoff. */
static void redis_schedule_retry(worker_loop *w) {
    docq_redis_disconnect(w->cmd);
    docq_redis_disconnect(w->rd);
    w->rs.in_flight = 0;
    w->redis_ok = 0;
    w->retry_at_ms = docq_now_ms() + w->backoff_ms;
    w->backoff_ms = w->backoff_ms * 2 > OUTAGE_BACKOFF_MAX_MS ? OUTAGE_BACKOFF_MAX_MS : w->backoff_ms * 2;
}

/* Log that Redis became unusable for reason why, once per outage. */
static void redis_log_down(worker_loop *w, const docq_error *why) {
    if (w->down_logged) return;
    if (why->code == DOCQ_EUNAVAIL)
        docq_log_warn("redis unavailable, retrying: %s", why->msg);
    else
        docq_log_error("redis refused a command, retrying: %s", why->msg);
    w->down_logged = 1;
}

void outage_redis_failed(worker_loop *w, const docq_error *why) {
    redis_log_down(w, why);
    redis_schedule_retry(w);
}
