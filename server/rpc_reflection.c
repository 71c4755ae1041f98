/* rpc_reflection.c -- grpc.reflection.v1 and v1alpha ServerReflectionInfo:
 * a bidirectional stream answering each request in order, so that grpcurl
 * and reflection clients need no .proto file.
 *
 * A stream reads one request (RECV_MESSAGE), sends its answer
 * (docq_reflection_answer), and only then reads the next: one message in
 * flight each way, answers in request order, and a client that sends
 * faster than it reads is not buffered for. When the client half-closes
 * the stream ends with OK; a request that does not parse ends it with
 * INVALID_ARGUMENT; at shutdown every stream ends with UNAVAILABLE. Each
 * stream counts against its caller's open streams (rpc_stream_hold). */
#include <stdlib.h>

#include "call_stream.h"
#include "reflection.h"
#include "rpc.h"
#include "rpc_reflection.h"

struct reflection_service {
    docq_reflection_index *idx;  /* Read-only once built: shared without a lock. */
    call_stream_group streams;        /* Open streams; its lock is theirs. */
};

typedef struct reflection_stream {
    call_stream s;             /* Its batches; s.lock is the group's. */
    reflection_service *svc;
    stream_hold hold;            /* Its place in its caller's open streams. */
} reflection_stream;

/* A request arrived (or the client half-closed): answer it. */
static void on_request(call_stream *s, grpc_byte_buffer *msg) {
    reflection_stream *rs = (reflection_stream *)s;
    if (!msg) {
        call_stream_end(s, GRPC_STATUS_OK, "");
        return;
    }
    grpc_byte_buffer *answer = docq_reflection_answer(rs->svc->idx, msg);
    grpc_byte_buffer_destroy(msg);
    if (!answer)
        call_stream_end(s, GRPC_STATUS_INVALID_ARGUMENT, "the request is not a valid ServerReflectionRequest");
    else
        call_stream_send(s, answer);
}

/* The answer went out: read the next request. */
static void on_sent(call_stream *s) {
    if (s->state == CALL_STREAM_OPEN) call_stream_recv(s);
}

static void on_release(call_stream *s) {
    stream_hold_release(&((reflection_stream *)s)->hold);
    free(s);
}

static const call_stream_ops reflection_ops = {.sent = on_sent, .received = on_request, .release = on_release};

rpc_step rpc_reflection_info(const rpc_call *call, const ProtobufCMessage *req, rpc_reply *out) {
    reflection_service *svc = call->env->reflection;
    (void)req; /* A bidirectional stream: it reads its own messages. */
    stream_hold hold;
    if (rpc_stream_hold(call, &hold, out) != DOCQ_OK) return RPC_ANSWERED;
    reflection_stream *rs = calloc(1, sizeof(*rs));
    if (!rs) {
        stream_hold_release(&hold);
        rpc_reply_error(out, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
        return RPC_ANSWERED;
    }
    rs->svc = svc;
    rs->hold = hold;
    call_stream_init(&rs->s, &svc->streams.lock, &reflection_ops, call->metrics);
    pthread_mutex_lock(&svc->streams.lock);
    int rc = svc->streams.closed ? DOCQ_EUNAVAIL : call_stream_start(&rs->s, call->call);
    if (rc == DOCQ_OK) {
        call_stream_group_add(&svc->streams, &rs->s);
        call_stream_recv(&rs->s);
    }
    pthread_mutex_unlock(&svc->streams.lock);
    if (rc == DOCQ_OK) return RPC_TAKEN;
    stream_hold_release(&rs->hold);
    free(rs);
    if (rc == DOCQ_EUNAVAIL) rpc_reply_error(out, GRPC_STATUS_UNAVAILABLE, "server shutting down");
    else rpc_reply_error(out, GRPC_STATUS_INTERNAL, "cannot start the stream");
    return RPC_ANSWERED;
}

reflection_service *reflection_service_create(docq_error *err) {
    reflection_service *r = calloc(1, sizeof(*r));
    if (!r) return docq_error_set(err, DOCQ_ERR, "out of memory"), NULL;
    r->idx = docq_reflection_index_create(docq_descriptor_set, docq_descriptor_set_len, err);
    if (!r->idx) {
        free(r);
        return NULL;
    }
    call_stream_group_init(&r->streams);
    return r;
}

void reflection_service_end_streams(reflection_service *r) {
    if (r) call_stream_group_close(&r->streams, GRPC_STATUS_UNAVAILABLE, "server shutting down");
}

void reflection_service_free(reflection_service *r) {
    if (!r) return;
    call_stream_group_destroy(&r->streams);
    docq_reflection_index_free(r->idx);
    free(r);
}
