/* rpc_status.c -- GetStatus: the stored task, or NOT_FOUND. */
#include <stdio.h>
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
        rpc_reply_not_found(out, task_id);
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

/* Identify the caller and check the id (UNAUTHENTICATED, INVALID_ARGUMENT,
 * NOT_FOUND for a shard this deployment does not have: answered at once,
 * without counting), then queue the read: the caller's read limit and the
 * record with its queue position, one script when they share a shard. */
int rpc_status_prepare(server_thread *t, const rpc_call *call, const ProtobufCMessage *req,
                       rpc_pending *pending, rpc_reply *out) {
    const Docq__V1__GetStatusRequest *r = (const Docq__V1__GetStatusRequest *)req;
    const docq_config *cfg = docq_server_config(t->srv);
    docq_error err = {0};
    int shard;
    if (rpc_caller(t, call, &pending->caller, out) != DOCQ_OK) return DOCQ_ERR;
    if (rpc_task_id_check(t, r->task_id, &shard, out) != DOCQ_OK) return DOCQ_ERR;
    snprintf(pending->task_id, sizeof(pending->task_id), "%s", r->task_id);
    docq_reader reader = rpc_reader(t, &pending->caller);
    if (docq_store_read_queue(t->pipeline, cfg->key_prefix, cfg->group, pending->task_id, &reader,
                              &pending->ticket, &err) != DOCQ_OK) {
        rpc_reply_store_error(out, &err);
        return DOCQ_ERR;
    }
    return DOCQ_OK;
}

/* Answer the task, RESOURCE_EXHAUSTED when the read limit refused,
 * UNAVAILABLE when Redis is down, or NOT_FOUND: an id that was never
 * issued, or whose finished record has expired, is NOT_FOUND, never
 * "PENDING forever". Every answer past the limit check carries the
 * ratelimit-* metadata. */
void rpc_status_finish(server_thread *t, const rpc_call *call, const ProtobufCMessage *req,
                       const rpc_pending *pending, rpc_reply *out) {
    (void)call, (void)req;
    docq_error err = {0};
    docq_task task = {0};
    docq_rate_result rate;
    int rc = docq_store_read_result(t->pipeline, &pending->ticket, pending->task_id, &rate, &task, &err);
    if (rc == DOCQ_ELIMITED) {
        rpc_reply_read_limited(t, &pending->caller, &rate, out);
        return;
    }
    if (rc == DOCQ_ENOTFOUND || (rc == DOCQ_OK && !rpc_task_visible(&pending->caller, &task))) {
        rpc_reply_not_found(out, pending->task_id);
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
