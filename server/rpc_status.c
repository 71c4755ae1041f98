/* rpc_status.c -- GetStatus: the stored task, or NOT_FOUND. */
#include <stdio.h>
#include <string.h>

#include "access.h"
#include "codec.h"
#include "rpc.h"
#include "store.h"

/* Identify the caller and check the id (UNAUTHENTICATED, INVALID_ARGUMENT,
 * NOT_FOUND for a shard this deployment does not have: answered at once,
 * without counting), then queue the read: the caller's read limit and the
 * record with its queue position, one script when they share a shard. */
rpc_step rpc_status_prepare(const rpc_call *call, const ProtobufCMessage *req, rpc_pending *pending,
                            rpc_reply *out) {
    const Docq__V1__GetStatusRequest *r = (const Docq__V1__GetStatusRequest *)req;
    const docq_config *cfg = call->env->cfg;
    docq_error err = {0};
    int shard;
    if (access_caller(call, &pending->caller, out) != DOCQ_OK) return RPC_ANSWERED;
    if (access_task_id_check(cfg, r->task_id, &shard, out) != DOCQ_OK) return RPC_ANSWERED;
    snprintf(pending->task_id, sizeof(pending->task_id), "%s", r->task_id);
    docq_reader reader = rpc_reader(call->env, &pending->caller);
    if (docq_store_read_queue(call->env->pipeline, cfg->key_prefix, cfg->group, pending->task_id, &reader,
                              cfg->result_ttl_s, &pending->ticket, &err) != DOCQ_OK) {
        rpc_reply_store_error(out, &err);
        return RPC_ANSWERED;
    }
    return RPC_QUEUED;
}

/* Answer the task, RESOURCE_EXHAUSTED when the read limit refused,
 * UNAVAILABLE when Redis is down, or NOT_FOUND: an id that was never
 * issued, or whose finished record has expired, is NOT_FOUND, never
 * "PENDING forever". Every answer past the limit check carries the
 * ratelimit-* metadata. */
void rpc_status_finish(const rpc_call *call, const ProtobufCMessage *req, const rpc_pending *pending,
                       rpc_reply *out) {
    (void)req;
    docq_error err = {0};
    docq_task task = {0};
    docq_rate_result rate;
    int rc = docq_store_read_result(call->env->pipeline, &pending->ticket, pending->task_id, &rate, &task, &err);
    if (rc == DOCQ_ELIMITED) {
        rpc_reply_read_limited(call->env, &pending->caller, &rate, out);
        return;
    }
    if (rc == DOCQ_ENOTFOUND || (rc == DOCQ_OK && !access_task_visible(&pending->caller, &task))) {
        access_reply_not_found(out, pending->task_id);
    } else if (rc != DOCQ_OK) {
        rpc_reply_store_error(out, &err);
    } else {
        docq_task_msg msg;
        docq_codec_task_msg(&task, &msg);
        rpc_reply_message(out, &msg.msg.base);
    }
    rpc_reply_rate_headers(out, &rate);
    docq_task_clear(&task);
}
