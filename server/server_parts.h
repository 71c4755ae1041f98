/* server_parts.h -- the holder of the parts that make docq-server a
 * first-class gRPC service besides docq.v1.DocQueue: its metrics, the
 * grpc.health.v1 status, server reflection, and the HTTP endpoint (DOCQ_METRICS_LISTEN) serving /metrics,
 * /healthz and /readyz. server.c creates it with the server, starts it with
 * the threads and takes it down in this order at shutdown:
 *
 *   server_parts_stop_serving   health NOT_SERVING (before the drain)
 *   server_parts_end_streams    Health.Watch and reflection streams end
 *                               (with the watches, after the listener closed)
 *   server_parts_free           after the server threads are joined
 *
 * The HTTP endpoint runs on its own thread and reads only atomics and
 * locked state (metrics.h, health.h, watch.h). */
#ifndef DOCQ_SERVER_PARTS_H
#define DOCQ_SERVER_PARTS_H

#include "caller_counts.h"
#include "config.h"
#include "health.h"
#include "http_endpoint.h"
#include "rpc_reflection.h"
#include "server_metrics.h"

struct watch_hub;

typedef struct server_parts {
    const docq_config *cfg;
    server_metrics *metrics;          /* Counters every thread updates. */
    docq_health *health;              /* grpc.health.v1 status and watches. */
    reflection_service *reflection;   /* NULL with DOCQ_REFLECTION=0. */
    docq_http_endpoint *http;         /* NULL until started, and with DOCQ_METRICS_LISTEN=off. */
    struct watch_hub *watch;          /* Borrowed from the server, for the open-watch gauge. */
    caller_counts *streams;           /* Borrowed from the server: open streams of each caller. */
} server_parts;

/* Create the metrics for the n methods paths[] (unary[i]: method i is
 * unary), the health status and (when cfg->reflection) the reflection
 * service. Nothing runs yet. Returns NULL with err set. */
server_parts *server_parts_create(const docq_config *cfg, const char *const *paths, const int *unary, int n,
                                  docq_error *err);

/* Start the health pinger and the HTTP endpoint; watch (borrowed) gives
 * the open-watch gauge. Returns DOCQ_OK or DOCQ_ERR with err set (the
 * metrics address cannot be bound, a thread cannot start). */
int server_parts_start(server_parts *x, struct watch_hub *watch, docq_error *err);

/* The port of the HTTP endpoint, or 0 when it is off. */
int server_parts_http_port(const server_parts *x);

/* Shutdown begins: health NOT_SERVING. */
void server_parts_stop_serving(server_parts *x);

/* End the Health.Watch and reflection streams (UNAVAILABLE). */
void server_parts_end_streams(server_parts *x);

/* Stop the HTTP endpoint and the pinger, free everything. NULL is fine. */
void server_parts_free(server_parts *x);

#endif
