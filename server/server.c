/* server.c -- completion queues, threads and call contexts of docq-server.
 *
 * Each call is driven by a call_ctx that is the tag of every operation on it:
 *
 *   CALL_WAITING    requested from gRPC (grpc_server_request_*_call), no call
 *                   yet. success=1: a call arrived with its first message;
 *                   a fresh context is requested at once to replace this one,
 *                   the handler runs and the answer is sent. success=0: the
 *                   server is shutting down; the context is freed.
 *   CALL_HELD       a pipelined method's prepare queued the call's Redis work
 *                   in its thread's pipeline; the call waits (in t->held, not
 *                   on any gRPC operation) until the pipeline runs, then its
 *                   finish builds the answer, which is sent.
 *   CALL_ANSWERING  the answer batch (initial metadata, message, status,
 *                   close) is in flight; when it completes the context is
 *                   freed, whatever its success.
 *
 * A streaming method's context lives only until its handler has taken the
 * call over (or answered an error): the stream then has its own tags.
 *
 * One context per method kind is always waiting on each thread's queue
 * (WAITING_PER_METHOD of them, so bursts need not wait for a request), plus
 * one catch-all that answers UNIMPLEMENTED to unknown methods (without it
 * they would hang until the client's deadline). */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <grpc/grpc_security.h>
#include <grpc/support/time.h>

#include "caller_counts.h"
#include "clock.h"
#include "codec.h"
#include "grpc/health/v1/health.pb-c.h"
#include "log.h"
#include "reply.h"
#include "rpc.h"
#include "server.h"
#include "server_parts.h"
#include "server_tag.h"
#include "subscriber.h"
#include "tls.h"
#include "watch.h"

#define WAITING_PER_METHOD 16

static const rpc_def rpcs[] = {
    {.path = "/docq.v1.DocQueue/SubmitDoc", .input = &docq__v1__submit_doc_request__descriptor,
     .prepare = rpc_submit_prepare, .finish = rpc_submit_finish},
    {.path = "/docq.v1.DocQueue/GetStatus", .input = &docq__v1__get_status_request__descriptor,
     .prepare = rpc_status_prepare, .finish = rpc_status_finish},
    {.path = "/docq.v1.DocQueue/WatchStatus", .input = &docq__v1__watch_status_request__descriptor,
     .stream = rpc_watch_status},
    {.path = "/docq.v1.DocQueue/CancelTask", .input = &docq__v1__cancel_task_request__descriptor,
     .prepare = rpc_cancel_prepare, .finish = rpc_cancel_finish},
    {.path = "/docq.v1.DocQueue/ListTasks", .input = &docq__v1__list_tasks_request__descriptor,
     .prepare = rpc_list_prepare, .finish = rpc_list_finish},
    {.path = "/docq.v1.DocQueue/DeleteTask", .input = &docq__v1__delete_task_request__descriptor,
     .prepare = rpc_delete_prepare, .finish = rpc_delete_finish},
    {.path = "/grpc.health.v1.Health/Check", .input = &grpc__health__v1__health_check_request__descriptor,
     .handler = rpc_health_check},
    {.path = "/grpc.health.v1.Health/Watch", .input = &grpc__health__v1__health_check_request__descriptor,
     .stream = rpc_health_watch},
    {.path = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", .stream = rpc_reflection_info,
     .flags = RPC_REFLECTION},
    {.path = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", .stream = rpc_reflection_info,
     .flags = RPC_REFLECTION},
};
#define NRPCS (int)(sizeof(rpcs) / sizeof(rpcs[0]))

/* Most calls a thread holds for one pipeline run. */
#define SERVER_HELD_MAX 128

struct call_ctx;

/* One server thread and what it owns. */
typedef struct server_thread {
    docq_server *srv;            /* Back pointer; the server outlives its threads. */
    grpc_completion_queue *cq;   /* This thread's queue (create_for_next). */
    rpc_env env;                 /* What its handlers use: its own Redis connection (env.redis)
                                  * and pipeline of the held calls (env.pipeline), and the
                                  * server's shared pieces. */
    struct call_ctx *held[SERVER_HELD_MAX]; /* Calls waiting for the pipeline to */
    int nheld;                              /* run, in arrival order. */
    pthread_t tid;
    int index;
} server_thread;

struct docq_server {
    const docq_config *cfg;
    docq_auth *auth;                    /* API keys; reloaded by the main thread. */
    grpc_server *server;
    grpc_completion_queue *shutdown_cq; /* Receives the shutdown notification. */
    void *methods[NRPCS];               /* Registered method handles, as rpcs[] (NULL: not served). */
    server_thread *threads;
    int nthreads;
    int started_threads;
    int port;
    int plain_port;                     /* DOCQ_PLAINTEXT_LISTEN's port (tls.h), 0 if none. */
    watch_hub *watch;                   /* Open watches. */
    subscriber *sub;                    /* Feeds the watches (wired to watch); NULL until started. */
    server_parts *parts;                /* Metrics, health, reflection, the HTTP endpoint. */
    caller_counts *streams;             /* Open long-lived streams of each caller (caller_counts.h). */
};

typedef enum call_state { CALL_WAITING, CALL_HELD, CALL_ANSWERING } call_state;

typedef struct call_ctx {
    server_tag tag;                  /* First: the tag of every operation on the call. */
    call_state state;
    server_thread *thread;           /* Owner: the thread whose queue carries the call. */
    int rpc;                         /* Index in rpcs[], or -1 for the catch-all. */
    grpc_call *call;
    gpr_timespec deadline;
    grpc_metadata_array request_md;
    grpc_call_details details;       /* Catch-all only: the method asked for. */
    grpc_byte_buffer *payload;       /* The request message (registered methods). */
    ProtobufCMessage *req;           /* CALL_HELD: the decoded request, for the finish. */
    rpc_pending pending;             /* CALL_HELD: what the prepare kept for the finish. */
    grpc_byte_buffer *response;      /* The answer while CALL_ANSWERING. */
    int cancelled;                   /* Set by RECV_CLOSE_ON_SERVER. */
    int64_t arrived_ns;              /* Monotonic time the call arrived, for its latency. */
} call_ctx;

static void on_event(server_tag *tag, int success);

static void call_free(call_ctx *c) {
    grpc_metadata_array_destroy(&c->request_md);
    grpc_call_details_destroy(&c->details);
    if (c->payload) grpc_byte_buffer_destroy(c->payload);
    if (c->req) protobuf_c_message_free_unpacked(c->req, NULL);
    if (c->response) grpc_byte_buffer_destroy(c->response);
    if (c->call) grpc_call_unref(c->call);
    free(c);
}

/* Ask gRPC for the next call of kind rpc (-1: any unregistered method) on
 * thread t's queue. Logs and gives up when gRPC refuses (shutting down). */
static void request_call(server_thread *t, int rpc) {
    call_ctx *c = calloc(1, sizeof(*c));
    if (!c) {
        docq_log_error("out of memory requesting a call");
        return;
    }
    c->tag.done = on_event;
    c->state = CALL_WAITING;
    c->thread = t;
    c->rpc = rpc;
    grpc_metadata_array_init(&c->request_md);
    grpc_call_details_init(&c->details);
    grpc_call_error e;
    if (rpc >= 0)
        e = grpc_server_request_registered_call(t->srv->server, t->srv->methods[rpc], &c->call,
                                                &c->deadline, &c->request_md,
                                                rpcs[rpc].input ? &c->payload : NULL, t->cq, t->cq, c);
    else
        e = grpc_server_request_call(t->srv->server, &c->call, &c->details, &c->request_md, t->cq,
                                     t->cq, c);
    if (e != GRPC_CALL_OK) {
        docq_log_debug("request_call refused (%d): shutting down", e);
        call_free(c);
    }
}

/* Send the answer in one batch. An error is sent Trailers-Only (empty
 * initial metadata and the status together, no message) so clients may
 * retry it; its answer metadata then travels in the trailers. Core takes its
 * own references to the metadata: the reply still owns (and clears) its. */
static void send_answer(call_ctx *c, rpc_reply *reply) {
    grpc_op ops[4];
    grpc_metadata trailing[2 * RPC_MAX_METADATA];
    size_t ntrailing = 0;
    grpc_slice details = grpc_slice_from_copied_string(reply->details);
    size_t n = 0;
    int with_message = reply->code == GRPC_STATUS_OK && reply->message;
    memset(ops, 0, sizeof(ops));
    ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
    if (with_message) {
        ops[n].data.send_initial_metadata.count = reply->ninitial;
        ops[n].data.send_initial_metadata.metadata = reply->initial;
    } else {
        memcpy(trailing, reply->initial, reply->ninitial * sizeof(grpc_metadata));
        ntrailing = reply->ninitial;
    }
    n++;
    memcpy(trailing + ntrailing, reply->trailing, reply->ntrailing * sizeof(grpc_metadata));
    ntrailing += reply->ntrailing;
    if (with_message) {
        c->response = reply->message;
        reply->message = NULL;
        ops[n].op = GRPC_OP_SEND_MESSAGE;
        ops[n++].data.send_message.send_message = c->response;
    }
    ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
    ops[n].data.send_status_from_server.status = reply->code;
    ops[n].data.send_status_from_server.trailing_metadata_count = ntrailing;
    ops[n].data.send_status_from_server.trailing_metadata = ntrailing ? trailing : NULL;
    ops[n++].data.send_status_from_server.status_details = &details;
    ops[n].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    ops[n++].data.recv_close_on_server.cancelled = &c->cancelled;
    c->state = CALL_ANSWERING;
    rpc_metrics_observe(server_metrics_rpc(c->thread->env.metrics, c->rpc), reply->code,
                        (uint64_t)(docq_now_ns() - c->arrived_ns));
    grpc_call_error e = grpc_call_start_batch(c->call, ops, n, c, NULL);
    grpc_slice_unref(details);
    if (e != GRPC_CALL_OK) {
        docq_log_error("cannot answer call: start_batch error %d", e);
        call_free(c);
    }
}

/* With TLS on, a call that came over the plaintext port may only reach the
 * health service (tls.h). Returns 1 to serve c, else 0 with reply set to
 * PERMISSION_DENIED. */
static int transport_allows(const call_ctx *c, rpc_reply *reply) {
    const docq_config *cfg = c->thread->srv->cfg;
    const char *m = c->rpc >= 0 ? rpcs[c->rpc].path : (const char *)GRPC_SLICE_START_PTR(c->details.method);
    size_t len = c->rpc >= 0 ? strlen(m) : GRPC_SLICE_LENGTH(c->details.method);
    if (tls_plaintext_allows(cfg, m, len) || tls_call_secure(c->call)) return 1;
    rpc_reply_error(reply, GRPC_STATUS_PERMISSION_DENIED,
                    "only grpc.health.v1.Health is served without TLS: call %.*s over TLS", (int)len, m);
    return 0;
}

/* What a handler may know of call c. */
static rpc_call call_of(call_ctx *c) {
    rpc_call call = {&c->thread->env, c->call, &c->request_md, server_metrics_rpc(c->thread->env.metrics, c->rpc)};
    return call;
}

/* Send reply as c's answer and release it. */
static void answer(call_ctx *c, rpc_reply *reply) {
    if (reply->code != GRPC_STATUS_OK)
        docq_log_debug("%s -> %s: %s", c->rpc >= 0 ? rpcs[c->rpc].path : "unknown method",
                       docq_grpc_status_name(reply->code), reply->details);
    send_answer(c, reply);
    rpc_reply_clear(reply);
}

/* Run the Redis work of every held call of t in one pipeline, then finish
 * and answer each, in arrival order. */
static void run_held(server_thread *t) {
    if (!t->nheld) return;
    docq_pipeline_run(t->env.pipeline, t->env.redis);
    for (int i = 0; i < t->nheld; i++) {
        call_ctx *c = t->held[i];
        rpc_reply reply = RPC_REPLY_INIT;
        rpc_call call = call_of(c);
        rpcs[c->rpc].finish(&call, c->req, &c->pending, &reply);
        protobuf_c_message_free_unpacked(c->req, NULL);
        c->req = NULL;
        answer(c, &reply);
    }
    t->nheld = 0;
    docq_pipeline_reset(t->env.pipeline);
}

/* A call arrived: decode its request, then run its handler and answer, hold
 * it for the pipeline (pipelined methods), or hand it to its stream. */
static void handle_call(call_ctx *c) {
    rpc_reply reply = RPC_REPLY_INIT;
    if (!transport_allows(c, &reply)) {
        /* Answered with the refusal below. */
    } else if (c->rpc < 0) {
        rpc_reply_error(&reply, GRPC_STATUS_UNIMPLEMENTED, "unknown method %.*s",
                        (int)GRPC_SLICE_LENGTH(c->details.method),
                        (const char *)GRPC_SLICE_START_PTR(c->details.method));
    } else {
        const rpc_def *rpc = &rpcs[c->rpc];
        server_thread *t = c->thread;
        rpc_call call = call_of(c);
        ProtobufCMessage *req = rpc->input ? docq_codec_unpack(rpc->input, c->payload) : NULL;
        if (!req && rpc->input) {
            rpc_reply_error(&reply, GRPC_STATUS_INVALID_ARGUMENT, "request is not a valid %s message (malformed bytes, or a string with a NUL byte)",
                            rpc->input->name);
        } else if (rpc->stream) {
            int taken = rpc->stream(&call, req, &reply) == RPC_TAKEN;
            if (req) protobuf_c_message_free_unpacked(req, NULL);
            if (taken) {
                rpc_reply_clear(&reply);
                call_free(c); /* The stream holds its own reference to the call. */
                return;
            }
        } else if (rpc->prepare) {
            if (rpc->prepare(&call, req, &c->pending, &reply) == RPC_QUEUED) {
                c->req = req;
                c->state = CALL_HELD;
                t->held[t->nheld++] = c;
                if (t->nheld == SERVER_HELD_MAX) run_held(t);
                return;
            }
            protobuf_c_message_free_unpacked(req, NULL);
        } else {
            rpc->handler(&call, req, &reply);
            protobuf_c_message_free_unpacked(req, NULL);
        }
    }
    answer(c, &reply);
}

static void on_event(server_tag *tag, int success) {
    call_ctx *c = (call_ctx *)tag;
    if (c->state == CALL_ANSWERING || !success) {
        call_free(c);
        return;
    }
    c->arrived_ns = docq_now_ns();
    request_call(c->thread, c->rpc);
    handle_call(c);
}

/* How many events a thread takes from its queue without blocking before it
 * runs its held calls' pipeline anyway (the pipeline also runs when
 * SERVER_HELD_MAX calls are held, and whenever the queue has nothing ready). */
#define EVENTS_PER_ROUND 256

/* Handle every event ready on t's queue, up to EVENTS_PER_ROUND, the first
 * one waited for; then run the held calls. Returns 0 once the queue is shut
 * down. */
static int serve_round(server_thread *t) {
    grpc_event ev = grpc_completion_queue_next(t->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    for (int n = 1; ev.type == GRPC_OP_COMPLETE; n++) {
        ((server_tag *)ev.tag)->done(ev.tag, ev.success);
        if (n == EVENTS_PER_ROUND) break;
        ev = grpc_completion_queue_next(t->cq, gpr_inf_past(GPR_CLOCK_REALTIME), NULL);
    }
    run_held(t);
    return ev.type != GRPC_QUEUE_SHUTDOWN;
}

static void *thread_main(void *arg) {
    server_thread *t = arg;
    for (int i = 0; i < NRPCS; i++)
        for (int k = 0; k < WAITING_PER_METHOD && t->srv->methods[i]; k++) request_call(t, i);
    request_call(t, -1);
    while (serve_round(t)) {
    }
    return NULL;
}

/* Drain a shut-down queue that no thread polls, then destroy it. */
static void drain_and_destroy(grpc_completion_queue *cq) {
    grpc_completion_queue_shutdown(cq);
    for (;;) {
        grpc_event ev = grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN) break;
        if (ev.type == GRPC_OP_COMPLETE) ((server_tag *)ev.tag)->done(ev.tag, 0);
    }
    grpc_completion_queue_destroy(cq);
}

/* Free what create made. Threads that were started must have been joined;
 * the queues of the others are drained here. */
static void server_free(docq_server *srv) {
    if (srv->server) grpc_server_destroy(srv->server);
    docq_auth_free(srv->auth);
    for (int i = 0; i < srv->nthreads; i++) {
        server_thread *t = &srv->threads[i];
        if (i < srv->started_threads)
            grpc_completion_queue_destroy(t->cq);
        else
            drain_and_destroy(t->cq);
        docq_redis_free(t->env.redis);
        docq_pipeline_free(t->env.pipeline);
    }
    free(srv->threads);
    srv->threads = NULL;
    server_parts_free(srv->parts); /* First: its HTTP thread reads the watch hub. */
    subscriber_stop(srv->sub);      /* Before the hub it feeds. */
    watch_hub_free(srv->watch);
    caller_counts_free(srv->streams); /* After every stream that counts in it. */
    srv->nthreads = 0;
    grpc_completion_queue_shutdown(srv->shutdown_cq);
    while (grpc_completion_queue_next(srv->shutdown_cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
           GRPC_QUEUE_SHUTDOWN) {
    }
    grpc_completion_queue_destroy(srv->shutdown_cq);
    free(srv);
}

/* Keepalive for long idle streams (watches of minutes-long AI calls): ping
 * every DOCQ_KEEPALIVE_MS even without data, drop a peer that does not answer
 * within 20 s, accept clients' pings as often as every 10 s (or their
 * DOCQ_KEEPALIVE_MS, if lower) instead of answering them GOAWAY
 * too_many_pings, age connections out after DOCQ_MAX_CONNECTION_AGE_MS
 * (0: never) with DOCQ_SHUTDOWN_GRACE_MS for the calls still open, and close
 * those with no call open for DOCQ_MAX_CONNECTION_IDLE_MS (0: never; a watch
 * is an open call, so watchers are never idle). */
#define MIN_CLIENT_PING_MS 10000
#define KEEPALIVE_ARGS(cfg)                                                                         \
    {GRPC_ARG_INTEGER, GRPC_ARG_KEEPALIVE_TIME_MS, {.integer = (int)(cfg)->keepalive_ms}},          \
    {GRPC_ARG_INTEGER, GRPC_ARG_KEEPALIVE_TIMEOUT_MS, {.integer = 20000}},                          \
    {GRPC_ARG_INTEGER, GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, {.integer = 1}},                    \
    {GRPC_ARG_INTEGER, GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, {.integer = 0}},                      \
    {GRPC_ARG_INTEGER, GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS,                       \
     {.integer = (cfg)->keepalive_ms < MIN_CLIENT_PING_MS ? (int)(cfg)->keepalive_ms : MIN_CLIENT_PING_MS}}, \
    {GRPC_ARG_INTEGER, GRPC_ARG_MAX_CONNECTION_AGE_MS,                                              \
     {.integer = (cfg)->max_connection_age_ms ? (int)(cfg)->max_connection_age_ms : INT_MAX}},      \
    {GRPC_ARG_INTEGER, GRPC_ARG_MAX_CONNECTION_IDLE_MS,                                             \
     {.integer = (cfg)->max_connection_idle_ms ? (int)(cfg)->max_connection_idle_ms : INT_MAX}},    \
    {GRPC_ARG_INTEGER, GRPC_ARG_MAX_CONNECTION_AGE_GRACE_MS,                                        \
     {.integer = (cfg)->shutdown_grace_ms < INT_MAX ? (int)(cfg)->shutdown_grace_ms : INT_MAX}}

/* gRPC enforces the per-call and per-connection bounds itself, from these
 * channel arguments: a request message larger than DOCQ_MAX_MESSAGE_BYTES
 * fails with RESOURCE_EXHAUSTED before docq sees it, request metadata beyond
 * DOCQ_MAX_METADATA_BYTES is refused, and a connection may have at most
 * DOCQ_MAX_CONCURRENT_STREAMS calls open (HTTP/2
 * SETTINGS_MAX_CONCURRENT_STREAMS: clients queue the rest). What outlives a
 * call's arrival is counted per caller (caller_counts.h). */
#define INPUT_LIMIT_ARGS(cfg)                                                                       \
    {GRPC_ARG_INTEGER, GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, {.integer = (int)(cfg)->max_message_bytes}}, \
    {GRPC_ARG_INTEGER, GRPC_ARG_MAX_METADATA_SIZE, {.integer = (int)(cfg)->max_metadata_bytes}},     \
    {GRPC_ARG_INTEGER, GRPC_ARG_MAX_CONCURRENT_STREAMS, {.integer = (int)(cfg)->max_concurrent_streams}}

docq_server *docq_server_create(const docq_config *cfg, docq_error *err) {
    docq_server *srv = calloc(1, sizeof(*srv));
    if (!srv) return docq_error_set(err, DOCQ_ERR, "out of memory"), NULL;
    srv->cfg = cfg;
    srv->nthreads = (int)cfg->threads;
    srv->threads = calloc((size_t)srv->nthreads, sizeof(server_thread));
    if (!srv->threads) {
        free(srv);
        return docq_error_set(err, DOCQ_ERR, "out of memory"), NULL;
    }
    const char *paths[NRPCS];
    int unary[NRPCS];
    for (int i = 0; i < NRPCS; i++) paths[i] = rpcs[i].path, unary[i] = rpcs[i].handler || rpcs[i].prepare;
    srv->auth = docq_auth_create(cfg->api_keys_file, err);
    srv->streams = srv->auth ? caller_counts_create() : NULL;
    if (srv->auth && !srv->streams) docq_error_set(err, DOCQ_ERR, "out of memory");
    srv->watch = srv->streams ? watch_hub_create(cfg, srv->streams, err) : NULL;
    srv->parts = srv->watch ? server_parts_create(cfg, paths, unary, NRPCS, err) : NULL;
    if (srv->parts) srv->parts->streams = srv->streams;
    if (!srv->parts) {
        watch_hub_free(srv->watch);
        caller_counts_free(srv->streams);
        docq_auth_free(srv->auth);
        free(srv->threads);
        free(srv);
        return NULL;
    }
    /* A second server on the same port must fail, not share it silently. */
    grpc_arg args[] = {{GRPC_ARG_INTEGER, GRPC_ARG_ALLOW_REUSEPORT, {.integer = 0}},
                       KEEPALIVE_ARGS(cfg), INPUT_LIMIT_ARGS(cfg)};
    grpc_channel_args chargs = {sizeof(args) / sizeof(args[0]), args};
    srv->server = grpc_server_create(&chargs, NULL);
    srv->shutdown_cq = grpc_completion_queue_create_for_next(NULL);
    grpc_server_register_completion_queue(srv->server, srv->shutdown_cq, NULL);
    for (int i = 0; i < srv->nthreads; i++) {
        server_thread *t = &srv->threads[i];
        t->srv = srv;
        t->index = i;
        t->cq = grpc_completion_queue_create_for_next(NULL);
        t->env = (rpc_env){cfg, srv->auth, docq_redis_create(&cfg->redis, cfg->redis_timeout_ms),
                           docq_pipeline_create(), srv->parts->metrics, srv->parts->health,
                           srv->parts->reflection, srv->streams, srv->watch};
        grpc_server_register_completion_queue(srv->server, t->cq, NULL);
    }
    for (int i = 0; i < srv->nthreads; i++) {
        if (!srv->threads[i].env.redis || !srv->threads[i].env.pipeline) {
            docq_error_set(err, DOCQ_ERR, "out of memory");
            server_free(srv);
            return NULL;
        }
    }
    /* Without DOCQ_REFLECTION its methods stay unregistered: UNIMPLEMENTED. */
    for (int i = 0; i < NRPCS; i++)
        if (cfg->reflection || !(rpcs[i].flags & RPC_REFLECTION))
            srv->methods[i] = grpc_server_register_method(
                srv->server, rpcs[i].path, NULL,
                rpcs[i].input ? GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER : GRPC_SRM_PAYLOAD_NONE, 0);
    if (tls_add_ports(srv->server, cfg, &srv->port, &srv->plain_port, err) != DOCQ_OK) {
        server_free(srv);
        return NULL;
    }
    return srv;
}

int docq_server_port(const docq_server *srv) { return srv->port; }

int docq_server_plaintext_port(const docq_server *srv) { return srv->plain_port; }

docq_auth *docq_server_auth(const docq_server *srv) { return srv->auth; }

watch_hub *docq_server_watch_hub(const docq_server *srv) { return srv->watch; }

server_parts *docq_server_parts(const docq_server *srv) { return srv->parts; }

int docq_server_metrics_port(const docq_server *srv) { return server_parts_http_port(srv->parts); }


/* The subscriber's hooks (subscriber.h): the watch hub's functions. */
static int hub_watching(void *h, const char *id, size_t len) { return watch_hub_watching(h, id, len); }
static void hub_update(void *h, docq_task *t) { watch_hub_update(h, t); }
static void hub_gone(void *h, const char *task_id) { watch_hub_gone(h, task_id); }
static subscriber_task_id *hub_ids(void *h, size_t *n) { return watch_hub_ids(h, n); }
static int hub_pending_shards(void *h, unsigned char *need, int n) { return watch_hub_pending_shards(h, need, n); }
static void hub_positions(void *h, const int64_t *read, int n) { watch_hub_positions(h, read, n); }
static int hub_trim_due(void *h, size_t min_closed, size_t *peak, size_t *open) {
    return watch_hub_trim_due(h, min_closed, peak, open);
}
static int64_t hub_next_deadline(void *h) { return watch_hub_next_deadline(h); }
static subscriber_task_id *hub_expired(void *h, int64_t now_ms, size_t *n) { return watch_hub_expired(h, now_ms, n); }

int docq_server_start(docq_server *srv, docq_error *err) {
    grpc_server_start(srv->server);
    /* Before the threads take calls: the first PING decides the status the
     * first Check sees. */
    if (server_parts_start(srv->parts, srv->watch, err) != DOCQ_OK) return DOCQ_ERR;
    for (int i = 0; i < srv->nthreads; i++) {
        if (pthread_create(&srv->threads[i].tid, NULL, thread_main, &srv->threads[i]) != 0)
            return docq_error_set(err, DOCQ_ERR, "cannot start server thread %d", i);
        srv->started_threads++;
    }
    subscriber_hooks hooks = {srv->watch,     hub_watching,  hub_update,  hub_gone,
                              hub_ids,        hub_pending_shards, hub_positions, hub_trim_due,
                              hub_next_deadline, hub_expired};
    srv->sub = subscriber_start(srv->cfg, &hooks, err);
    return srv->sub ? DOCQ_OK : DOCQ_ERR;
}

void docq_server_stop_serving(docq_server *srv, long delay_ms) {
    server_parts_stop_serving(srv->parts);
    if (delay_ms > 0) {
        docq_log_info("shutdown: NOT_SERVING, still serving for %ld ms before the drain", delay_ms);
        struct timespec ts = {delay_ms / 1000, (delay_ms % 1000) * 1000000L};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
        }
    }
}

void docq_server_shutdown_and_free(docq_server *srv, long grace_ms) {
    server_parts_stop_serving(srv->parts);
    grpc_server_shutdown_and_notify(srv->server, srv->shutdown_cq, srv);
    /* Open streams would hold up the shutdown: end them now that no new call
     * can come in (clients reopening their watches get UNAVAILABLE from the
     * closed listener, not a call cancelled mid-shutdown). */
    watch_hub_shutdown(srv->watch);
    subscriber_stop(srv->sub);
    srv->sub = NULL;
    server_parts_end_streams(srv->parts);
    gpr_timespec grace = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(grace_ms, GPR_TIMESPAN));
    if (grpc_completion_queue_next(srv->shutdown_cq, grace, NULL).type == GRPC_QUEUE_TIMEOUT) {
        docq_log_warn("calls still open after %ld ms: cancelling them", grace_ms);
        grpc_server_cancel_all_calls(srv->server);
        grpc_completion_queue_next(srv->shutdown_cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    }
    docq_log_debug("shutdown: every call has ended");
    grpc_server_destroy(srv->server);
    srv->server = NULL;
    for (int i = 0; i < srv->nthreads; i++) grpc_completion_queue_shutdown(srv->threads[i].cq);
    for (int i = 0; i < srv->started_threads; i++) pthread_join(srv->threads[i].tid, NULL);
    server_free(srv);
}
