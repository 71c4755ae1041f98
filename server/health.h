/* health.h -- the status behind grpc.health.v1.Health, and its Watch streams.
 *
 * docq-server is SERVING while Redis answers: a thread of its own PINGs
 * Redis every DOCQ_HEALTH_INTERVAL_MS on its own connection (the first PING
 * before the server starts listening) and flips the status when the answer
 * changes. Both service names a client may ask for, "" (the whole server)
 * and "docq.v1.DocQueue", share that status; any other name is unknown.
 *
 * From the moment shutdown begins (docq_health_stop_serving) the status is
 * NOT_SERVING for good, so that Kubernetes stops routing new calls here
 * before the drain; Watch streams then get NOT_SERVING pushed, and end with
 * UNAVAILABLE once the server stops taking calls (docq_health_end_watches).
 *
 * Threads: the status and every watch are guarded by one mutex (the watch
 * group's), taken by the pinger thread, the server threads that open
 * watches and see their completions, and the main thread at shutdown. */
#ifndef DOCQ_HEALTH_H
#define DOCQ_HEALTH_H

#include <grpc/grpc.h>

#include "caller_counts.h"
#include "config.h"
#include "error.h"
#include "reply.h"
#include "server_metrics.h"

typedef struct docq_health docq_health;

/* Create the health status for cfg (borrowed: it must outlive it), NOT_SERVING
 * until the first PING. Nothing runs yet. Returns NULL with err set when out
 * of memory. */
docq_health *docq_health_create(const docq_config *cfg, docq_error *err);

/* PING Redis once now (and record or check the deployment's shape, shape.h,
 * whenever Redis comes up), then start the pinger thread. Returns DOCQ_OK,
 * DOCQ_ECONFLICT with err naming the setting that differs from the recorded
 * shape, or DOCQ_ERR with err set (no thread in both cases). A conflict found
 * later by the pinger raises SIGTERM (see docq_health_refused). */
int docq_health_start(docq_health *h, docq_error *err);

/* 1 when this server's settings conflict with the deployment's recorded
 * shape (why, if not NULL, says how), else 0 (any thread). Such a server is
 * NOT_SERVING and its main exits 2. */
int docq_health_refused(docq_health *h, docq_error *why);

/* 1 while SERVING, else 0 (any thread). */
int docq_health_serving(docq_health *h);

/* The status of service ("" or "docq.v1.DocQueue") into *serving (1 or 0).
 * Returns DOCQ_OK, or DOCQ_ENOTFOUND for any other service name. */
int docq_health_check(docq_health *h, const char *service, int *serving);

/* Open a Watch of service on call: the status now, then each change (a
 * service this server does not know gets SERVICE_UNKNOWN once, as the
 * protocol asks, and the stream stays open). m counts how the stream ends
 * (may be NULL). Returns DOCQ_OK when the watch has taken the call and hold
 * over (hold is given back when the watch is released), or DOCQ_ERR with
 * out set (UNAVAILABLE while shutting down, INTERNAL, RESOURCE_EXHAUSTED)
 * and the call and hold left to the caller. */
int docq_health_watch(docq_health *h, grpc_call *call, const char *service, const stream_hold *hold,
                      rpc_metrics *m, rpc_reply *out);

/* Shutdown begins: NOT_SERVING from now on, whatever Redis says, pushed to
 * every watch. */
void docq_health_stop_serving(docq_health *h);

/* End every Watch with UNAVAILABLE (after its NOT_SERVING is sent) and
 * refuse new ones. The server threads must still run, to carry the
 * completions. */
void docq_health_end_watches(docq_health *h);

/* Stop the pinger thread and free h. Every watch must have ended (the
 * server's queues drained). NULL is fine. */
void docq_health_free(docq_health *h);

/* A HealthCheckResponse with status (a ServingStatus value), packed; NULL
 * when out of memory. */
grpc_byte_buffer *docq_health_pack(int status);

#endif
