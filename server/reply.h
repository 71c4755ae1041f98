/* reply.h -- what a handler answers to a call: a status, a message when the
 * status is OK, and metadata. server.c sends it (send_answer); the handlers
 * (rpc_*.c) and the modules that refuse calls for them fill it. */
#ifndef DOCQ_REPLY_H
#define DOCQ_REPLY_H

#include <stddef.h>

#include <grpc/grpc.h>
#include <protobuf-c/protobuf-c.h>

#include "error.h"

#define RPC_MAX_METADATA 8

/* A status, when the status is OK a message, and metadata. Initialize with
 * RPC_REPLY_INIT; rpc_reply_clear releases it. */
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

#endif
