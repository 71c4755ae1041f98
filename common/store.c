/* store.c -- every task state change, one Redis script each: this file packs
 * each script's arguments and decodes its reply; the scripts themselves are
 * the .lua files of common/lua/. See store.h for the key layout and task.h
 * for the state machine they implement. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "docq_lua.h"
#include "store.h"

/* The scripts, by their file in common/lua/ (generated: docq_lua.h). Each
 * file's opening comment names its KEYS and ARGV, in the order the
 * functions below pack them, and its reply, which they decode. */
#define SCRIPT(id) (&docq_lua_scripts[DOCQ_LUA_##id])

/* Most entry ids one heartbeat script call takes (a bound on each call's
 * size and the time Redis spends in it). */
#define HEARTBEAT_BATCH 24

void docq_key_stream(char *buf, size_t cap, const char *prefix, int shard) {
    snprintf(buf, cap, "%s:{s%d}:tasks", prefix, shard);
}

void docq_key_task(char *buf, size_t cap, const char *prefix, const char *task_id, int shard) {
    snprintf(buf, cap, "%s:{s%d}:task:%s", prefix, shard, task_id);
}

void docq_key_events(char *buf, size_t cap, const char *prefix, int shard) {
    snprintf(buf, cap, "%s:{s%d}:events", prefix, shard);
}

uint32_t docq_queue_position(uint64_t seq, int64_t read) {
    if (seq == 0 || read < 0) return 0;
    if ((uint64_t)read >= seq) return 1;
    uint64_t pos = seq - (uint64_t)read;
    return pos > UINT32_MAX ? UINT32_MAX : (uint32_t)pos;
}

void docq_key_cancels(char *buf, size_t cap, const char *prefix, int shard) {
    snprintf(buf, cap, "%s:{s%d}:cancels", prefix, shard);
}

void docq_key_dead(char *buf, size_t cap, const char *prefix, const char *dead, int shard) {
    snprintf(buf, cap, "%s:{s%d}:%s", prefix, shard, dead);
}

/* The shard a well-formed task id names (ids reaching the store are valid). */

/* Run a script whose reply is an integer; returns DOCQ_OK and *out, or the
 * error of docq_redis_eval. */
static int eval_int(docq_redis *r, const docq_script *s, int nkeys, int argc, const char **argv,
                    const size_t *argvlen, long long *out, docq_error *err) {
    *out = 0;
    redisReply *rep = docq_redis_eval(r, s, nkeys, argc, argv, argvlen, err);
    if (!rep) return err ? err->code : DOCQ_ERR;
    int rc = DOCQ_OK;
    if (rep->type == REDIS_REPLY_INTEGER)
        *out = rep->integer;
    else
        rc = docq_error_set(err, DOCQ_ERR, "unexpected reply type %d from script", rep->type);
    freeReplyObject(rep);
    return rc;
}

/* Run a script whose reply is an array of integers; stores up to cap of them
 * in out and their number in *n. Returns DOCQ_OK, or the error of
 * docq_redis_eval. */
static int eval_ints(docq_redis *r, const docq_script *s, int nkeys, int argc, const char **argv,
                     const size_t *argvlen, long long *out, size_t cap, size_t *n, docq_error *err) {
    *n = 0;
    redisReply *rep = docq_redis_eval(r, s, nkeys, argc, argv, argvlen, err);
    if (!rep) return err ? err->code : DOCQ_ERR;
    int rc = DOCQ_OK;
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements > cap)
        rc = docq_error_set(err, DOCQ_ERR, "unexpected reply type %d from script", rep->type);
    for (size_t i = 0; rc == DOCQ_OK && i < rep->elements; i++) {
        if (rep->element[i]->type != REDIS_REPLY_INTEGER)
            rc = docq_error_set(err, DOCQ_ERR, "unexpected element type in script reply");
        else
            out[(*n)++] = rep->element[i]->integer;
    }
    freeReplyObject(rep);
    return rc;
}

int docq_key_request(char *buf, size_t cap, const char *prefix, int shard, const char *caller,
                     const char *request_id, size_t len) {
    int n = snprintf(buf, cap, "%s:{s%d}:req:%s:", prefix, shard, caller);
    if (n < 0 || (size_t)n + 2 * len >= cap) return DOCQ_EINVAL;
    static const char hex[] = "0123456789abcdef";
    char *p = buf + n;
    for (size_t i = 0; i < len; i++) {
        *p++ = hex[(unsigned char)request_id[i] >> 4];
        *p++ = hex[(unsigned char)request_id[i] & 15];
    }
    *p = '\0';
    return DOCQ_OK;
}

/* The arguments of submit.lua (KEYS and ARGV in order). */
typedef struct submit_args {
    char rkey[128], skey[96], lkey[512], okey[512], qkey[640], lim[24], win[24], timeout[24], req_ms[24], ttl[24];
    const char *argv[13];
    size_t lens[13];
    int nkeys, argc;
} submit_args;

/* Fill a for docq_store_submit's arguments, with opts (NULL: none).
 * Returns DOCQ_OK, or DOCQ_EINVAL when the caller id is too long for a key
 * or owner (NULL: none) for a record. */
static int submit_args_init(submit_args *a, const char *prefix, int shard, const char *task_id,
                            const char *doc_id, size_t doc_len, const char *caller, const char *owner,
                            const docq_rate_policy *limit, const docq_submit_opts *opts, docq_error *err) {
    int with_req = opts && opts->request_id && opts->request_id_len > 0;
    if (!owner) owner = "";
    if (strlen(owner) >= DOCQ_OWNER_MAX) return docq_error_set(err, DOCQ_EINVAL, "owner id too long");
    docq_key_task(a->rkey, sizeof(a->rkey), prefix, task_id, shard);
    docq_key_stream(a->skey, sizeof(a->skey), prefix, shard);
    if (docq_rate_key(a->lkey, sizeof(a->lkey), prefix, shard, DOCQ_RATE_SUBMIT, caller) != DOCQ_OK)
        return docq_error_set(err, DOCQ_EINVAL, "caller id too long for a rate-limit key");
    if (docq_key_owned(a->okey, sizeof(a->okey), prefix, shard, caller) != DOCQ_OK)
        return docq_error_set(err, DOCQ_EINVAL, "caller id too long for an index key");
    if (with_req && docq_key_request(a->qkey, sizeof(a->qkey), prefix, shard, caller, opts->request_id,
                                     opts->request_id_len) != DOCQ_OK)
        return docq_error_set(err, DOCQ_EINVAL, "caller id too long for a request key");
    snprintf(a->lim, sizeof(a->lim), "%ld", limit->limit > 0 ? limit->limit : 0);
    snprintf(a->win, sizeof(a->win), "%ld", limit->window_s * 1000);
    snprintf(a->timeout, sizeof(a->timeout), "%lld", opts ? (long long)opts->queue_timeout_ms : 0LL);
    snprintf(a->req_ms, sizeof(a->req_ms), "%lld", opts ? (long long)opts->request_ttl_s * 1000 : 0LL);
    snprintf(a->ttl, sizeof(a->ttl), "%ld", opts && opts->result_ttl_s > 0 ? opts->result_ttl_s : 86400L);
    const char *keys[] = {a->rkey, a->skey, a->lkey, a->okey, a->qkey};
    const char *argv[] = {task_id, doc_id, a->lim, a->win, owner, a->timeout, a->req_ms, a->ttl};
    a->nkeys = with_req ? 5 : 4;
    a->argc = 0;
    for (int i = 0; i < a->nkeys; i++) {
        a->argv[a->argc] = keys[i];
        a->lens[a->argc++] = strlen(keys[i]);
    }
    for (int i = 0; i < 8; i++) {
        a->argv[a->argc] = argv[i];
        a->lens[a->argc++] = i == 1 ? doc_len : strlen(argv[i]);
    }
    return DOCQ_OK;
}

/* The outcome of the submit script's reply rep {admitted, created_at, n,
 * wait, how, task_id, state}: see docq_store_submit_queue. */
static int submit_outcome(const redisReply *rep, const docq_rate_policy *limit, docq_submitted *out,
                          docq_rate_result *rate, docq_error *err) {
    memset(out, 0, sizeof(*out));
    int rc = docq_rate_from_reply(rep, limit, rate, &out->created_at_ms, err);
    if (rc != DOCQ_OK) return rc;
    if (rep->elements != 7 || rep->element[4]->type != REDIS_REPLY_INTEGER ||
        rep->element[5]->type != REDIS_REPLY_STRING || rep->element[6]->type != REDIS_REPLY_STRING ||
        rep->element[5]->len >= sizeof(out->task_id))
        return docq_error_set(err, DOCQ_ERR, "unexpected reply from submit.lua");
    if (!rate->admitted)
        return docq_error_set(err, DOCQ_ELIMITED, "rate limit exceeded, retry in %ld ms", rate->retry_ms);
    long long how = rep->element[4]->integer;
    memcpy(out->task_id, rep->element[5]->str, rep->element[5]->len + 1);
    if (how == 2)
        return docq_error_set(err, DOCQ_EEXISTS, "request_id already used for task %s of another doc_id",
                              out->task_id);
    out->known = how == 1;
    const redisReply *st = rep->element[6];
    out->state = DOCQ_STATE_UNSPECIFIED;
    if (st->len > 0 && docq_task_state_parse(st->str, st->len, &out->state) != DOCQ_OK)
        return docq_error_set(err, DOCQ_ERR, "task record %s holds an unknown state", out->task_id);
    if (st->len == 0) out->created_at_ms = 0;
    return DOCQ_OK;
}

int docq_store_submit(docq_redis *r, const char *prefix, int shard, const char *task_id,
                      const char *doc_id, size_t doc_len, const char *caller, const char *owner,
                      const docq_rate_policy *limit, int64_t *created_at_ms,
                      docq_rate_result *rate, docq_error *err) {
    submit_args a;
    docq_submitted out;
    int rc = submit_args_init(&a, prefix, shard, task_id, doc_id, doc_len, caller, owner, limit, NULL, err);
    if (rc != DOCQ_OK) return rc;
    redisReply *rep = docq_redis_eval(r, SCRIPT(SUBMIT), a.nkeys, a.argc, a.argv, a.lens, err);
    if (!rep) return err ? err->code : DOCQ_ERR;
    rc = submit_outcome(rep, limit, &out, rate, err);
    *created_at_ms = out.created_at_ms;
    freeReplyObject(rep);
    return rc;
}

int docq_store_submit_queue(docq_pipeline *pl, const char *prefix, int shard, const char *task_id,
                            const char *doc_id, size_t doc_len, const char *caller, const char *owner,
                            const docq_rate_policy *limit, const docq_submit_opts *opts,
                            docq_store_ticket *ticket, docq_error *err) {
    submit_args a;
    int rc = submit_args_init(&a, prefix, shard, task_id, doc_id, doc_len, caller, owner, limit, opts, err);
    if (rc != DOCQ_OK) return rc;
    ticket->first = docq_pipeline_eval(pl, SCRIPT(SUBMIT), a.nkeys, a.argc, a.argv, a.lens, err);
    ticket->shape = 0;
    ticket->policy = *limit;
    return ticket->first < 0 ? DOCQ_ERR : DOCQ_OK;
}

int docq_store_submit_result(const docq_pipeline *pl, const docq_store_ticket *ticket, docq_submitted *out,
                             docq_rate_result *rate, docq_error *err) {
    const redisReply *rep;
    memset(rate, 0, sizeof(*rate));
    memset(out, 0, sizeof(*out));
    int rc = docq_pipeline_reply(pl, ticket->first, &rep, err);
    return rc == DOCQ_OK ? submit_outcome(rep, &ticket->policy, out, rate, err) : rc;
}

/* Fill out from a record's field/value array (HGETALL's reply). */
static int task_from_fields(const redisReply *rep, const char *task_id, docq_task *out, docq_error *err) {
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements % 2)
        return docq_error_set(err, DOCQ_ERR, "unexpected reply for the task record");
    if (rep->elements == 0) return docq_error_set(err, DOCQ_ENOTFOUND, "no task %s", task_id);
    snprintf(out->task_id, sizeof(out->task_id), "%s", task_id);
    for (size_t i = 0; i < rep->elements; i += 2) {
        redisReply *k = rep->element[i], *v = rep->element[i + 1];
        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING ||
            docq_task_set_field(out, k->str, k->len, v->str, v->len) != DOCQ_OK)
            return docq_error_set(err, DOCQ_ERR, "task record %s is corrupt", task_id);
    }
    return DOCQ_OK;
}

/* Fill out (cleared) from read.lua's reply {fields, position}. Returns
 * DOCQ_OK, DOCQ_ENOTFOUND for no record, or DOCQ_ERR for a bad reply. */
static int read_outcome(const redisReply *rep, const char *task_id, docq_task *out, docq_error *err) {
    docq_task_clear(out);
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 || rep->element[1]->type != REDIS_REPLY_INTEGER)
        return docq_error_set(err, DOCQ_ERR, "unexpected reply from read.lua");
    int rc = task_from_fields(rep->element[0], task_id, out, err);
    if (rc != DOCQ_OK) {
        docq_task_clear(out);
        return rc;
    }
    long long pos = rep->element[1]->integer;
    out->queue_position = pos > 0 && pos <= UINT32_MAX ? (uint32_t)pos : 0;
    return DOCQ_OK;
}

/* The arguments of read.lua for task_id. */
typedef struct read_args {
    char rkey[128], skey[96], ttl[24];
} read_args;

/* ttl_s: see docq_store_get; read.lua and status.lua take it as their last
 * argument, which they leave out to read only. */
static void read_args_init(read_args *a, const char *prefix, const char *task_id, long ttl_s) {
    int shard = docq_task_id_shard(task_id);
    docq_key_task(a->rkey, sizeof(a->rkey), prefix, task_id, shard);
    docq_key_stream(a->skey, sizeof(a->skey), prefix, shard);
    snprintf(a->ttl, sizeof(a->ttl), "%ld", ttl_s);
}

int docq_store_get(docq_redis *r, const char *prefix, const char *group, const char *task_id, long ttl_s,
                   docq_task *out, docq_error *err) {
    read_args a;
    docq_task_clear(out);
    read_args_init(&a, prefix, task_id, ttl_s);
    const char *argv[] = {a.rkey, a.skey, group, a.ttl};
    redisReply *rep = docq_redis_eval(r, SCRIPT(READ), 2, ttl_s > 0 ? 4 : 3, argv, NULL, err);
    if (!rep) return err ? err->code : DOCQ_ERR;
    int rc = read_outcome(rep, task_id, out, err);
    freeReplyObject(rep);
    return rc;
}

/* The shapes of a queued read (docq_store_ticket.shape). */
enum {
    READ_ONLY,        /* read.lua alone: no limit. */
    READ_LIMITED,     /* status.lua: the limit and the read in one. */
    READ_CHECK_FIRST  /* ratelimit.lua, then read.lua. */
};

int docq_store_read_queue(docq_pipeline *pl, const char *prefix, const char *group, const char *task_id,
                          const docq_reader *reader, long ttl_s, docq_store_ticket *ticket, docq_error *err) {
    read_args a;
    docq_rate_args lim;
    read_args_init(&a, prefix, task_id, ttl_s);
    const char *read_argv[] = {a.rkey, a.skey, group, a.ttl};
    int read_argc = ttl_s > 0 ? 4 : 3;
    ticket->policy = reader ? reader->policy : (docq_rate_policy){0, 0};
    ticket->shape = READ_ONLY;
    if (ticket->policy.limit > 0) {
        int rc = docq_rate_args_init(&lim, prefix, reader->shard, DOCQ_RATE_READ, reader->caller,
                                     &reader->policy, err);
        if (rc != DOCQ_OK) return rc;
        ticket->shape = reader->shard == docq_task_id_shard(task_id) ? READ_LIMITED : READ_CHECK_FIRST;
    }
    if (ticket->shape == READ_LIMITED) {
        const char *argv[] = {lim.key, a.rkey, a.skey, lim.limit, lim.window, lim.member, group, a.ttl};
        ticket->first = docq_pipeline_eval(pl, SCRIPT(STATUS), 3, read_argc + 4, argv, NULL, err);
        return ticket->first < 0 ? DOCQ_ERR : DOCQ_OK;
    }
    if (ticket->shape == READ_CHECK_FIRST && (ticket->first = docq_rate_check_queue(pl, &lim, err)) < 0)
        return DOCQ_ERR;
    int i = docq_pipeline_eval(pl, SCRIPT(READ), 2, read_argc, read_argv, NULL, err);
    if (ticket->shape == READ_ONLY) ticket->first = i;
    return i < 0 ? DOCQ_ERR : DOCQ_OK;
}

/* The outcome of a READ_LIMITED step: status.lua's reply rep (or
 * cancel.lua's, which has its shape). */
static int limited_read_outcome(const redisReply *rep, const docq_store_ticket *ticket, const char *task_id,
                                docq_rate_result *rate, docq_task *out, docq_error *err) {
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 1 || rep->elements > 2)
        return docq_error_set(err, DOCQ_ERR, "unexpected reply from a read script");
    int rc = docq_rate_from_reply(rep->element[0], &ticket->policy, rate, NULL, err);
    if (rc != DOCQ_OK) return rc;
    if (!rate->admitted)
        return docq_error_set(err, DOCQ_ELIMITED, "rate limit exceeded, retry in %ld ms", rate->retry_ms);
    if (rep->elements != 2) return docq_error_set(err, DOCQ_ERR, "a read script admitted but did not read");
    return read_outcome(rep->element[1], task_id, out, err);
}

int docq_store_read_result(const docq_pipeline *pl, const docq_store_ticket *ticket, const char *task_id,
                           docq_rate_result *rate, docq_task *out, docq_error *err) {
    const redisReply *rep;
    int rc;
    memset(rate, 0, sizeof(*rate));
    docq_task_clear(out);
    switch (ticket->shape) {
    case READ_LIMITED:
        rc = docq_pipeline_reply(pl, ticket->first, &rep, err);
        return rc == DOCQ_OK ? limited_read_outcome(rep, ticket, task_id, rate, out, err) : rc;
    case READ_CHECK_FIRST:
        rc = docq_rate_check_result(pl, ticket->first, &ticket->policy, rate, err);
        if (rc != DOCQ_OK) return rc;
        rc = docq_pipeline_reply(pl, ticket->first + 1, &rep, err);
        return rc == DOCQ_OK ? read_outcome(rep, task_id, out, err) : rc;
    default:
        rate->admitted = 1;
        rc = docq_pipeline_reply(pl, ticket->first, &rep, err);
        return rc == DOCQ_OK ? read_outcome(rep, task_id, out, err) : rc;
    }
}

int docq_store_cancel_queue(docq_pipeline *pl, const char *prefix, const char *group, const char *task_id,
                            const docq_reader *reader, const char *owner, long ttl_s,
                            docq_store_ticket *ticket, docq_error *err) {
    read_args a;
    docq_rate_args lim;
    char ckey[96], ttl[24], maxlen[24];
    int shard = docq_task_id_shard(task_id);
    docq_rate_policy none = {0, 1};
    const docq_rate_policy *policy = reader && reader->policy.limit > 0 ? &reader->policy : &none;
    if (policy->limit > 0 && reader->shard != shard)
        return docq_error_set(err, DOCQ_EINVAL, "the read limit of a cancel must share the task's shard");
    /* Without a limit the key is still named (a cluster routes by it) but untouched. */
    int rc = docq_rate_args_init(&lim, prefix, shard, DOCQ_RATE_READ, reader ? reader->caller : "-", policy, err);
    if (rc != DOCQ_OK) return rc;
    read_args_init(&a, prefix, task_id, ttl_s);
    docq_key_cancels(ckey, sizeof(ckey), prefix, shard);
    snprintf(ttl, sizeof(ttl), "%ld", ttl_s);
    snprintf(maxlen, sizeof(maxlen), "%d", DOCQ_CANCELS_MAXLEN);
    const char *argv[] = {lim.key, a.rkey, a.skey, ckey, lim.limit, lim.window, lim.member, group,
                          owner ? owner : "", ttl, maxlen, DOCQ_CANCEL_REASON, task_id};
    ticket->policy = *policy;
    ticket->shape = READ_LIMITED;
    ticket->first = docq_pipeline_eval(pl, SCRIPT(CANCEL), 4, 13, argv, NULL, err);
    return ticket->first < 0 ? DOCQ_ERR : DOCQ_OK;
}

int docq_store_cancel_result(const docq_pipeline *pl, const docq_store_ticket *ticket, const char *task_id,
                             docq_rate_result *rate, docq_task *out, docq_error *err) {
    return docq_store_read_result(pl, ticket, task_id, rate, out, err);
}

int docq_store_cancels_queue(docq_pipeline *pl, const char *prefix, int shard, const char *after, long count,
                             docq_error *err) {
    char ckey[96], cnt[24];
    docq_key_cancels(ckey, sizeof(ckey), prefix, shard);
    snprintf(cnt, sizeof(cnt), "%ld", count);
    const char *argv[] = {ckey, after, cnt};
    return docq_pipeline_eval(pl, SCRIPT(CANCELS), 1, 3, argv, NULL, err);
}

int docq_store_cancels_result(const docq_pipeline *pl, int i, const redisReply **rep, docq_error *err) {
    int rc = docq_pipeline_reply(pl, i, rep, err);
    if (rc != DOCQ_OK) return rc;
    const redisReply *r = *rep;
    int ok = r->type == REDIS_REPLY_ARRAY && r->elements >= 1 && r->element[0]->type == REDIS_REPLY_STRING &&
             r->element[0]->len < 48;
    for (size_t k = 1; ok && k < r->elements; k++) ok = r->element[k]->type == REDIS_REPLY_STRING;
    if (!ok) {
        *rep = NULL;
        return docq_error_set(err, DOCQ_ERR, "unexpected reply from cancels.lua");
    }
    return DOCQ_OK;
}

int docq_store_group_read(docq_redis *r, const char *prefix, int shard, const char *group,
                          int64_t *read, docq_error *err) {
    char skey[96];
    docq_key_stream(skey, sizeof(skey), prefix, shard);
    const char *argv[] = {skey, group};
    long long n;
    int rc = eval_int(r, SCRIPT(GROUP_READ), 1, 2, argv, NULL, &n, err);
    if (rc == DOCQ_OK) *read = n;
    return rc;
}

/* The refusals start.lua and dead_letter.lua share, from their reply's n
 * integers v: {-1} (no record) is DOCQ_ENOTFOUND, {-2} (the task is
 * terminal) DOCQ_ECONFLICT; any other reply DOCQ_OK. */
static int record_refusal(const long long *v, size_t n, docq_error *err) {
    if (n >= 1 && v[0] == -1) return docq_error_set(err, DOCQ_ENOTFOUND, "task record is gone");
    if (n >= 1 && v[0] == -2) return docq_error_set(err, DOCQ_ECONFLICT, "task already finished");
    return DOCQ_OK;
}

int docq_store_start(docq_redis *r, const docq_queue *q, const char *task_id, docq_start *out,
                     docq_error *err) {
    char rkey[128], maxd[24], ttl[24];
    docq_key_task(rkey, sizeof(rkey), q->prefix, task_id, docq_task_id_shard(task_id));
    snprintf(maxd, sizeof(maxd), "%ld", q->max_deliveries);
    snprintf(ttl, sizeof(ttl), "%ld", q->ttl_s);
    const char *argv[] = {rkey, maxd, q->consumer, ttl};
    long long v[3];
    size_t n;
    memset(out, 0, sizeof(*out));
    int rc = eval_ints(r, SCRIPT(START), 1, 4, argv, NULL, v, 3, &n, err);
    if (rc == DOCQ_OK) rc = record_refusal(v, n, err);
    if (rc != DOCQ_OK) return rc;
    if (n == 1 && v[0] == -4) {
        out->expired = 1;
        return DOCQ_OK;
    }
    if (n == 2 && v[0] == -3) {
        out->dead = 1;
        out->deliveries = (uint32_t)v[1];
        return DOCQ_OK;
    }
    if (n != 3 || v[0] < 1) return docq_error_set(err, DOCQ_ERR, "unexpected reply from start.lua");
    out->attempt = (uint32_t)v[0];
    out->failures = (uint32_t)v[1];
    out->deliveries = (uint32_t)v[2];
    return DOCQ_OK;
}

int docq_store_dead_letter(docq_redis *r, const docq_queue *q, const char *task_id, const char *entry_id,
                           uint32_t *deliveries, docq_error *err) {
    char rkey[128], skey[96], dkey[160], ttl[24], maxlen[24];
    int shard = docq_task_id_shard(task_id);
    docq_key_task(rkey, sizeof(rkey), q->prefix, task_id, shard);
    docq_key_stream(skey, sizeof(skey), q->prefix, shard);
    docq_key_dead(dkey, sizeof(dkey), q->prefix, q->dead, shard);
    snprintf(ttl, sizeof(ttl), "%ld", q->ttl_s);
    snprintf(maxlen, sizeof(maxlen), "%ld", q->dead_maxlen);
    const char *argv[] = {rkey, skey, dkey, q->group, entry_id, task_id, q->consumer, ttl, maxlen};
    long long v[1];
    size_t n;
    *deliveries = 0;
    int rc = eval_ints(r, SCRIPT(DEAD_LETTER), 3, 9, argv, NULL, v, 1, &n, err);
    if (rc == DOCQ_OK) rc = record_refusal(v, n, err);
    if (rc != DOCQ_OK) return rc;
    if (n != 1 || v[0] < 1) return docq_error_set(err, DOCQ_ERR, "unexpected reply from dead_letter.lua");
    *deliveries = (uint32_t)v[0];
    return DOCQ_OK;
}

/* Run a script over one task record whose ARGV are the attempt and, when
 * value is not NULL, value; a -1 reply is DOCQ_ECONFLICT, any other the
 * result in *out. */
static int eval_fenced(docq_redis *r, const docq_script *s, const char *prefix, const char *task_id,
                       uint32_t attempt, const char *value, size_t value_len, uint32_t *out,
                       docq_error *err) {
    char rkey[128], att[16];
    docq_key_task(rkey, sizeof(rkey), prefix, task_id, docq_task_id_shard(task_id));
    snprintf(att, sizeof(att), "%u", attempt);
    const char *argv[] = {rkey, att, value};
    size_t lens[] = {strlen(rkey), strlen(att), value_len};
    long long v;
    int rc = eval_int(r, s, 1, value ? 3 : 2, argv, lens, &v, err);
    if (rc != DOCQ_OK) return rc;
    if (v < 0) return docq_error_set(err, DOCQ_ECONFLICT, "task moved on; attempt %u is no longer current", attempt);
    *out = (uint32_t)v;
    return DOCQ_OK;
}

int docq_store_retry(docq_redis *r, const char *prefix, const char *task_id, uint32_t attempt,
                     const char *value, size_t value_len, uint32_t *failures, docq_error *err) {
    return eval_fenced(r, SCRIPT(RETRY), prefix, task_id, attempt, value, value_len, failures, err);
}

int docq_store_restart(docq_redis *r, const char *prefix, const char *task_id, uint32_t attempt,
                       uint32_t *next, docq_error *err) {
    return eval_fenced(r, SCRIPT(RESTART), prefix, task_id, attempt, NULL, 0, next, err);
}

int docq_store_finish(docq_redis *r, const char *prefix, const char *group, const char *task_id,
                      const char *entry_id, uint32_t attempt, docq_task_state state,
                      const char *value, size_t value_len, long ttl_s, docq_error *err) {
    char rkey[128], skey[96], att[16], ttl[24];
    int shard = docq_task_id_shard(task_id);
    docq_key_task(rkey, sizeof(rkey), prefix, task_id, shard);
    docq_key_stream(skey, sizeof(skey), prefix, shard);
    snprintf(att, sizeof(att), "%u", attempt);
    snprintf(ttl, sizeof(ttl), "%ld", ttl_s);
    const char *field = state == DOCQ_STATE_SUCCESS ? "result" : "error";
    const char *argv[] = {rkey, skey, group, entry_id, att, docq_task_state_name(state), field, value, ttl};
    size_t lens[9];
    for (int i = 0; i < 9; i++) lens[i] = strlen(argv[i]);
    lens[7] = value_len;
    long long written;
    int rc = eval_int(r, SCRIPT(FINISH), 2, 9, argv, lens, &written, err);
    if (rc != DOCQ_OK) return rc;
    if (!written) return docq_error_set(err, DOCQ_ECONFLICT, "task moved on; outcome not written");
    return DOCQ_OK;
}

int docq_store_ack(docq_redis *r, const char *prefix, int shard, const char *group,
                   const char *entry_id, docq_error *err) {
    char skey[96];
    docq_key_stream(skey, sizeof(skey), prefix, shard);
    const char *argv[] = {skey, group, entry_id};
    long long n;
    return eval_int(r, SCRIPT(ACK), 1, 3, argv, NULL, &n, err);
}

int docq_store_heartbeat(docq_redis *r, const char *prefix, int shard, const char *group,
                         const char *consumer, const char *const *ids, size_t n, int *lost,
                         docq_error *err) {
    char skey[96];
    docq_key_stream(skey, sizeof(skey), prefix, shard);
    for (size_t done = 0; done < n;) {
        size_t batch = n - done < HEARTBEAT_BATCH ? n - done : HEARTBEAT_BATCH, got;
        const char *argv[3 + HEARTBEAT_BATCH] = {skey, group, consumer};
        long long flags[HEARTBEAT_BATCH];
        for (size_t i = 0; i < batch; i++) argv[3 + i] = ids[done + i];
        int rc = eval_ints(r, SCRIPT(HEARTBEAT), 1, 3 + (int)batch, argv, NULL, flags, batch, &got, err);
        if (rc != DOCQ_OK) return rc;
        if (got != batch) return docq_error_set(err, DOCQ_ERR, "unexpected reply from heartbeat.lua");
        for (size_t i = 0; i < batch; i++) lost[done + i] = flags[i] != 0;
        done += batch;
    }
    return DOCQ_OK;
}

int docq_store_prune(docq_redis *r, const char *prefix, int shard, const char *group, const char *consumer,
                     long idle_ms, long long *deleted, docq_error *err) {
    char skey[96], idle[24];
    docq_key_stream(skey, sizeof(skey), prefix, shard);
    snprintf(idle, sizeof(idle), "%ld", idle_ms);
    const char *argv[] = {skey, group, consumer ? consumer : "", idle};
    return eval_int(r, SCRIPT(PRUNE), 1, 4, argv, NULL, deleted, err);
}

int docq_store_reclaim(docq_redis *r, const char *prefix, int shard, const char *group,
                       const char *consumer, long min_idle_ms, char *cursor, long count,
                       redisReply **entries, docq_error *err) {
    char skey[96], idle[24], cnt[24];
    docq_key_stream(skey, sizeof(skey), prefix, shard);
    snprintf(idle, sizeof(idle), "%ld", min_idle_ms);
    snprintf(cnt, sizeof(cnt), "%ld", count);
    const char *argv[] = {"XAUTOCLAIM", skey, group, consumer, idle, cursor, "COUNT", cnt};
    *entries = NULL;
    redisReply *rep = docq_redis_command(r, 8, argv, NULL, err);
    if (!rep) return err ? err->code : DOCQ_ERR;
    /* [next cursor, [entry...], [deleted id...]] (Redis 7; 6.2 sends no third). */
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 2 || rep->element[0]->type != REDIS_REPLY_STRING ||
        rep->element[0]->len >= 48 || rep->element[1]->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(rep);
        return docq_error_set(err, DOCQ_ERR, "unexpected reply to XAUTOCLAIM");
    }
    memcpy(cursor, rep->element[0]->str, rep->element[0]->len + 1);
    if (rep->element[1]->elements > 0) {
        *entries = rep->element[1];
        rep->element[1] = NULL; /* Detached: freeReplyObject skips NULL elements. */
    }
    freeReplyObject(rep);
    return DOCQ_OK;
}

int docq_consumer_name(char *buf, size_t cap, const char *host, long pid, docq_error *err) {
    char rnd[17];
    if (docq_random_hex(rnd, sizeof(rnd), 8, err) != DOCQ_OK) return DOCQ_ERR;
    int n = snprintf(buf, cap, "%s-%ld-%s", host, pid, rnd);
    if (n < 0 || (size_t)n >= cap) return docq_error_set(err, DOCQ_EINVAL, "host name too long for a consumer name");
    return DOCQ_OK;
}

int docq_key_owned(char *buf, size_t cap, const char *prefix, int shard, const char *caller) {
    return docq_rate_key(buf, cap, prefix, shard, "owned", caller);
}

void docq_task_page_clear(docq_task_page *page) {
    for (size_t i = 0; i < page->n; i++) docq_task_clear(&page->tasks[i]);
    free(page->tasks);
    memset(page, 0, sizeof(*page));
}

int docq_store_list_queue(docq_pipeline *pl, const char *prefix, const char *group, const docq_reader *reader,
                          const docq_list_query *q, docq_store_ticket *ticket, docq_error *err) {
    docq_rate_args lim;
    char okey[512], skey[96], rprefix[96], size[16], after[24], max_bytes[24], max_scan[16];
    const char *argv[14 + DOCQ_STATE_CANCELLED];
    if (q->nstates > DOCQ_STATE_CANCELLED) return docq_error_set(err, DOCQ_EINVAL, "too many states");
    int rc = docq_rate_args_init(&lim, prefix, reader->shard, DOCQ_RATE_READ, reader->caller, &reader->policy, err);
    if (rc != DOCQ_OK) return rc;
    if (docq_key_owned(okey, sizeof(okey), prefix, reader->shard, reader->caller) != DOCQ_OK)
        return docq_error_set(err, DOCQ_EINVAL, "caller id too long for an index key");
    docq_key_stream(skey, sizeof(skey), prefix, reader->shard);
    snprintf(rprefix, sizeof(rprefix), "%s:{s%d}:task:", prefix, reader->shard);
    snprintf(size, sizeof(size), "%d", q->page_size);
    if (q->after_score >= 0)
        snprintf(after, sizeof(after), "%lld", (long long)q->after_score);
    else
        after[0] = '\0';
    snprintf(max_bytes, sizeof(max_bytes), "%ld", DOCQ_LIST_PAGE_BYTES);
    snprintf(max_scan, sizeof(max_scan), "%d",
             2 * q->page_size > DOCQ_LIST_SCAN_MIN ? 2 * q->page_size : DOCQ_LIST_SCAN_MIN);
    const char *fixed[] = {lim.key, okey, skey, lim.limit, lim.window, lim.member, group, rprefix, size,
                           after, q->after_score >= 0 ? q->after_id : "", q->owner ? q->owner : "",
                           max_bytes, max_scan};
    int argc = 0;
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) argv[argc++] = fixed[i];
    for (size_t i = 0; i < q->nstates; i++) argv[argc++] = docq_task_state_name(q->states[i]);
    ticket->policy = reader->policy;
    ticket->shape = 0;
    ticket->first = docq_pipeline_eval(pl, SCRIPT(LIST), 3, argc, argv, NULL, err);
    return ticket->first < 0 ? DOCQ_ERR : DOCQ_OK;
}

/* Parse a decimal integer of len bytes (digits only, at most 18) into *out. */
static int parse_score(const char *s, size_t len, int64_t *out) {
    if (len == 0 || len > 18) return DOCQ_EINVAL;
    int64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') return DOCQ_EINVAL;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return DOCQ_OK;
}

/* Fill page (cleared) from list.lua's tasks and next, the second and third
 * elements of its reply. */
static int list_outcome(const redisReply *tasks, const redisReply *next, docq_task_page *page, docq_error *err) {
    if (tasks->type != REDIS_REPLY_ARRAY || tasks->elements % 3 || next->type != REDIS_REPLY_ARRAY ||
        (next->elements != 0 && next->elements != 2))
        return docq_error_set(err, DOCQ_ERR, "unexpected reply from list.lua");
    size_t n = tasks->elements / 3;
    if (n > 0 && !(page->tasks = calloc(n, sizeof(docq_task))))
        return docq_error_set(err, DOCQ_ERR, "out of memory");
    for (size_t i = 0; i < n; i++) {
        const redisReply *id = tasks->element[3 * i], *pos = tasks->element[3 * i + 2];
        if (id->type != REDIS_REPLY_STRING || id->len >= DOCQ_TASK_ID_MAX || pos->type != REDIS_REPLY_INTEGER)
            return docq_error_set(err, DOCQ_ERR, "unexpected reply from list.lua");
        page->n = i + 1;
        int rc = task_from_fields(tasks->element[3 * i + 1], id->str, &page->tasks[i], err);
        if (rc == DOCQ_ENOTFOUND) return docq_error_set(err, DOCQ_ERR, "list.lua sent an empty record");
        if (rc != DOCQ_OK) return rc;
        long long p = pos->integer;
        page->tasks[i].queue_position = p > 0 && p <= UINT32_MAX ? (uint32_t)p : 0;
    }
    if (next->elements == 2) {
        const redisReply *sc = next->element[0], *id = next->element[1];
        if (sc->type != REDIS_REPLY_STRING || id->type != REDIS_REPLY_STRING || id->len >= DOCQ_TASK_ID_MAX ||
            parse_score(sc->str, sc->len, &page->next_score) != DOCQ_OK)
            return docq_error_set(err, DOCQ_ERR, "unexpected next entry from list.lua");
        memcpy(page->next_id, id->str, id->len + 1);
        page->more = 1;
    }
    return DOCQ_OK;
}

int docq_store_list_result(const docq_pipeline *pl, const docq_store_ticket *ticket, docq_rate_result *rate,
                           docq_task_page *page, docq_error *err) {
    const redisReply *rep;
    memset(rate, 0, sizeof(*rate));
    memset(page, 0, sizeof(*page));
    int rc = docq_pipeline_reply(pl, ticket->first, &rep, err);
    if (rc != DOCQ_OK) return rc;
    if (rep->type != REDIS_REPLY_ARRAY || (rep->elements != 1 && rep->elements != 3))
        return docq_error_set(err, DOCQ_ERR, "unexpected reply from list.lua");
    rc = docq_rate_from_reply(rep->element[0], &ticket->policy, rate, NULL, err);
    if (rc != DOCQ_OK) return rc;
    if (!rate->admitted)
        return docq_error_set(err, DOCQ_ELIMITED, "rate limit exceeded, retry in %ld ms", rate->retry_ms);
    if (rep->elements != 3) return docq_error_set(err, DOCQ_ERR, "list.lua admitted but did not list");
    rc = list_outcome(rep->element[1], rep->element[2], page, err);
    if (rc != DOCQ_OK) docq_task_page_clear(page);
    return rc;
}

void docq_list_token_format(char *buf, size_t cap, int64_t score, const char *task_id) {
    static const char hex[] = "0123456789abcdef";
    char text[DOCQ_LIST_TOKEN_MAX / 2];
    int n = snprintf(text, sizeof(text), "%lld.%s", (long long)score, task_id);
    size_t j = 0;
    for (int i = 0; i < n && i < (int)sizeof(text) - 1 && j + 2 < cap; i++) {
        buf[j++] = hex[(unsigned char)text[i] >> 4];
        buf[j++] = hex[(unsigned char)text[i] & 15];
    }
    if (cap > 0) buf[j < cap ? j : cap - 1] = '\0';
}

/* The value of a lowercase hex digit, or -1. */
static int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

int docq_list_token_parse(const char *tok, int64_t *score, char *task_id, docq_error *err) {
    char text[DOCQ_LIST_TOKEN_MAX / 2];
    size_t len = strlen(tok);
    if (len == 0 || len % 2 || len / 2 >= sizeof(text))
        return docq_error_set(err, DOCQ_EINVAL, "malformed page_token");
    for (size_t i = 0; i < len; i += 2) {
        int hi = hex_value(tok[i]), lo = hex_value(tok[i + 1]);
        if (hi < 0 || lo < 0) return docq_error_set(err, DOCQ_EINVAL, "malformed page_token");
        text[i / 2] = (char)(hi << 4 | lo);
    }
    text[len / 2] = '\0';
    const char *dot = memchr(text, '.', len / 2);
    int shard;
    if (!dot || memchr(text, '\0', len / 2) || parse_score(text, (size_t)(dot - text), score) != DOCQ_OK ||
        docq_task_id_parse(dot + 1, strlen(dot + 1), &shard, NULL) != DOCQ_OK)
        return docq_error_set(err, DOCQ_EINVAL, "malformed page_token");
    snprintf(task_id, DOCQ_TASK_ID_MAX, "%s", dot + 1);
    return DOCQ_OK;
}

/* The shapes of a queued delete (docq_store_ticket.shape). */
enum {
    DELETE_SCRIPT,      /* delete.lua: the limit and the deletion in one. */
    DELETE_COUNT_ONLY,  /* A task of another shard: ratelimit.lua alone. */
    DELETE_NOTHING      /* The same without a limit: nothing queued. */
};

int docq_store_delete_queue(docq_pipeline *pl, const char *prefix, const char *task_id, const docq_reader *reader,
                            const char *owner, docq_store_ticket *ticket, docq_error *err) {
    docq_rate_args lim;
    char rkey[128], okey[512], req[640], receipt[128];
    int shard = docq_task_id_shard(task_id);
    int rc = docq_rate_args_init(&lim, prefix, reader->shard, DOCQ_RATE_READ, reader->caller, &reader->policy, err);
    if (rc != DOCQ_OK) return rc;
    ticket->policy = reader->policy;
    if (shard != reader->shard) {
        /* Not the caller's: only the call is counted (none of it without a limit). */
        ticket->shape = reader->policy.limit > 0 ? DELETE_COUNT_ONLY : DELETE_NOTHING;
        ticket->first = ticket->shape == DELETE_NOTHING ? 0 : docq_rate_check_queue(pl, &lim, err);
        return ticket->first < 0 ? DOCQ_ERR : DOCQ_OK;
    }
    int n = snprintf(req, sizeof(req), "%s:{s%d}:req:%s:", prefix, reader->shard, reader->caller);
    if (docq_key_owned(okey, sizeof(okey), prefix, reader->shard, reader->caller) != DOCQ_OK || n < 0 ||
        (size_t)n >= sizeof(req))
        return docq_error_set(err, DOCQ_EINVAL, "caller id too long for a key");
    docq_key_task(rkey, sizeof(rkey), prefix, task_id, shard);
    snprintf(receipt, sizeof(receipt), "%s:{s%d}:deleted:%s", prefix, shard, task_id);
    const char *argv[] = {lim.key,    rkey,       okey,    receipt,           lim.limit,
                          lim.window, lim.member, task_id, owner ? owner : "", req};
    ticket->shape = DELETE_SCRIPT;
    ticket->first = docq_pipeline_eval(pl, SCRIPT(DELETE), 4, 10, argv, NULL, err);
    return ticket->first < 0 ? DOCQ_ERR : DOCQ_OK;
}

int docq_store_delete_result(const docq_pipeline *pl, const docq_store_ticket *ticket, docq_rate_result *rate,
                             docq_task_state *state, docq_error *err) {
    const redisReply *rep;
    memset(rate, 0, sizeof(*rate));
    *state = DOCQ_STATE_UNSPECIFIED;
    if (ticket->shape == DELETE_NOTHING) {
        rate->admitted = 1;
        return docq_error_set(err, DOCQ_ENOTFOUND, "no such task");
    }
    if (ticket->shape == DELETE_COUNT_ONLY) {
        int rc = docq_rate_check_result(pl, ticket->first, &ticket->policy, rate, err);
        return rc == DOCQ_OK ? docq_error_set(err, DOCQ_ENOTFOUND, "no such task") : rc;
    }
    int rc = docq_pipeline_reply(pl, ticket->first, &rep, err);
    if (rc != DOCQ_OK) return rc;
    if (rep->type != REDIS_REPLY_ARRAY || (rep->elements != 1 && rep->elements != 3))
        return docq_error_set(err, DOCQ_ERR, "unexpected reply from delete.lua");
    rc = docq_rate_from_reply(rep->element[0], &ticket->policy, rate, NULL, err);
    if (rc != DOCQ_OK) return rc;
    if (!rate->admitted)
        return docq_error_set(err, DOCQ_ELIMITED, "rate limit exceeded, retry in %ld ms", rate->retry_ms);
    if (rep->elements != 3 || rep->element[1]->type != REDIS_REPLY_INTEGER ||
        rep->element[2]->type != REDIS_REPLY_STRING)
        return docq_error_set(err, DOCQ_ERR, "unexpected reply from delete.lua");
    const redisReply *o = rep->element[1], *st = rep->element[2];
    if (o->integer == 1) return DOCQ_OK;
    if (o->integer == 0) return docq_error_set(err, DOCQ_ENOTFOUND, "no such task");
    docq_task_state_parse(st->str, st->len, state);
    return docq_error_set(err, DOCQ_ECONFLICT, "task has not ended");
}

const char *docq_store_submit_script(void) { return SCRIPT(SUBMIT)->src; }
