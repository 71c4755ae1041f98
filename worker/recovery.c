/* recovery.c -- no task is lost with the worker that held it.
 *
 * Heartbeat. Every DOCQ_HEARTBEAT_MS the worker resets the idle time of the
 * entry of every busy slot (XCLAIM ... JUSTID in docq_store_heartbeat), so
 * that an entry whose AI call takes minutes, or that waits for a retry, never
 * looks abandoned. Only entries still pending under this worker's name are
 * touched: one that another worker took over (because this one stalled past
 * the visibility timeout) is marked lost and left to its new owner; the
 * attempt fencing in the store makes sure only one of them writes an outcome.
 *
 * Reclaim. At the same pace, a worker with free slots takes over entries of
 * any consumer that have been idle for DOCQ_VISIBILITY_TIMEOUT_MS or more
 * (XAUTOCLAIM, which counts a delivery): they belong to a worker that crashed,
 * was killed, or stopped with tasks unfinished. That includes the entries of
 * this worker's own previous run, since a restarted worker has a new consumer
 * name. The round goes shard by shard, keeping a cursor per shard in the
 * group's pending list, and takes no more entries than there are free slots.
 * Reclaimed entries start like read ones (tasks.c); one delivered more than
 * DOCQ_MAX_DELIVERIES times is dead-lettered by the start script instead.
 *
 * Pruning. With each heartbeat the worker also deletes, on one shard in
 * turn, the group's consumers that hold no pending entry and have been idle
 * for DOCQ_CONSUMER_IDLE_MS or more: those of workers that stopped without
 * leaving the group (killed, or stopped with tasks unfinished that were
 * reclaimed since). A live worker's consumer is recreated by its next read
 * if ever deleted, and one with pending entries is never deleted. */
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"
#include "outage.h"
#include "recovery.h"
#include "tasks.h"

#define RECLAIM_CALLS_MAX 64  /* XAUTOCLAIM calls in one round, so that a round stays short. */

int recovery_init(worker_loop *w) {
    recovery_state *rec = &w->recovery;
    rec->cursor = calloc((size_t)w->nshards, sizeof(*rec->cursor));
    rec->ids = calloc((size_t)w->nslots, sizeof(*rec->ids));
    rec->owners = calloc((size_t)w->nslots, sizeof(*rec->owners));
    rec->lost = calloc((size_t)w->nslots, sizeof(*rec->lost));
    if (!rec->cursor || !rec->ids || !rec->owners || !rec->lost) return DOCQ_ERR;
    for (int i = 0; i < w->nshards; i++) strcpy(rec->cursor[i], "0-0");
    rec->next_heartbeat_ms = docq_now_ms() + w->cfg->heartbeat_ms;
    rec->next_reclaim_ms = 0; /* As soon as the own pending entries are re-read. */
    return DOCQ_OK;
}

void recovery_free(worker_loop *w) {
    free(w->recovery.cursor);
    free(w->recovery.ids);
    free(w->recovery.owners);
    free(w->recovery.lost);
}

/* qsort order of slot pointers: by shard. */
static int by_shard(const void *a, const void *b) {
    const slot *x = *(slot *const *)a, *y = *(slot *const *)b;
    return (x->shard > y->shard) - (x->shard < y->shard);
}

/* Heartbeat the n entries of owners[] (all of one shard). Returns DOCQ_OK or
 * the Redis failure. */
static int heartbeat_shard(worker_loop *w, slot **owners, int n) {
    recovery_state *rec = &w->recovery;
    docq_error why = {0};
    for (int i = 0; i < n; i++) rec->ids[i] = owners[i]->entry_id;
    int st = docq_store_heartbeat(w->cmd, w->cfg->key_prefix, owners[0]->shard, w->cfg->group,
                                  w->consumer, rec->ids, (size_t)n, rec->lost, &why);
    if (st != DOCQ_OK) {
        outage_shard_failed(w, owners[0]->shard, &why);
        return st;
    }
    for (int i = 0; i < n; i++) {
        if (!rec->lost[i]) continue;
        owners[i]->lost = 1;
        docq_log(DOCQ_LOG_WARN, owners[i]->task_id,
                 "entry %s is no longer pending under this worker (taken over after its claim "
                 "lapsed, or finished elsewhere); attempt %u goes on but writes only if still current",
                 owners[i]->entry_id, owners[i]->attempt);
    }
    return DOCQ_OK;
}

/* Delete the idle consumers without pending entries of the next shard in
 * turn (docq_store_prune). */
static void prune_idle_consumers(worker_loop *w) {
    recovery_state *rec = &w->recovery;
    docq_error why = {0};
    long long deleted;
    int shard = rec->next_prune;
    rec->next_prune = (shard + 1) % w->nshards;
    if (outage_shard_down(w, shard)) return;
    if (docq_store_prune(w->cmd, w->cfg->key_prefix, shard, w->cfg->group, NULL, w->cfg->consumer_idle_ms,
                         &deleted, &why) != DOCQ_OK) {
        outage_shard_failed(w, shard, &why);
        return;
    }
    outage_redis_worked(w);
    if (deleted > 0)
        docq_log_info("deleted %lld consumers of group %s on shard %d: idle for %ld ms or more with "
                      "nothing pending", deleted, w->cfg->group, shard, w->cfg->consumer_idle_ms);
}

void recovery_heartbeat(worker_loop *w) {
    recovery_state *rec = &w->recovery;
    int64_t now = docq_now_ms();
    if (!w->redis_ok || now < rec->next_heartbeat_ms) return;
    rec->next_heartbeat_ms = now + w->cfg->heartbeat_ms;
    int n = 0;
    for (int i = 0; i < w->nslots; i++)
        if (w->slots[i].state != SLOT_FREE && !w->slots[i].lost) rec->owners[n++] = &w->slots[i];
    qsort(rec->owners, (size_t)n, sizeof(*rec->owners), by_shard);
    for (int start = 0, end; start < n; start = end) {
        for (end = start + 1; end < n && rec->owners[end]->shard == rec->owners[start]->shard;) end++;
        if (outage_shard_down(w, rec->owners[start]->shard)) continue;
        if (heartbeat_shard(w, rec->owners + start, end - start) != DOCQ_OK && !w->redis_ok) return;
    }
    if (n > 0) outage_redis_worked(w);
    if (w->redis_ok) prune_idle_consumers(w);
}

int recovery_reclaim_due(const worker_loop *w) {
    return w->redis_ok && !w->stopping && !w->rs.scanning && w->nfree > 0 &&
           docq_now_ms() >= w->recovery.next_reclaim_ms;
}

/* Reclaim from one shard until its pass is complete, the slots are full or
 * *calls reaches RECLAIM_CALLS_MAX. Returns DOCQ_OK or DOCQ_EUNAVAIL after a
 * Redis failure. */
static int reclaim_shard(worker_loop *w, int shard, int *calls) {
    char *cursor = w->recovery.cursor[shard];
    do {
        docq_error why = {0};
        redisReply *entries;
        if (docq_store_reclaim(w->cmd, w->cfg->key_prefix, shard, w->cfg->group, w->consumer,
                               w->cfg->visibility_timeout_ms, cursor, w->nfree, &entries,
                               &why) != DOCQ_OK) {
            outage_shard_failed(w, shard, &why);
            return DOCQ_EUNAVAIL;
        }
        outage_redis_worked(w);
        (*calls)++;
        int rc = DOCQ_OK;
        for (size_t i = 0; entries && i < entries->elements && rc == DOCQ_OK; i++)
            rc = tasks_take_entry(w, shard, entries->element[i], ENTRY_RECLAIMED);
        freeReplyObject(entries);
        if (rc != DOCQ_OK) return rc;
    } while (strcmp(cursor, "0-0") != 0 && w->nfree > 0 && *calls < RECLAIM_CALLS_MAX);
    return DOCQ_OK;
}

void recovery_reclaim(worker_loop *w) {
    recovery_state *rec = &w->recovery;
    int calls = 0;
    rec->next_reclaim_ms = docq_now_ms() + w->cfg->heartbeat_ms;
    for (int k = 0; k < w->nshards && w->nfree > 0 && calls < RECLAIM_CALLS_MAX; k++) {
        int shard = (rec->next_shard + k) % w->nshards;
        if (outage_shard_down(w, shard)) continue;
        if (reclaim_shard(w, shard, &calls) != DOCQ_OK && !w->redis_ok) return;
    }
    rec->next_shard = (rec->next_shard + 1) % w->nshards;
}

int64_t recovery_next_ms(const worker_loop *w) {
    int64_t next = w->recovery.next_heartbeat_ms;
    if (!w->stopping && !w->rs.scanning && !w->rs.in_flight && w->nfree > 0 &&
        w->recovery.next_reclaim_ms < next)
        next = w->recovery.next_reclaim_ms;
    return next;
}
