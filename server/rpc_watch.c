/* rpc_watch.c -- WatchStatus: the task as it is now, then every change. */
#include "rpc.h"
#include "watch.h"

/* Count the call against the caller's read limit and check the id as
 * GetStatus does (INVALID_ARGUMENT, NOT_FOUND for a shard this deployment
 * does not have), then hand the call to the watch hub, which answers
 * NOT_FOUND for an unknown task and otherwise streams it. */
int rpc_watch_status(server_thread *t, const rpc_call *call, const ProtobufCMessage *req, rpc_reply *out) {
    const Docq__V1__WatchStatusRequest *r = (const Docq__V1__WatchStatusRequest *)req;
    int shard;
    if (rpc_read_allowed(t, call, out) != DOCQ_OK) return DOCQ_ERR;
    if (rpc_task_id_check(t, r->task_id, &shard, out) != DOCQ_OK) return DOCQ_ERR;
    return watch_open(docq_server_watch_hub(t->srv), t, call->call, r->task_id, r->after_version, call->metrics, out);
}
