/* store.c -- the Redis scripts behind every task state change. See store.h
 * for the key layout and task.h for the state machine they implement. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"

/* Milliseconds from Redis TIME, as a Lua integer-valued number. */
#define LUA_NOW "local t = redis.call('TIME') local now = t[1] * 1000 + math.floor(t[2] / 1000) "

/* KEYS: record, stream, the caller's rate-limit key (ratelimit.h). ARGV:
 * task_id, doc_id, limit (0: none), window ms. The limit check and the task
 * creation are one step: a refused request writes nothing but the trimming
 * of expired limit entries. Returns {admitted, created_at (or now when
 * refused), n, wait} as docq_rate_from_reply reads it. A repeat (the reply
 * was lost and the command sent again) changes nothing and is not counted
 * twice. */
static const docq_script submit_script = {0,
    DOCQ_RATE_LUA
    LUA_NOW
    "local limit, window = tonumber(ARGV[3]), tonumber(ARGV[4]) "
    "local old = redis.call('HGET', KEYS[1], 'created_at') "
    "if old then "
    "  local _, n, wait = docq_rate(KEYS[3], limit, window, now, ARGV[1], false) "
    "  return {1, tonumber(old), n, wait} "
    "end "
    "local ok, n, wait = docq_rate(KEYS[3], limit, window, now, ARGV[1], true) "
    "if not ok then return {0, now, n, wait} end "
    "redis.call('HSET', KEYS[1], 'doc_id', ARGV[2], 'state', 'PENDING', 'attempts', 0, "
    "  'created_at', string.format('%d', now)) "
    "redis.call('XADD', KEYS[2], '*', 'task_id', ARGV[1], 'doc_id', ARGV[2]) "
    "return {1, now, n, wait}"};

/* KEYS: record. Returns the new attempt, -1 when the record is missing, -2
 * when the task is terminal. */
static const docq_script start_script = {1,
    "local s = redis.call('HGET', KEYS[1], 'state') "
    "if not s then return -1 end "
    "if s == 'SUCCESS' or s == 'FAILURE' then return -2 end "
    LUA_NOW
    "local a = redis.call('HINCRBY', KEYS[1], 'attempts', 1) "
    "redis.call('HSET', KEYS[1], 'state', 'STARTED', 'started_at', string.format('%d', now)) "
    "return a"};

/* KEYS: record, stream. ARGV: group, entry id, attempt, state, field name,
 * value, ttl. Returns 1 when written, 0 when refused. */
static const docq_script finish_script = {2,
    "local cur = redis.call('HMGET', KEYS[1], 'state', 'attempts') "
    "if cur[1] == 'STARTED' and cur[2] == ARGV[3] then "
    LUA_NOW
    "  redis.call('HSET', KEYS[1], 'state', ARGV[4], ARGV[5], ARGV[6], "
    "    'finished_at', string.format('%d', now)) "
    "  redis.call('EXPIRE', KEYS[1], ARGV[7]) "
    "elseif cur[1] == 'STARTED' or cur[1] == 'PENDING' then "
    "  return 0 "
    "end "
    "redis.call('XACK', KEYS[2], ARGV[1], ARGV[2]) "
    "redis.call('XDEL', KEYS[2], ARGV[2]) "
    "if cur[1] == 'STARTED' then return 1 end "
    "return 0"};

/* KEYS: stream. ARGV: group, entry id. */
static const docq_script ack_script = {3,
    "redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) "
    "return redis.call('XDEL', KEYS[1], ARGV[2])"};

void docq_key_stream(char *buf, size_t cap, const char *prefix, int shard) {
    snprintf(buf, cap, "%s:{s%d}:tasks", prefix, shard);
}

void docq_key_task(char *buf, size_t cap, const char *prefix, const char *task_id, int shard) {
    snprintf(buf, cap, "%s:{s%d}:task:%s", prefix, shard, task_id);
}

/* The shard a well-formed task id names (ids reaching the store are valid). */
static int shard_of(const char *task_id) { return atoi(task_id + 1); }

/* Run a script whose reply is an integer; returns DOCQ_OK and *out, or the
 * error of docq_redis_eval. */
static int eval_int(docq_redis *r, const docq_script *s, int nkeys, int argc, const char **argv,
                    const size_t *argvlen, long long *out, docq_error *err) {
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

int docq_store_submit(docq_redis *r, const char *prefix, int shard, const char *task_id,
                      const char *doc_id, size_t doc_len, const char *caller,
                      const docq_rate_policy *limit, int64_t *created_at_ms,
                      docq_rate_result *rate, docq_error *err) {
    char rkey[128], skey[96], lkey[512], lim[24], win[24];
    docq_key_task(rkey, sizeof(rkey), prefix, task_id, shard);
    docq_key_stream(skey, sizeof(skey), prefix, shard);
    if (docq_rate_key(lkey, sizeof(lkey), prefix, shard, DOCQ_RATE_SUBMIT, caller) != DOCQ_OK)
        return docq_error_set(err, DOCQ_EINVAL, "caller id too long for a rate-limit key");
    snprintf(lim, sizeof(lim), "%ld", limit->limit > 0 ? limit->limit : 0);
    snprintf(win, sizeof(win), "%ld", limit->window_s * 1000);
    const char *argv[] = {rkey, skey, lkey, task_id, doc_id, lim, win};
    size_t lens[] = {strlen(rkey), strlen(skey), strlen(lkey), strlen(task_id), doc_len,
                     strlen(lim), strlen(win)};
    redisReply *rep = docq_redis_eval(r, &submit_script, 3, 7, argv, lens, err);
    if (!rep) return err ? err->code : DOCQ_ERR;
    int rc = docq_rate_from_reply(rep, limit, rate, created_at_ms, err);
    freeReplyObject(rep);
    if (rc != DOCQ_OK) return rc;
    if (!rate->admitted)
        return docq_error_set(err, DOCQ_ELIMITED, "rate limit exceeded, retry in %ld ms", rate->retry_ms);
    return DOCQ_OK;
}

int docq_store_get(docq_redis *r, const char *prefix, const char *task_id, docq_task *out,
                   docq_error *err) {
    char rkey[128];
    docq_task_clear(out);
    docq_key_task(rkey, sizeof(rkey), prefix, task_id, shard_of(task_id));
    const char *argv[] = {"HGETALL", rkey};
    redisReply *rep = docq_redis_command(r, 2, argv, NULL, err);
    if (!rep) return err ? err->code : DOCQ_ERR;
    int rc = DOCQ_OK;
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements % 2) {
        rc = docq_error_set(err, DOCQ_ERR, "unexpected reply to HGETALL");
    } else if (rep->elements == 0) {
        rc = docq_error_set(err, DOCQ_ENOTFOUND, "no task %s", task_id);
    } else {
        snprintf(out->task_id, sizeof(out->task_id), "%s", task_id);
        for (size_t i = 0; i < rep->elements && rc == DOCQ_OK; i += 2) {
            redisReply *k = rep->element[i], *v = rep->element[i + 1];
            if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING ||
                docq_task_set_field(out, k->str, k->len, v->str, v->len) != DOCQ_OK)
                rc = docq_error_set(err, DOCQ_ERR, "task record %s is corrupt", task_id);
        }
    }
    freeReplyObject(rep);
    if (rc != DOCQ_OK) docq_task_clear(out);
    return rc;
}

int docq_store_start(docq_redis *r, const char *prefix, const char *task_id, uint32_t *attempt,
                     docq_error *err) {
    char rkey[128];
    docq_key_task(rkey, sizeof(rkey), prefix, task_id, shard_of(task_id));
    const char *argv[] = {rkey};
    long long a;
    int rc = eval_int(r, &start_script, 1, 1, argv, NULL, &a, err);
    if (rc != DOCQ_OK) return rc;
    if (a == -1) return docq_error_set(err, DOCQ_ENOTFOUND, "task record is gone");
    if (a == -2) return docq_error_set(err, DOCQ_ECONFLICT, "task already finished");
    *attempt = (uint32_t)a;
    return DOCQ_OK;
}

int docq_store_finish(docq_redis *r, const char *prefix, const char *group, const char *task_id,
                      const char *entry_id, uint32_t attempt, docq_task_state state,
                      const char *value, size_t value_len, long ttl_s, docq_error *err) {
    char rkey[128], skey[96], att[16], ttl[24];
    int shard = shard_of(task_id);
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
    int rc = eval_int(r, &finish_script, 2, 9, argv, lens, &written, err);
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
    return eval_int(r, &ack_script, 1, 3, argv, NULL, &n, err);
}
