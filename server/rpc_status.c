/* rpc_status.c -- GetStatus: the stored task, or NOT_FOUND. */
#include <string.h>

#include "codec.h"
#include "rpc.h"
#include "store.h"

/* See rpc.h; shared by the RPCs that read a task. */
int rpc_task_id_check(server_thread *t, const char *task_id, int *shard, rpc_reply *out) {
    docq_error err = {0};
    if (docq_task_id_parse(task_id, strlen(task_id), shard, &err) != DOCQ_OK) {
        rpc_reply_error(out, GRPC_STATUS_INVALID_ARGUMENT, "%s", err.msg);
        return DOCQ_ERR;
    }
    if (*shard >= docq_server_config(t->srv)->shards) {
        rpc_reply_error(out, GRPC_STATUS_NOT_FOUND, "task %s not found", task_id);
        return DOCQ_ERR;
    }
    return DOCQ_OK;
}

int rpc_task_visible(const docq_caller *caller, const docq_task *task) {
    return !caller->authenticated || (task->owner && strcmp(task->owner, caller->id) == 0);
}

void rpc_reply_not_found(rpc_reply *out, const char *task_id) {
    rpc_reply_error(out, GRPC_STATUS_NOT_FOUND, "task %s not found: unknown id, or finished and expired",
                    task_id);
}

/* Count the call against the caller's read limit, then read the record,
 * and the queue position of a PENDING task, in one round trip. An id that
 * was never issued, or whose finished record has expired, is NOT_FOUND:
 * never "PENDING forever"; so is another caller's task (rpc_task_visible). */
void rpc_get_status(server_thread *t, const rpc_call *call, const ProtobufCMessage *req, rpc_reply *out) {
    const Docq__V1__GetStatusRequest *r = (const Docq__V1__GetStatusRequest *)req;
    docq_error err = {0};
    docq_task task = {0};
    docq_caller caller;
    int shard;
    if (rpc_read_allowed(t, call, &caller, out) != DOCQ_OK) return;
    if (rpc_task_id_check(t, r->task_id, &shard, out) != DOCQ_OK) return;
    const docq_config *cfg = docq_server_config(t->srv);
    int rc = docq_store_get(t->redis, cfg->key_prefix, cfg->group, r->task_id, &task, &err);
    if (rc == DOCQ_ENOTFOUND || (rc == DOCQ_OK && !rpc_task_visible(&caller, &task))) {
        rpc_reply_not_found(out, r->task_id);
    } else if (rc != DOCQ_OK) {
        rpc_reply_store_error(out, &err);
    } else {
        docq_task_msg msg;
        docq_codec_task_msg(&task, &msg);
        rpc_reply_message(out, &msg.msg.base);
    }
    docq_task_clear(&task);
}
