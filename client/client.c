/* client.c -- blocking calls on gRPC core. See client.h.
 *
 * Every call is a call_ctx driven by four helpers, which a server-streaming
 * call shares with the unary one:
 *
 *   call_open    make the call's pluck queue and the call, with its deadline
 *   call_start   start one batch of ops on the call
 *   call_wait    wait for that batch, cancelling the call if the deadline
 *                passes first
 *   call_close   release everything the call holds, whatever state it is in
 *
 * and call_status, which copies the received status out. A unary call is one
 * batch of six ops (see unary_batch). A stream is several batches on the same
 * call_ctx: its request with SEND_CLOSE_FROM_CLIENT, RECV_STATUS_ON_CLIENT in
 * a batch of its own, and one RECV_MESSAGE batch per message until a NULL
 * message ends the stream; each batch gets its own tag to pluck. */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/time.h>

#include "client.h"
#include "codec.h"
#include "richstatus.h"

struct docq_client {
    grpc_channel *channel; /* Owned; thread-safe and shared by every call. */
    char *authorization;   /* "Bearer <key>", owned, or NULL: no key sent. */
};

/* One call and everything core writes back into it. Core keeps pointers into
 * this struct while a batch is in flight, so it must not move between
 * call_open and call_close (keep it on the caller's stack). */
typedef struct call_ctx {
    grpc_completion_queue *cq;       /* This call's pluck queue; owned. */
    grpc_call *call;                 /* Owned (one ref); NULL if it could not be made. */
    gpr_timespec deadline;           /* Monotonic; infinite when there is none. */
    void *pending[4];                /* Tags of batches started and not yet waited for. */
    int npending;
    grpc_byte_buffer *send;          /* Request message; owned, kept until call_close. */
    grpc_byte_buffer *recv;          /* Message received, NULL when none; owned. */
    grpc_metadata_array initial_md;  /* Server's initial and trailing metadata: the */
    grpc_metadata_array trailing_md; /* arrays are ours, their entries the call's. */
    grpc_status_code status;         /* Written by RECV_STATUS_ON_CLIENT. */
    grpc_slice details;              /* Written by RECV_STATUS_ON_CLIENT; owned. */
} call_ctx;

/* Fill st with a status made on this side of the wire. Returns DOCQ_ERR. */
static int local_status(docq_rpc_status *st, grpc_status_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int local_status(docq_rpc_status *st, grpc_status_code code, const char *fmt, ...) {
    va_list ap;
    st->code = code;
    st->retry_ms = -1;
    va_start(ap, fmt);
    vsnprintf(st->details, sizeof(st->details), fmt, ap);
    va_end(ap);
    return DOCQ_ERR;
}

/* The DOCQ_* value docq_client_call returns for a status that is not OK. */
static int status_result(grpc_status_code code) {
    switch (code) {
    case GRPC_STATUS_NOT_FOUND: return DOCQ_ENOTFOUND;
    case GRPC_STATUS_INVALID_ARGUMENT: return DOCQ_EINVAL;
    case GRPC_STATUS_UNAVAILABLE: return DOCQ_EUNAVAIL;
    case GRPC_STATUS_RESOURCE_EXHAUSTED: return DOCQ_ELIMITED;
    default: return DOCQ_ERR;
    }
}

docq_client *docq_client_create(const char *target, const docq_client_tls *tls, long connect_timeout_ms,
                                long keepalive_ms, docq_error *err) {
    docq_client *c = calloc(1, sizeof(*c));
    if (!c) {
        docq_error_set(err, DOCQ_ERR, "out of memory");
        return NULL;
    }
    /* A connection attempt lasts max(min connect timeout, first backoff),
     * 20 s and 1 s by default: set both (gRPC raises values under 100 ms). */
    int ms = connect_timeout_ms > INT_MAX ? INT_MAX : (int)connect_timeout_ms;
    int ka = keepalive_ms > INT_MAX ? INT_MAX : (int)keepalive_ms;
    grpc_arg args[6] = {
        /* Its own connection and reconnect backoff: a client made to retry
         * after a failure must not inherit another's backoff. */
        {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, .value.integer = 1},
        {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, .value.integer = ms},
        {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, .value.integer = ms},
        /* Keepalive pings while a call is open, however long nothing is
         * sent (a watch of a minutes-long AI call). */
        {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_KEEPALIVE_TIME_MS, .value.integer = ka},
        {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_KEEPALIVE_TIMEOUT_MS, .value.integer = 20000},
        {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, .value.integer = 0},
    };
    grpc_arg chosen[7];
    grpc_channel_args chargs = {.num_args = 0, .args = chosen};
    chosen[chargs.num_args++] = args[0];
    for (int i = 1; i <= 2 && connect_timeout_ms > 0; i++) chosen[chargs.num_args++] = args[i];
    for (int i = 3; i <= 5 && keepalive_ms > 0; i++) chosen[chargs.num_args++] = args[i];
    chargs.num_args += (size_t)docq_client_server_name_arg(tls, &chosen[chargs.num_args]);
    /* The channel takes its own references to the credentials and copies
     * the arguments. */
    grpc_channel_credentials *creds = docq_client_credentials(tls, err);
    if (!creds) {
        free(c);
        return NULL;
    }
    c->channel = grpc_channel_create(target, creds, &chargs);
    grpc_channel_credentials_release(creds);
    if (!c->channel) {
        free(c);
        docq_error_set(err, DOCQ_ERR, "cannot create a channel to '%s'", target);
        return NULL;
    }
    return c;
}

int docq_client_set_api_key(docq_client *c, const char *key) {
    free(c->authorization);
    c->authorization = NULL;
    if (!key || !key[0]) return DOCQ_OK;
    size_t n = strlen(key) + sizeof("Bearer ");
    c->authorization = malloc(n);
    if (!c->authorization) return DOCQ_ERR;
    snprintf(c->authorization, n, "Bearer %s", key);
    return DOCQ_OK;
}

void docq_client_free(docq_client *c) {
    if (!c) return;
    grpc_channel_destroy(c->channel);
    free(c->authorization);
    free(c);
}

/* Prepare cx and make a call to method on c's channel that ends by itself
 * deadline_ms from now (never when deadline_ms <= 0). Returns DOCQ_OK, or
 * DOCQ_ERR with st filled. Either way the caller must call call_close(cx)
 * afterwards. */
static int call_open(docq_client *c, const char *method, long deadline_ms, call_ctx *cx,
                     docq_rpc_status *st) {
    memset(cx, 0, sizeof(*cx));
    grpc_metadata_array_init(&cx->initial_md);
    grpc_metadata_array_init(&cx->trailing_md);
    cx->details = grpc_empty_slice();
    cx->status = GRPC_STATUS_UNKNOWN;
    cx->deadline = deadline_ms > 0
                       ? gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                                      gpr_time_from_millis(deadline_ms, GPR_TIMESPAN))
                       : gpr_inf_future(GPR_CLOCK_MONOTONIC);
    cx->cq = grpc_completion_queue_create_for_pluck(NULL);
    if (!cx->cq) return local_status(st, GRPC_STATUS_INTERNAL, "cannot create a completion queue");
    /* The call takes its own reference to the method slice. */
    grpc_slice path = grpc_slice_from_copied_string(method);
    cx->call = grpc_channel_create_call(c->channel, NULL, GRPC_PROPAGATE_DEFAULTS, cx->cq, path,
                                        NULL, cx->deadline, NULL);
    grpc_slice_unref(path);
    if (!cx->call) return local_status(st, GRPC_STATUS_INTERNAL, "cannot create a call to %s", method);
    return DOCQ_OK;
}

/* Start a batch of n ops on cx's call, to be waited for with call_wait(cx,
 * tag). Returns DOCQ_OK, or DOCQ_ERR with st filled when gRPC refused the
 * batch (then it never completes and must not be waited for). */
static int call_start(call_ctx *cx, const grpc_op *ops, size_t n, void *tag, docq_rpc_status *st) {
    if (cx->npending == (int)(sizeof(cx->pending) / sizeof(cx->pending[0])))
        return local_status(st, GRPC_STATUS_INTERNAL, "too many batches in flight");
    grpc_call_error e = grpc_call_start_batch(cx->call, ops, n, tag, NULL);
    if (e != GRPC_CALL_OK)
        return local_status(st, GRPC_STATUS_INTERNAL, "gRPC refused the batch (grpc_call_error %d)",
                            (int)e);
    cx->pending[cx->npending++] = tag;
    return DOCQ_OK;
}

/* Forget the batch started with tag: it has completed. */
static void pending_remove(call_ctx *cx, void *tag) {
    for (int i = 0; i < cx->npending; i++) {
        if (cx->pending[i] == tag) {
            cx->pending[i] = cx->pending[--cx->npending];
            return;
        }
    }
}

/* Wait for the batch started with tag. When the deadline passes first (the
 * call's own deadline timer and this wait race), the call is cancelled with
 * DEADLINE_EXCEEDED, which completes the batch at once. Returns the batch's
 * success flag (1 or 0), or -1 when the queue failed and the batch is still
 * in flight (call_close then cancels the call and waits for it). */
static int call_wait(call_ctx *cx, void *tag) {
    grpc_event ev = grpc_completion_queue_pluck(cx->cq, tag, cx->deadline, NULL);
    if (ev.type == GRPC_QUEUE_TIMEOUT) {
        grpc_call_cancel_with_status(cx->call, GRPC_STATUS_DEADLINE_EXCEEDED, "Deadline Exceeded",
                                     NULL);
        ev = grpc_completion_queue_pluck(cx->cq, tag, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
    }
    if (ev.type != GRPC_OP_COMPLETE) return -1;
    pending_remove(cx, tag);
    return ev.success;
}

long docq_client_retry_delay(const grpc_metadata_array *md) {
    long pushback = -1, ms;
    for (size_t i = 0; i < md->count; i++) {
        const grpc_slice *k = &md->metadata[i].key, *v = &md->metadata[i].value;
        if (grpc_slice_str_cmp(*k, "grpc-status-details-bin") == 0 &&
            docq_richstatus_retry_ms(GRPC_SLICE_START_PTR(*v), GRPC_SLICE_LENGTH(*v), &ms) == DOCQ_OK)
            return ms;
        if (grpc_slice_str_cmp(*k, "grpc-retry-pushback-ms") == 0) {
            char text[24];
            size_t n = GRPC_SLICE_LENGTH(*v) < sizeof(text) ? GRPC_SLICE_LENGTH(*v) : sizeof(text) - 1;
            memcpy(text, GRPC_SLICE_START_PTR(*v), n);
            text[n] = '\0';
            char *end;
            long p = strtol(text, &end, 10);
            if (end != text && *end == '\0' && p >= 0)
                pushback = p < DOCQ_RETRY_DELAY_MAX_MS ? p : DOCQ_RETRY_DELAY_MAX_MS;
        }
    }
    return pushback;
}

/* Copy the status received by RECV_STATUS_ON_CLIENT into st. Only valid after
 * the batch that held that op has completed. */
static void call_status(const call_ctx *cx, docq_rpc_status *st) {
    size_t n = GRPC_SLICE_LENGTH(cx->details);
    if (n >= sizeof(st->details)) n = sizeof(st->details) - 1;
    st->code = cx->status;
    memcpy(st->details, GRPC_SLICE_START_PTR(cx->details), n);
    st->details[n] = '\0';
    st->retry_ms = docq_client_retry_delay(&cx->trailing_md);
}

/* Release everything cx holds. A call with batches still in flight (a wait
 * that failed, or a stream abandoned midway) is cancelled first and each of
 * its completions collected, so that no batch outlives the buffers it writes
 * into. Safe after a failed call_open. */
static void call_close(call_ctx *cx) {
    if (cx->call && cx->npending > 0) {
        grpc_call_cancel(cx->call, NULL);
        for (int i = 0; i < cx->npending; i++)
            grpc_completion_queue_pluck(cx->cq, cx->pending[i], gpr_inf_future(GPR_CLOCK_MONOTONIC),
                                        NULL);
    }
    if (cx->cq) {
        grpc_event ev;
        grpc_completion_queue_shutdown(cx->cq);
        /* Every completion has been plucked: this returns GRPC_QUEUE_SHUTDOWN
         * at once (it would wait for any batch still in flight). */
        do {
            ev = grpc_completion_queue_pluck(cx->cq, NULL, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
        } while (ev.type != GRPC_QUEUE_SHUTDOWN);
    }
    if (cx->call) grpc_call_unref(cx->call);
    if (cx->cq) grpc_completion_queue_destroy(cx->cq);
    if (cx->send) grpc_byte_buffer_destroy(cx->send);
    if (cx->recv) grpc_byte_buffer_destroy(cx->recv);
    grpc_metadata_array_destroy(&cx->initial_md);
    grpc_metadata_array_destroy(&cx->trailing_md);
    grpc_slice_unref(cx->details);
    memset(cx, 0, sizeof(*cx));
}

/* Fill ops[0..3] (zeroed by the caller) with the request half of a call:
 * initial metadata (the API key when authorization is set, through *auth),
 * the packed request, the half-close and the receipt of the server's initial
 * metadata. The key's slices are static: core may keep pointing at their
 * bytes, a literal and the client's copy of the key, which outlive every
 * call. Returns 4. */
static size_t request_ops(call_ctx *cx, const char *authorization, grpc_metadata *auth, grpc_op *ops) {
    memset(auth, 0, sizeof(*auth));
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    if (authorization) {
        auth->key = grpc_slice_from_static_string("authorization");
        auth->value = grpc_slice_from_static_string(authorization);
        ops[0].data.send_initial_metadata.count = 1;
        ops[0].data.send_initial_metadata.metadata = auth;
    }
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = cx->send;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &cx->initial_md;
    return 4;
}

/* Run the whole unary exchange on an open call: send req, half-close, and
 * receive the initial metadata, one message and the status, in one batch.
 * Returns as docq_client_call does. */
static int unary_batch(call_ctx *cx, const char *authorization, const ProtobufCMessage *req,
                       const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **resp,
                       docq_rpc_status *st) {
    grpc_op ops[6];
    grpc_metadata auth;
    cx->send = docq_codec_pack(req);
    if (!cx->send) return local_status(st, GRPC_STATUS_INTERNAL, "out of memory");

    memset(ops, 0, sizeof(ops));
    request_ops(cx, authorization, &auth, ops);
    ops[4].op = GRPC_OP_RECV_MESSAGE;
    ops[4].data.recv_message.recv_message = &cx->recv;
    ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[5].data.recv_status_on_client.trailing_metadata = &cx->trailing_md;
    ops[5].data.recv_status_on_client.status = &cx->status;
    ops[5].data.recv_status_on_client.status_details = &cx->details;
    if (call_start(cx, ops, 6, cx, st) != DOCQ_OK) return DOCQ_ERR;

    int ok = call_wait(cx, cx);
    if (ok < 0) return local_status(st, GRPC_STATUS_INTERNAL, "the completion queue failed");
    call_status(cx, st);
    if (st->code != GRPC_STATUS_OK) return status_result(st->code);
    if (!ok) return local_status(st, GRPC_STATUS_UNKNOWN, "the call failed without a status");
    if (!cx->recv) return local_status(st, GRPC_STATUS_INTERNAL, "no response message");
    *resp = docq_codec_unpack(resp_desc, cx->recv);
    if (!*resp) return local_status(st, GRPC_STATUS_INTERNAL, "malformed response");
    return DOCQ_OK;
}

int docq_client_call(docq_client *c, const char *method, const ProtobufCMessage *req,
                     const ProtobufCMessageDescriptor *resp_desc, long deadline_ms,
                     ProtobufCMessage **resp, docq_rpc_status *st) {
    call_ctx cx;
    *resp = NULL;
    st->retry_ms = -1;
    int rc = call_open(c, method, deadline_ms, &cx, st);
    if (rc == DOCQ_OK) rc = unary_batch(&cx, c->authorization, req, resp_desc, resp, st);
    call_close(&cx);
    return rc;
}

/* -- Server-streaming calls ------------------------------------------------ */

struct docq_stream {
    call_ctx cx;      /* Must not move while batches are in flight: s is on the heap. */
    char send_tag;    /* Tags: the addresses of these three bytes. */
    char status_tag;
    char msg_tag;
    int reading;      /* A RECV_MESSAGE batch is in flight. */
    int ended;        /* The status has been received into cx. */
    int result;       /* With ended: what docq_stream_next returns. */
    docq_rpc_status end;
};

int docq_stream_open(docq_client *c, const char *method, const ProtobufCMessage *req,
                     long deadline_ms, docq_stream **out, docq_rpc_status *st) {
    grpc_op ops[4];
    grpc_metadata auth;
    *out = NULL;
    docq_stream *s = calloc(1, sizeof(*s));
    if (!s) return local_status(st, GRPC_STATUS_INTERNAL, "out of memory");
    call_ctx *cx = &s->cx;
    if (call_open(c, method, deadline_ms, cx, st) != DOCQ_OK) goto fail;
    cx->send = docq_codec_pack(req);
    if (!cx->send) {
        local_status(st, GRPC_STATUS_INTERNAL, "out of memory");
        goto fail;
    }
    memset(ops, 0, sizeof(ops));
    if (call_start(cx, ops, request_ops(cx, c->authorization, &auth, ops), &s->send_tag, st) != DOCQ_OK)
        goto fail;
    memset(ops, 0, sizeof(ops));
    ops[0].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[0].data.recv_status_on_client.trailing_metadata = &cx->trailing_md;
    ops[0].data.recv_status_on_client.status = &cx->status;
    ops[0].data.recv_status_on_client.status_details = &cx->details;
    if (call_start(cx, ops, 1, &s->status_tag, st) != DOCQ_OK) goto fail;
    *out = s;
    return DOCQ_OK;
fail:
    call_close(cx);
    free(s);
    return DOCQ_ERR;
}

/* Wait for the batch started with tag for up to wait_ms (less than 0: no
 * limit but the call's deadline). Returns its success flag (1 or 0), -2 when
 * wait_ms passed first (the batch is still in flight), -1 when the queue
 * failed. */
static int stream_wait(docq_stream *s, void *tag, long wait_ms) {
    call_ctx *cx = &s->cx;
    gpr_timespec until = cx->deadline;
    if (wait_ms >= 0) {
        gpr_timespec t = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(wait_ms, GPR_TIMESPAN));
        if (gpr_time_cmp(t, until) < 0) {
            grpc_event ev = grpc_completion_queue_pluck(cx->cq, tag, t, NULL);
            if (ev.type == GRPC_QUEUE_TIMEOUT) return -2;
            if (ev.type != GRPC_OP_COMPLETE) return -1;
            pending_remove(cx, tag);
            return ev.success;
        }
    }
    return call_wait(cx, tag);
}

/* The stream is over: collect its status (and its first batch). */
static void stream_end(docq_stream *s) {
    call_ctx *cx = &s->cx;
    s->ended = 1;
    if (stream_wait(s, &s->status_tag, -1) < 0) {
        s->result = local_status(&s->end, GRPC_STATUS_INTERNAL, "the completion queue failed");
        return;
    }
    stream_wait(s, &s->send_tag, -1);
    call_status(cx, &s->end);
    s->result = s->end.code == GRPC_STATUS_OK ? DOCQ_OK : status_result(s->end.code);
}

int docq_stream_next(docq_stream *s, const ProtobufCMessageDescriptor *resp_desc, long wait_ms,
                     ProtobufCMessage **msg, int *ended, docq_rpc_status *st) {
    call_ctx *cx = &s->cx;
    *msg = NULL;
    *ended = 0;
    if (!s->ended && !s->reading) {
        grpc_op op;
        memset(&op, 0, sizeof(op));
        op.op = GRPC_OP_RECV_MESSAGE;
        op.data.recv_message.recv_message = &cx->recv;
        if (call_start(cx, &op, 1, &s->msg_tag, &s->end) != DOCQ_OK) {
            grpc_call_cancel(cx->call, NULL);
            stream_end(s);
        } else {
            s->reading = 1;
        }
    }
    if (!s->ended) {
        int ok = stream_wait(s, &s->msg_tag, wait_ms);
        if (ok == -2) return DOCQ_OK;
        s->reading = 0;
        if (ok == 1 && cx->recv) {
            *msg = docq_codec_unpack(resp_desc, cx->recv);
            grpc_byte_buffer_destroy(cx->recv);
            cx->recv = NULL;
            if (*msg) return DOCQ_OK;
            grpc_call_cancel(cx->call, NULL);
            stream_end(s);
            s->result = local_status(&s->end, GRPC_STATUS_INTERNAL, "malformed response");
        } else {
            stream_end(s);
        }
    }
    *ended = 1;
    *st = s->end;
    return s->result;
}

void docq_stream_close(docq_stream *s) {
    if (!s) return;
    call_close(&s->cx);
    free(s);
}
