/* ratelimit.c -- the sliding-log rate limit. See ratelimit.h. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "docq_lua.h"
#include "ratelimit.h"
#include "task.h"

/* The check alone: common/lua/ratelimit.lua. */
#define CHECK_SCRIPT (&docq_lua_scripts[DOCQ_LUA_RATELIMIT])

int docq_rate_key(char *buf, size_t cap, const char *prefix, int shard, const char *kind,
                  const char *caller) {
    int n = snprintf(buf, cap, "%s:{s%d}:%s:%s", prefix, shard, kind, caller);
    if (n < 0 || (size_t)n >= cap) return DOCQ_EINVAL;
    return DOCQ_OK;
}

int docq_rate_from_reply(const redisReply *rep, const docq_rate_policy *p, docq_rate_result *out,
                         int64_t *now_ms, docq_error *err) {
    memset(out, 0, sizeof(*out));
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 4)
        return docq_error_set(err, DOCQ_ERR, "unexpected reply shape from a rate-limit script");
    for (int i = 0; i < 4; i++)
        if (rep->element[i]->type != REDIS_REPLY_INTEGER)
            return docq_error_set(err, DOCQ_ERR, "unexpected reply type from a rate-limit script");
    long long ok = rep->element[0]->integer, n = rep->element[2]->integer;
    long long wait = rep->element[3]->integer;
    if (now_ms) *now_ms = rep->element[1]->integer;
    out->limited = p->limit > 0;
    out->admitted = ok != 0;
    out->limit = p->limit;
    out->remaining = n < p->limit ? (long)(p->limit - n) : 0;
    if (wait < 0) wait = 0;
    out->retry_ms = out->admitted ? 0 : (wait > 0 ? (long)wait : 1);
    out->reset_s = (long)((wait + 999) / 1000);
    return DOCQ_OK;
}

int docq_rate_args_init(docq_rate_args *a, const char *prefix, int shard, const char *kind,
                        const char *caller, const docq_rate_policy *p, docq_error *err) {
    if (docq_rate_key(a->key, sizeof(a->key), prefix, shard, kind, caller) != DOCQ_OK)
        return docq_error_set(err, DOCQ_EINVAL, "caller id too long for a rate-limit key");
    if (docq_random_hex(a->member, sizeof(a->member), 8, err) != DOCQ_OK) return DOCQ_ERR;
    snprintf(a->limit, sizeof(a->limit), "%ld", p->limit);
    snprintf(a->window, sizeof(a->window), "%ld", p->window_s * 1000);
    return DOCQ_OK;
}

/* The outcome of the check script's reply rep under policy p: DOCQ_OK or
 * DOCQ_ELIMITED with out filled, or DOCQ_ERR for a reply of another shape. */
static int check_outcome(const redisReply *rep, const docq_rate_policy *p, docq_rate_result *out,
                         docq_error *err) {
    int rc = docq_rate_from_reply(rep, p, out, NULL, err);
    if (rc != DOCQ_OK) return rc;
    return out->admitted ? DOCQ_OK : DOCQ_ELIMITED;
}

int docq_rate_check(docq_redis *r, const char *prefix, int shard, const char *kind,
                    const char *caller, const docq_rate_policy *p, docq_rate_result *out,
                    docq_error *err) {
    docq_rate_args a;
    memset(out, 0, sizeof(*out));
    if (p->limit <= 0) {
        out->admitted = 1;
        return DOCQ_OK;
    }
    int rc = docq_rate_args_init(&a, prefix, shard, kind, caller, p, err);
    if (rc != DOCQ_OK) return rc;
    const char *argv[] = {a.key, a.limit, a.window, a.member};
    redisReply *rep = docq_redis_eval(r, CHECK_SCRIPT, 1, 4, argv, NULL, err);
    if (!rep) return err ? err->code : DOCQ_ERR;
    rc = check_outcome(rep, p, out, err);
    freeReplyObject(rep);
    return rc;
}

int docq_rate_check_queue(docq_pipeline *pl, const docq_rate_args *a, docq_error *err) {
    const char *argv[] = {a->key, a->limit, a->window, a->member};
    return docq_pipeline_eval(pl, CHECK_SCRIPT, 1, 4, argv, NULL, err);
}

int docq_rate_check_result(const docq_pipeline *pl, int i, const docq_rate_policy *p,
                           docq_rate_result *out, docq_error *err) {
    const redisReply *rep;
    memset(out, 0, sizeof(*out));
    int rc = docq_pipeline_reply(pl, i, &rep, err);
    return rc == DOCQ_OK ? check_outcome(rep, p, out, err) : rc;
}
