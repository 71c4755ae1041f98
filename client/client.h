/* client.h -- a synchronous gRPC client for docq.v1.DocQueue on gRPC core.
 *
 * A docq_client owns one channel to one server. Calls made through it block
 * until they end; each has its own completion queue and the channel is
 * thread-safe, so several threads may make calls on one client at once.
 *
 * The client knows gRPC (channels, calls, batches, statuses) and protobuf-c
 * messages, not docq's rules: the caller picks the method, builds the request
 * and reads the response. grpc_init must have been called before
 * docq_client_create, and grpc_shutdown may only be called after
 * docq_client_free. */
#ifndef DOCQ_CLIENT_H
#define DOCQ_CLIENT_H

#include <grpc/grpc.h>
#include <grpc/status.h>
#include <protobuf-c/protobuf-c.h>

#include "credentials.h"
#include "error.h"

/* Method paths of docq.v1.DocQueue, for docq_client_call. */
#define DOCQ_METHOD_SUBMIT_DOC "/docq.v1.DocQueue/SubmitDoc"
#define DOCQ_METHOD_GET_STATUS "/docq.v1.DocQueue/GetStatus"
#define DOCQ_METHOD_WATCH_STATUS "/docq.v1.DocQueue/WatchStatus"
#define DOCQ_METHOD_CANCEL_TASK "/docq.v1.DocQueue/CancelTask"
#define DOCQ_METHOD_LIST_TASKS "/docq.v1.DocQueue/ListTasks"
#define DOCQ_METHOD_DELETE_TASK "/docq.v1.DocQueue/DeleteTask"

typedef struct docq_client docq_client;

/* How a call ended, as the server (or the client's own gRPC stack, for
 * UNAVAILABLE and DEADLINE_EXCEEDED) reported it. */
typedef struct docq_rpc_status {
    grpc_status_code code; /* GRPC_STATUS_OK when the call succeeded. */
    char details[512];     /* The status message, copied and truncated to fit; always
                            * NUL-terminated, "" when there was none. It is the
                            * server's text: it may hold any bytes but NUL. */
    long retry_ms;         /* How long the server asks the client to wait before
                            * retrying: the RetryInfo of grpc-status-details-bin,
                            * else grpc-retry-pushback-ms; -1 when it said nothing. */
} docq_rpc_status;

/* Open a client for target ("host:port", or any gRPC target URI) over a
 * plaintext channel, or a TLS one as tls says (NULL: plaintext; its files
 * are read now and a wrong one fails here), which sends HTTP/2 keepalive pings every keepalive_ms
 * while a call is open (so that a long watch survives idle proxies; 0 or
 * less: gRPC's default, none). No connection is made yet: the first call connects, so a
 * server that is down shows up as UNAVAILABLE from docq_client_call, not
 * here.
 *
 * connect_timeout_ms bounds each connection attempt (TCP connect and HTTP/2
 * handshake; 0 or less keeps gRPC's 20 s). An attempt outlives the calls
 * that started it: against a server that accepts connections but never
 * answers (a hung process), grpc_shutdown waits for the attempt to time out.
 * A short-lived program should therefore pass its longest call deadline.
 *
 * Returns the client (free with docq_client_free) or NULL with err filled. */
docq_client *docq_client_create(const char *target, const docq_client_tls *tls, long connect_timeout_ms,
                                long keepalive_ms, docq_error *err);

/* Send key with every call made through c from now on, as "authorization:
 * Bearer <key>" metadata (key is copied; NULL or "" sends none). Not to be
 * called while calls are in flight. Returns DOCQ_OK, or DOCQ_ERR when out of
 * memory. */
int docq_client_set_api_key(docq_client *c, const char *key);

/* The retry delay, in ms, that the trailing metadata of a refused call asks
 * for: the RetryInfo in grpc-status-details-bin, else grpc-retry-pushback-ms;
 * -1 when neither is there. Never more than DOCQ_RETRY_DELAY_MAX_MS (1 h). */
long docq_client_retry_delay(const grpc_metadata_array *trailers);

/* Close the channel and free c. Every call made through c must have
 * returned. NULL is accepted. */
void docq_client_free(docq_client *c);

/* Make one unary call: send req to method (a path such as
 * DOCQ_METHOD_SUBMIT_DOC) and wait for the response, parsed as resp_desc.
 * deadline_ms bounds the whole call, connecting included; 0 or less means no
 * deadline.
 *
 * Returns DOCQ_OK with st->code GRPC_STATUS_OK and *resp set to the response,
 * which the caller owns and frees with protobuf_c_message_free_unpacked(*resp,
 * NULL). Otherwise *resp is NULL, st holds the status and its details, and the
 * return value tells the caller's likely next step: DOCQ_ENOTFOUND for
 * NOT_FOUND, DOCQ_EINVAL for INVALID_ARGUMENT, DOCQ_EUNAVAIL for UNAVAILABLE
 * (the server could not be reached or asked to be retried), DOCQ_ELIMITED for
 * RESOURCE_EXHAUSTED (a rate limit: st->retry_ms says when to come back) and
 * DOCQ_ERR for every other status. A response that does not parse as resp_desc is INTERNAL
 * "malformed response"; a client-side failure (out of memory, a call gRPC
 * would not start) is INTERNAL with a reason. req stays the caller's. */
int docq_client_call(docq_client *c, const char *method, const ProtobufCMessage *req,
                     const ProtobufCMessageDescriptor *resp_desc, long deadline_ms,
                     ProtobufCMessage **resp, docq_rpc_status *st);

/* One server-streaming call in progress. */
typedef struct docq_stream docq_stream;

/* Start a server-streaming call: send req to method and half-close.
 * deadline_ms bounds the whole stream (0 or less: no deadline). Returns
 * DOCQ_OK with *out set (end it with docq_stream_close), or DOCQ_ERR with
 * *out NULL and st filled (a client-side failure: INTERNAL with a reason).
 * Failures of the call itself show up in docq_stream_next. req stays the
 * caller's. */
int docq_stream_open(docq_client *c, const char *method, const ProtobufCMessage *req,
                     long deadline_ms, docq_stream **out, docq_rpc_status *st);

/* Wait up to wait_ms (less than 0: as long as it takes) for the stream's
 * next message, parsed as resp_desc. Three outcomes:
 *   - a message: DOCQ_OK, *msg set (the caller frees it with
 *     protobuf_c_message_free_unpacked(*msg, NULL)), *ended 0;
 *   - wait_ms passed first: DOCQ_OK, *msg NULL, *ended 0 (call again: the
 *     read stays pending);
 *   - the stream ended: *msg NULL, *ended 1, st holds the status, and the
 *     return value is as docq_client_call's (DOCQ_OK for OK, DOCQ_EUNAVAIL
 *     for UNAVAILABLE...). A message that does not parse ends the stream
 *     as INTERNAL "malformed response" (the call is cancelled).
 * After the end, further calls return the same end again. */
int docq_stream_next(docq_stream *s, const ProtobufCMessageDescriptor *resp_desc, long wait_ms,
                     ProtobufCMessage **msg, int *ended, docq_rpc_status *st);

/* End the stream (cancelling the call if it is still open) and free s. NULL
 * is fine. */
void docq_stream_close(docq_stream *s);

#endif
