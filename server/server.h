/* server.h -- the gRPC plumbing of docq-server: threads, completion queues
 * and per-call contexts. Business rules live in the rpc_*.c files, which see
 * only a decoded request and fill an rpc_reply.
 *
 * Threads: DOCQ_THREADS threads, each polling its own completion queue with
 * grpc_completion_queue_next and owning its own Redis connection (hiredis
 * contexts are not thread-safe). A call is requested on, arrives on and is
 * answered on one thread's queue, so a unary call's context is only ever
 * touched by the thread that owns its queue.
 *
 * Pipelining: a thread that takes an event from its queue goes on taking
 * those already there, without blocking (up to a cap), before it blocks
 * again. Unary methods with Redis work (SubmitDoc, GetStatus) are split in
 * two (rpc_prepare, rpc_finish): the prepare of each call that arrived
 * queues its commands in the thread's pipeline and the call is held; before
 * the thread blocks again, or when the cap is reached, the pipeline runs
 * (one round trip for every held call: redis.h says what is sent again when
 * the connection fails) and each held call's finish builds its answer, in
 * arrival order. A burst of N calls thus costs one round trip, not N. Streaming calls (WatchStatus)
 * are taken over by the watch hub (watch.h), whose subscriber thread also
 * starts batches on them, under the hub's mutex; their completions still
 * arrive on the queue of the thread that received the call.
 *
 * Every tag on a queue starts with a server_tag naming the function that
 * handles its completion, so unary contexts and watches share the queues. */
#ifndef DOCQ_SERVER_H
#define DOCQ_SERVER_H

#include <pthread.h>

#include <grpc/grpc.h>
#include <protobuf-c/protobuf-c.h>

#include "auth.h"
#include "caller.h"
#include "config.h"
#include "redis.h"
#include "store.h"

typedef struct docq_server docq_server;

/* The start of every tag put on a server thread's queue: the function that
 * handles its completion (success as the event reports it). */
typedef struct server_tag {
    void (*done)(struct server_tag *tag, int success);
} server_tag;

/* Most calls a thread holds for one pipeline run. */
#define SERVER_HELD_MAX 128

struct call_ctx;

/* One server thread and what it owns. */
typedef struct server_thread {
    docq_server *srv;            /* Back pointer; the server outlives its threads. */
    grpc_completion_queue *cq;   /* This thread's queue (create_for_next). */
    docq_redis *redis;           /* This thread's Redis connection. */
    docq_pipeline *pipeline;     /* The Redis work of the held calls (rpc_prepare). */
    struct call_ctx *held[SERVER_HELD_MAX]; /* Calls waiting for the pipeline to */
    int nheld;                              /* run, in arrival order (server.c). */
    pthread_t tid;
    int index;
} server_thread;

#define RPC_MAX_METADATA 8

/* What a handler answers: a status, when the status is OK a message, and
 * metadata. Initialize with RPC_REPLY_INIT; rpc_reply_clear releases it. */
typedef struct rpc_reply {
    grpc_status_code code;     /* GRPC_STATUS_OK or the error to send. */
    char details[512];         /* Error message for the client (empty on OK). */
    grpc_byte_buffer *message; /* Response on OK; owned by the reply until sent. */
    grpc_metadata initial[RPC_MAX_METADATA];  /* See rpc_reply_add_metadata; the */
    size_t ninitial;                          /* key and value slices are owned */
    grpc_metadata trailing[RPC_MAX_METADATA]; /* by the reply. */
    size_t ntrailing;
} rpc_reply;
#define RPC_REPLY_INIT {.code = GRPC_STATUS_OK}

struct rpc_metrics;

/* What a handler may know of the call besides its message. */
typedef struct rpc_call {
    grpc_call *call;                     /* The call (grpc_call_get_peer...). */
    const grpc_metadata_array *metadata; /* The client's metadata; entries owned by the call. */
    struct rpc_metrics *metrics;         /* The method's metrics: a stream counts its end there. */
} rpc_call;

/* A unary-style handler: reads req (owned by the caller), fills out. */
typedef void (*rpc_handler)(server_thread *t, const rpc_call *call, const ProtobufCMessage *req,
                            rpc_reply *out);

/* What a pipelined handler keeps from its prepare to its finish. */
typedef struct rpc_pending {
    docq_caller caller;              /* Who called. */
    char task_id[DOCQ_TASK_ID_MAX];  /* The task submitted or read. */
    docq_store_ticket ticket;        /* Where its Redis work is in t->pipeline. */
} rpc_pending;

/* The first half of a pipelined unary handler: check req (owned by the
 * caller, kept until the finish), identify the caller, queue the call's
 * Redis work in t->pipeline and keep in pending what the finish needs. It
 * must not read replies: nothing has been sent yet. Returns DOCQ_OK when
 * the work is queued (the finish runs once the pipeline has), or DOCQ_ERR
 * with out holding the answer (the finish never runs). */
typedef int (*rpc_prepare)(server_thread *t, const rpc_call *call, const ProtobufCMessage *req,
                           rpc_pending *pending, rpc_reply *out);

/* The second half: read the outcome of the work queued by the prepare, in
 * t->pipeline which has run, and fill out. */
typedef void (*rpc_finish)(server_thread *t, const rpc_call *call, const ProtobufCMessage *req,
                           const rpc_pending *pending, rpc_reply *out);

/* A streaming handler: reads req (owned by the caller). Returns DOCQ_OK when
 * it has taken the call over (it holds its own reference and ends the call
 * itself), or DOCQ_ERR with out holding the error to answer. */
typedef int (*rpc_stream_handler)(server_thread *t, const rpc_call *call, const ProtobufCMessage *req,
                                  rpc_reply *out);

/* One registered method (docq.v1.DocQueue, grpc.health.v1.Health,
 * grpc.reflection.*). */
typedef struct rpc_def {
    const char *path;                        /* "/docq.v1.DocQueue/SubmitDoc". */
    const ProtobufCMessageDescriptor *input; /* Request message type; NULL for a bidirectional
                                              * stream, which reads its own messages (req NULL). */
    rpc_handler handler;                     /* Unary methods without Redis work. */
    rpc_prepare prepare;                     /* Unary methods with Redis work, in */
    rpc_finish finish;                       /* two halves (handler NULL). */
    rpc_stream_handler stream;               /* Streaming methods (the others NULL). */
    unsigned flags;                          /* RPC_* below. */
} rpc_def;
#define RPC_REFLECTION 1u /* Registered only with DOCQ_REFLECTION on (else UNIMPLEMENTED). */

/* Set reply to an error status with a printf-style message. */
void rpc_reply_error(rpc_reply *out, grpc_status_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Set reply to OK with msg packed as the response. */
void rpc_reply_message(rpc_reply *out, const ProtobufCMessage *msg);

/* Map a failed store call (DOCQ_EUNAVAIL, DOCQ_ERR...) to the reply. */
void rpc_reply_store_error(rpc_reply *out, const docq_error *err);

/* Add answer metadata key (a static string: lowercase, "-bin" for binary
 * values) = value (len bytes, copied). It goes with the response headers when
 * the answer is a message, and in the trailers when it is an error (which is
 * sent Trailers-Only: there are no separate headers). Entries beyond
 * RPC_MAX_METADATA are dropped. */
void rpc_reply_add_metadata(rpc_reply *out, const char *key, const void *value, size_t len);

/* Add trailing metadata (always sent in the trailers), as above. */
void rpc_reply_add_trailer(rpc_reply *out, const char *key, const void *value, size_t len);

/* Release the reply's message and metadata. */
void rpc_reply_clear(rpc_reply *out);

/* Create a server for cfg (which must outlive it): binds DOCQ_LISTEN (and
 * DOCQ_PLAINTEXT_LISTEN, with TLS: tls.h) and registers the methods, but
 * starts nothing. Returns NULL and fills err when an address cannot be bound
 * or a certificate file is unusable. */
docq_server *docq_server_create(const docq_config *cfg, docq_error *err);

/* The configuration the server was created with. */
const docq_config *docq_server_config(const docq_server *srv);

/* The API keys of the server (never NULL; it may hold no key file). */
docq_auth *docq_server_auth(const docq_server *srv);

/* Metrics, health and reflection of the server (server_parts.h). */
struct server_parts *docq_server_parts(const docq_server *srv);

/* The watch hub of the server (watch.h). */
struct watch_hub *docq_server_watch_hub(const docq_server *srv);

/* The port actually bound (useful with port 0). */
int docq_server_port(const docq_server *srv);

/* The port of DOCQ_PLAINTEXT_LISTEN (health probes beside TLS), 0 if none. */
int docq_server_plaintext_port(const docq_server *srv);

/* Start serving: grpc_server_start and the threads. Returns DOCQ_OK or
 * DOCQ_ERR (threads could not be started; the server must still be freed). */
int docq_server_start(docq_server *srv, docq_error *err);

/* Shutdown begins: the health status turns NOT_SERVING (so that load
 * balancers and Kubernetes stop sending calls), then everything goes on
 * being served for delay_ms (DOCQ_SHUTDOWN_DELAY_MS) before the drain. */
void docq_server_stop_serving(docq_server *srv, long delay_ms);

/* The port of the metrics endpoint (DOCQ_METRICS_LISTEN), 0 when off. */
int docq_server_metrics_port(const docq_server *srv);

/* Stop serving (health NOT_SERVING), stop accepting calls, end every open
 * stream with UNAVAILABLE, let calls in flight finish for up to grace_ms,
 * cancel the rest, stop the threads and free everything. srv is gone
 * afterwards. */
void docq_server_shutdown_and_free(docq_server *srv, long grace_ms);

#endif
