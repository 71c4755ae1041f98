/* rpc_limit.c -- the gRPC face of caller identity and rate limits: who the
 * caller is, the ratelimit-* metadata, and RESOURCE_EXHAUSTED refusals in
 * the form gRPC clients understand (Trailers-Only, grpc-retry-pushback-ms,
 * google.rpc.Status with RetryInfo and QuotaFailure). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server_parts.h"
#include "log.h"
#include "richstatus.h"
#include "rpc.h"

int rpc_caller(server_thread *t, const rpc_call *call, docq_caller *caller, rpc_reply *out) {
    docq_error err = {0};
    const docq_server *srv = t->srv;
    if (docq_caller_identify(docq_server_config(srv), docq_server_auth(srv), call->call,
                             call->metadata, caller, &err) != DOCQ_OK) {
        rpc_reply_error(out, GRPC_STATUS_UNAUTHENTICATED, "%s", err.msg);
        return DOCQ_ERR;
    }
    return DOCQ_OK;
}

int rpc_stream_hold(server_thread *t, const rpc_call *call, stream_hold *hold, rpc_reply *out) {
    const docq_config *cfg = docq_server_config(t->srv);
    docq_caller caller;
    docq_error err = {0};
    if (docq_caller_identify(cfg, docq_server_auth(t->srv), call->call, call->metadata, &caller, &err) != DOCQ_OK)
        docq_caller_address(cfg, call->call, call->metadata, caller.id, sizeof(caller.id));
    hold->table = docq_server_parts(t->srv)->streams;
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

docq_reader rpc_reader(server_thread *t, const docq_caller *caller) {
    const docq_config *cfg = docq_server_config(t->srv);
    docq_reader r = {caller->id, docq_shard_for(caller->id, strlen(caller->id), (int)cfg->shards),
                     {cfg->read_rate_limit, cfg->read_rate_window_s}};
    return r;
}

void rpc_reply_read_limited(server_thread *t, const docq_caller *caller, const docq_rate_result *rate,
                            rpc_reply *out) {
    docq_reader reader = rpc_reader(t, caller);
    docq_log_debug("read by %s refused by the rate limit", caller->id);
    docq_counter_add(&docq_server_parts(t->srv)->metrics->rate_limited[RATE_KIND_READ], 1);
    rpc_reply_rate_limited(out, caller, "GetStatus/WatchStatus calls", &reader.policy, rate);
}

int rpc_read_allowed(server_thread *t, const rpc_call *call, docq_caller *caller, rpc_reply *out) {
    docq_rate_result rate;
    docq_error err = {0};
    if (rpc_caller(t, call, caller, out) != DOCQ_OK) return DOCQ_ERR;
    docq_reader reader = rpc_reader(t, caller);
    int rc = docq_rate_check(t->redis, docq_server_config(t->srv)->key_prefix, reader.shard, DOCQ_RATE_READ,
                             caller->id, &reader.policy, &rate, &err);
    if (rc == DOCQ_ELIMITED) {
        rpc_reply_read_limited(t, caller, &rate, out);
        return DOCQ_ERR;
    }
    if (rc != DOCQ_OK) {
        rpc_reply_store_error(out, &err);
        return DOCQ_ERR;
    }
    rpc_reply_rate_headers(out, &rate);
    return DOCQ_OK;
}
