/* rpc.h -- the handlers of docq.v1.DocQueue, one per file (rpc_*.c). */
#ifndef DOCQ_RPC_H
#define DOCQ_RPC_H

#include "caller_counts.h"
#include "caller.h"
#include "codec.h"
#include "ratelimit.h"
#include "server.h"

/* Check a client-supplied task id and return its shard. Returns DOCQ_OK, or
 * fills out (INVALID_ARGUMENT for a malformed id, NOT_FOUND for a shard this
 * deployment does not have) and returns DOCQ_ERR (rpc_status.c). */
int rpc_task_id_check(server_thread *t, const char *task_id, int *shard, rpc_reply *out);

/* Identify the caller (caller.h). Returns DOCQ_OK, or fills out with
 * UNAUTHENTICATED and returns DOCQ_ERR (rpc_limit.c). */
int rpc_caller(server_thread *t, const rpc_call *call, docq_caller *caller, rpc_reply *out);

/* Count a health Watch or reflection stream against its caller's open
 * streams (DOCQ_MAX_WATCHES_PER_CALLER, caller_counts.h). The caller is the one
 * its key or certificate names, else its address (no key is needed: a
 * probe sends none). Returns DOCQ_OK with *hold taken (give it back with
 * stream_hold_release when the stream is released), or DOCQ_ERR with out
 * set to RESOURCE_EXHAUSTED (rpc_limit.c). */
int rpc_stream_hold(server_thread *t, const rpc_call *call, stream_hold *hold, rpc_reply *out);

/* Add ratelimit-limit, ratelimit-remaining and ratelimit-reset (seconds) to
 * the answer, when a limit applied (rpc_limit.c). */
void rpc_reply_rate_headers(rpc_reply *out, const docq_rate_result *rate);

/* Fill out with a rate-limit refusal: RESOURCE_EXHAUSTED "rate limit
 * exceeded, retry in N ms", the ratelimit-* metadata, grpc-retry-pushback-ms
 * and grpc-status-details-bin (google.rpc.Status with RetryInfo and
 * QuotaFailure{subject: caller id, description: the limit of policy on what})
 * (rpc_limit.c). */
void rpc_reply_rate_limited(rpc_reply *out, const docq_caller *caller, const char *what,
                            const docq_rate_policy *policy, const docq_rate_result *rate);

/* Who reads, for GetStatus and WatchStatus: caller, its shard and the read
 * limit (DOCQ_READ_RATE_LIMIT) (rpc_limit.c). caller is borrowed. */
docq_reader rpc_reader(server_thread *t, const docq_caller *caller);

/* Fill out with the refusal of a read by the read limit, and count it
 * (rpc_limit.c). */
void rpc_reply_read_limited(server_thread *t, const docq_caller *caller, const docq_rate_result *rate,
                            rpc_reply *out);

/* The gate of WatchStatus: identify the caller (into *caller) and count the
 * call against its read limit. Returns DOCQ_OK to go on (the ratelimit-*
 * metadata already added), or DOCQ_ERR with out filled: UNAUTHENTICATED,
 * RESOURCE_EXHAUSTED, or UNAVAILABLE when Redis is down (rpc_limit.c).
 * GetStatus counts its reads in its pipelined read instead (rpc_status.c),
 * after checking the id: a malformed id costs a GetStatus nothing. */
int rpc_read_allowed(server_thread *t, const rpc_call *call, docq_caller *caller, rpc_reply *out);

/* Ownership: 1 when caller may see task, else 0. An authenticated caller
 * (API key, client certificate) sees only the tasks it submitted; without
 * authentication tasks belong to no one and every caller sees every task.
 * A task the caller may not see must be answered exactly as an unknown id
 * (rpc_reply_not_found), so that ids cannot be probed (rpc_status.c). */
int rpc_task_visible(const docq_caller *caller, const docq_task *task);

/* Fill out with NOT_FOUND for task_id: the one answer for ids never issued,
 * expired and other callers' (rpc_status.c). */
void rpc_reply_not_found(rpc_reply *out, const char *task_id);

/* SubmitDoc, pipelined (rpc_prepare, rpc_finish): validate doc_id, then
 * check the caller's limit, store and queue a PENDING task (rpc_submit.c). */
int rpc_submit_prepare(server_thread *t, const rpc_call *call, const ProtobufCMessage *req,
                       rpc_pending *pending, rpc_reply *out);
void rpc_submit_finish(server_thread *t, const rpc_call *call, const ProtobufCMessage *req,
                       const rpc_pending *pending, rpc_reply *out);

/* GetStatus, pipelined: validate the id, then count the read and read the
 * stored task; NOT_FOUND for unknown ids (rpc_status.c). */
int rpc_status_prepare(server_thread *t, const rpc_call *call, const ProtobufCMessage *req,
                       rpc_pending *pending, rpc_reply *out);
void rpc_status_finish(server_thread *t, const rpc_call *call, const ProtobufCMessage *req,
                       const rpc_pending *pending, rpc_reply *out);

/* WatchStatus: validate the id and open a watch (rpc_watch.c, watch.h). A
 * server-streaming handler: see rpc_stream_handler. */
int rpc_watch_status(server_thread *t, const rpc_call *call, const ProtobufCMessage *req, rpc_reply *out);

/* grpc.health.v1.Health/Check and /Watch: no key, no limit (rpc_health.c). */
void rpc_health_check(server_thread *t, const rpc_call *call, const ProtobufCMessage *req, rpc_reply *out);
int rpc_health_watch(server_thread *t, const rpc_call *call, const ProtobufCMessage *req, rpc_reply *out);

/* grpc.reflection.v1(alpha).ServerReflection/ServerReflectionInfo: a
 * bidirectional stream, req is NULL (rpc_reflection.c). */
int rpc_reflection_info(server_thread *t, const rpc_call *call, const ProtobufCMessage *req, rpc_reply *out);

#endif
