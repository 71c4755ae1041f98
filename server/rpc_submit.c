/* rpc_submit.c -- SubmitDoc: check the caller's limit, store a PENDING task
 * and queue it, all at once. */
#include <string.h>

#include "access.h"
#include "caller.h"
#include "codec.h"
#include "log.h"
#include "rpc.h"
#include "store.h"

/* The queue timeout d asks for, in ms (rounded up) into *ms (0: none, for d
 * NULL or zero). Returns DOCQ_OK, or DOCQ_EINVAL with err saying why:
 * negative, malformed (nanos out of range or of the other sign), or over
 * DOCQ_MAX_QUEUE_TIMEOUT_S (max_s). */
static int queue_timeout_ms(const Google__Protobuf__Duration *d, long max_s, int64_t *ms, docq_error *err) {
    *ms = 0;
    if (!d) return DOCQ_OK;
    if (d->nanos <= -1000000000 || d->nanos >= 1000000000 || (d->seconds > 0 && d->nanos < 0) ||
        (d->seconds < 0 && d->nanos > 0))
        return docq_error_set(err, DOCQ_EINVAL, "queue_timeout is not a valid Duration (nanos %d)", d->nanos);
    if (d->seconds < 0 || d->nanos < 0)
        return docq_error_set(err, DOCQ_EINVAL, "queue_timeout is negative");
    if (d->seconds > max_s || (d->seconds == max_s && d->nanos > 0))
        return docq_error_set(err, DOCQ_EINVAL, "queue_timeout is over %ld s, the longest DOCQ_MAX_QUEUE_TIMEOUT_S allows",
                              max_s);
    *ms = (int64_t)d->seconds * 1000 + (d->nanos + 999999) / 1000000;
    return DOCQ_OK;
}

/* Identify the caller and validate the request (UNAUTHENTICATED for a
 * missing or unknown key, INVALID_ARGUMENT for a bad doc_id, request_id or
 * queue_timeout), then queue the one atomic script that checks the
 * caller's rate limit, stores the record and queues the entry in the
 * caller's shard (store.h), under a new task id; with a request_id, the
 * same script first looks the caller's request id up and answers the task
 * it names instead. With DOCQ_REDIS_MIN_REPLICAS set, the pipeline ends
 * with one WAIT that covers every submit of the burst (redis.h). */
rpc_step rpc_submit_prepare(const rpc_call *call, const ProtobufCMessage *req, rpc_pending *pending,
                            rpc_reply *out) {
    const Docq__V1__SubmitDocRequest *r = (const Docq__V1__SubmitDocRequest *)req;
    const docq_config *cfg = call->env->cfg;
    docq_caller *caller = &pending->caller;
    docq_error err = {0};
    if (access_caller(call, caller, out) != DOCQ_OK) return RPC_ANSWERED;
    size_t len = strlen(r->doc_id);
    docq_submit_opts opts = {.request_id = r->request_id,
                             .request_id_len = r->request_id ? strlen(r->request_id) : 0,
                             .request_ttl_s = cfg->request_id_ttl_s,
                             .result_ttl_s = cfg->result_ttl_s};
    if (docq_doc_id_validate(r->doc_id, len, &err) != DOCQ_OK ||
        (opts.request_id_len > 0 && docq_request_id_validate(r->request_id, opts.request_id_len, &err) != DOCQ_OK) ||
        queue_timeout_ms(r->queue_timeout, cfg->max_queue_timeout_s, &opts.queue_timeout_ms, &err) != DOCQ_OK) {
        rpc_reply_error(out, GRPC_STATUS_INVALID_ARGUMENT, "%s", err.msg);
        return RPC_ANSWERED;
    }
    int shard = docq_shard_for(caller->id, strlen(caller->id), (int)cfg->shards);
    if (docq_task_id_new(shard, pending->task_id, sizeof(pending->task_id), &err) != DOCQ_OK) {
        rpc_reply_error(out, GRPC_STATUS_INTERNAL, "%s", err.msg);
        return RPC_ANSWERED;
    }
    /* An authenticated caller owns its task (access_task_visible). */
    if (docq_store_submit_queue(call->env->pipeline, cfg->key_prefix, shard, pending->task_id, r->doc_id, len,
                                caller->id, caller->authenticated ? caller->id : NULL, &caller->submit, &opts,
                                &pending->ticket, &err) != DOCQ_OK) {
        rpc_reply_store_error(out, &err);
        return RPC_ANSWERED;
    }
    if (cfg->redis_min_replicas > 0)
        docq_pipeline_wait_replicas(call->env->pipeline, (int)cfg->redis_min_replicas, cfg->redis_wait_ms);
    return RPC_QUEUED;
}

/* Answer the task id, or RESOURCE_EXHAUSTED when the limit refused and
 * UNAVAILABLE when Redis is down (nothing was stored or counted in those
 * cases), or UNAVAILABLE saying the task may exist when it was stored but
 * the burst's WAIT confirmed it on fewer than DOCQ_REDIS_MIN_REPLICAS
 * replicas (a failover could lose it; a retry makes a new task, unless it
 * carries the same request_id). A request_id that names a task already
 * answers that task's id and state now; one that names a task of another
 * doc_id is ALREADY_EXISTS. Every answer that passed the limit check
 * carries the ratelimit-* metadata. */
void rpc_submit_finish(const rpc_call *call, const ProtobufCMessage *req, const rpc_pending *pending,
                       rpc_reply *out) {
    const Docq__V1__SubmitDocRequest *r = (const Docq__V1__SubmitDocRequest *)req;
    docq_error err = {0};
    docq_submitted done;
    docq_rate_result rate;
    int rc = docq_store_submit_result(call->env->pipeline, &pending->ticket, &done, &rate, &err);
    if (rc == DOCQ_ELIMITED) {
        docq_log_debug("SubmitDoc by %s refused by the rate limit", pending->caller.id);
        docq_counter_add(&call->env->metrics->rate_limited[RATE_KIND_SUBMIT], 1);
        rpc_reply_rate_limited(out, &pending->caller, "SubmitDoc calls", &pending->caller.submit, &rate);
        return;
    }
    if (rc == DOCQ_EEXISTS) {
        rpc_reply_error(out, GRPC_STATUS_ALREADY_EXISTS, "%s", err.msg);
        rpc_reply_rate_headers(out, &rate);
        return;
    }
    if (rc != DOCQ_OK) {
        rpc_reply_store_error(out, &err);
        return;
    }
    int with_request = r->request_id && r->request_id[0];
    if (done.known) {
        docq_log(DOCQ_LOG_DEBUG, done.task_id, "SubmitDoc by %s repeated a request_id: same task", pending->caller.id);
    } else {
        docq_log(DOCQ_LOG_DEBUG, done.task_id, "submitted by %s", pending->caller.id);
        docq_counter_add(&call->env->metrics->tasks_submitted, 1);
    }
    if (call->env->cfg->redis_min_replicas > 0 && docq_pipeline_replicated(call->env->pipeline, &err) != DOCQ_OK) {
        docq_counter_add(&call->env->metrics->submit_unreplicated, 1);
        rpc_reply_error(out, GRPC_STATUS_UNAVAILABLE, "task %s stored but %s (DOCQ_REDIS_MIN_REPLICAS): it may exist; %s",
                        done.task_id, err.msg,
                        with_request ? "retrying with the same request_id finds it if it does"
                                     : "retrying makes a new task");
        rpc_reply_rate_headers(out, &rate);
        return;
    }
    Docq__V1__SubmitDocResponse resp = DOCQ__V1__SUBMIT_DOC_RESPONSE__INIT;
    resp.task_id = done.task_id;
    resp.state = (Docq__V1__Task__State)done.state;
    rpc_reply_message(out, &resp.base);
    rpc_reply_rate_headers(out, &rate);
}
