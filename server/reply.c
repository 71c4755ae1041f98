/* reply.c -- filling a call's answer. See reply.h. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "codec.h"
#include "log.h"
#include "reply.h"

void rpc_reply_error(rpc_reply *out, grpc_status_code code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out->details, sizeof(out->details), fmt, ap);
    va_end(ap);
    out->code = code;
}

void rpc_reply_message(rpc_reply *out, const ProtobufCMessage *msg) {
    out->code = GRPC_STATUS_OK;
    out->details[0] = '\0';
    out->message = docq_codec_pack(msg);
}

void rpc_reply_store_error(rpc_reply *out, const docq_error *err) {
    if (err->code == DOCQ_EUNAVAIL)
        rpc_reply_error(out, GRPC_STATUS_UNAVAILABLE, "task store unavailable: %s", err->msg);
    else
        rpc_reply_error(out, GRPC_STATUS_INTERNAL, "task store error: %s", err->msg);
}

/* Append key = value to md (capacity RPC_MAX_METADATA, *n used). */
static void add_metadata(grpc_metadata *md, size_t *n, const char *key, const void *value, size_t len) {
    if (*n == RPC_MAX_METADATA) {
        docq_log_warn("metadata %s dropped: more than %d entries", key, RPC_MAX_METADATA);
        return;
    }
    memset(&md[*n], 0, sizeof(md[*n]));
    md[*n].key = grpc_slice_from_static_string(key);
    md[*n].value = grpc_slice_from_copied_buffer(value, len);
    (*n)++;
}

void rpc_reply_add_metadata(rpc_reply *out, const char *key, const void *value, size_t len) {
    add_metadata(out->initial, &out->ninitial, key, value, len);
}

void rpc_reply_add_trailer(rpc_reply *out, const char *key, const void *value, size_t len) {
    add_metadata(out->trailing, &out->ntrailing, key, value, len);
}

static void unref_metadata(grpc_metadata *md, size_t n) {
    for (size_t i = 0; i < n; i++) {
        grpc_slice_unref(md[i].key);
        grpc_slice_unref(md[i].value);
    }
}

void rpc_reply_clear(rpc_reply *out) {
    unref_metadata(out->initial, out->ninitial);
    unref_metadata(out->trailing, out->ntrailing);
    out->ninitial = out->ntrailing = 0;
    if (out->message) grpc_byte_buffer_destroy(out->message);
    out->message = NULL;
}
