/* cancels.c -- a cancelled task stops where it runs.
 *
 * CancelTask (common/lua/cancel.lua) ends a STARTED task as CANCELLED in
 * Redis and, in the same script, appends its id to its shard's cancels
 * stream P:{sN}:cancels. The worker running the task must then stop it
 * within a second, and its heartbeat (DOCQ_HEARTBEAT_MS, 5 s by default) is
 * too slow to carry the news, so:
 *
 *   - before taking its first entry the worker notes, per shard, the id of
 *     the newest entry of the shard's cancels stream (cancels_mark): every
 *     cancel that can concern a task it will start comes after it;
 *   - every CANCELS_POLL_MS while it has busy slots, it reads, for each
 *     shard holding one of them, the entries added since the last it saw
 *     (cancels.lua, XRANGE: no blocking command, nothing to unblock), all
 *     shards in one pipeline on the cmd connection (routed by slot in a
 *     Redis Cluster: each read touches one shard's key);
 *   - each id it runs ends its slot whatever the slot's state: the AI call
 *     in flight is aborted (curl closes the connection, so the AI service
 *     sees the client gone), a retry waiting for its backoff is dropped, an
 *     outcome not yet written is dropped (the finish would be refused); the
 *     entry is acknowledged and deleted and the slot freed. Ids of tasks it
 *     does not run (others', or already ended here) are ignored.
 *
 * Shards without busy slots are not read; their starting point stays where
 * it was, and the next read goes on from there (at most CANCELS_READ_MAX
 * entries a read, the rest at the next turn). A cancels stream is trimmed to
 * about DOCQ_CANCELS_MAXLEN entries, so only a shard that gets more cancels
 * than that between two reads could hide one; the task then runs on, and
 * its outcome is refused (finish.lua finds it CANCELLED and only
 * acknowledges the entry): the same ending, later. Nothing else depends on
 * these reads either: a worker that misses them (Redis down, or it died)
 * leaves the entry pending, and whoever receives it next finds the task
 * terminal (start.lua) and acknowledges it. */
#include <stdlib.h>
#include <string.h>

#include "cancels.h"
#include "clock.h"
#include "log.h"
#include "outage.h"
#include "tasks.h"

#define CANCELS_POLL_MS 300    /* How often a worker with busy slots reads the cancels streams. */
#define CANCELS_READ_MAX 1000  /* Most entries of one shard's stream one read takes. */

int cancels_init(worker_loop *w) {
    cancels_state *c = &w->cancels;
    c->after = calloc((size_t)w->nshards, sizeof(*c->after));
    c->shards = calloc((size_t)w->nshards, sizeof(*c->shards));
    c->cmds = calloc((size_t)w->nshards, sizeof(*c->cmds));
    c->busy = calloc((size_t)w->nshards, sizeof(*c->busy));
    c->pl = docq_pipeline_create();
    return c->after && c->shards && c->cmds && c->busy && c->pl ? DOCQ_OK : DOCQ_ERR;
}

void cancels_free(worker_loop *w) {
    cancels_state *c = &w->cancels;
    free(c->after);
    free(c->shards);
    free(c->cmds);
    free(c->busy);
    docq_pipeline_free(c->pl);
}

int cancels_mark(worker_loop *w, docq_error *why) {
    cancels_state *c = &w->cancels;
    if (c->marked) return DOCQ_OK;
    int rc = DOCQ_OK;
    for (int i = 0; i < w->nshards && rc == DOCQ_OK; i++)
        if ((c->cmds[i] = docq_store_cancels_queue(c->pl, w->cfg->key_prefix, i, "", 1, why)) < 0) rc = DOCQ_ERR;
    if (rc == DOCQ_OK) docq_pipeline_run(c->pl, w->cmd);
    for (int i = 0; i < w->nshards && rc == DOCQ_OK; i++) {
        const redisReply *rep;
        rc = docq_store_cancels_result(c->pl, c->cmds[i], &rep, why);
        if (rc == DOCQ_OK) memcpy(c->after[i], rep->element[0]->str, rep->element[0]->len + 1);
    }
    docq_pipeline_reset(c->pl);
    if (rc == DOCQ_OK) c->marked = 1;
    return rc;
}

/* End s, whose task was cancelled: abort its AI call (or drop its retry or
 * unwritten outcome), acknowledge its entry and free it. */
static void cancel_slot(worker_loop *w, slot *s) {
    const char *what = s->state == SLOT_CALLING ? "AI call aborted"
                     : s->state == SLOT_WAITING ? "pending retry dropped"
                                                : "unwritten outcome dropped";
    if (s->state == SLOT_CALLING) ai_client_abort(w->ai, s);
    docq_log(DOCQ_LOG_INFO, s->task_id, "task CANCELLED by its caller: %s (attempt %u, %lld ms in)", what,
             s->attempt, (long long)(docq_now_ms() - s->started_ms));
    docq_counter_add(&w->metrics.tasks[OUTCOME_CANCELLED], 1);
    if (w->redis_ok) {
        /* On failure the entry stays pending: whoever receives it next
         * finds the task terminal and acknowledges it. */
        docq_error why = {0};
        if (docq_store_ack(w->cmd, w->cfg->key_prefix, s->shard, w->cfg->group, s->entry_id, &why) != DOCQ_OK)
            outage_shard_failed(w, s->shard, &why);
    }
    slot_release(w, s);
}

/* End every busy slot of shard that runs task_id (len bytes). */
static void cancel_task(worker_loop *w, int shard, const char *task_id, size_t len) {
    for (int i = 0; i < w->nslots; i++) {
        slot *s = &w->slots[i];
        if (s->state != SLOT_FREE && s->shard == shard && strlen(s->task_id) == len &&
            memcmp(s->task_id, task_id, len) == 0)
            cancel_slot(w, s);
    }
}

/* Queue the read of every shard with a busy slot into c->pl. Returns how
 * many were queued, or -1 when memory ran out. */
static int queue_reads(worker_loop *w) {
    cancels_state *c = &w->cancels;
    docq_error why = {0};
    int n = 0;
    memset(c->busy, 0, (size_t)w->nshards);
    for (int i = 0; i < w->nslots; i++)
        if (w->slots[i].state != SLOT_FREE) c->busy[w->slots[i].shard] = 1;
    for (int i = 0; i < w->nshards; i++) {
        if (!c->busy[i]) continue;
        c->shards[n] = i;
        c->cmds[n] = docq_store_cancels_queue(c->pl, w->cfg->key_prefix, i, c->after[i], CANCELS_READ_MAX, &why);
        if (c->cmds[n++] < 0) {
            docq_log_warn("cannot read the cancels streams: %s", why.msg);
            return -1;
        }
    }
    return n;
}

void cancels_poll(worker_loop *w) {
    cancels_state *c = &w->cancels;
    int64_t now = docq_now_ms();
    if (!w->redis_ok || !c->marked || w->nfree == w->nslots || now < c->next_poll_ms) return;
    c->next_poll_ms = now + CANCELS_POLL_MS;
    int n = queue_reads(w);
    if (n > 0) docq_pipeline_run(c->pl, w->cmd);
    for (int k = 0; k < n; k++) {
        const redisReply *rep;
        docq_error why = {0};
        int shard = c->shards[k];
        if (docq_store_cancels_result(c->pl, c->cmds[k], &rep, &why) != DOCQ_OK) {
            outage_shard_failed(w, shard, &why);
            if (!w->redis_ok) break;
            continue;
        }
        memcpy(c->after[shard], rep->element[0]->str, rep->element[0]->len + 1);
        if (rep->elements > CANCELS_READ_MAX) c->next_poll_ms = now; /* More may wait. */
        for (size_t j = 1; j < rep->elements; j++)
            cancel_task(w, shard, rep->element[j]->str, rep->element[j]->len);
        if (k == n - 1 && w->redis_ok) outage_redis_worked(w);
    }
    docq_pipeline_reset(c->pl);
}

int64_t cancels_next_ms(const worker_loop *w) {
    if (!w->cancels.marked || w->nfree == w->nslots) return INT64_MAX;
    return w->cancels.next_poll_ms;
}
