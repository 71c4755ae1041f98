/* rpc_list.c -- ListTasks: a page of the caller's own tasks, newest first. */
#include <stdlib.h>
#include <string.h>

#include "access.h"
#include "codec.h"
#include "rpc.h"
#include "store.h"

/* Fill q from the request r: the page size (0: DOCQ_LIST_DEFAULT), the page
 * token and the states (each named once; states must hold
 * DOCQ_STATE_CANCELLED entries). Returns DOCQ_OK, or fills out with
 * INVALID_ARGUMENT and returns DOCQ_ERR. */
static int list_query(const Docq__V1__ListTasksRequest *r, docq_list_query *q, docq_task_state *states,
                      rpc_reply *out) {
    docq_error err = {0};
    memset(q, 0, sizeof(*q));
    if (r->page_size < 0 || r->page_size > DOCQ_LIST_MAX) {
        rpc_reply_error(out, GRPC_STATUS_INVALID_ARGUMENT, "page_size %d is out of range: 0 (for %d) to %d",
                        (int)r->page_size, DOCQ_LIST_DEFAULT, DOCQ_LIST_MAX);
        return DOCQ_ERR;
    }
    q->page_size = r->page_size ? (int)r->page_size : DOCQ_LIST_DEFAULT;
    q->after_score = -1;
    if (r->page_token[0] && docq_list_token_parse(r->page_token, &q->after_score, q->after_id, &err) != DOCQ_OK) {
        rpc_reply_error(out, GRPC_STATUS_INVALID_ARGUMENT, "%s: pass the next_page_token of a previous page",
                        err.msg);
        return DOCQ_ERR;
    }
    for (size_t i = 0; i < r->n_states; i++) {
        int s = (int)r->states[i];
        if (s < DOCQ_STATE_PENDING || s > DOCQ_STATE_CANCELLED) {
            rpc_reply_error(out, GRPC_STATUS_INVALID_ARGUMENT, "states: %d is not a task state", s);
            return DOCQ_ERR;
        }
        size_t j = 0;
        while (j < q->nstates && states[j] != (docq_task_state)s) j++;
        if (j == q->nstates) states[q->nstates++] = (docq_task_state)s;
    }
    q->states = states;
    return DOCQ_OK;
}

/* Identify the caller and check the request (UNAUTHENTICATED,
 * INVALID_ARGUMENT: answered at once, not counted), then queue the one
 * script that counts the read and reads the page from the caller's index
 * (store.h). An authenticated caller sees only records it owns. */
rpc_step rpc_list_prepare(const rpc_call *call, const ProtobufCMessage *req, rpc_pending *pending,
                          rpc_reply *out) {
    const Docq__V1__ListTasksRequest *r = (const Docq__V1__ListTasksRequest *)req;
    const docq_config *cfg = call->env->cfg;
    docq_error err = {0};
    docq_list_query q;
    docq_task_state states[DOCQ_STATE_CANCELLED];
    if (access_caller(call, &pending->caller, out) != DOCQ_OK) return RPC_ANSWERED;
    if (list_query(r, &q, states, out) != DOCQ_OK) return RPC_ANSWERED;
    q.owner = pending->caller.authenticated ? pending->caller.id : NULL;
    docq_reader reader = rpc_reader(call->env, &pending->caller);
    if (docq_store_list_queue(call->env->pipeline, cfg->key_prefix, cfg->group, &reader, &q, &pending->ticket,
                              &err) != DOCQ_OK) {
        rpc_reply_store_error(out, &err);
        return RPC_ANSWERED;
    }
    return RPC_QUEUED;
}

/* Answer the page and the token of the next one (empty on the last page),
 * RESOURCE_EXHAUSTED when the read limit refused, or UNAVAILABLE when Redis
 * is down. Every answer past the limit check carries the ratelimit-*
 * metadata. */
void rpc_list_finish(const rpc_call *call, const ProtobufCMessage *req, const rpc_pending *pending,
                     rpc_reply *out) {
    (void)req;
    docq_error err = {0};
    docq_task_page page;
    docq_rate_result rate;
    int rc = docq_store_list_result(call->env->pipeline, &pending->ticket, &rate, &page, &err);
    if (rc == DOCQ_ELIMITED) {
        rpc_reply_read_limited(call->env, &pending->caller, &rate, out);
        return;
    }
    if (rc != DOCQ_OK) {
        rpc_reply_store_error(out, &err);
        rpc_reply_rate_headers(out, &rate);
        return;
    }
    docq_task_msg *msgs = page.n ? calloc(page.n, sizeof(*msgs)) : NULL;
    Docq__V1__Task **tasks = page.n ? calloc(page.n, sizeof(*tasks)) : NULL;
    char token[DOCQ_LIST_TOKEN_MAX] = "";
    if (page.n && (!msgs || !tasks)) {
        rpc_reply_error(out, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    } else {
        Docq__V1__ListTasksResponse resp = DOCQ__V1__LIST_TASKS_RESPONSE__INIT;
        for (size_t i = 0; i < page.n; i++) {
            docq_codec_task_msg(&page.tasks[i], &msgs[i]);
            tasks[i] = &msgs[i].msg;
        }
        if (page.more) docq_list_token_format(token, sizeof(token), page.next_score, page.next_id);
        resp.n_tasks = page.n;
        resp.tasks = tasks;
        resp.next_page_token = token;
        rpc_reply_message(out, &resp.base);
    }
    rpc_reply_rate_headers(out, &rate);
    free(tasks);
    free(msgs);
    docq_task_page_clear(&page);
}
