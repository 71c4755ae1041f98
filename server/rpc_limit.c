/* rpc_limit.c -- the gRPC face of limits: the open streams of a caller,
 * the ratelimit-* metadata, and RESOURCE_EXHAUSTED refusals in
 * the form gRPC clients understand (Trailers-Only, grpc-retry-pushback-ms,
 * google.rpc.Status with RetryInfo and QuotaFailure). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "access.h"
#include "log.h"
#include "richstatus.h"
#include "rpc.h"

int rpc_stream_hold(const rpc_call *call, stream_hold *hold, rpc_reply *out) {
    const docq_config *cfg = call->env->cfg;
    docq_caller caller;
    docq_error err = {0};
    if (docq_caller_identify(cfg, call->env->auth, call->call, call->metadata, &caller, &err) != DOCQ_OK)
        docq_caller_address(cfg, call->call, call->metadata, caller.id, sizeof(caller.id));
    hold->table = call->env->streams;
    hold->count = NULL;
    int rc = caller_counts_acquire(hold->table, caller.id, cfg->max_watches_per_caller, &hold->count);
    if (rc == DOCQ_OK) return DOCQ_OK;
    if (rc == DOCQ_ELIMITED)
        rpc_reply_error(out, GRPC_STATUS_RESOURCE_EXHAUSTED, STREAM_LIMIT_DETAILS, cfg->max_watches_per_caller,
                        caller.id);
    else
        rpc_reply_error(out, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    return DOCQ_ERR;
}

/* Add "key: value" with a decimal value, as headers or trailers. */
static void add_number(rpc_reply *out, const char *key, long value, int trailer) {
    char text[24];
    int n = snprintf(text, sizeof(text), "%ld", value);
    if (trailer)
        rpc_reply_add_trailer(out, key, text, (size_t)n);
    else
        rpc_reply_add_metadata(out, key, text, (size_t)n);
}

void rpc_reply_rate_headers(rpc_reply *out, const docq_rate_result *rate) {
    if (!rate->limited) return;
    add_number(out, "ratelimit-limit", rate->limit, 0);
    add_number(out, "ratelimit-remaining", rate->remaining, 0);
    add_number(out, "ratelimit-reset", rate->reset_s, 0);
}

void rpc_reply_rate_limited(rpc_reply *out, const docq_caller *caller, const char *what,
                            const docq_rate_policy *policy, const docq_rate_result *rate) {
    char description[160];
    uint8_t *details;
    size_t len;
    docq_error err = {0};
    rpc_reply_error(out, GRPC_STATUS_RESOURCE_EXHAUSTED, "rate limit exceeded, retry in %ld ms",
                    rate->retry_ms);
    rpc_reply_rate_headers(out, rate);
    add_number(out, "grpc-retry-pushback-ms", rate->retry_ms, 1);
    snprintf(description, sizeof(description), "at most %ld %s per %ld s per caller", policy->limit,
             what, policy->window_s);
    if (docq_richstatus_quota(GRPC_STATUS_RESOURCE_EXHAUSTED, out->details, rate->retry_ms, caller->id,
                              description, &details, &len, &err) != DOCQ_OK) {
        docq_log_warn("rate-limit refusal sent without status details: %s", err.msg);
        return;
    }
    rpc_reply_add_trailer(out, "grpc-status-details-bin", details, len);
    free(details);
}

docq_reader rpc_reader(const rpc_env *env, const docq_caller *caller) {
    const docq_config *cfg = env->cfg;
    docq_reader r = {caller->id, docq_shard_for(caller->id, strlen(caller->id), (int)cfg->shards),
                     {cfg->read_rate_limit, cfg->read_rate_window_s}};
    return r;
}

void rpc_reply_read_limited(const rpc_env *env, const docq_caller *caller, const docq_rate_result *rate,
                            rpc_reply *out) {
    docq_reader reader = rpc_reader(env, caller);
    docq_log_debug("read by %s refused by the rate limit", caller->id);
    docq_counter_add(&env->metrics->rate_limited[RATE_KIND_READ], 1);
    rpc_reply_rate_limited(out, caller, "read calls (GetStatus, WatchStatus, ListTasks, DeleteTask)",
                           &reader.policy, rate);
}

int rpc_read_allowed(const rpc_call *call, docq_caller *caller, rpc_reply *out) {
    docq_rate_result rate;
    docq_error err = {0};
    if (access_caller(call, caller, out) != DOCQ_OK) return DOCQ_ERR;
    docq_reader reader = rpc_reader(call->env, caller);
    int rc = docq_rate_check(call->env->redis, call->env->cfg->key_prefix, reader.shard, DOCQ_RATE_READ,
                             caller->id, &reader.policy, &rate, &err);
    if (rc == DOCQ_ELIMITED) {
        rpc_reply_read_limited(call->env, caller, &rate, out);
        return DOCQ_ERR;
    }
    if (rc != DOCQ_OK) {
        rpc_reply_store_error(out, &err);
        return DOCQ_ERR;
    }
    rpc_reply_rate_headers(out, &rate);
    return DOCQ_OK;
}
