/* server.h -- the gRPC plumbing of docq-server: threads, completion queues
 * and per-call contexts. Business rules live in the rpc_*.c files, which see
 * only a decoded request and the call's context (rpc.h) and fill an
 * rpc_reply (reply.h).
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
 * Every tag on a queue starts with a server_tag (server_tag.h) naming the
 * function that handles its completion, so unary contexts and watches share
 * the queues. */
#ifndef DOCQ_SERVER_H
#define DOCQ_SERVER_H

#include "auth.h"
#include "config.h"
#include "error.h"

typedef struct docq_server docq_server;

struct server_parts;
struct watch_hub;

/* Create a server for cfg (which must outlive it): binds DOCQ_LISTEN (and
 * DOCQ_PLAINTEXT_LISTEN, with TLS: tls.h) and registers the methods, but
 * starts nothing. Returns NULL and fills err when an address cannot be bound
 * or a certificate file is unusable. */
docq_server *docq_server_create(const docq_config *cfg, docq_error *err);

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
