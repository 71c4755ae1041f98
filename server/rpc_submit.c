/* rpc_submit.c -- SubmitDoc: store a PENDING task and queue it, at once. */
#include <string.h>

#include "caller.h"
#include "codec.h"
#include "log.h"
#include "rpc.h"
#include "store.h"

/* Validate the request, pick the caller's shard, then store the record and
 * queue the entry in one atomic script (store.h). Answers INVALID_ARGUMENT for
 * a bad doc_id and UNAVAILABLE when Redis is down (nothing was stored). */
void rpc_submit_doc(server_thread *t, grpc_call *call, const ProtobufCMessage *req, rpc_reply *out) {
    const Docq__V1__SubmitDocRequest *r = (const Docq__V1__SubmitDocRequest *)req;
    const docq_config *cfg = docq_server_config(t->srv);
    docq_error err = {0};
    size_t len = strlen(r->doc_id);
    if (docq_doc_id_validate(r->doc_id, len, &err) != DOCQ_OK) {
        rpc_reply_error(out, GRPC_STATUS_INVALID_ARGUMENT, "%s", err.msg);
        return;
    }
    char caller[256], task_id[DOCQ_TASK_ID_MAX];
    docq_caller_of(call, caller, sizeof(caller));
    int shard = docq_shard_for(caller, strlen(caller), (int)cfg->shards);
    if (docq_task_id_new(shard, task_id, sizeof(task_id), &err) != DOCQ_OK) {
        rpc_reply_error(out, GRPC_STATUS_INTERNAL, "%s", err.msg);
        return;
    }
    int64_t created_at;
    if (docq_store_submit(t->redis, cfg->key_prefix, shard, task_id, r->doc_id, len, &created_at,
                          &err) != DOCQ_OK) {
        rpc_reply_store_error(out, &err);
        return;
    }
    docq_log(DOCQ_LOG_DEBUG, task_id, "submitted by %s", caller);
    Docq__V1__SubmitDocResponse resp = DOCQ__V1__SUBMIT_DOC_RESPONSE__INIT;
    resp.task_id = task_id;
    resp.state = DOCQ__V1__TASK__STATE__PENDING;
    rpc_reply_message(out, &resp.base);
}
