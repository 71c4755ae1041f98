/* rpc_watch.c -- WatchStatus: part of the API, served by a later change. */
#include "rpc.h"

/* Answers UNIMPLEMENTED (after checking the id, so that clients already get
 * INVALID_ARGUMENT and NOT_FOUND right). */
void rpc_watch_status(server_thread *t, grpc_call *call, const ProtobufCMessage *req, rpc_reply *out) {
    const Docq__V1__WatchStatusRequest *r = (const Docq__V1__WatchStatusRequest *)req;
    int shard;
    (void)call;
    if (rpc_task_id_check(t, r->task_id, &shard, out) != DOCQ_OK) return;
    rpc_reply_error(out, GRPC_STATUS_UNIMPLEMENTED,
                    "WatchStatus is not served by this version of docq yet; poll GetStatus");
}
