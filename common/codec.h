/* codec.h -- docq.v1 protobuf messages: task conversion and gRPC framing.
 *
 * The generated protobuf-c types (docq/v1/docq.pb-c.h) are the wire form; the
 * docq_task struct (task.h) is the form the rest of the code works with. */
#ifndef DOCQ_CODEC_H
#define DOCQ_CODEC_H

#include <grpc/byte_buffer.h>

#include "docq/v1/docq.pb-c.h"
#include "error.h"
#include "task.h"

/* A Task message with room for its timestamps and a note, so that it needs
 * no allocation. */
typedef struct docq_task_msg {
    Docq__V1__Task msg;
    Google__Protobuf__Timestamp created, started, finished;
    char note[128]; /* The error shown instead of a result that cannot be sent. */
} docq_task_msg;

/* Fill out from t. The message points into t's strings (and out->note): it
 * is valid while t and out are alive and unchanged. protobuf-c sends strings
 * up to their first NUL, so a stored result holding a NUL byte (t->result_len
 * says where it ends) is never sent cut short: the message carries an empty
 * result and an error naming the offset of the NUL instead. */
void docq_codec_task_msg(const docq_task *t, docq_task_msg *out);

/* Copy a received Task message into out (cleared first; free with
 * docq_task_clear). Returns DOCQ_OK, DOCQ_EINVAL for a doc_id that is too
 * long, DOCQ_ERR when out of memory. */
int docq_codec_task_from_msg(const Docq__V1__Task *m, docq_task *out, docq_error *err);

/* Serialize a message into a new byte buffer that the caller owns (destroy
 * with grpc_byte_buffer_destroy). Returns NULL when out of memory. */
grpc_byte_buffer *docq_codec_pack(const ProtobufCMessage *m);

/* Parse a received byte buffer (decompressed as needed) as message type d.
 * Returns the message (free with protobuf_c_message_free_unpacked(m, NULL))
 * or NULL when bb is NULL or its bytes are not a valid message. A string
 * field holding a NUL byte counts as invalid (protobuf-c's C strings would
 * silently cut it short). bb stays the caller's. */
ProtobufCMessage *docq_codec_unpack(const ProtobufCMessageDescriptor *d, grpc_byte_buffer *bb);

/* Unix milliseconds to a Timestamp. */
void docq_codec_timestamp(int64_t ms, Google__Protobuf__Timestamp *ts);

/* The canonical name of a gRPC status code, e.g. "NOT_FOUND". */
const char *docq_grpc_status_name(int code);

#endif
