/* rpc_watch.c -- WatchStatus: part of the API, served by a later change. */
#include "rpc.h"

/* Answers UNIMPLEMENTED (after the read limit and the id check, so that
 * clients already get UNAUTHENTICATED, RESOURCE_EXHAUSTED, INVALID_ARGUMENT
 * and NOT_FOUND right). */
void rpc_watch_status(server_thread *t, const rpc_call *call, const ProtobufCMessage *req, rpc_reply *out) {
    const Docq__V1__WatchStatusRequest *r = (const Docq__V1__WatchStatusRequest *)req;
    int shard;
    if (rpc_read_allowed(t, call, out) != DOCQ_OK) return;
    if (rpc_task_id_check(t, r->task_id, &shard, out) != DOCQ_OK) return;
    rpc_reply_error(out, GRPC_STATUS_UNIMPLEMENTED,
                    "WatchStatus is not served by this version of docq yet; poll GetStatus");
}
