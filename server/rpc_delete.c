/* rpc_delete.c -- DeleteTask: remove an ended task of the caller now. */
#include <stdio.h>

#include "access.h"
#include "google/protobuf/empty.pb-c.h"
#include "rpc.h"
#include "store.h"

/* Identify the caller and check the id (UNAUTHENTICATED, INVALID_ARGUMENT,
 * NOT_FOUND for a shard this deployment does not have: answered at once,
 * without counting), then queue the one script that counts the call against
 * the read limit and deletes the task when it is the caller's and has
 * ended (store.h). */
rpc_step rpc_delete_prepare(const rpc_call *call, const ProtobufCMessage *req, rpc_pending *pending,
                            rpc_reply *out) {
    const Docq__V1__DeleteTaskRequest *r = (const Docq__V1__DeleteTaskRequest *)req;
    const docq_config *cfg = call->env->cfg;
    docq_error err = {0};
    int shard;
    if (access_caller(call, &pending->caller, out) != DOCQ_OK) return RPC_ANSWERED;
    if (access_task_id_check(cfg, r->task_id, &shard, out) != DOCQ_OK) return RPC_ANSWERED;
    snprintf(pending->task_id, sizeof(pending->task_id), "%s", r->task_id);
    docq_reader reader = rpc_reader(call->env, &pending->caller);
    const char *owner = pending->caller.authenticated ? pending->caller.id : NULL;
    if (docq_store_delete_queue(call->env->pipeline, cfg->key_prefix, pending->task_id, &reader, owner,
                                &pending->ticket, &err) != DOCQ_OK) {
        rpc_reply_store_error(out, &err);
        return RPC_ANSWERED;
    }
    return RPC_QUEUED;
}

/* Answer Empty once the task is deleted; NOT_FOUND (exactly as GetStatus
 * answers an unknown id) for no such task of the caller; FAILED_PRECONDITION
 * for a task that has not ended; RESOURCE_EXHAUSTED when the read limit
 * refused; UNAVAILABLE when Redis is down. Every answer past the limit check
 * carries the ratelimit-* metadata. */
void rpc_delete_finish(const rpc_call *call, const ProtobufCMessage *req, const rpc_pending *pending,
                       rpc_reply *out) {
    (void)req;
    docq_error err = {0};
    docq_rate_result rate;
    docq_task_state state;
    int rc = docq_store_delete_result(call->env->pipeline, &pending->ticket, &rate, &state, &err);
    if (rc == DOCQ_ELIMITED) {
        rpc_reply_read_limited(call->env, &pending->caller, &rate, out);
        return;
    }
    if (rc == DOCQ_OK) {
        Google__Protobuf__Empty empty = GOOGLE__PROTOBUF__EMPTY__INIT;
        rpc_reply_message(out, &empty.base);
    } else if (rc == DOCQ_ENOTFOUND) {
        access_reply_not_found(out, pending->task_id);
    } else if (rc == DOCQ_ECONFLICT) {
        rpc_reply_error(out, GRPC_STATUS_FAILED_PRECONDITION, "task %s is %s, not ended: cancel it first",
                        pending->task_id, docq_task_state_name(state));
    } else {
        rpc_reply_store_error(out, &err);
    }
    rpc_reply_rate_headers(out, &rate);
}
