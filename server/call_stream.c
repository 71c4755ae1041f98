/* call_stream.c -- the batches of a streaming call. See call_stream.h. */
#include <stdlib.h>
#include <string.h>

#include <grpc/byte_buffer.h>
#include <grpc/slice.h>

#include "call_stream.h"
#include "log.h"

#define CALL_STREAM_OF(tag, member) ((call_stream *)((char *)(tag) - offsetof(call_stream, member)))

static void send_done(server_tag *tag, int success);
static void recv_done(server_tag *tag, int success);
static void close_done(server_tag *tag, int success);
static void status_done(server_tag *tag, int success);

void call_stream_init(call_stream *s, pthread_mutex_t *lock, const call_stream_ops *ops, rpc_metrics *metrics) {
    memset(s, 0, sizeof(*s));
    s->send_tag.done = send_done;
    s->recv_tag.done = recv_done;
    s->close_tag.done = close_done;
    s->status_tag.done = status_done;
    s->lock = lock;
    s->ops = ops;
    s->metrics = metrics;
    s->state = CALL_STREAM_IDLE;
}

int call_stream_start(call_stream *s, grpc_call *call) {
    grpc_op op;
    memset(&op, 0, sizeof(op));
    op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    op.data.recv_close_on_server.cancelled = &s->cancelled;
    if (grpc_call_start_batch(call, &op, 1, &s->close_tag, NULL) != GRPC_CALL_OK) return DOCQ_ERR;
    grpc_call_ref(call);
    s->call = call;
    s->batches = 1;
    s->state = CALL_STREAM_OPEN;
    if (s->metrics) docq_gauge_add(&s->metrics->streams_open, 1);
    return DOCQ_OK;
}

/* Take s out of its group, if any. */
static void group_remove(call_stream *s) {
    call_stream_group *g = s->group;
    if (!g) return;
    if (s->gprev) s->gprev->gnext = s->gnext;
    else g->head = s->gnext;
    if (s->gnext) s->gnext->gprev = s->gprev;
    s->gprev = s->gnext = NULL;
    s->group = NULL;
    g->count--;
}

/* s has ended with code (its status sent, or the call cancelled): count it,
 * leave the group and tell the owner. */
static void mark_ended(call_stream *s, grpc_status_code code) {
    s->state = CALL_STREAM_ENDED;
    if (s->metrics) {
        rpc_metrics_count(s->metrics, code);
        docq_gauge_add(&s->metrics->streams_open, -1);
    }
    group_remove(s);
    if (s->ops->ended) s->ops->ended(s);
}

/* Send the status (with the initial metadata if none went yet); no batch
 * is started after this one. */
static void send_status(call_stream *s, grpc_status_code code, const char *details) {
    grpc_op ops[2];
    size_t n = 0;
    grpc_slice text = grpc_slice_from_static_string(details);
    memset(ops, 0, sizeof(ops));
    if (!s->md_sent) {
        ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
        ops[n++].data.send_initial_metadata.count = 0;
    }
    ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
    ops[n].data.send_status_from_server.status = code;
    ops[n++].data.send_status_from_server.status_details = &text;
    s->md_sent = 1;
    mark_ended(s, code);
    grpc_call_error e = grpc_call_start_batch(s->call, ops, n, &s->status_tag, NULL);
    if (e == GRPC_CALL_OK) {
        s->batches++;
    } else {
        docq_log_error("stream: cannot send its status: start_batch error %d", e);
        grpc_call_cancel(s->call, NULL);
    }
}

int call_stream_sendable(const call_stream *s) {
    return (s->state == CALL_STREAM_OPEN || s->state == CALL_STREAM_ENDING) && !s->sending && !s->broken;
}

int call_stream_send(call_stream *s, grpc_byte_buffer *msg) {
    grpc_op ops[2];
    size_t n = 0;
    memset(ops, 0, sizeof(ops));
    if (!s->md_sent) {
        ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
        ops[n++].data.send_initial_metadata.count = 0;
    }
    ops[n].op = GRPC_OP_SEND_MESSAGE;
    ops[n++].data.send_message.send_message = msg;
    s->sending = msg;
    grpc_call_error e = grpc_call_start_batch(s->call, ops, n, &s->send_tag, NULL);
    if (e != GRPC_CALL_OK) {
        docq_log_error("stream: cannot send: start_batch error %d", e);
        grpc_byte_buffer_destroy(msg);
        s->sending = NULL;
        send_status(s, GRPC_STATUS_INTERNAL, "cannot send");
        return DOCQ_ERR;
    }
    s->batches++;
    s->md_sent = 1;
    return DOCQ_OK;
}

int call_stream_recv(call_stream *s) {
    grpc_op op;
    memset(&op, 0, sizeof(op));
    op.op = GRPC_OP_RECV_MESSAGE;
    op.data.recv_message.recv_message = &s->received;
    grpc_call_error e = grpc_call_start_batch(s->call, &op, 1, &s->recv_tag, NULL);
    if (e != GRPC_CALL_OK) {
        docq_log_error("stream: cannot read: start_batch error %d", e);
        call_stream_end(s, GRPC_STATUS_INTERNAL, "cannot read");
        return DOCQ_ERR;
    }
    s->batches++;
    s->receiving = 1;
    return DOCQ_OK;
}

void call_stream_end(call_stream *s, grpc_status_code code, const char *details) {
    if (s->state != CALL_STREAM_OPEN) return;
    if (s->sending) {
        s->state = CALL_STREAM_ENDING;
        s->end_code = code;
        s->end_details = details;
    } else {
        send_status(s, code, details);
    }
}

/* After a completion (lock held): 1 when s must now be released. */
static int finished(const call_stream *s) { return s->state == CALL_STREAM_ENDED && s->batches == 0; }

/* Release the call and what is left, then hand s back to its owner. */
static void release(call_stream *s) {
    if (s->sending) grpc_byte_buffer_destroy(s->sending);
    if (s->received) grpc_byte_buffer_destroy(s->received);
    if (s->call) grpc_call_unref(s->call);
    s->sending = s->received = NULL;
    s->call = NULL;
    s->ops->release(s);
}

/* Unlock, and release s when its last batch has completed. */
static void unlock_and_maybe_release(call_stream *s) {
    int done = finished(s);
    pthread_mutex_unlock(s->lock);
    if (done) release(s);
}

static void send_done(server_tag *tag, int success) {
    call_stream *s = CALL_STREAM_OF(tag, send_tag);
    pthread_mutex_lock(s->lock);
    s->batches--;
    grpc_byte_buffer_destroy(s->sending);
    s->sending = NULL;
    /* A failed send means the call is cancelled or broken: RECV_CLOSE will
     * say so; nothing more is started on it. */
    if (!success) {
        s->broken = 1;
    } else if (s->state == CALL_STREAM_OPEN || s->state == CALL_STREAM_ENDING) {
        if (s->ops->sent) s->ops->sent(s);
        if (s->state == CALL_STREAM_ENDING && !s->sending) send_status(s, s->end_code, s->end_details);
    }
    unlock_and_maybe_release(s);
}

static void recv_done(server_tag *tag, int success) {
    call_stream *s = CALL_STREAM_OF(tag, recv_tag);
    pthread_mutex_lock(s->lock);
    s->batches--;
    s->receiving = 0;
    grpc_byte_buffer *msg = s->received;
    s->received = NULL;
    if (success && s->state == CALL_STREAM_OPEN && s->ops->received)
        s->ops->received(s, msg);
    else if (msg)
        grpc_byte_buffer_destroy(msg);
    unlock_and_maybe_release(s);
}

static void close_done(server_tag *tag, int success) {
    call_stream *s = CALL_STREAM_OF(tag, close_tag);
    (void)success;
    pthread_mutex_lock(s->lock);
    s->batches--;
    /* Closed before our status went: cancelled by the client, its deadline
     * or a broken connection. Nothing more can be sent. */
    if (s->state != CALL_STREAM_ENDED) mark_ended(s, GRPC_STATUS_CANCELLED);
    unlock_and_maybe_release(s);
}

static void status_done(server_tag *tag, int success) {
    call_stream *s = CALL_STREAM_OF(tag, status_tag);
    (void)success;
    pthread_mutex_lock(s->lock);
    s->batches--;
    unlock_and_maybe_release(s);
}

/* -- Groups ----------------------------------------------------------------- */

void call_stream_group_init(call_stream_group *g) {
    memset(g, 0, sizeof(*g));
    pthread_mutex_init(&g->lock, NULL);
}

void call_stream_group_destroy(call_stream_group *g) {
    if (g->count) docq_log_error("stream group destroyed with %zu streams open", g->count);
    pthread_mutex_destroy(&g->lock);
}

int call_stream_group_add(call_stream_group *g, call_stream *s) {
    if (g->closed) return DOCQ_EUNAVAIL;
    s->group = g;
    s->gprev = NULL;
    s->gnext = g->head;
    if (g->head) g->head->gprev = s;
    g->head = s;
    g->count++;
    return DOCQ_OK;
}

void call_stream_group_close(call_stream_group *g, grpc_status_code code, const char *details) {
    pthread_mutex_lock(&g->lock);
    g->closed = 1;
    /* Ending a stream may take it out of the group: take the next first. */
    for (call_stream *s = g->head, *next; s; s = next) {
        next = s->gnext;
        call_stream_end(s, code, details);
    }
    pthread_mutex_unlock(&g->lock);
}

size_t call_stream_group_count(call_stream_group *g) {
    pthread_mutex_lock(&g->lock);
    size_t n = g->count;
    pthread_mutex_unlock(&g->lock);
    return n;
}
