/* rpc.h -- the handlers of docq.v1.DocQueue, one per file (rpc_*.c). */
#ifndef DOCQ_RPC_H
#define DOCQ_RPC_H

#include "codec.h"
#include "server.h"

/* Check a client-supplied task id and return its shard. Returns DOCQ_OK, or
 * fills out (INVALID_ARGUMENT for a malformed id, NOT_FOUND for a shard this
 * deployment does not have) and returns DOCQ_ERR (rpc_status.c). */
int rpc_task_id_check(server_thread *t, const char *task_id, int *shard, rpc_reply *out);

/* SubmitDoc: validate doc_id, store and queue a PENDING task (rpc_submit.c). */
void rpc_submit_doc(server_thread *t, grpc_call *call, const ProtobufCMessage *req, rpc_reply *out);

/* GetStatus: the stored task, NOT_FOUND for unknown ids (rpc_status.c). */
void rpc_get_status(server_thread *t, grpc_call *call, const ProtobufCMessage *req, rpc_reply *out);

/* WatchStatus: validate the id and open a watch (rpc_watch.c, watch.h). A
 * server-streaming handler: see rpc_stream_handler. */
int rpc_watch_status(server_thread *t, grpc_call *call, const ProtobufCMessage *req, rpc_reply *out);

#endif
