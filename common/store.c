/* store.c -- the Redis scripts behind every task state change. See store.h
 * for the key layout and task.h for the state machine they implement. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"

/* Milliseconds from Redis TIME, as a Lua integer-valued number. */
#define LUA_NOW "local t = redis.call('TIME') local now = t[1] * 1000 + math.floor(t[2] / 1000) "

/* Defines docq_publish(rkey), docq_publish_fields(rkey, f) and
 * docq_changed(rkey) for a script that changes a task record (put it first
 * in the script). docq_publish sends the record at rkey ("P:{sN}:task:<id>")
 * on its shard's channel "P:{sN}:events": the task id, then HGETALL's
 * field/value pairs, each as a netstring (see event.h). docq_publish_fields
 * sends the same for a record the script has just written whole as the
 * field/value list f (strings), without reading it back. docq_changed adds 1
 * to the record's version, then publishes. Every script that changes a
 * record must end its change with docq_changed (or set the version itself
 * and publish), in the same script, so that watchers see each version
 * exactly once and in order. */
#define LUA_CHANGED \
    "local function docq_publish_fields(rkey, f) " \
    "  local base, id = string.match(rkey, '^(.*):task:(.*)$') " \
    "  local p = {#id, ':', id, ','} " \
    "  for i = 1, #f do p[#p + 1] = #f[i] .. ':' .. f[i] .. ',' end " \
    "  redis.call('PUBLISH', base .. ':events', table.concat(p)) " \
    "end " \
    "local function docq_publish(rkey) " \
    "  docq_publish_fields(rkey, redis.call('HGETALL', rkey)) " \
    "end " \
    "local function docq_changed(rkey) " \
    "  redis.call('HINCRBY', rkey, 'version', 1) " \
    "  docq_publish(rkey) " \
    "end "

/* Defines docq_group_read(stream, group): how many entries of the stream the
 * consumer group has read (its entries-read; when Redis lost count, as after
 * some deletions, entries-added - lag), or nil when that is not known (no
 * stream, no such group, or neither number available). A PENDING task whose
 * entry was number seq of its stream is then at position seq - read; see
 * docq_queue_position, which must compute the same. */
#define LUA_GROUP_READ \
    "local function docq_group_read(stream, group) " \
    "  local groups = redis.pcall('XINFO', 'GROUPS', stream) " \
    "  if groups['err'] then return nil end " \
    "  for _, g in ipairs(groups) do " \
    "    local h = {} " \
    "    for i = 1, #g, 2 do h[g[i]] = g[i + 1] end " \
    "    if h['name'] == group then " \
    "      if h['entries-read'] then return h['entries-read'] end " \
    "      if not h['lag'] then return nil end " \
    "      local info = redis.call('XINFO', 'STREAM', stream) " \
    "      for i = 1, #info, 2 do " \
    "        if info[i] == 'entries-added' then return info[i + 1] - h['lag'] end " \
    "      end " \
    "      return nil " \
    "    end " \
    "  end " \
    "  return nil " \
    "end "

/* KEYS: record, stream, the caller's rate-limit key (ratelimit.h). ARGV:
 * task_id, doc_id, limit (0: none), window ms, owner ('': none). The limit check and the task
 * creation are one step: a refused request writes nothing but the trimming
 * of expired limit entries. Returns {admitted, created_at (or now when
 * refused), n, wait} as docq_rate_from_reply reads it. A repeat (the reply
 * was lost and the command sent again) changes nothing and is not counted
 * twice. An admitted task's record gets version 1 and seq, the entry's
 * number in the stream (its entries-added right after the XADD), from which
 * the queue position is computed; the new record, written whole in one HSET,
 * is published to watchers as written. */
static const docq_script submit_script = {0,
    DOCQ_RATE_LUA
    LUA_CHANGED
    LUA_NOW
    "local limit, window = tonumber(ARGV[3]), tonumber(ARGV[4]) "
    "local old = redis.call('HGET', KEYS[1], 'created_at') "
    "if old then "
    "  local _, n, wait = docq_rate(KEYS[3], limit, window, now, ARGV[1], false) "
    "  return {1, tonumber(old), n, wait} "
    "end "
    "local ok, n, wait = docq_rate(KEYS[3], limit, window, now, ARGV[1], true) "
    "if not ok then return {0, now, n, wait} end "
    "redis.call('XADD', KEYS[2], '*', 'task_id', ARGV[1], 'doc_id', ARGV[2]) "
    "local f = {'doc_id', ARGV[2], 'state', 'PENDING', 'attempts', '0', "
    "  'created_at', string.format('%d', now)} "
    "local info = redis.call('XINFO', 'STREAM', KEYS[2]) "
    "for i = 1, #info, 2 do "
    "  if info[i] == 'entries-added' then "
    "    f[#f + 1] = 'seq' "
    "    f[#f + 1] = string.format('%d', info[i + 1]) "
    "  end "
    "end "
    "f[#f + 1] = 'version' "
    "f[#f + 1] = '1' "
    "if ARGV[5] ~= '' then "
    "  f[#f + 1] = 'owner' "
    "  f[#f + 1] = ARGV[5] "
    "end "
    "redis.call('HSET', KEYS[1], unpack(f)) "
    "docq_publish_fields(KEYS[1], f) "
    "return {1, now, n, wait}"};

/* KEYS: record, stream, dead-letter stream. ARGV: group, entry id, max
 * deliveries, ttl, task_id, consumer, dead-letter stream MAXLEN. Returns
 * {attempt, failures, deliveries} when started, {-1} when the record is
 * missing, {-2} when the task is terminal, {-3, deliveries} when the entry
 * was dead-lettered. The delivery count is the record's own, not the
 * group's (XPENDING's, which every re-read of a pending entry after a Redis
 * outage raises): a start counts one delivery when another consumer (or
 * none) started the task last, so that a worker re-reading its own entry, or
 * this script sent again after a lost reply, counts nothing. Consumer names
 * are unique per worker process (docq_consumer_name), so a restarted worker
 * counts. The dead-letter stream is trimmed to about MAXLEN entries (XADD
 * MAXLEN ~). A start, or a dead-lettering, is a change: version + 1,
 * published. */
static const docq_script start_script = {1,
    LUA_CHANGED
    "local cur = redis.call('HMGET', KEYS[1], 'state', 'failures', 'doc_id', 'deliveries', 'consumer') "
    "if not cur[1] then return {-1} end "
    "if cur[1] == 'SUCCESS' or cur[1] == 'FAILURE' then return {-2} end "
    "local n = tonumber(cur[4] or '0') "
    "if cur[5] ~= ARGV[6] then n = n + 1 end "
    LUA_NOW
    "if n > tonumber(ARGV[3]) then "
    "  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[7], '*', 'task_id', ARGV[5], "
    "    'doc_id', cur[3] or '', 'entry_id', ARGV[2], 'deliveries', n, "
    "    'dead_at', string.format('%d', now)) "
    "  redis.call('HSET', KEYS[1], 'state', 'FAILURE', 'deliveries', n, "
    "    'finished_at', string.format('%d', now), 'error', 'moved to the dead-letter stream ' .. "
    "    KEYS[3] .. ' after ' .. n .. ' deliveries: no worker finished it (each crashed, was "
    "killed or lost it)') "
    "  redis.call('EXPIRE', KEYS[1], ARGV[4]) "
    "  docq_changed(KEYS[1]) "
    "  redis.call('XACK', KEYS[2], ARGV[1], ARGV[2]) "
    "  redis.call('XDEL', KEYS[2], ARGV[2]) "
    "  return {-3, n} "
    "end "
    "local a = redis.call('HINCRBY', KEYS[1], 'attempts', 1) "
    "redis.call('HSET', KEYS[1], 'state', 'STARTED', 'started_at', string.format('%d', now), "
    "  'deliveries', n, 'consumer', ARGV[6]) "
    "docq_changed(KEYS[1]) "
    "return {a, tonumber(cur[2] or '0'), n}"};

/* KEYS: record, stream. ARGV: group, entry id, attempt, state, field name,
 * value, ttl. Returns 1 when written, 0 when refused. Only a write is a
 * change (version + 1, published); a refusal changes nothing. The write
 * records its attempt (finished_by), so that the same call sent again (after
 * a lost reply) finds its own outcome and returns 1 again, changing nothing. */
static const docq_script finish_script = {2,
    LUA_CHANGED
    "local cur = redis.call('HMGET', KEYS[1], 'state', 'attempts', 'finished_by') "
    "if cur[1] == 'STARTED' and cur[2] == ARGV[3] then "
    LUA_NOW
    "  redis.call('HSET', KEYS[1], 'state', ARGV[4], ARGV[5], ARGV[6], "
    "    'finished_at', string.format('%d', now), 'finished_by', ARGV[3]) "
    "  redis.call('EXPIRE', KEYS[1], ARGV[7]) "
    "  if ARGV[4] == 'SUCCESS' then redis.call('HDEL', KEYS[1], 'error') end "
    "  docq_changed(KEYS[1]) "
    "elseif cur[1] == 'STARTED' or cur[1] == 'PENDING' then "
    "  return 0 "
    "end "
    "redis.call('XACK', KEYS[2], ARGV[1], ARGV[2]) "
    "redis.call('XDEL', KEYS[2], ARGV[2]) "
    "if cur[1] == 'STARTED' or cur[3] == ARGV[3] then return 1 end "
    "return 0"};

/* KEYS: stream. ARGV: group, entry id. */
static const docq_script ack_script = {3,
    "redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) "
    "return redis.call('XDEL', KEYS[1], ARGV[2])"};

/* Defines docq_read(rkey, skey, group): {HGETALL of the record at rkey,
 * queue position}. The position is 0 unless the task is PENDING and its
 * place in the stream skey is known to the consumer group (the same formula
 * as docq_queue_position). Reads only. */
#define LUA_READ \
    LUA_GROUP_READ \
    "local function docq_read(rkey, skey, group) " \
    "  local f = redis.call('HGETALL', rkey) " \
    "  local pos = 0 " \
    "  local h = {} " \
    "  for i = 1, #f, 2 do h[f[i]] = f[i + 1] end " \
    "  if h['state'] == 'PENDING' and h['seq'] then " \
    "    local read = docq_group_read(skey, group) " \
    "    if read then pos = math.max(1, tonumber(h['seq']) - read) end " \
    "  end " \
    "  return {f, pos} " \
    "end "

/* KEYS: record, stream. ARGV: group. Returns docq_read's {fields, position}.
 * Reads only. Slots 13 and 14: the worker's scripts use 10 to 12 and the
 * rate limiter 15 (a collision would only cost reloads, see redis.c, but
 * each script should have its own). */
static const docq_script read_script = {13,
    LUA_READ
    "return docq_read(KEYS[1], KEYS[2], ARGV[1])"};

/* GetStatus in one step when the caller's read-limit key and the task share
 * a shard. KEYS: the limit key (ratelimit.h), record, stream. ARGV: limit,
 * window ms, member, group. Returns {{ok, now, n, wait}} when the limit
 * refuses (nothing read), else {{ok, now, n, wait}, {fields, position}}: the
 * check script's reply (ratelimit.c), then read_script's. Sent twice, it
 * counts the read once (the member is the same). */
static const docq_script status_script = {4,
    DOCQ_RATE_LUA
    LUA_READ
    LUA_NOW
    "local ok, n, wait = docq_rate(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), now, ARGV[3], true) "
    "local rate = {ok and 1 or 0, now, n, wait} "
    "if not ok then return {rate} end "
    "return {rate, docq_read(KEYS[2], KEYS[3], ARGV[4])}"};

/* KEYS: stream. ARGV: group. Returns how many entries the group has read, or
 * -1 when that is not known. Reads only. */
static const docq_script group_read_script = {14,
    LUA_GROUP_READ
    "local read = docq_group_read(KEYS[1], ARGV[1]) "
    "if read then return read end "
    "return -1"};

/* KEYS: record. ARGV: attempt, error. Returns the new failure count, or -1
 * when the task is not STARTED by that attempt. A change (the error shows):
 * version + 1, published. The failure is recorded once per attempt
 * (failed_attempt): the same call sent again returns the same count and
 * changes nothing. */
static const docq_script retry_script = {10,
    LUA_CHANGED
    "local cur = redis.call('HMGET', KEYS[1], 'state', 'attempts', 'failed_attempt', 'failures') "
    "if cur[1] ~= 'STARTED' or cur[2] ~= ARGV[1] then return -1 end "
    "if cur[3] == ARGV[1] then return tonumber(cur[4] or '0') end "
    "redis.call('HSET', KEYS[1], 'error', ARGV[2], 'failed_attempt', ARGV[1]) "
    "local f = redis.call('HINCRBY', KEYS[1], 'failures', 1) "
    "docq_changed(KEYS[1]) "
    "return f"};

/* KEYS: record. ARGV: attempt. Returns the new attempt, or -1 when the task
 * is not STARTED by that attempt. A change: version + 1, published. The
 * restart records the attempt it ended (restarted_from): the same call sent
 * again finds the attempt after it current and returns it, changing nothing
 * (attempt numbers only grow, so no start by another worker can look so). */
static const docq_script restart_script = {11,
    LUA_CHANGED
    "local cur = redis.call('HMGET', KEYS[1], 'state', 'attempts', 'restarted_from') "
    "if cur[1] ~= 'STARTED' then return -1 end "
    "if cur[3] == ARGV[1] and tonumber(cur[2]) == tonumber(ARGV[1]) + 1 then return tonumber(cur[2]) end "
    "if cur[2] ~= ARGV[1] then return -1 end "
    LUA_NOW
    "redis.call('HSET', KEYS[1], 'started_at', string.format('%d', now), 'restarted_from', ARGV[1]) "
    "local a = redis.call('HINCRBY', KEYS[1], 'attempts', 1) "
    "docq_changed(KEYS[1]) "
    "return a"};

/* KEYS: stream. ARGV: group, consumer ('': none), idle ms. Deletes the
 * group's consumers that hold no pending entry and are either the named
 * consumer or idle for idle ms or more (XGROUP DELCONSUMER; a consumer with
 * pending entries is never deleted, so nothing is lost). Returns how many
 * were deleted; 0 when the stream or group does not exist. */
static const docq_script prune_script = {9,
    "local cs = redis.pcall('XINFO', 'CONSUMERS', KEYS[1], ARGV[1]) "
    "if cs['err'] then return 0 end "
    "local n = 0 "
    "for _, c in ipairs(cs) do "
    "  local h = {} "
    "  for i = 1, #c, 2 do h[c[i]] = c[i + 1] end "
    "  if h['pending'] == 0 and (h['name'] == ARGV[2] or h['idle'] >= tonumber(ARGV[3])) then "
    "    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], h['name']) "
    "    n = n + 1 "
    "  end "
    "end "
    "return n"};

/* KEYS: stream. ARGV: group, consumer, entry ids. Returns, per id, 0 when its
 * idle time was reset and 1 when it is not pending under consumer. */
static const docq_script heartbeat_script = {12,
    "local lost = {} "
    "for i = 3, #ARGV do "
    "  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1) "
    "  if p[1] and p[1][2] == ARGV[2] then "
    "    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID') "
    "    lost[i - 2] = 0 "
    "  else "
    "    lost[i - 2] = 1 "
    "  end "
    "end "
    "return lost"};

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

void docq_key_dead(char *buf, size_t cap, const char *prefix, const char *dead, int shard) {
    snprintf(buf, cap, "%s:{s%d}:%s", prefix, shard, dead);
}

/* The shard a well-formed task id names (ids reaching the store are valid). */
static int shard_of(const char *task_id) { return docq_task_id_shard(task_id); }

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

/* The arguments of the submit script (KEYS and ARGV in order). */
typedef struct submit_args {
    char rkey[128], skey[96], lkey[512], lim[24], win[24];
    const char *argv[8];
    size_t lens[8];
} submit_args;

/* Fill a for docq_store_submit's arguments. Returns DOCQ_OK, or DOCQ_EINVAL
 * when the caller id is too long for a key or owner (NULL: none) for a record. */
static int submit_args_init(submit_args *a, const char *prefix, int shard, const char *task_id,
                            const char *doc_id, size_t doc_len, const char *caller, const char *owner,
                            const docq_rate_policy *limit, docq_error *err) {
    if (!owner) owner = "";
    if (strlen(owner) >= DOCQ_OWNER_MAX) return docq_error_set(err, DOCQ_EINVAL, "owner id too long");
    docq_key_task(a->rkey, sizeof(a->rkey), prefix, task_id, shard);
    docq_key_stream(a->skey, sizeof(a->skey), prefix, shard);
    if (docq_rate_key(a->lkey, sizeof(a->lkey), prefix, shard, DOCQ_RATE_SUBMIT, caller) != DOCQ_OK)
        return docq_error_set(err, DOCQ_EINVAL, "caller id too long for a rate-limit key");
    snprintf(a->lim, sizeof(a->lim), "%ld", limit->limit > 0 ? limit->limit : 0);
    snprintf(a->win, sizeof(a->win), "%ld", limit->window_s * 1000);
    const char *argv[] = {a->rkey, a->skey, a->lkey, task_id, doc_id, a->lim, a->win, owner};
    for (int i = 0; i < 8; i++) {
        a->argv[i] = argv[i];
        a->lens[i] = i == 4 ? doc_len : strlen(argv[i]);
    }
    return DOCQ_OK;
}

/* The outcome of the submit script's reply rep: see docq_store_submit. */
static int submit_outcome(const redisReply *rep, const docq_rate_policy *limit, int64_t *created_at_ms,
                          docq_rate_result *rate, docq_error *err) {
    int rc = docq_rate_from_reply(rep, limit, rate, created_at_ms, err);
    if (rc != DOCQ_OK) return rc;
    if (!rate->admitted)
        return docq_error_set(err, DOCQ_ELIMITED, "rate limit exceeded, retry in %ld ms", rate->retry_ms);
    return DOCQ_OK;
}

int docq_store_submit(docq_redis *r, const char *prefix, int shard, const char *task_id,
                      const char *doc_id, size_t doc_len, const char *caller, const char *owner,
                      const docq_rate_policy *limit, int64_t *created_at_ms,
                      docq_rate_result *rate, docq_error *err) {
    submit_args a;
    int rc = submit_args_init(&a, prefix, shard, task_id, doc_id, doc_len, caller, owner, limit, err);
    if (rc != DOCQ_OK) return rc;
    redisReply *rep = docq_redis_eval(r, &submit_script, 3, 8, a.argv, a.lens, err);
    if (!rep) return err ? err->code : DOCQ_ERR;
    rc = submit_outcome(rep, limit, created_at_ms, rate, err);
    freeReplyObject(rep);
    return rc;
}

int docq_store_submit_queue(docq_pipeline *pl, const char *prefix, int shard, const char *task_id,
                            const char *doc_id, size_t doc_len, const char *caller, const char *owner,
                            const docq_rate_policy *limit, docq_store_ticket *ticket, docq_error *err) {
    submit_args a;
    int rc = submit_args_init(&a, prefix, shard, task_id, doc_id, doc_len, caller, owner, limit, err);
    if (rc != DOCQ_OK) return rc;
    ticket->first = docq_pipeline_eval(pl, &submit_script, 3, 8, a.argv, a.lens, err);
    ticket->shape = 0;
    ticket->policy = *limit;
    return ticket->first < 0 ? DOCQ_ERR : DOCQ_OK;
}

int docq_store_submit_result(const docq_pipeline *pl, const docq_store_ticket *ticket,
                             int64_t *created_at_ms, docq_rate_result *rate, docq_error *err) {
    const redisReply *rep;
    memset(rate, 0, sizeof(*rate));
    int rc = docq_pipeline_reply(pl, ticket->first, &rep, err);
    return rc == DOCQ_OK ? submit_outcome(rep, &ticket->policy, created_at_ms, rate, err) : rc;
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

/* Fill out (cleared) from read_script's reply {fields, position}. Returns
 * DOCQ_OK, DOCQ_ENOTFOUND for no record, or DOCQ_ERR for a bad reply. */
static int read_outcome(const redisReply *rep, const char *task_id, docq_task *out, docq_error *err) {
    docq_task_clear(out);
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 || rep->element[1]->type != REDIS_REPLY_INTEGER)
        return docq_error_set(err, DOCQ_ERR, "unexpected reply from the read script");
    int rc = task_from_fields(rep->element[0], task_id, out, err);
    if (rc != DOCQ_OK) {
        docq_task_clear(out);
        return rc;
    }
    long long pos = rep->element[1]->integer;
    out->queue_position = pos > 0 && pos <= UINT32_MAX ? (uint32_t)pos : 0;
    return DOCQ_OK;
}

/* The arguments of read_script for task_id. */
typedef struct read_args {
    char rkey[128], skey[96];
} read_args;

static void read_args_init(read_args *a, const char *prefix, const char *task_id) {
    int shard = shard_of(task_id);
    docq_key_task(a->rkey, sizeof(a->rkey), prefix, task_id, shard);
    docq_key_stream(a->skey, sizeof(a->skey), prefix, shard);
}

int docq_store_get(docq_redis *r, const char *prefix, const char *group, const char *task_id,
                   docq_task *out, docq_error *err) {
    read_args a;
    docq_task_clear(out);
    read_args_init(&a, prefix, task_id);
    const char *argv[] = {a.rkey, a.skey, group};
    redisReply *rep = docq_redis_eval(r, &read_script, 2, 3, argv, NULL, err);
    if (!rep) return err ? err->code : DOCQ_ERR;
    int rc = read_outcome(rep, task_id, out, err);
    freeReplyObject(rep);
    return rc;
}

/* The shapes of a queued read (docq_store_ticket.shape). */
enum {
    READ_ONLY,        /* read_script alone: no limit. */
    READ_LIMITED,     /* status_script: the limit and the read in one. */
    READ_CHECK_FIRST  /* The limit's check script, then read_script. */
};

int docq_store_read_queue(docq_pipeline *pl, const char *prefix, const char *group, const char *task_id,
                          const docq_reader *reader, docq_store_ticket *ticket, docq_error *err) {
    read_args a;
    docq_rate_args lim;
    read_args_init(&a, prefix, task_id);
    const char *read_argv[] = {a.rkey, a.skey, group};
    ticket->policy = reader ? reader->policy : (docq_rate_policy){0, 0};
    ticket->shape = READ_ONLY;
    if (ticket->policy.limit > 0) {
        int rc = docq_rate_args_init(&lim, prefix, reader->shard, DOCQ_RATE_READ, reader->caller,
                                     &reader->policy, err);
        if (rc != DOCQ_OK) return rc;
        ticket->shape = reader->shard == shard_of(task_id) ? READ_LIMITED : READ_CHECK_FIRST;
    }
    if (ticket->shape == READ_LIMITED) {
        const char *argv[] = {lim.key, a.rkey, a.skey, lim.limit, lim.window, lim.member, group};
        ticket->first = docq_pipeline_eval(pl, &status_script, 3, 7, argv, NULL, err);
        return ticket->first < 0 ? DOCQ_ERR : DOCQ_OK;
    }
    if (ticket->shape == READ_CHECK_FIRST && (ticket->first = docq_rate_check_queue(pl, &lim, err)) < 0)
        return DOCQ_ERR;
    int i = docq_pipeline_eval(pl, &read_script, 2, 3, read_argv, NULL, err);
    if (ticket->shape == READ_ONLY) ticket->first = i;
    return i < 0 ? DOCQ_ERR : DOCQ_OK;
}

/* The outcome of a READ_LIMITED step: status_script's reply rep. */
static int limited_read_outcome(const redisReply *rep, const docq_store_ticket *ticket, const char *task_id,
                                docq_rate_result *rate, docq_task *out, docq_error *err) {
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 1 || rep->elements > 2)
        return docq_error_set(err, DOCQ_ERR, "unexpected reply from the status script");
    int rc = docq_rate_from_reply(rep->element[0], &ticket->policy, rate, NULL, err);
    if (rc != DOCQ_OK) return rc;
    if (!rate->admitted)
        return docq_error_set(err, DOCQ_ELIMITED, "rate limit exceeded, retry in %ld ms", rate->retry_ms);
    if (rep->elements != 2) return docq_error_set(err, DOCQ_ERR, "the status script admitted but did not read");
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

int docq_store_group_read(docq_redis *r, const char *prefix, int shard, const char *group,
                          int64_t *read, docq_error *err) {
    char skey[96];
    docq_key_stream(skey, sizeof(skey), prefix, shard);
    const char *argv[] = {skey, group};
    long long n;
    int rc = eval_int(r, &group_read_script, 1, 2, argv, NULL, &n, err);
    if (rc == DOCQ_OK) *read = n;
    return rc;
}

int docq_store_start(docq_redis *r, const docq_queue *q, const char *task_id, const char *entry_id,
                     docq_start *out, docq_error *err) {
    char rkey[128], skey[96], dkey[160], maxd[24], ttl[24], maxlen[24];
    int shard = shard_of(task_id);
    docq_key_task(rkey, sizeof(rkey), q->prefix, task_id, shard);
    docq_key_stream(skey, sizeof(skey), q->prefix, shard);
    docq_key_dead(dkey, sizeof(dkey), q->prefix, q->dead, shard);
    snprintf(maxd, sizeof(maxd), "%ld", q->max_deliveries);
    snprintf(ttl, sizeof(ttl), "%ld", q->ttl_s);
    snprintf(maxlen, sizeof(maxlen), "%ld", q->dead_maxlen);
    const char *argv[] = {rkey, skey, dkey, q->group, entry_id, maxd, ttl, task_id, q->consumer, maxlen};
    long long v[3];
    size_t n;
    memset(out, 0, sizeof(*out));
    int rc = eval_ints(r, &start_script, 3, 10, argv, NULL, v, 3, &n, err);
    if (rc != DOCQ_OK) return rc;
    if (n >= 1 && v[0] == -1) return docq_error_set(err, DOCQ_ENOTFOUND, "task record is gone");
    if (n >= 1 && v[0] == -2) return docq_error_set(err, DOCQ_ECONFLICT, "task already finished");
    if (n == 2 && v[0] == -3) {
        out->dead = 1;
        out->deliveries = (uint32_t)v[1];
        return DOCQ_OK;
    }
    if (n != 3 || v[0] < 1) return docq_error_set(err, DOCQ_ERR, "unexpected reply from the start script");
    out->attempt = (uint32_t)v[0];
    out->failures = (uint32_t)v[1];
    out->deliveries = (uint32_t)v[2];
    return DOCQ_OK;
}

/* Run a script over one task record whose ARGV are the attempt and, when
 * value is not NULL, value; a -1 reply is DOCQ_ECONFLICT, any other the
 * result in *out. */
static int eval_fenced(docq_redis *r, const docq_script *s, const char *prefix, const char *task_id,
                       uint32_t attempt, const char *value, size_t value_len, uint32_t *out,
                       docq_error *err) {
    char rkey[128], att[16];
    docq_key_task(rkey, sizeof(rkey), prefix, task_id, shard_of(task_id));
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
    return eval_fenced(r, &retry_script, prefix, task_id, attempt, value, value_len, failures, err);
}

int docq_store_restart(docq_redis *r, const char *prefix, const char *task_id, uint32_t attempt,
                       uint32_t *next, docq_error *err) {
    return eval_fenced(r, &restart_script, prefix, task_id, attempt, NULL, 0, next, err);
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
        int rc = eval_ints(r, &heartbeat_script, 1, 3 + (int)batch, argv, NULL, flags, batch, &got, err);
        if (rc != DOCQ_OK) return rc;
        if (got != batch) return docq_error_set(err, DOCQ_ERR, "unexpected reply from the heartbeat script");
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
    return eval_int(r, &prune_script, 1, 4, argv, NULL, deleted, err);
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

const char *docq_store_submit_script(void) { return submit_script.src; }
