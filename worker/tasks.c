/* tasks.c -- a task's life in one of the worker's slots.
 *
 *   entry received ──start──▶ CALLING ──AI answered──▶ WRITING ──written──▶ free
 *                                ▲                        │ (outcome, or a
 *                                │                        │  transient failure
 *                          restart (attempt + 1)          │  to record)
 *                                │                        ▼
 *                             WAITING ◀──failure recorded─┘
 *                        (backoff, Retry-After)
 *
 * A slot is busy from the moment its entry is received until what the task
 * came to is written to Redis, so the loop never takes more entries than it
 * has free slots, and the heartbeat (recovery.c) keeps every busy slot's entry
 * claimed: during the AI call, during the backoff before a retry, and while an
 * outcome waits for Redis to come back.
 *
 * Which failures are retried and how long to wait is retry.h's policy; every
 * write is fenced by the slot's attempt (see task.h), so a slot whose task was
 * taken over by another worker writes nothing and is dropped. */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ai_outcome.h"
#include "clock.h"
#include "json.h"
#include "log.h"
#include "outage.h"
#include "retry.h"
#include "tasks.h"

#define REQUEST_MAX (DOCQ_DOC_ID_MAX * 6 + DOCQ_TASK_ID_MAX * 2 + 64)

/* ---- Slots ---------------------------------------------------------------- */

/* Move s to state, keeping the loop's counts of writing and waiting slots. */
static void slot_enter(worker_loop *w, slot *s, slot_state state) {
    if (s->state == SLOT_WRITING) w->nwriting--;
    if (s->state == SLOT_WAITING) w->nwaiting--;
    s->state = state;
    if (state == SLOT_WRITING) w->nwriting++;
    if (state == SLOT_WAITING) w->nwaiting++;
}

/* Take a free slot, or NULL when all are busy. */
static slot *slot_take(worker_loop *w) {
    if (w->nfree == 0) return NULL;
    slot *s = &w->slots[w->free_list[--w->nfree]];
    memset(s, 0, sizeof(*s));
    return s;
}

void slot_release(worker_loop *w, slot *s) {
    slot_enter(w, s, SLOT_FREE);
    free(s->result);
    s->result = NULL;
    w->free_list[w->nfree++] = (int)(s - w->slots);
}

/* 1 when a busy slot holds entry id of shard's stream, else 0. (Ids are
 * unique within one stream only: entries added to two streams in the same
 * millisecond share an id.) */
static int slot_has_entry(const worker_loop *w, int shard, const char *id) {
    for (int i = 0; i < w->nslots; i++) {
        const slot *s = &w->slots[i];
        if (s->state != SLOT_FREE && s->shard == shard && strcmp(s->entry_id, id) == 0) return 1;
    }
    return 0;
}

/* The attempt of s failed; the printf-style reason goes into s->error. A
 * permanent failure ends the task as FAILURE. A transient one (retry_after_ms
 * is what the answer's Retry-After asked, or 0) is recorded for a retry while
 * the task has attempts left, else it ends the task saying it gave up. Either
 * way s then waits to be written. */
static void slot_fail(worker_loop *w, slot *s, int transient, long retry_after_ms, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void slot_fail(worker_loop *w, slot *s, int transient, long retry_after_ms, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->error, sizeof(s->error), fmt, ap);
    va_end(ap);
    uint32_t failed = s->failures + 1;
    s->retry = transient && failed < (uint32_t)w->cfg->max_attempts;
    s->retry_after_ms = retry_after_ms;
    s->outcome = DOCQ_STATE_FAILURE;
    if (transient && !s->retry) {
        size_t n = strlen(s->error);
        snprintf(s->error + n, sizeof(s->error) - n, " (gave up after %u attempt%s)", failed,
                 failed == 1 ? "" : "s");
    }
    slot_enter(w, s, SLOT_WRITING);
}

/* ---- What an AI call came to ---------------------------------------------- */

/* Turn a finished AI call into what s must write (ai_outcome.h): SUCCESS
 * with r's body (taken), FAILURE, or a transient failure to retry. */
static void slot_decide(worker_loop *w, slot *s, ai_result *r) {
    ai_outcome o;
    ai_outcome_decide(r, (size_t)w->cfg->max_result_bytes, &o);
    if (o.verdict != AI_SUCCESS) {
        worker_metrics_ai_error(&w->metrics, r);
        slot_fail(w, s, o.verdict == AI_TRANSIENT, o.retry_after_ms, "%s", o.error);
        return;
    }
    s->outcome = DOCQ_STATE_SUCCESS;
    s->retry = 0;
    s->result = r->body;
    s->result_len = r->body_len;
    r->body = NULL;
    slot_enter(w, s, SLOT_WRITING);
}

/* ---- Writing -------------------------------------------------------------- */

/* Log a task whose outcome was written. */
static void log_finished(const slot *s) {
    long long ms = (long long)(docq_now_ms() - s->started_ms);
    if (s->outcome == DOCQ_STATE_SUCCESS)
        docq_log(DOCQ_LOG_INFO, s->task_id, "task SUCCESS in %lld ms, attempt %u", ms, s->attempt);
    else
        docq_log(DOCQ_LOG_INFO, s->task_id, "task FAILURE: %s (in %lld ms, attempt %u)", s->error,
                 ms, s->attempt);
}

/* Write s's outcome, acknowledge and delete its entry (docq_store_finish),
 * and free s. Returns DOCQ_OK, or the Redis failure, in which case s keeps
 * its outcome for a later try. */
static int write_outcome(worker_loop *w, slot *s) {
    const docq_config *cfg = w->cfg;
    int ok = s->outcome == DOCQ_STATE_SUCCESS;
    const char *value = ok ? (s->result ? s->result : "") : s->error;
    size_t len = ok ? s->result_len : strlen(s->error);
    docq_error why = {0};
    int rc = docq_store_finish(w->cmd, cfg->key_prefix, cfg->group, s->task_id, s->entry_id,
                               s->attempt, s->outcome, value, len, cfg->result_ttl_s, &why);
    if (rc == DOCQ_OK) {
        log_finished(s);
        docq_counter_add(&w->metrics.tasks[ok ? OUTCOME_SUCCESS : OUTCOME_FAILURE], 1);
    } else if (rc == DOCQ_ECONFLICT) {
        docq_counter_add(&w->metrics.tasks[OUTCOME_SUPERSEDED], 1);
        docq_log(DOCQ_LOG_WARN, s->task_id, "%s outcome of attempt %u not written: %s",
                 docq_task_state_name(s->outcome), s->attempt, why.msg);
    } else {
        outage_shard_failed(w, s->shard, &why);
        return rc;
    }
    outage_redis_worked(w);
    slot_release(w, s);
    return DOCQ_OK;
}

/* Record s's transient failure (docq_store_retry) and wait for the backoff;
 * when stopping, leave the task to another worker instead. Returns DOCQ_OK,
 * or the Redis failure, in which case s keeps it for a later try. */
static int write_retry(worker_loop *w, slot *s) {
    const docq_config *cfg = w->cfg;
    docq_error why = {0};
    uint32_t failures;
    int rc = docq_store_retry(w->cmd, cfg->key_prefix, s->task_id, s->attempt, s->error,
                              strlen(s->error), &failures, &why);
    if (rc != DOCQ_OK && rc != DOCQ_ECONFLICT) {
        outage_shard_failed(w, s->shard, &why);
        return rc;
    }
    outage_redis_worked(w);
    if (rc == DOCQ_ECONFLICT) {
        docq_log(DOCQ_LOG_WARN, s->task_id, "failure of attempt %u not recorded: %s", s->attempt, why.msg);
        slot_release(w, s);
    } else if (w->stopping) {
        docq_log(DOCQ_LOG_INFO, s->task_id, "attempt %u failed (%s); stopping, so the retry is "
                 "left to another worker", s->attempt, s->error);
        slot_release(w, s);
    } else {
        long delay = docq_retry_delay_ms(failures, cfg->retry_base_ms, cfg->retry_max_ms,
                                         s->retry_after_ms, docq_random_next(&w->rng));
        s->failures = failures;
        s->retry_at_ms = docq_now_ms() + delay;
        slot_enter(w, s, SLOT_WAITING);
        docq_log(DOCQ_LOG_INFO, s->task_id, "attempt %u failed (%s); retry %u of %ld in %ld ms",
                 s->attempt, s->error, failures, cfg->max_attempts - 1, delay);
    }
    return DOCQ_OK;
}

/* Write what s waits to write. Returns DOCQ_OK or the Redis failure. */
static int write_slot(worker_loop *w, slot *s) {
    return s->retry ? write_retry(w, s) : write_outcome(w, s);
}

void tasks_flush_writes(worker_loop *w) {
    for (int i = 0; i < w->nslots && w->nwriting > 0 && w->redis_ok; i++)
        if (w->slots[i].state == SLOT_WRITING && !outage_shard_down(w, w->slots[i].shard))
            write_slot(w, &w->slots[i]); /* A failure ends the loop unless only its shard stopped. */
}

void tasks_collect_results(worker_loop *w) {
    ai_result r;
    while (ai_client_next(w->ai, &r)) {
        slot *s = r.user;
        docq_histogram_observe_ns(&w->metrics.ai_latency, (uint64_t)(docq_now_ms() - s->started_ms) * 1000000u);
        slot_decide(w, s, &r);
        ai_result_clear(&r);
        if (w->redis_ok && !outage_shard_down(w, s->shard)) write_slot(w, s);
    }
}

/* ---- Calling the AI --------------------------------------------------------- */

/* Append the literal text to buf (capacity cap, holding *len bytes). */
static void append_text(char *buf, size_t cap, size_t *len, const char *text) {
    size_t n = strlen(text);
    if (*len + n + 1 > cap) n = cap - *len - 1;
    memcpy(buf + *len, text, n);
    *len += n;
    buf[*len] = '\0';
}

/* The AI request: {"task_id":"...","doc_id":"..."}. Returns its length. */
static size_t build_request(char *buf, size_t cap, const char *task_id, const char *doc_id,
                            size_t doc_len) {
    size_t len = 0;
    append_text(buf, cap, &len, "{\"task_id\":\"");
    docq_json_escape(buf, cap, &len, task_id, strlen(task_id));
    append_text(buf, cap, &len, "\",\"doc_id\":\"");
    docq_json_escape(buf, cap, &len, doc_id, doc_len);
    append_text(buf, cap, &len, "\"}");
    return len;
}

/* Start the AI call of the current attempt of s; a call that cannot be
 * started ends the task as FAILURE instead. */
static void call_ai(worker_loop *w, slot *s) {
    char body[REQUEST_MAX];
    docq_error why = {0};
    size_t len = build_request(body, sizeof(body), s->task_id, s->doc_id, s->doc_len);
    s->started_ms = docq_now_ms();
    if (ai_client_start(w->ai, body, len, s, &why) != DOCQ_OK) {
        slot_fail(w, s, 0, 0, "AI call could not be started: %s", why.msg);
        return;
    }
    slot_enter(w, s, SLOT_CALLING);
}

void tasks_start_due_retries(worker_loop *w) {
    int64_t now = docq_now_ms();
    for (int i = 0; i < w->nslots && w->nwaiting > 0 && w->redis_ok; i++) {
        slot *s = &w->slots[i];
        if (s->state != SLOT_WAITING || s->retry_at_ms > now || outage_shard_down(w, s->shard)) continue;
        docq_error why = {0};
        uint32_t next;
        int rc = docq_store_restart(w->cmd, w->cfg->key_prefix, s->task_id, s->attempt, &next, &why);
        if (rc != DOCQ_OK && rc != DOCQ_ECONFLICT) {
            outage_shard_failed(w, s->shard, &why);
            continue; /* The loop ends unless only this shard's primary failed (a cluster). */
        }
        outage_redis_worked(w);
        if (rc == DOCQ_ECONFLICT) {
            docq_log(DOCQ_LOG_WARN, s->task_id, "retry dropped: %s", why.msg);
            slot_release(w, s);
            continue;
        }
        docq_log(DOCQ_LOG_DEBUG, s->task_id, "retrying: attempt %u", next);
        docq_counter_add(&w->metrics.retries, 1);
        s->attempt = next;
        call_ai(w, s);
    }
}

void tasks_leave_waiting(worker_loop *w) {
    for (int i = 0; i < w->nslots && w->nwaiting > 0; i++) {
        slot *s = &w->slots[i];
        if (s->state != SLOT_WAITING) continue;
        docq_log(DOCQ_LOG_INFO, s->task_id, "stopping: retry left to another worker");
        slot_release(w, s);
    }
}

int64_t tasks_next_retry_ms(const worker_loop *w) {
    int64_t next = INT64_MAX;
    for (int i = 0; i < w->nslots && w->nwaiting > 0; i++)
        if (w->slots[i].state == SLOT_WAITING && w->slots[i].retry_at_ms < next)
            next = w->slots[i].retry_at_ms;
    return next;
}

/* ---- Starting tasks ------------------------------------------------------- */

/* Acknowledge and delete an entry that has no task to run, logging why.
 * Returns DOCQ_OK, or DOCQ_EUNAVAIL after a Redis failure (the entry stays
 * pending and is delivered again later). */
static int ack_entry(worker_loop *w, int shard, const char *id, const char *task_id,
                     docq_log_level level, const char *reason) {
    docq_error why = {0};
    docq_log(level, task_id, "%s: acknowledging stream entry %s", reason, id);
    if (docq_store_ack(w->cmd, w->cfg->key_prefix, shard, w->cfg->group, id, &why) != DOCQ_OK) {
        outage_shard_failed(w, shard, &why);
        return DOCQ_EUNAVAIL;
    }
    outage_redis_worked(w);
    return DOCQ_OK;
}

/* Fill s for the task just started and log the start. */
static void slot_fill(slot *s, int shard, const char *id, const char *task_id, const docq_start *st) {
    s->shard = shard;
    snprintf(s->task_id, sizeof(s->task_id), "%s", task_id);
    snprintf(s->entry_id, sizeof(s->entry_id), "%s", id);
    s->attempt = st->attempt;
    s->failures = st->failures;
    docq_log(st->deliveries > 1 ? DOCQ_LOG_INFO : DOCQ_LOG_DEBUG, task_id,
             "task started, attempt %u, delivery %u%s (entry %s of shard %d)", st->attempt,
             st->deliveries, st->deliveries > 1 ? ": taken over from a worker that stopped" : "", id,
             shard);
}

/* Move the task of entry id, which docq_store_start found delivered more
 * than DOCQ_MAX_DELIVERIES times, to the dead-letter stream, count it and
 * log it. Returns DOCQ_OK, or DOCQ_EUNAVAIL after a Redis failure. */
static int dead_letter_task(worker_loop *w, int shard, const char *id, const char *task_id) {
    docq_error why = {0};
    uint32_t deliveries;
    int rc = docq_store_dead_letter(w->cmd, &w->queue, task_id, id, &deliveries, &why);
    if (rc == DOCQ_ENOTFOUND || rc == DOCQ_ECONFLICT)
        return ack_entry(w, shard, id, task_id, DOCQ_LOG_INFO, why.msg);
    if (rc != DOCQ_OK) {
        outage_shard_failed(w, shard, &why);
        return DOCQ_EUNAVAIL;
    }
    docq_counter_add(&w->metrics.dead_lettered, 1);
    docq_counter_add(&w->metrics.tasks[OUTCOME_DEAD_LETTERED], 1);
    docq_log(DOCQ_LOG_WARN, task_id, "task FAILURE: entry %s of shard %d delivered %u times, more "
             "than DOCQ_MAX_DELIVERIES (%ld): moved to the dead-letter stream", id, shard,
             deliveries, w->cfg->max_deliveries);
    return DOCQ_OK;
}

/* Start the task of entry id: mark it STARTED (or dead-letter it, or
 * acknowledge it when it expired in the queue) and call the AI. doc_id is the entry's (NULL when it has none). Returns DOCQ_OK, or
 * DOCQ_EUNAVAIL after a Redis failure. */
static int start_task(worker_loop *w, int shard, const char *id, const char *task_id,
                      const char *doc_id, size_t doc_len) {
    docq_error why = {0};
    docq_start st;
    slot *s = slot_take(w);
    if (!s) {
        /* Reads and reclaims never take more entries than there are free slots. */
        docq_log(DOCQ_LOG_ERROR, task_id, "no free slot for entry %s; it stays pending", id);
        return DOCQ_OK;
    }
    int rc = docq_store_start(w->cmd, &w->queue, task_id, &st, &why);
    if (rc != DOCQ_OK) {
        slot_release(w, s);
        if (rc == DOCQ_ENOTFOUND || rc == DOCQ_ECONFLICT)
            return ack_entry(w, shard, id, task_id, DOCQ_LOG_INFO, why.msg);
        outage_shard_failed(w, shard, &why);
        return DOCQ_EUNAVAIL;
    }
    outage_redis_worked(w);
    if (st.dead) {
        slot_release(w, s);
        return dead_letter_task(w, shard, id, task_id);
    }
    if (st.expired) {
        slot_release(w, s);
        docq_counter_add(&w->metrics.tasks[OUTCOME_EXPIRED], 1);
        return ack_entry(w, shard, id, task_id, DOCQ_LOG_INFO,
                         "task FAILURE: still PENDING past its queue_timeout, expired without an AI call");
    }
    slot_fill(s, shard, id, task_id, &st);
    if (!doc_id || docq_doc_id_validate(doc_id, doc_len, &why) != DOCQ_OK) {
        slot_fail(w, s, 0, 0, "the queue entry holds no valid doc_id: %s", doc_id ? why.msg : "missing");
        return DOCQ_OK;
    }
    memcpy(s->doc_id, doc_id, doc_len);
    s->doc_id[doc_len] = '\0';
    s->doc_len = doc_len;
    call_ai(w, s);
    return DOCQ_OK;
}

int tasks_take_entry(worker_loop *w, int shard, const redisReply *e, entry_source from) {
    if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 || e->element[0]->type != REDIS_REPLY_STRING ||
        e->element[0]->len >= ENTRY_ID_MAX) {
        docq_log_warn("skipping a malformed stream entry on shard %d", shard);
        return DOCQ_OK;
    }
    const char *id = e->element[0]->str;
    const redisReply *f = e->element[1];
    /* Ours and still in a slot: re-read after an outage, or reclaimed because
     * a heartbeat came late. */
    if (from != ENTRY_NEW && slot_has_entry(w, shard, id)) return DOCQ_OK;
    if (f->type != REDIS_REPLY_ARRAY)
        return ack_entry(w, shard, id, NULL, DOCQ_LOG_INFO, "pending entry was deleted from the stream");

    char task_id[DOCQ_TASK_ID_MAX] = "";
    const char *doc_id = NULL;
    size_t doc_len = 0;
    for (size_t i = 0; i + 1 < f->elements; i += 2) {
        const redisReply *k = f->element[i], *v = f->element[i + 1];
        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING) continue;
        if (strcmp(k->str, "task_id") == 0 && v->len < sizeof(task_id))
            memcpy(task_id, v->str, v->len + 1);
        else if (strcmp(k->str, "doc_id") == 0)
            doc_id = v->str, doc_len = v->len;
    }
    int task_shard = -1;
    if (docq_task_id_parse(task_id, strlen(task_id), &task_shard, NULL) != DOCQ_OK || task_shard != shard)
        return ack_entry(w, shard, id, NULL, DOCQ_LOG_WARN, "entry has no valid task_id for its shard");
    return start_task(w, shard, id, task_id, doc_id, doc_len);
}
