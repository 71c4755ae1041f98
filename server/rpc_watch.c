/* rpc_watch.c -- WatchStatus: the task as it is now, then every change. */
#include "access.h"
#include "rpc.h"
#include "watch.h"

/* Count the call against the caller's read limit and check the id as
 * GetStatus does (INVALID_ARGUMENT, NOT_FOUND for a shard this deployment
 * does not have), then hand the call to the watch hub, which answers
 * NOT_FOUND for an unknown task or another caller's, RESOURCE_EXHAUSTED
 * when the caller has DOCQ_MAX_WATCHES_PER_CALLER watches open, and
 * otherwise streams it. */
rpc_step rpc_watch_status(const rpc_call *call, const ProtobufCMessage *req, rpc_reply *out) {
    const Docq__V1__WatchStatusRequest *r = (const Docq__V1__WatchStatusRequest *)req;
    const rpc_env *env = call->env;
    docq_caller caller;
    int shard;
    if (rpc_read_allowed(call, &caller, out) != DOCQ_OK) return RPC_ANSWERED;
    if (access_task_id_check(env->cfg, r->task_id, &shard, out) != DOCQ_OK) return RPC_ANSWERED;
    /* The key that named the caller, so that a reload that drops it ends the watch. */
    size_t key_len = 0;
    const char *key = docq_auth_enabled(env->auth) ? docq_caller_key(call->metadata, &key_len) : NULL;
    int rc = watch_open(env->watch, env->redis, call->call, &caller, key, key_len, r->task_id, r->after_version,
                        call->metrics, out);
    return rc == DOCQ_OK ? RPC_TAKEN : RPC_ANSWERED;
}
