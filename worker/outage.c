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

void outage_shard_failed(worker_loop *w, int shard, const docq_error *why) {
    if (!docq_redis_is_cluster(w->cmd) || shard < 0 || shard >= w->nshards) {
        outage_redis_failed(w, why);
        return;
    }
    shard_outage *o = &w->shard_out[shard];
    if (!o->logged)
        docq_log_warn("redis: shard %d unusable (its primary), the other shards go on; retrying: %s", shard,
                      why->msg);
    o->logged = 1;
    if (o->backoff_ms < OUTAGE_BACKOFF_MIN_MS) o->backoff_ms = OUTAGE_BACKOFF_MIN_MS;
    o->down_until_ms = docq_now_ms() + o->backoff_ms;
    o->backoff_ms = o->backoff_ms * 2 > OUTAGE_BACKOFF_MAX_MS ? OUTAGE_BACKOFF_MAX_MS : o->backoff_ms * 2;
    if (w->rs.in_flight && w->rs.nsent == 1 && w->rs.sent[0] == shard) {
        docq_redis_disconnect(w->rd); /* Its reply will never be read. */
        w->rs.in_flight = 0;
    }
}

void outage_shard_worked(worker_loop *w, int shard) {
    shard_outage *o = &w->shard_out[shard];
    if (o->logged) docq_log_info("redis: shard %d usable again", shard);
    o->logged = 0;
    o->backoff_ms = OUTAGE_BACKOFF_MIN_MS;
    o->down_until_ms = 0;
}

int outage_shard_down(const worker_loop *w, int shard) {
    return w->shard_out[shard].down_until_ms && docq_now_ms() < w->shard_out[shard].down_until_ms;
}
