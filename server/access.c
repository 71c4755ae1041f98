/* access.c -- callers, task ids and what a caller may see. See access.h. */
#include <string.h>

#include "access.h"

int access_caller(const rpc_call *call, docq_caller *caller, rpc_reply *out) {
    docq_error err = {0};
    if (docq_caller_identify(call->env->cfg, call->env->auth, call->call, call->metadata, caller, &err) !=
        DOCQ_OK) {
        rpc_reply_error(out, GRPC_STATUS_UNAUTHENTICATED, "%s", err.msg);
        return DOCQ_ERR;
    }
    return DOCQ_OK;
}

int access_task_id_check(const docq_config *cfg, const char *task_id, int *shard, rpc_reply *out) {
    docq_error err = {0};
    if (docq_task_id_parse(task_id, strlen(task_id), shard, &err) != DOCQ_OK) {
        rpc_reply_error(out, GRPC_STATUS_INVALID_ARGUMENT, "%s", err.msg);
        return DOCQ_ERR;
    }
    if (*shard >= cfg->shards) {
        access_reply_not_found(out, task_id);
        return DOCQ_ERR;
    }
    return DOCQ_OK;
}

int access_task_visible(const docq_caller *caller, const docq_task *task) {
    return !caller->authenticated || (task->owner && strcmp(task->owner, caller->id) == 0);
}

void access_reply_not_found(rpc_reply *out, const char *task_id) {
    rpc_reply_error(out, GRPC_STATUS_NOT_FOUND, "task %s not found: unknown id, or finished and expired",
                    task_id);
}
