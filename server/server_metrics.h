/* server_metrics.h -- what docq-server counts, and its /metrics page.
 *
 * One server_metrics per server, created before any thread and freed after
 * the last one: its counters are atomics (metrics.h) that every thread
 * updates without a lock, and the HTTP endpoint's thread reads while they
 * move. Method labels are the registered paths without their leading '/'
 * ("docq.v1.DocQueue/SubmitDoc"); calls to unknown methods share the label
 * "unknown", so that no client-chosen text becomes a label. */
#ifndef DOCQ_SERVER_METRICS_H
#define DOCQ_SERVER_METRICS_H

#include <stdint.h>

#include <grpc/status.h>

#include "metrics.h"

#define RPC_NCODES 17 /* gRPC status codes 0 (OK) to 16 (UNAUTHENTICATED). */

/* The metrics of one method. */
typedef struct rpc_metrics {
    const char *method;              /* Label value (static storage). */
    int unary;                       /* 1: its latency is recorded (streams last minutes). */
    docq_counter codes[RPC_NCODES];  /* Calls ended, by status code (streams when they end). */
    docq_histogram latency;          /* Unary calls: arrival to answer. */
    docq_gauge streams_open;         /* Streaming calls taken over and not yet ended. */
} rpc_metrics;

/* Kinds of rate-limit refusal: the label values of docq_rate_limited_total. */
typedef enum rate_kind { RATE_KIND_SUBMIT, RATE_KIND_READ, RATE_NKINDS } rate_kind;

typedef struct server_metrics {
    rpc_metrics *rpcs;                      /* nrpcs methods, then "unknown". */
    int nrpcs;
    docq_counter rate_limited[RATE_NKINDS]; /* Calls refused by a rate limit. */
    docq_counter tasks_submitted;           /* SubmitDocs that queued a task. */
    docq_counter submit_unreplicated;       /* Of those, answered UNAVAILABLE: WAIT confirmed too few replicas. */
} server_metrics;

/* What the page shows besides the counters, read when it is written. */
typedef struct server_gauges {
    long watches_open;  /* WatchStatus streams open (watch_hub_open_count). */
    int serving;        /* The gRPC health status: 1 SERVING, 0 NOT_SERVING. */
    long watch_held_bytes; /* Task messages held for watches (watch_hub_held_bytes). */
} server_gauges;

/* Metrics for the n methods paths[i] ("/pkg.Service/Method", static
 * storage), unary[i] saying which are unary. Returns NULL when out of
 * memory. */
server_metrics *server_metrics_create(const char *const *paths, const int *unary, int n);

void server_metrics_free(server_metrics *m);

/* The metrics of method i, or of unknown methods when i < 0. */
rpc_metrics *server_metrics_rpc(server_metrics *m, int i);

/* Count one call of m (NULL is fine) that ended with code. */
void rpc_metrics_count(rpc_metrics *m, grpc_status_code code);

/* Count one call of m that ended with code after ns nanoseconds; the
 * latency is recorded for unary methods only. */
void rpc_metrics_observe(rpc_metrics *m, grpc_status_code code, uint64_t ns);

/* Write the whole page (every family with HELP and TYPE, then the process
 * metrics) into out. */
void server_metrics_write(const server_metrics *m, const server_gauges *g, docq_buf *out);

#endif
