/* rpc_cancel.c -- CancelTask: end a PENDING or STARTED task as CANCELLED
 * and answer the task, or NOT_FOUND. Pipelined like GetStatus
 * (rpc_status.c), whose checks and answers it shares: the Redis work is one
 * script (common/lua/cancel.lua) that also counts the read limit, and the
 * worker running a STARTED task learns of the cancel from its shard's
 * cancels stream (worker/cancels.c). */
#include <stdio.h>
#include <string.h>

#include "access.h"
#include "codec.h"
#include "rpc.h"
#include "store.h"

/* Identify the caller and check the id (UNAUTHENTICATED, INVALID_ARGUMENT,
 * NOT_FOUND for a shard this deployment does not have: answered at once,
 * without counting), then queue the cancel with the caller's read limit.
 * When the caller's limit key lives in another shard than the task (a
 * caller that is an address naming a task another address submitted), one
 * script cannot hold both: the limit is checked first, alone, in one more
 * round trip, so that a refused cancel changes nothing. An authenticated
 * caller may cancel only its own tasks (the script checks the owner before
 * writing). */
rpc_step rpc_cancel_prepare(const rpc_call *call, const ProtobufCMessage *req, rpc_pending *pending,
                            rpc_reply *out) {
    const Docq__V1__CancelTaskRequest *r = (const Docq__V1__CancelTaskRequest *)req;
    const rpc_env *env = call->env;
    const docq_config *cfg = env->cfg;
    docq_error err = {0};
    int shard;
    memset(&pending->rate, 0, sizeof(pending->rate));
    if (access_caller(call, &pending->caller, out) != DOCQ_OK) return RPC_ANSWERED;
    if (access_task_id_check(cfg, r->task_id, &shard, out) != DOCQ_OK) return RPC_ANSWERED;
    snprintf(pending->task_id, sizeof(pending->task_id), "%s", r->task_id);
    docq_reader reader = rpc_reader(env, &pending->caller);
    const docq_reader *limit = &reader;
    if (reader.policy.limit > 0 && reader.shard != shard) {
        int rc = docq_rate_check(env->redis, cfg->key_prefix, reader.shard, DOCQ_RATE_READ, reader.caller,
                                 &reader.policy, &pending->rate, &err);
        if (rc == DOCQ_ELIMITED) {
            rpc_reply_read_limited(env, &pending->caller, &pending->rate, out);
            return RPC_ANSWERED;
        }
        if (rc != DOCQ_OK) {
            rpc_reply_store_error(out, &err);
            return RPC_ANSWERED;
        }
        limit = NULL;
    }
    const char *owner = pending->caller.authenticated ? pending->caller.id : NULL;
    if (docq_store_cancel_queue(env->pipeline, cfg->key_prefix, cfg->group, pending->task_id, limit, owner,
                                cfg->result_ttl_s, &pending->ticket, &err) != DOCQ_OK) {
        rpc_reply_store_error(out, &err);
        return RPC_ANSWERED;
    }
    return RPC_QUEUED;
}

/* Answer the task as the cancel left it (CANCELLED, or the state it had
 * already ended in), RESOURCE_EXHAUSTED when the read limit refused,
 * UNAVAILABLE when Redis is down (nothing changed, or the cancel was made:
 * retrying is safe either way), or NOT_FOUND for an id never issued,
 * expired, or another caller's. Every answer past the limit check carries
 * the ratelimit-* metadata. */
void rpc_cancel_finish(const rpc_call *call, const ProtobufCMessage *req, const rpc_pending *pending,
                       rpc_reply *out) {
    (void)req;
    docq_error err = {0};
    docq_task task = {0};
    docq_rate_result rate;
    int rc = docq_store_cancel_result(call->env->pipeline, &pending->ticket, pending->task_id, &rate, &task,
                                      &err);
    if (pending->rate.limited) rate = pending->rate; /* Checked apart, in the prepare. */
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
