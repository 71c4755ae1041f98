/* rpc.h -- what the handlers of docq-server's methods see, and the handlers
 * themselves (one rpc_*.c per service or RPC). server.c dispatches calls to
 * them through its table of rpc_defs; they never reach back into server.c:
 * everything a handler uses comes in its call's rpc_call. */
#ifndef DOCQ_RPC_H
#define DOCQ_RPC_H

#include <grpc/grpc.h>
#include <protobuf-c/protobuf-c.h>

#include "auth.h"
#include "caller.h"
#include "caller_counts.h"
#include "codec.h"
#include "config.h"
#include "ratelimit.h"
#include "redis.h"
#include "reply.h"
#include "server_metrics.h"
#include "store.h"

typedef struct docq_health docq_health;               /* health.h */
typedef struct reflection_service reflection_service; /* rpc_reflection.h */
typedef struct watch_hub watch_hub;                   /* watch.h */

/* The pieces of the server a handler may use, the same for every call of one
 * server thread (server.c fills one per thread). All borrowed. */
typedef struct rpc_env {
    const docq_config *cfg;
    docq_auth *auth;                 /* API keys (never NULL; may hold no key file). */
    docq_redis *redis;               /* The thread's Redis connection. */
    docq_pipeline *pipeline;         /* The thread's pipeline (see rpc_prepare). */
    server_metrics *metrics;         /* Counters every thread updates. */
    docq_health *health;             /* grpc.health.v1 status and watches. */
    reflection_service *reflection;  /* NULL with DOCQ_REFLECTION=0. */
    caller_counts *streams;          /* Open long-lived streams of each caller. */
    watch_hub *watch;                /* Open WatchStatus streams. */
} rpc_env;

/* One call, as its handler sees it. */
typedef struct rpc_call {
    const rpc_env *env;                  /* The server thread's pieces. */
    grpc_call *call;                     /* The call (grpc_call_get_peer...). */
    const grpc_metadata_array *metadata; /* The client's metadata; entries owned by the call. */
    rpc_metrics *metrics;                /* The method's metrics: a stream counts its end there. */
} rpc_call;

/* What a prepare or a streaming handler did with its call. */
typedef enum rpc_step {
    RPC_QUEUED,   /* A prepare queued the call's Redis work: its finish answers. */
    RPC_TAKEN,    /* A streaming handler took the call over and ends it itself. */
    RPC_ANSWERED  /* The reply holds the answer (often a refusal): send it. */
} rpc_step;

/* A unary-style handler: reads req (owned by the caller), fills out. */
typedef void (*rpc_handler)(const rpc_call *call, const ProtobufCMessage *req, rpc_reply *out);

/* What a pipelined handler keeps from its prepare to its finish. */
typedef struct rpc_pending {
    docq_caller caller;              /* Who called. */
    char task_id[DOCQ_TASK_ID_MAX];  /* The task submitted or read. */
    docq_store_ticket ticket;        /* Where its Redis work is in the pipeline. */
    docq_rate_result rate;           /* A limit the prepare checked apart (CancelTask; limited 0: none). */
} rpc_pending;

/* The first half of a pipelined unary handler: check req (owned by the
 * caller, kept until the finish), identify the caller, queue the call's
 * Redis work in call->env->pipeline and keep in pending what the finish
 * needs. It must not read replies: nothing has been sent yet. Returns
 * RPC_QUEUED when the work is queued (the finish runs once the pipeline
 * has), or RPC_ANSWERED with out holding the answer (the finish never
 * runs). */
typedef rpc_step (*rpc_prepare)(const rpc_call *call, const ProtobufCMessage *req, rpc_pending *pending,
                                rpc_reply *out);

/* The second half: read the outcome of the work queued by the prepare, in
 * the pipeline which has run, and fill out. */
typedef void (*rpc_finish)(const rpc_call *call, const ProtobufCMessage *req, const rpc_pending *pending,
                           rpc_reply *out);

/* A streaming handler: reads req (owned by the caller). Returns RPC_TAKEN
 * when it has taken the call over (it holds its own reference and ends the
 * call itself), or RPC_ANSWERED with out holding the error to answer. */
typedef rpc_step (*rpc_stream_handler)(const rpc_call *call, const ProtobufCMessage *req, rpc_reply *out);

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

/* -- Limits in gRPC terms (rpc_limit.c) ------------------------------------ */

/* Count a health Watch or reflection stream against its caller's open
 * streams (DOCQ_MAX_WATCHES_PER_CALLER, caller_counts.h). The caller is the
 * one its key or certificate names, else its address (no key is needed: a
 * probe sends none). Returns DOCQ_OK with *hold taken (give it back with
 * stream_hold_release when the stream is released), or DOCQ_ERR with out
 * set to RESOURCE_EXHAUSTED. */
int rpc_stream_hold(const rpc_call *call, stream_hold *hold, rpc_reply *out);

/* Add ratelimit-limit, ratelimit-remaining and ratelimit-reset (seconds) to
 * the answer, when a limit applied. */
void rpc_reply_rate_headers(rpc_reply *out, const docq_rate_result *rate);

/* Fill out with a rate-limit refusal: RESOURCE_EXHAUSTED "rate limit
 * exceeded, retry in N ms", the ratelimit-* metadata, grpc-retry-pushback-ms
 * and grpc-status-details-bin (google.rpc.Status with RetryInfo and
 * QuotaFailure{subject: caller id, description: the limit of policy on
 * what}). */
void rpc_reply_rate_limited(rpc_reply *out, const docq_caller *caller, const char *what,
                            const docq_rate_policy *policy, const docq_rate_result *rate);

/* Who reads, for GetStatus and WatchStatus: caller, its shard and the read
 * limit (DOCQ_READ_RATE_LIMIT). caller is borrowed. */
docq_reader rpc_reader(const rpc_env *env, const docq_caller *caller);

/* Fill out with the refusal of a read by the read limit, and count it. */
void rpc_reply_read_limited(const rpc_env *env, const docq_caller *caller, const docq_rate_result *rate,
                            rpc_reply *out);

/* The gate of WatchStatus: identify the caller (into *caller) and count the
 * call against its read limit. Returns DOCQ_OK to go on (the ratelimit-*
 * metadata already added), or DOCQ_ERR with out filled: UNAUTHENTICATED,
 * RESOURCE_EXHAUSTED, or UNAVAILABLE when Redis is down. GetStatus counts
 * its reads in its pipelined read instead (rpc_status.c), after checking
 * the id: a malformed id costs a GetStatus nothing. */
int rpc_read_allowed(const rpc_call *call, docq_caller *caller, rpc_reply *out);

/* -- The handlers ---------------------------------------------------------- */

/* SubmitDoc, pipelined (rpc_prepare, rpc_finish): validate doc_id, then
 * check the caller's limit, store and queue a PENDING task (rpc_submit.c). */
rpc_step rpc_submit_prepare(const rpc_call *call, const ProtobufCMessage *req, rpc_pending *pending,
                            rpc_reply *out);
void rpc_submit_finish(const rpc_call *call, const ProtobufCMessage *req, const rpc_pending *pending,
                       rpc_reply *out);

/* GetStatus, pipelined: validate the id, then count the read and read the
 * stored task; NOT_FOUND for unknown ids (rpc_status.c). */
rpc_step rpc_status_prepare(const rpc_call *call, const ProtobufCMessage *req, rpc_pending *pending,
                            rpc_reply *out);
void rpc_status_finish(const rpc_call *call, const ProtobufCMessage *req, const rpc_pending *pending,
                       rpc_reply *out);

/* CancelTask, pipelined: validate the id, then count the read and cancel
 * a PENDING or STARTED task; the task as it is then, or NOT_FOUND
 * (rpc_cancel.c). */
rpc_step rpc_cancel_prepare(const rpc_call *call, const ProtobufCMessage *req, rpc_pending *pending,
                            rpc_reply *out);
void rpc_cancel_finish(const rpc_call *call, const ProtobufCMessage *req, const rpc_pending *pending,
                       rpc_reply *out);

/* ListTasks, pipelined: check page_size, page_token and states, then count
 * the read and read a page of the caller's tasks (rpc_list.c). */
rpc_step rpc_list_prepare(const rpc_call *call, const ProtobufCMessage *req, rpc_pending *pending,
                          rpc_reply *out);
void rpc_list_finish(const rpc_call *call, const ProtobufCMessage *req, const rpc_pending *pending,
                     rpc_reply *out);

/* DeleteTask, pipelined: validate the id, then count the call against the
 * read limit and delete the task when it is the caller's and has ended
 * (rpc_delete.c). */
rpc_step rpc_delete_prepare(const rpc_call *call, const ProtobufCMessage *req, rpc_pending *pending,
                            rpc_reply *out);
void rpc_delete_finish(const rpc_call *call, const ProtobufCMessage *req, const rpc_pending *pending,
                       rpc_reply *out);

/* WatchStatus: validate the id and open a watch (rpc_watch.c, watch.h). A
 * server-streaming handler: see rpc_stream_handler. */
rpc_step rpc_watch_status(const rpc_call *call, const ProtobufCMessage *req, rpc_reply *out);

/* grpc.health.v1.Health/Check and /Watch: no key, no limit (rpc_health.c). */
void rpc_health_check(const rpc_call *call, const ProtobufCMessage *req, rpc_reply *out);
rpc_step rpc_health_watch(const rpc_call *call, const ProtobufCMessage *req, rpc_reply *out);

/* grpc.reflection.v1(alpha).ServerReflection/ServerReflectionInfo: a
 * bidirectional stream, req is NULL (rpc_reflection.c). */
rpc_step rpc_reflection_info(const rpc_call *call, const ProtobufCMessage *req, rpc_reply *out);

#endif
