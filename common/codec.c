/* codec.c -- protobuf conversion and byte-buffer framing. See codec.h. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/byte_buffer_reader.h>
#include <grpc/slice.h>

#include "codec.h"

void docq_codec_timestamp(int64_t ms, Google__Protobuf__Timestamp *ts) {
    google__protobuf__timestamp__init(ts);
    ts->seconds = ms / 1000;
    ts->nanos = (int32_t)(ms % 1000) * 1000000;
}

/* Set *field to ts filled from ms, or leave it NULL (unset) when ms is 0. */
static void set_time(int64_t ms, Google__Protobuf__Timestamp *ts, Google__Protobuf__Timestamp **field) {
    if (!ms) return;
    docq_codec_timestamp(ms, ts);
    *field = ts;
}

void docq_codec_task_msg(const docq_task *t, docq_task_msg *out) {
    Docq__V1__Task *m = &out->msg;
    docq__v1__task__init(m);
    m->task_id = (char *)t->task_id;
    m->doc_id = (char *)t->doc_id;
    m->state = (Docq__V1__Task__State)t->state;
    m->result = t->result ? t->result : (char *)protobuf_c_empty_string;
    m->error = t->error ? t->error : (char *)protobuf_c_empty_string;
    size_t whole = t->result ? strlen(t->result) : 0;
    if (whole < t->result_len) {
        snprintf(out->note, sizeof(out->note),
                 "the stored result holds a NUL byte at offset %zu and cannot be sent as Task.result", whole);
        m->result = (char *)protobuf_c_empty_string;
        m->error = out->note;
    }
    m->attempts = t->attempts;
    m->deliveries = t->deliveries;
    m->version = t->version;
    m->queue_position = t->queue_position;
    set_time(t->created_at_ms, &out->created, &m->created_at);
    set_time(t->started_at_ms, &out->started, &m->started_at);
    set_time(t->finished_at_ms, &out->finished, &m->finished_at);
}

/* A Timestamp in Unix ms; 0 (unset) for one outside the range protobuf
 * defines (years 1 to 9999), which a hostile peer could send. */
static int64_t ts_ms(const Google__Protobuf__Timestamp *ts) {
    if (!ts || ts->seconds < -62135596800LL || ts->seconds > 253402300799LL || ts->nanos < 0 ||
        ts->nanos > 999999999)
        return 0;
    return ts->seconds * 1000 + ts->nanos / 1000000;
}

/* Duplicate a non-empty string; empty strings stay NULL. */
static int dup_opt(const char *s, char **out) {
    if (!s || !*s) return DOCQ_OK;
    *out = strdup(s);
    return *out ? DOCQ_OK : DOCQ_ERR;
}

int docq_codec_task_from_msg(const Docq__V1__Task *m, docq_task *out, docq_error *err) {
    docq_task_clear(out);
    if (strlen(m->task_id) >= sizeof(out->task_id) || strlen(m->doc_id) >= sizeof(out->doc_id))
        return docq_error_set(err, DOCQ_EINVAL, "task_id or doc_id too long");
    strcpy(out->task_id, m->task_id);
    strcpy(out->doc_id, m->doc_id);
    out->state = (docq_task_state)m->state;
    out->attempts = m->attempts;
    out->deliveries = m->deliveries;
    out->version = m->version;
    out->queue_position = m->queue_position;
    out->created_at_ms = ts_ms(m->created_at);
    out->started_at_ms = ts_ms(m->started_at);
    out->finished_at_ms = ts_ms(m->finished_at);
    if (dup_opt(m->result, &out->result) != DOCQ_OK || dup_opt(m->error, &out->error) != DOCQ_OK) {
        docq_task_clear(out);
        return docq_error_set(err, DOCQ_ERR, "out of memory");
    }
    out->result_len = out->result ? strlen(out->result) : 0;
    return DOCQ_OK;
}

grpc_byte_buffer *docq_codec_pack(const ProtobufCMessage *m) {
    size_t n = protobuf_c_message_get_packed_size(m);
    grpc_slice s = grpc_slice_malloc(n);
    protobuf_c_message_pack(m, GRPC_SLICE_START_PTR(s));
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
    grpc_slice_unref(s);
    return bb;
}

/* Read a base-128 varint at *p (below end); advances *p. Returns 0 when it
 * is truncated or longer than 10 bytes. */
static int read_varint(const uint8_t **p, const uint8_t *end, uint64_t *out) {
    uint64_t v = 0;
    for (int shift = 0; *p < end && shift < 70; shift += 7) {
        uint8_t b = *(*p)++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *out = v;
            return 1;
        }
    }
    return 0;
}

/* 1 when a top-level string field of d in the encoded bytes holds a NUL
 * byte. protobuf-c hands strings over as C strings, so such a value would be
 * cut short silently; docq refuses it instead. Malformed bytes give 0 and are
 * left to the real parser. */
static int string_has_nul(const ProtobufCMessageDescriptor *d, const uint8_t *p, size_t n) {
    const uint8_t *end = p + n;
    while (p < end) {
        uint64_t tag, len;
        if (!read_varint(&p, end, &tag)) return 0;
        switch (tag & 7) {
        case 0:
            if (!read_varint(&p, end, &len)) return 0;
            break;
        case 1:
        case 5: {
            size_t width = (tag & 7) == 1 ? 8 : 4;
            if ((size_t)(end - p) < width) return 0;
            p += width;
            break;
        }
        case 2: {
            if (!read_varint(&p, end, &len) || len > (uint64_t)(end - p)) return 0;
            const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field(d, (unsigned)(tag >> 3));
            if (f && f->type == PROTOBUF_C_TYPE_STRING && memchr(p, 0, (size_t)len)) return 1;
            p += len;
            break;
        }
        default:
            return 0;
        }
    }
    return 0;
}

ProtobufCMessage *docq_codec_unpack(const ProtobufCMessageDescriptor *d, grpc_byte_buffer *bb) {
    grpc_byte_buffer_reader reader;
    if (!bb || !grpc_byte_buffer_reader_init(&reader, bb)) return NULL;
    grpc_slice s = grpc_byte_buffer_reader_readall(&reader);
    grpc_byte_buffer_reader_destroy(&reader);
    const uint8_t *bytes = GRPC_SLICE_START_PTR(s);
    size_t n = GRPC_SLICE_LENGTH(s);
    ProtobufCMessage *m = string_has_nul(d, bytes, n) ? NULL : protobuf_c_message_unpack(d, NULL, n, bytes);
    grpc_slice_unref(s);
    return m;
}

const char *docq_grpc_status_name(int code) {
    static const char *names[] = {
        "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
        "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
        "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
        "UNAUTHENTICATED"};
    return code >= 0 && code <= 16 ? names[code] : "UNKNOWN";
}
