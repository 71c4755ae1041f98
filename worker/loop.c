/* loop.c -- the worker's event loop: slots, reading stream entries, starting
 * and finishing tasks, and riding out Redis outages. See loop.h for the
 * shape of one turn and task.h for the states a task goes through.
 *
 * Everything here runs on the one thread that calls worker_loop_run; there
 * is no global state. */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ai_client.h"
#include "log.h"
#include "loop.h"
#include "store.h"
#include "task.h"

#define READ_BLOCK_MS 1000   /* XREADGROUP BLOCK: how long an idle read waits for entries. */
#define READ_POLL_MS 100     /* Pause after a round of partial reads that found nothing. */
#define BACKOFF_MIN_MS 100   /* First wait before reconnecting to Redis... */
#define BACKOFF_MAX_MS 2000  /* ...doubling up to this. */
#define MAX_AI_BODY (16L * 1024 * 1024)
#define ENTRY_ID_MAX 48      /* A stream id: two 64-bit numbers and a dash. */
#define KEY_MAX 96
#define ERROR_MAX 512
#define SNIPPET_MAX 200      /* Bytes of an error answer's body quoted in the task's error. */
#define REQUEST_MAX (DOCQ_DOC_ID_MAX * 6 + DOCQ_TASK_ID_MAX * 2 + 64)
#define READ_FIXED_ARGS 9    /* XREADGROUP GROUP g c COUNT n BLOCK ms STREAMS */

typedef enum slot_state {
    SLOT_FREE = 0,
    SLOT_CALLING,  /* The AI call is in flight. */
    SLOT_WRITING   /* The outcome is known and waits to be written to Redis. */
} slot_state;

/* One task this worker has read and not yet finished. */
typedef struct slot {
    slot_state state;
    int shard;                    /* The shard whose stream holds the entry. */
    char task_id[DOCQ_TASK_ID_MAX];
    char entry_id[ENTRY_ID_MAX];  /* The task's stream entry, pending under our name. */
    uint32_t attempt;             /* Fencing token from docq_store_start. */
    int64_t started_ms;           /* Monotonic time of the start, for the log. */
    docq_task_state outcome;      /* WRITING: SUCCESS or FAILURE. */
    char *result;                 /* WRITING a SUCCESS: the AI's answer (owned) or NULL if empty. */
    size_t result_len;            /* Bytes in result. */
    char error[ERROR_MAX];        /* WRITING a FAILURE: the reason. */
} slot;

/* The XREADGROUP side of the loop, on the rd connection. */
typedef struct reader {
    int in_flight;                   /* A read was sent on rd; its reply is awaited. */
    int64_t deadline_ms;             /* When to give up waiting for that reply. */
    int scanning;                    /* Re-reading our own pending entries, not new ones. */
    int *sent;                       /* Shards of the read in flight, in key order. */
    int nsent;
    int next_shard;                  /* First shard of the next partial read. */
    int empty_reads;                 /* Partial reads in a row that got nothing. */
    int64_t next_read_ms;            /* No partial read before this time. */
    unsigned char *scan_done;        /* Scanning, per shard: no pending entry left there. */
    char (*scan_from)[ENTRY_ID_MAX]; /* Scanning, per shard: the last id re-read ("0" at first). */
    long long client_id;             /* CLIENT ID of rd, for CLIENT UNBLOCK. */
    char count_arg[24];              /* Argument strings of the read in flight. */
    char block_arg[24];
} reader;

struct worker_loop {
    const docq_config *cfg;   /* Borrowed from main. */
    char consumer[320];       /* "<hostname>-<pid>". */
    int stop_fd;              /* Polled until readable; owned by main. */
    docq_redis *cmd;          /* Synchronous scripts: start, finish, ack; group creation. */
    docq_redis *rd;           /* The XREADGROUP, sent without waiting for its reply. */
    ai_client *ai;
    slot *slots;
    int nslots;
    int *free_list;           /* Indexes of the free slots (a stack). */
    int nfree;
    int nwriting;             /* Slots in SLOT_WRITING. */
    int nshards;
    char (*keys)[KEY_MAX];    /* Stream key of each shard. */
    const char **argv;        /* XREADGROUP arguments, with room for every shard. */
    size_t *argvlen;
    reader rs;
    int redis_ok;             /* Both connections up and the groups exist. */
    int down_logged;          /* An outage was logged; log when it ends. */
    int joined;               /* The start-up line was logged. */
    long backoff_ms;          /* The next wait before reconnecting. */
    int64_t retry_at_ms;      /* No reconnect before this time. */
    int stopping;             /* Stop asked: no new reads. */
    int64_t stop_at_ms;       /* With stopping: when the grace is over. */
};

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- Slots ---------------------------------------------------------------- */

/* Take a free slot, or NULL when all are busy. */
static slot *slot_take(worker_loop *w) {
    if (w->nfree == 0) return NULL;
    slot *s = &w->slots[w->free_list[--w->nfree]];
    memset(s, 0, sizeof(*s));
    return s;
}

/* Free what s holds and put it back on the free list. */
static void slot_release(worker_loop *w, slot *s) {
    if (s->state == SLOT_WRITING) w->nwriting--;
    free(s->result);
    s->result = NULL;
    s->state = SLOT_FREE;
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

/* Give s the outcome FAILURE with a printf-style reason; it waits to be
 * written. */
static void slot_fail(worker_loop *w, slot *s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void slot_fail(worker_loop *w, slot *s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->error, sizeof(s->error), fmt, ap);
    va_end(ap);
    s->outcome = DOCQ_STATE_FAILURE;
    s->state = SLOT_WRITING;
    w->nwriting++;
}

/* ---- Redis state ---------------------------------------------------------- */

/* A Redis command worked: the next outage starts with a short backoff. */
static void redis_worked(worker_loop *w) { w->backoff_ms = BACKOFF_MIN_MS; }

/* Drop both connections and schedule a reconnect after the backoff. */
static void redis_schedule_retry(worker_loop *w) {
    docq_redis_disconnect(w->cmd);
    docq_redis_disconnect(w->rd);
    w->rs.in_flight = 0;
    w->redis_ok = 0;
    w->retry_at_ms = now_ms() + w->backoff_ms;
    w->backoff_ms = w->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : w->backoff_ms * 2;
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

/* A Redis command failed (unreachable or refused): stop using Redis until
 * redis_recover succeeds. Whatever was pending stays in Redis; outcomes stay
 * in their slots. */
static void redis_failed(worker_loop *w, const docq_error *why) {
    redis_log_down(w, why);
    redis_schedule_retry(w);
}

/* Ask for rd's client id, so that a blocked read can be cut short. */
static int fetch_client_id(worker_loop *w, docq_error *err) {
    const char *argv[] = {"CLIENT", "ID"};
    redisReply *rep = docq_redis_command(w->rd, 2, argv, NULL, err);
    if (!rep) return err->code;
    int rc = DOCQ_OK;
    if (rep->type == REDIS_REPLY_INTEGER)
        w->rs.client_id = rep->integer;
    else
        rc = docq_error_set(err, DOCQ_ERR, "unexpected reply to CLIENT ID");
    freeReplyObject(rep);
    return rc;
}

/* XGROUP CREATE <stream> <group> 0 MKSTREAM on every shard; a group that
 * exists already (BUSYGROUP) is fine. */
static int create_groups(worker_loop *w, docq_error *err) {
    for (int i = 0; i < w->nshards; i++) {
        const char *argv[] = {"XGROUP", "CREATE", w->keys[i], w->cfg->group, "0", "MKSTREAM"};
        redisReply *rep = docq_redis_command(w->cmd, 6, argv, NULL, err);
        if (rep) {
            freeReplyObject(rep);
        } else if (err->code != DOCQ_ERR || strncmp(err->msg, "BUSYGROUP", 9) != 0) {
            return err->code;
        }
    }
    return DOCQ_OK;
}

/* Start re-reading our own pending entries from the beginning of each stream. */
static void scan_reset(worker_loop *w) {
    w->rs.scanning = 1;
    for (int i = 0; i < w->nshards; i++) {
        w->rs.scan_done[i] = 0;
        strcpy(w->rs.scan_from[i], "0");
    }
}

/* Connect both connections, make sure the groups exist and start the re-read
 * of our pending entries. On failure, schedule the next try. */
static void redis_recover(worker_loop *w) {
    docq_error why = {0};
    if (docq_redis_connect(w->cmd, &why) != DOCQ_OK || docq_redis_connect(w->rd, &why) != DOCQ_OK ||
        fetch_client_id(w, &why) != DOCQ_OK || create_groups(w, &why) != DOCQ_OK) {
        redis_log_down(w, &why);
        docq_log_debug("redis still unusable, next try in %ld ms: %s", w->backoff_ms, why.msg);
        redis_schedule_retry(w);
        return;
    }
    w->redis_ok = 1;
    scan_reset(w);
    if (!w->joined) {
        docq_log_info("worker %s joined group %s on %d shards, concurrency %d", w->consumer,
                      w->cfg->group, w->nshards, w->nslots);
        w->joined = 1;
    } else if (w->down_logged) {
        docq_log_info("redis usable again: group %s ready on %d shards, re-reading own pending entries",
                      w->cfg->group, w->nshards);
    }
    w->down_logged = 0;
}

/* ---- Finishing tasks ------------------------------------------------------ */

/* Write into out (cap bytes) ": <start of body>" when the body's first
 * SNIPPET_MAX bytes are printable text, else an empty string. */
static void body_snippet(const char *body, size_t len, char *out, size_t cap) {
    char text[SNIPPET_MAX];
    size_t n = len < SNIPPET_MAX ? len : SNIPPET_MAX, t = 0;
    out[0] = '\0';
    if (!body) return;
    while (n > 0 && n < len && ((unsigned char)body[n] & 0xc0) == 0x80) n--; /* Whole characters. */
    if (!docq_utf8_valid(body, n)) return;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)body[i];
        if (c == '\n' || c == '\r' || c == '\t') c = ' ';
        else if (c < 0x20 || c == 0x7f) return;
        text[t++] = (char)c;
    }
    while (t > 0 && text[t - 1] == ' ') t--;
    if (t > 0) snprintf(out, cap, ": %.*s%s", (int)t, text, n < len ? "..." : "");
}

/* Turn a finished AI call into s's outcome. Takes r's body for a SUCCESS. */
static void slot_set_outcome(worker_loop *w, slot *s, ai_result *r) {
    char snippet[SNIPPET_MAX + 16];
    if (r->status == AI_CALL_TOO_LARGE) {
        slot_fail(w, s, "AI answer larger than %ld bytes", MAX_AI_BODY);
    } else if (r->status == AI_CALL_FAILED) {
        slot_fail(w, s, "AI call failed: %s", r->error);
    } else if (r->http_status < 200 || r->http_status > 299) {
        body_snippet(r->body, r->body_len, snippet, sizeof(snippet));
        slot_fail(w, s, "AI service answered HTTP %ld%s", r->http_status, snippet);
    } else if (!docq_utf8_valid(r->body ? r->body : "", r->body_len)) {
        slot_fail(w, s, "AI service answered with a body that is not valid UTF-8");
    } else {
        s->outcome = DOCQ_STATE_SUCCESS;
        s->result = r->body;
        s->result_len = r->body_len;
        r->body = NULL;
        s->state = SLOT_WRITING;
        w->nwriting++;
    }
}

/* Log a task whose outcome was written. */
static void log_finished(const slot *s) {
    long long ms = (long long)(now_ms() - s->started_ms);
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
    } else if (rc == DOCQ_ECONFLICT) {
        docq_log(DOCQ_LOG_WARN, s->task_id, "%s outcome of attempt %u not written: %s",
                 docq_task_state_name(s->outcome), s->attempt, why.msg);
    } else {
        redis_failed(w, &why);
        return rc;
    }
    redis_worked(w);
    slot_release(w, s);
    return DOCQ_OK;
}

/* Write every outcome that is waiting, until Redis fails. */
static void flush_outcomes(worker_loop *w) {
    for (int i = 0; i < w->nslots && w->nwriting > 0; i++)
        if (w->slots[i].state == SLOT_WRITING && write_outcome(w, &w->slots[i]) != DOCQ_OK) return;
}

/* Take the calls that finished and write their outcomes (or keep them while
 * Redis is unusable). */
static void collect_results(worker_loop *w) {
    ai_result r;
    while (ai_client_next(w->ai, &r)) {
        slot *s = r.user;
        slot_set_outcome(w, s, &r);
        ai_result_clear(&r);
        if (w->redis_ok) write_outcome(w, s);
    }
}

/* ---- Starting tasks ------------------------------------------------------- */

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

/* Start the AI call of the started task in s; a task that cannot be sent
 * gets its FAILURE outcome instead. */
static void call_ai(worker_loop *w, slot *s, const char *doc_id, size_t doc_len) {
    char body[REQUEST_MAX];
    docq_error why = {0};
    if (!doc_id || docq_doc_id_validate(doc_id, doc_len, &why) != DOCQ_OK) {
        slot_fail(w, s, "the queue entry holds no valid doc_id: %s", doc_id ? why.msg : "missing");
        return;
    }
    size_t len = build_request(body, sizeof(body), s->task_id, doc_id, doc_len);
    if (ai_client_start(w->ai, body, len, s, &why) != DOCQ_OK) {
        slot_fail(w, s, "AI call could not be started: %s", why.msg);
        return;
    }
    s->state = SLOT_CALLING;
}

/* Acknowledge and delete an entry that has no task to run, logging why.
 * Returns DOCQ_OK, or DOCQ_EUNAVAIL after a Redis failure (the entry stays
 * pending and is re-read after the reconnect). */
static int ack_entry(worker_loop *w, int shard, const char *id, const char *task_id,
                     docq_log_level level, const char *reason) {
    docq_error why = {0};
    docq_log(level, task_id, "%s: acknowledging stream entry %s", reason, id);
    if (docq_store_ack(w->cmd, w->cfg->key_prefix, shard, w->cfg->group, id, &why) != DOCQ_OK) {
        redis_failed(w, &why);
        return DOCQ_EUNAVAIL;
    }
    redis_worked(w);
    return DOCQ_OK;
}

/* Mark the task of entry id STARTED and call the AI. Returns DOCQ_OK, or
 * DOCQ_EUNAVAIL after a Redis failure. */
static int start_task(worker_loop *w, int shard, const char *id, const char *task_id,
                      const char *doc_id, size_t doc_len) {
    docq_error why = {0};
    uint32_t attempt;
    slot *s = slot_take(w);
    if (!s) {
        /* Reads never ask for more entries than there are free slots. */
        docq_log(DOCQ_LOG_ERROR, task_id, "no free slot for entry %s; it stays pending", id);
        return DOCQ_OK;
    }
    int rc = docq_store_start(w->cmd, w->cfg->key_prefix, task_id, &attempt, &why);
    if (rc != DOCQ_OK) {
        slot_release(w, s);
        if (rc == DOCQ_ENOTFOUND || rc == DOCQ_ECONFLICT)
            return ack_entry(w, shard, id, task_id, DOCQ_LOG_INFO, why.msg);
        redis_failed(w, &why);
        return DOCQ_EUNAVAIL;
    }
    redis_worked(w);
    s->shard = shard;
    snprintf(s->task_id, sizeof(s->task_id), "%s", task_id);
    snprintf(s->entry_id, sizeof(s->entry_id), "%s", id);
    s->attempt = attempt;
    s->started_ms = now_ms();
    docq_log(DOCQ_LOG_DEBUG, task_id, "task started, attempt %u (entry %s of shard %d)", attempt, id,
             shard);
    call_ai(w, s, doc_id, doc_len);
    return DOCQ_OK;
}

/* Handle one stream entry [id, [field, value, ...] or nil] read from shard.
 * Returns DOCQ_OK, or DOCQ_EUNAVAIL after a Redis failure. */
static int take_entry(worker_loop *w, int shard, const redisReply *e) {
    if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 || e->element[0]->type != REDIS_REPLY_STRING ||
        e->element[0]->len >= ENTRY_ID_MAX) {
        docq_log_warn("skipping a malformed stream entry on shard %d", shard);
        return DOCQ_OK;
    }
    const char *id = e->element[0]->str;
    const redisReply *f = e->element[1];
    if (w->rs.scanning && slot_has_entry(w, shard, id)) return DOCQ_OK; /* Ours, still in flight. */
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

/* ---- Reading entries ------------------------------------------------------ */

/* Choose the shards of the next read into rs->sent and the COUNT for each,
 * so that the read returns at most nfree entries (see loop.h). Returns 1 when
 * the read should BLOCK: only a read over every shard does, since a read
 * blocked on some shards would leave entries on the others waiting. */
static int choose_streams(worker_loop *w, long *count) {
    reader *rs = &w->rs;
    int want = w->nfree < w->nshards ? w->nfree : w->nshards;
    rs->nsent = 0;
    if (rs->scanning) {
        for (int i = 0; i < w->nshards && rs->nsent < want; i++)
            if (!rs->scan_done[i]) rs->sent[rs->nsent++] = i;
        *count = w->nfree / rs->nsent;
        return 0;
    }
    for (int i = 0; i < want; i++) rs->sent[rs->nsent++] = (rs->next_shard + i) % w->nshards;
    rs->next_shard = (rs->next_shard + want) % w->nshards;
    *count = w->nfree / want;
    return want == w->nshards;
}

/* After a reply with n entries: a round of partial reads over every shard
 * that found nothing pauses the partial reads for READ_POLL_MS. */
static void note_read(worker_loop *w, int n) {
    reader *rs = &w->rs;
    if (rs->scanning || n > 0 || rs->nsent == w->nshards) {
        rs->empty_reads = 0;
        return;
    }
    if (++rs->empty_reads * rs->nsent >= w->nshards) {
        rs->empty_reads = 0;
        rs->next_read_ms = now_ms() + READ_POLL_MS;
    }
}

/* 1 when a read may be sent now, else 0. */
static int read_wanted(const worker_loop *w) {
    if (!w->redis_ok || w->stopping || w->rs.in_flight || w->nfree == 0) return 0;
    return w->rs.scanning || w->nfree >= w->nshards || now_ms() >= w->rs.next_read_ms;
}

/* 1 when the re-read of our pending entries has reached the end of every
 * stream, else 0. */
static int scan_finished(const worker_loop *w) {
    for (int i = 0; i < w->nshards; i++)
        if (!w->rs.scan_done[i]) return 0;
    return 1;
}

/* Write the whole output buffer of ctx to the socket. */
static int flush_ctx(redisContext *ctx) {
    int done = 0;
    while (!done)
        if (redisBufferWrite(ctx, &done) != REDIS_OK) return DOCQ_ERR;
    return DOCQ_OK;
}

/* Send one XREADGROUP on rd for up to nfree entries, without waiting for the
 * reply: new entries ('>') normally, our own pending ones (from the ids
 * reached) while scanning. */
static void send_read(worker_loop *w) {
    reader *rs = &w->rs;
    long count;
    if (rs->scanning && scan_finished(w)) {
        rs->scanning = 0;
        docq_log_debug("own pending entries re-read");
    }
    int block = choose_streams(w, &count);
    int argc = 0;
    snprintf(rs->count_arg, sizeof(rs->count_arg), "%ld", count);
    snprintf(rs->block_arg, sizeof(rs->block_arg), "%d", READ_BLOCK_MS);
    const char **av = w->argv;
    av[argc++] = "XREADGROUP", av[argc++] = "GROUP", av[argc++] = w->cfg->group;
    av[argc++] = w->consumer, av[argc++] = "COUNT", av[argc++] = rs->count_arg;
    if (block) av[argc++] = "BLOCK", av[argc++] = rs->block_arg;
    av[argc++] = "STREAMS";
    for (int i = 0; i < rs->nsent; i++) av[argc++] = w->keys[rs->sent[i]];
    for (int i = 0; i < rs->nsent; i++) av[argc++] = rs->scanning ? rs->scan_from[rs->sent[i]] : ">";
    for (int i = 0; i < argc; i++) w->argvlen[i] = strlen(av[i]);

    redisContext *ctx = docq_redis_context(w->rd);
    if (!ctx || redisAppendCommandArgv(ctx, argc, av, w->argvlen) != REDIS_OK || flush_ctx(ctx) != DOCQ_OK) {
        docq_error why;
        docq_error_set(&why, DOCQ_EUNAVAIL, "sending XREADGROUP: %s",
                       ctx && ctx->errstr[0] ? ctx->errstr : "connection lost");
        redis_failed(w, &why);
        return;
    }
    rs->in_flight = 1;
    rs->deadline_ms = now_ms() + (block ? READ_BLOCK_MS : 0) + w->cfg->redis_timeout_ms;
}

/* The shard of a stream key that the read in flight named, or -1. */
static int sent_shard_of(const worker_loop *w, const redisReply *key) {
    if (key->type != REDIS_REPLY_STRING) return -1;
    for (int i = 0; i < w->rs.nsent; i++)
        if (strcmp(w->keys[w->rs.sent[i]], key->str) == 0) return w->rs.sent[i];
    return -1;
}

/* Handle the entries of one stream in a read's reply. Returns how many there
 * were through *n; DOCQ_OK, or DOCQ_EUNAVAIL after a Redis failure. */
static int take_stream(worker_loop *w, const redisReply *st, int *n) {
    reader *rs = &w->rs;
    if (st->type != REDIS_REPLY_ARRAY || st->elements != 2) return DOCQ_OK;
    int shard = sent_shard_of(w, st->element[0]);
    const redisReply *entries = st->element[1];
    if (shard < 0 || entries->type != REDIS_REPLY_ARRAY) return DOCQ_OK;
    if (rs->scanning && entries->elements == 0) rs->scan_done[shard] = 1;
    for (size_t i = 0; i < entries->elements; i++) {
        const redisReply *e = entries->element[i];
        (*n)++;
        if (rs->scanning && e->type == REDIS_REPLY_ARRAY && e->elements == 2 &&
            e->element[0]->type == REDIS_REPLY_STRING && e->element[0]->len < ENTRY_ID_MAX)
            memcpy(rs->scan_from[shard], e->element[0]->str, e->element[0]->len + 1);
        if (take_entry(w, shard, e) != DOCQ_OK) return DOCQ_EUNAVAIL;
    }
    return DOCQ_OK;
}

/* Handle the reply of a read: nil (BLOCK timed out), an error or, per
 * stream, [key, [entry...]]. */
static void handle_read_reply(worker_loop *w, const redisReply *rep) {
    int n = 0;
    if (rep->type == REDIS_REPLY_ERROR) {
        docq_error why;
        /* NOGROUP: the group is gone; UNBLOCKED: a stream we waited on was
         * deleted while we waited. */
        if (strncmp(rep->str, "NOGROUP", 7) == 0 || strncmp(rep->str, "UNBLOCKED", 9) == 0) {
            docq_log_warn("stream or consumer group %s is gone (did Redis lose its data?): "
                          "re-creating it: %s", w->cfg->group, rep->str);
            w->redis_ok = 0;
            w->retry_at_ms = 0;
            return;
        }
        docq_error_set(&why, DOCQ_ERR, "XREADGROUP: %s", rep->str);
        redis_failed(w, &why);
        return;
    }
    if (rep->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i < rep->elements; i++)
            if (take_stream(w, rep->element[i], &n) != DOCQ_OK) return;
    } else if (rep->type != REDIS_REPLY_NIL) {
        docq_error why;
        docq_error_set(&why, DOCQ_ERR, "unexpected reply type %d to XREADGROUP", rep->type);
        redis_failed(w, &why);
        return;
    }
    redis_worked(w);
    note_read(w, n);
}

/* rd is readable: take in what arrived and handle the reply once complete. */
static void on_rd_ready(worker_loop *w) {
    redisContext *ctx = docq_redis_context(w->rd);
    void *rep = NULL;
    if (redisBufferRead(ctx) != REDIS_OK || redisGetReplyFromReader(ctx, &rep) != REDIS_OK) {
        docq_error why;
        docq_error_set(&why, DOCQ_EUNAVAIL, "reading XREADGROUP reply: %s",
                       ctx->errstr[0] ? ctx->errstr : "connection lost");
        redis_failed(w, &why);
        return;
    }
    if (!rep) return; /* Only part of the reply is here. */
    w->rs.in_flight = 0;
    handle_read_reply(w, rep);
    freeReplyObject(rep);
}

/* ---- Stopping and waiting ------------------------------------------------- */

/* Cut a blocked read short (it then answers nil, or the entries it already
 * got), so that a stop need not wait for its BLOCK to end. */
static void unblock_read(worker_loop *w) {
    char id[32];
    docq_error why = {0};
    snprintf(id, sizeof(id), "%lld", w->rs.client_id);
    const char *argv[] = {"CLIENT", "UNBLOCK", id};
    redisReply *rep = docq_redis_command(w->cmd, 3, argv, NULL, &why);
    if (rep) freeReplyObject(rep);
    else redis_failed(w, &why);
}

/* The stop descriptor fired: read no more, give the calls in flight the
 * grace to finish. */
static void begin_stop(worker_loop *w) {
    w->stopping = 1;
    w->stop_at_ms = now_ms() + w->cfg->shutdown_grace_ms;
    docq_log_info("stopping: waiting up to %ld ms for %d tasks in flight", w->cfg->shutdown_grace_ms,
                  w->nslots - w->nfree);
    if (w->rs.in_flight && w->redis_ok) unblock_read(w);
}

/* 1 when the loop may return: stopping, and nothing left or the grace over. */
static int loop_done(const worker_loop *w) {
    if (!w->stopping) return 0;
    if (w->nfree == w->nslots && !w->rs.in_flight) return 1;
    return now_ms() >= w->stop_at_ms;
}

/* How long the next poll may wait, ms: until the read's deadline, the next
 * partial read, the next reconnect or the end of the grace, and never more
 * than READ_BLOCK_MS. */
static int poll_timeout(const worker_loop *w) {
    int64_t now = now_ms(), until = now + READ_BLOCK_MS;
    if (w->rs.in_flight && w->rs.deadline_ms < until) until = w->rs.deadline_ms;
    if (w->redis_ok && !w->stopping && !w->rs.in_flight && w->nfree > 0 &&
        w->rs.next_read_ms < until)
        until = w->rs.next_read_ms;
    if (!w->redis_ok && w->retry_at_ms < until) until = w->retry_at_ms;
    if (w->stopping && w->stop_at_ms < until) until = w->stop_at_ms;
    return until > now ? (int)(until - now) : 0;
}

/* Wait once for AI traffic, the read's reply or the stop, and handle what
 * happened. Returns DOCQ_OK, or DOCQ_ERR when the HTTP client fails. */
static int poll_once(worker_loop *w, docq_error *err) {
    ai_waitfd fds[2];
    unsigned n = 0;
    int rd_i = -1, stop_i = -1;
    if (w->rs.in_flight) {
        fds[n] = (ai_waitfd){docq_redis_context(w->rd)->fd, 0};
        rd_i = (int)n++;
    }
    if (!w->stopping) {
        fds[n] = (ai_waitfd){w->stop_fd, 0};
        stop_i = (int)n++;
    }
    if (ai_client_poll(w->ai, fds, n, poll_timeout(w), err) != DOCQ_OK) return DOCQ_ERR;
    if (stop_i >= 0 && fds[stop_i].ready) begin_stop(w);
    if (rd_i >= 0 && w->rs.in_flight && fds[rd_i].ready) {
        on_rd_ready(w);
    } else if (w->rs.in_flight && now_ms() >= w->rs.deadline_ms) {
        docq_error why;
        docq_error_set(&why, DOCQ_EUNAVAIL, "no reply to XREADGROUP within %ld ms",
                       READ_BLOCK_MS + w->cfg->redis_timeout_ms);
        redis_failed(w, &why);
    }
    collect_results(w);
    return DOCQ_OK;
}

/* ---- The loop ------------------------------------------------------------- */

int worker_loop_run(worker_loop *w, docq_error *err) {
    while (!loop_done(w)) {
        if (!w->redis_ok && now_ms() >= w->retry_at_ms) redis_recover(w);
        if (w->redis_ok) flush_outcomes(w);
        if (read_wanted(w)) send_read(w);
        if (poll_once(w, err) != DOCQ_OK) return DOCQ_ERR;
    }
    int left = w->nslots - w->nfree;
    if (left > 0)
        docq_log_warn("shutdown grace over: %d tasks left pending in Redis for another delivery "
                      "(%d AI calls cut off, %d outcomes not written)",
                      left, ai_client_in_flight(w->ai), w->nwriting);
    docq_log_info("worker %s stopped", w->consumer);
    return DOCQ_OK;
}

/* Fill w->consumer with "<hostname>-<pid>". */
static void make_consumer_name(worker_loop *w) {
    char host[256];
    if (gethostname(host, sizeof(host)) != 0) strcpy(host, "worker");
    host[sizeof(host) - 1] = '\0';
    snprintf(w->consumer, sizeof(w->consumer), "%s-%ld", host, (long)getpid());
}

/* Allocate the tables sized by the configuration. Returns DOCQ_OK or DOCQ_ERR. */
static int alloc_tables(worker_loop *w) {
    int n = w->nshards;
    w->slots = calloc((size_t)w->nslots, sizeof(*w->slots));
    w->free_list = calloc((size_t)w->nslots, sizeof(*w->free_list));
    w->keys = calloc((size_t)n, sizeof(*w->keys));
    w->argv = calloc((size_t)(READ_FIXED_ARGS + 2 * n), sizeof(*w->argv));
    w->argvlen = calloc((size_t)(READ_FIXED_ARGS + 2 * n), sizeof(*w->argvlen));
    w->rs.sent = calloc((size_t)n, sizeof(*w->rs.sent));
    w->rs.scan_done = calloc((size_t)n, sizeof(*w->rs.scan_done));
    w->rs.scan_from = calloc((size_t)n, sizeof(*w->rs.scan_from));
    if (!w->slots || !w->free_list || !w->keys || !w->argv || !w->argvlen || !w->rs.sent ||
        !w->rs.scan_done || !w->rs.scan_from)
        return DOCQ_ERR;
    for (int i = 0; i < w->nslots; i++) w->free_list[i] = w->nslots - 1 - i;
    w->nfree = w->nslots;
    for (int i = 0; i < n; i++) docq_key_stream(w->keys[i], KEY_MAX, w->cfg->key_prefix, i);
    return DOCQ_OK;
}

worker_loop *worker_loop_create(const docq_config *cfg, int stop_fd, docq_error *err) {
    worker_loop *w = calloc(1, sizeof(*w));
    if (!w) goto oom;
    w->cfg = cfg;
    w->stop_fd = stop_fd;
    w->nslots = (int)cfg->concurrency;
    w->nshards = (int)cfg->shards;
    w->backoff_ms = BACKOFF_MIN_MS;
    make_consumer_name(w);
    w->cmd = docq_redis_create(&cfg->redis, cfg->redis_timeout_ms);
    w->rd = docq_redis_create(&cfg->redis, cfg->redis_timeout_ms);
    if (!w->cmd || !w->rd || alloc_tables(w) != DOCQ_OK) goto oom;
    ai_client_options opts = {cfg->ai_url, cfg->ai_connect_timeout_ms, cfg->ai_timeout_ms,
                              (size_t)MAX_AI_BODY, cfg->concurrency};
    w->ai = ai_client_create(&opts, err);
    if (!w->ai) {
        worker_loop_free(w);
        return NULL;
    }
    return w;
oom:
    worker_loop_free(w);
    docq_error_set(err, DOCQ_ERR, "cannot set up the worker: out of memory");
    return NULL;
}

void worker_loop_free(worker_loop *w) {
    if (!w) return;
    ai_client_free(w->ai);
    for (int i = 0; w->slots && i < w->nslots; i++) free(w->slots[i].result);
    docq_redis_free(w->cmd);
    docq_redis_free(w->rd);
    free(w->slots);
    free(w->free_list);
    free(w->keys);
    free(w->argv);
    free(w->argvlen);
    free(w->rs.sent);
    free(w->rs.scan_done);
    free(w->rs.scan_from);
    free(w);
}
