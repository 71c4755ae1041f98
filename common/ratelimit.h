/* ratelimit.h -- per-caller rate limits kept in Redis: an exact sliding log.
 *
 * Algorithm. Each caller has one sorted set per limit: member = one admitted
 * request (the task id for SubmitDoc, a random id for reads), score = the
 * Redis TIME (ms) at which it was admitted. A check, in one Lua script
 * (docq_rate in common/lua/lib/rate.lua; alone: common/lua/ratelimit.lua):
 *   1. drops the members older than the window (score <= now - window);
 *   2. counts what is left, n;
 *   3. admits when n < limit (ZADD now, PEXPIRE window), else refuses.
 * So there are never more than `limit` admitted requests in any window of
 * `window` ms, wherever it starts (a fixed INCR+EXPIRE window admits up to
 * twice the limit across its edge). A refused caller is told exactly when to
 * come back: when the member that must leave for n to fall below the limit
 * (the (n - limit + 1)-th oldest) leaves the window. Memory is one member per
 * admitted request in the window, so at most `limit` per caller; the key
 * expires one window after its newest member. Every replica uses Redis TIME,
 * so all share one clock and one count.
 *
 * Keys (P = DOCQ_KEY_PREFIX, N = the caller's shard):
 *   P:{sN}:rate:<caller>       SubmitDoc's limit, in the shard's hash slot so
 *                              that submit.lua (store.h) checks it and
 *                              stores the task in one step;
 *   P:{sN}:rate-read:<caller>  GetStatus and WatchStatus: checked alone, or
 *                              by GetStatus's status.lua (store.h) when the
 *                              task lives in the caller's shard.
 *
 * A policy with limit 0 is "no limit": nothing is read or written. */
#ifndef DOCQ_RATELIMIT_H
#define DOCQ_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

#include "redis.h"

/* A limit: at most `limit` requests in any rolling window of window_s
 * seconds; limit 0 means no limit. */
typedef struct docq_rate_policy {
    long limit;
    long window_s;
} docq_rate_policy;

/* The outcome of a check, ready to be told to the caller. */
typedef struct docq_rate_result {
    int limited;      /* 1 when a limit applied (the policy's limit > 0). */
    int admitted;     /* 1 when the request was let through. */
    long limit;       /* The policy's limit. */
    long remaining;   /* Requests the caller may still make right now. */
    long retry_ms;    /* Refused: ms until a retry is admitted (>= 1); else 0. */
    long reset_s;     /* Seconds (rounded up) until the oldest request counted
                       * leaves the window, raising remaining; 0 when none. */
} docq_rate_result;

/* The kinds of limit, which name their keys. */
#define DOCQ_RATE_SUBMIT "rate"
#define DOCQ_RATE_READ "rate-read"

/* Write the key of caller's limit of kind (DOCQ_RATE_SUBMIT or
 * DOCQ_RATE_READ) in shard into buf: "P:{sN}:<kind>:<caller>". Returns
 * DOCQ_OK, or DOCQ_EINVAL when it does not fit cap. */
int docq_rate_key(char *buf, size_t cap, const char *prefix, int shard, const char *kind,
                  const char *caller);

/* Read the reply {ok, now_ms, n, wait_ms, ...} of a script that ran
 * docq_rate into out (for policy p) and *now_ms (may be NULL); elements
 * after the fourth are the script's own. Returns DOCQ_OK, or DOCQ_ERR when
 * the reply has another shape. */
int docq_rate_from_reply(const redisReply *rep, const docq_rate_policy *p, docq_rate_result *out,
                         int64_t *now_ms, docq_error *err);

/* The arguments of one check of a caller's limit, as the text a script
 * takes (KEYS: key; ARGV: limit, window, member). */
typedef struct docq_rate_args {
    char key[512];    /* The caller's limit key (docq_rate_key). */
    char limit[24];   /* The policy's limit, in decimal. */
    char window[24];  /* The policy's window, in ms. */
    char member[24];  /* A random member that stands for this request: a
                       * check sent twice (see redis.h) counts it once. */
} docq_rate_args;

/* Fill a for a check of caller's limit of kind in shard under policy p,
 * with a fresh random member. Returns DOCQ_OK, DOCQ_EINVAL when the caller
 * id is too long for a key, or DOCQ_ERR when no random bytes came. */
int docq_rate_args_init(docq_rate_args *a, const char *prefix, int shard, const char *kind,
                        const char *caller, const docq_rate_policy *p, docq_error *err);

/* Check caller's limit of kind in shard alone (one script, one round trip),
 * counting this request when it is admitted. Returns DOCQ_OK when admitted
 * (or p has no limit), DOCQ_ELIMITED when refused, or the errors of
 * docq_redis_eval (DOCQ_EUNAVAIL: Redis unreachable, nothing admitted). out
 * is filled on DOCQ_OK and DOCQ_ELIMITED. */
int docq_rate_check(docq_redis *r, const char *prefix, int shard, const char *kind,
                    const char *caller, const docq_rate_policy *p, docq_rate_result *out,
                    docq_error *err);

/* The same check queued in a pipeline (a's policy must have a limit > 0).
 * Returns the index of its command, or DOCQ_ERR (nothing queued). */
int docq_rate_check_queue(docq_pipeline *pl, const docq_rate_args *a, docq_error *err);

/* The outcome of the check queued as command i of pl, once pl has run, under
 * policy p: as docq_rate_check returns it. */
int docq_rate_check_result(const docq_pipeline *pl, int i, const docq_rate_policy *p,
                           docq_rate_result *out, docq_error *err);

#endif
