/* test_codec.c -- docq.v1 messages: golden encodings, gRPC byte-buffer
 * framing and task conversion (common/codec.c). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/slice.h>

#include "check.h"
#include "codec.h"

/* Golden encodings made by Google's protobuf (python3-protobuf 4.21.12,
 * Debian), not by protobuf-c, so that a test passes only when both agree:
 *
 *   python3 -m grpc_tools.protoc -Iproto -I/usr/include --python_out=/tmp/gold \
 *       docq/v1/docq.proto
 *   t = docq_pb2.Task(task_id="s3-00112233445566778899aabbccddeeff",
 *                     doc_id="doc_1", state=docq_pb2.Task.SUCCESS,
 *                     result='{"ok":true}', error="", attempts=2)
 *   t.created_at.seconds, t.created_at.nanos = 1700000000, 123000000
 *   t.started_at.seconds, t.started_at.nanos = 1700000001, 0
 *   t.finished_at.seconds, t.finished_at.nanos = 1700000002, 500000000
 *   r = docq_pb2.SubmitDocResponse(task_id="s3-00112233445566778899aabbccddeeff",
 *                                  state=docq_pb2.Task.PENDING)
 *   print(t.SerializeToString(), r.SerializeToString())   # As C arrays.
 *
 * The empty error is not on the wire (proto3 default); started_at, set with
 * zero nanos, is a field holding only its seconds. */
static const uint8_t golden_task[96] = {
    0x0a, 0x23, 0x73, 0x33, 0x2d, 0x30, 0x30, 0x31, 0x31, 0x32, 0x32, 0x33,
    0x33, 0x34, 0x34, 0x35, 0x35, 0x36, 0x36, 0x37, 0x37, 0x38, 0x38, 0x39,
    0x39, 0x61, 0x61, 0x62, 0x62, 0x63, 0x63, 0x64, 0x64, 0x65, 0x65, 0x66,
    0x66, 0x12, 0x05, 0x64, 0x6f, 0x63, 0x5f, 0x31, 0x18, 0x03, 0x22, 0x0b,
    0x7b, 0x22, 0x6f, 0x6b, 0x22, 0x3a, 0x74, 0x72, 0x75, 0x65, 0x7d, 0x30,
    0x02, 0x3a, 0x0b, 0x08, 0x80, 0xe2, 0xcf, 0xaa, 0x06, 0x10, 0xc0, 0xa9,
    0xd3, 0x3a, 0x42, 0x06, 0x08, 0x81, 0xe2, 0xcf, 0xaa, 0x06, 0x4a, 0x0c,
    0x08, 0x82, 0xe2, 0xcf, 0xaa, 0x06, 0x10, 0x80, 0xca, 0xb5, 0xee, 0x01,
};
static const uint8_t golden_submit_response[39] = {
    0x0a, 0x23, 0x73, 0x33, 0x2d, 0x30, 0x30, 0x31, 0x31, 0x32, 0x32, 0x33,
    0x33, 0x34, 0x34, 0x35, 0x35, 0x36, 0x36, 0x37, 0x37, 0x38, 0x38, 0x39,
    0x39, 0x61, 0x61, 0x62, 0x62, 0x63, 0x63, 0x64, 0x64, 0x65, 0x65, 0x66,
    0x66, 0x10, 0x01,
};

/* A PENDING task with a version and a queue position, made the same way:
 *
 *   p = docq_pb2.Task(task_id="s3-00112233445566778899aabbccddeeff",
 *                     doc_id="doc_1", state=docq_pb2.Task.PENDING,
 *                     version=1, queue_position=300)
 *   p.created_at.seconds, p.created_at.nanos = 1700000000, 123000000 */
static const uint8_t golden_pending_task[64] = {
    0x0a, 0x23, 0x73, 0x33, 0x2d, 0x30, 0x30, 0x31, 0x31, 0x32, 0x32, 0x33,
    0x33, 0x34, 0x34, 0x35, 0x35, 0x36, 0x36, 0x37, 0x37, 0x38, 0x38, 0x39,
    0x39, 0x61, 0x61, 0x62, 0x62, 0x63, 0x63, 0x64, 0x64, 0x65, 0x65, 0x66,
    0x66, 0x12, 0x05, 0x64, 0x6f, 0x63, 0x5f, 0x31, 0x18, 0x01, 0x3a, 0x0b,
    0x08, 0x80, 0xe2, 0xcf, 0xaa, 0x06, 0x10, 0xc0, 0xa9, 0xd3, 0x3a, 0x58,
    0x01, 0x60, 0xac, 0x02,
};

/* A STARTED task taken over once (field 10, deliveries, added later):
 *   docq_pb2.Task(task_id="s3-00112233445566778899aabbccddeeff",
 *                 state=docq_pb2.Task.STARTED, attempts=5, deliveries=3) */
static const uint8_t golden_task_deliveries[43] = {
    0x0a, 0x23, 0x73, 0x33, 0x2d, 0x30, 0x30, 0x31, 0x31, 0x32, 0x32, 0x33,
    0x33, 0x34, 0x34, 0x35, 0x35, 0x36, 0x36, 0x37, 0x37, 0x38, 0x38, 0x39,
    0x39, 0x61, 0x61, 0x62, 0x62, 0x63, 0x63, 0x64, 0x64, 0x65, 0x65, 0x66,
    0x66, 0x18, 0x02, 0x30, 0x05, 0x50, 0x03,
};

#define GOLDEN_TASK_ID "s3-00112233445566778899aabbccddeeff"

/* The task the golden Task bytes hold. Owns its strings: docq_task_clear. */
static void golden_task_fill(docq_task *t) {
    memset(t, 0, sizeof(*t));
    strcpy(t->task_id, GOLDEN_TASK_ID);
    strcpy(t->doc_id, "doc_1");
    t->state = DOCQ_STATE_SUCCESS;
    t->result = strdup("{\"ok\":true}");
    t->result_len = strlen(t->result);
    t->error = strdup("");
    t->attempts = 2;
    t->created_at_ms = 1700000000123LL;
    t->started_at_ms = 1700000001000LL;
    t->finished_at_ms = 1700000002500LL;
}

/* Pack m with protobuf-c into a new buffer (free it); length in *len. */
static uint8_t *pack(const ProtobufCMessage *m, size_t *len) {
    *len = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(*len ? *len : 1);
    if (buf) CHECK_INT_EQ(protobuf_c_message_pack(m, buf), *len);
    return buf;
}

/* A gRPC byte buffer holding the n bytes at p as one slice. */
static grpc_byte_buffer *buffer_of(const void *p, size_t n) {
    grpc_slice s = grpc_slice_from_copied_buffer(p, n);
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
    grpc_slice_unref(s);
    return bb;
}

/* The bytes of a byte buffer, as a malloc'd copy (free it). */
static uint8_t *buffer_bytes(grpc_byte_buffer *bb, size_t *len) {
    grpc_byte_buffer_reader r;
    *len = 0;
    if (!grpc_byte_buffer_reader_init(&r, bb)) return NULL;
    grpc_slice s = grpc_byte_buffer_reader_readall(&r);
    grpc_byte_buffer_reader_destroy(&r);
    *len = GRPC_SLICE_LENGTH(s);
    uint8_t *out = malloc(*len ? *len : 1);
    if (out) memcpy(out, GRPC_SLICE_START_PTR(s), *len);
    grpc_slice_unref(s);
    return out;
}

static void check_golden_fields(const docq_task *t) {
    CHECK_STR_EQ(t->task_id, GOLDEN_TASK_ID);
    CHECK_STR_EQ(t->doc_id, "doc_1");
    CHECK_INT_EQ(t->state, DOCQ_STATE_SUCCESS);
    CHECK_STR_EQ(t->result, "{\"ok\":true}");
    CHECK_INT_EQ(t->result_len, 11);
    CHECK(t->error == NULL); /* An empty error reads back as none. */
    CHECK_INT_EQ(t->attempts, 2);
    CHECK_INT_EQ(t->created_at_ms, 1700000000123LL);
    CHECK_INT_EQ(t->started_at_ms, 1700000001000LL);
    CHECK_INT_EQ(t->finished_at_ms, 1700000002500LL);
}

static void task_golden_bytes(void) {
    docq_task t;
    docq_task_msg m;
    size_t len;
    golden_task_fill(&t);
    docq_codec_task_msg(&t, &m);
    uint8_t *bytes = pack(&m.msg.base, &len);
    CHECK_MEM_EQ(bytes, len, golden_task, sizeof(golden_task));
    free(bytes);
    docq_task_clear(&t);
}

static void task_golden_bytes_read(void) {
    Docq__V1__Task *m = docq__v1__task__unpack(NULL, sizeof(golden_task), golden_task);
    CHECK(m != NULL);
    if (!m) return;
    docq_task t = {0};
    docq_error err = {0};
    CHECK_INT_EQ(docq_codec_task_from_msg(m, &t, &err), DOCQ_OK);
    check_golden_fields(&t);
    docq_task_clear(&t);
    docq__v1__task__free_unpacked(m, NULL);
}

static void pending_task_golden_bytes(void) {
    docq_task t = {0}, back = {0};
    docq_task_msg m;
    size_t len;
    strcpy(t.task_id, GOLDEN_TASK_ID);
    strcpy(t.doc_id, "doc_1");
    t.state = DOCQ_STATE_PENDING;
    t.created_at_ms = 1700000000123LL;
    t.version = 1;
    t.seq = 77; /* Not part of the message. */
    t.queue_position = 300;
    docq_codec_task_msg(&t, &m);
    uint8_t *bytes = pack(&m.msg.base, &len);
    CHECK_MEM_EQ(bytes, len, golden_pending_task, sizeof(golden_pending_task));
    free(bytes);

    Docq__V1__Task *r = docq__v1__task__unpack(NULL, sizeof(golden_pending_task), golden_pending_task);
    CHECK(r != NULL);
    if (!r) return;
    CHECK_INT_EQ(docq_codec_task_from_msg(r, &back, NULL), DOCQ_OK);
    CHECK_INT_EQ(back.state, DOCQ_STATE_PENDING);
    CHECK_INT_EQ(back.version, 1);
    CHECK_INT_EQ(back.queue_position, 300);
    CHECK_INT_EQ(back.seq, 0);
    docq__v1__task__free_unpacked(r, NULL);
    docq_task_clear(&back);
}

static void submit_response_golden_bytes(void) {
    Docq__V1__SubmitDocResponse r = DOCQ__V1__SUBMIT_DOC_RESPONSE__INIT;
    char task_id[] = GOLDEN_TASK_ID;
    size_t len;
    r.task_id = task_id;
    r.state = DOCQ__V1__TASK__STATE__PENDING;
    uint8_t *bytes = pack(&r.base, &len);
    CHECK_MEM_EQ(bytes, len, golden_submit_response, sizeof(golden_submit_response));
    free(bytes);

    /* And through the gRPC framing the server uses. */
    grpc_init();
    grpc_byte_buffer *bb = docq_codec_pack(&r.base);
    CHECK(bb != NULL);
    uint8_t *framed = bb ? buffer_bytes(bb, &len) : NULL;
    CHECK_MEM_EQ(framed, len, golden_submit_response, sizeof(golden_submit_response));
    free(framed);
    if (bb) grpc_byte_buffer_destroy(bb);
    grpc_shutdown();
}

static void task_round_trip(void) {
    grpc_init();
    docq_task in, out = {0};
    docq_task_msg m;
    docq_error err = {0};
    golden_task_fill(&in);
    docq_codec_task_msg(&in, &m);
    grpc_byte_buffer *bb = docq_codec_pack(&m.msg.base);
    CHECK(bb != NULL);
    ProtobufCMessage *back = docq_codec_unpack(&docq__v1__task__descriptor, bb);
    CHECK(back != NULL);
    if (back) {
        CHECK_INT_EQ(docq_codec_task_from_msg((Docq__V1__Task *)back, &out, &err), DOCQ_OK);
        check_golden_fields(&out);
        protobuf_c_message_free_unpacked(back, NULL);
    }
    /* The buffer stays the caller's and can be read again. */
    back = docq_codec_unpack(&docq__v1__task__descriptor, bb);
    CHECK(back != NULL);
    if (back) protobuf_c_message_free_unpacked(back, NULL);
    grpc_byte_buffer_destroy(bb);
    docq_task_clear(&in);
    docq_task_clear(&out);
    grpc_shutdown();
}

static void task_round_trip_multibyte(void) {
    /* Non-ASCII text and the largest values survive the trip. */
    grpc_init();
    docq_task in = {0}, out = {0};
    docq_task_msg m;
    strcpy(in.task_id, "s1023-ffffffffffffffffffffffffffffffff");
    memset(in.doc_id, 'x', DOCQ_DOC_ID_MAX - 4);
    memcpy(in.doc_id + DOCQ_DOC_ID_MAX - 4, "\xf0\x9f\x93\x84", 5); /* 256 bytes. */
    in.state = DOCQ_STATE_FAILURE;
    in.error = strdup("AI answered 503: \xe6\x97\xa5\xe6\x9c\xac");
    in.attempts = UINT32_MAX;
    in.created_at_ms = 4102444800999LL; /* 2100-01-01, .999 s. */
    grpc_byte_buffer *bb = docq_codec_pack((docq_codec_task_msg(&in, &m), &m.msg.base));
    ProtobufCMessage *back = docq_codec_unpack(&docq__v1__task__descriptor, bb);
    CHECK(back != NULL);
    if (back) {
        CHECK_INT_EQ(docq_codec_task_from_msg((Docq__V1__Task *)back, &out, NULL), DOCQ_OK);
        CHECK_STR_EQ(out.task_id, in.task_id);
        CHECK_STR_EQ(out.doc_id, in.doc_id);
        CHECK_INT_EQ(out.state, DOCQ_STATE_FAILURE);
        CHECK_STR_EQ(out.error, in.error);
        CHECK(out.result == NULL);
        CHECK_INT_EQ(out.result_len, 0);
        CHECK_INT_EQ(out.attempts, UINT32_MAX);
        CHECK_INT_EQ(out.created_at_ms, 4102444800999LL);
        protobuf_c_message_free_unpacked(back, NULL);
    }
    grpc_byte_buffer_destroy(bb);
    docq_task_clear(&in);
    docq_task_clear(&out);
    grpc_shutdown();
}

static void unset_times_stay_unset(void) {
    grpc_init();
    docq_task in = {0}, out = {0};
    docq_task_msg m;
    strcpy(in.task_id, "s0-00000000000000000000000000000000");
    strcpy(in.doc_id, "d");
    in.state = DOCQ_STATE_PENDING;
    in.created_at_ms = 1700000000000LL;
    docq_codec_task_msg(&in, &m);
    CHECK(m.msg.created_at != NULL);
    CHECK(m.msg.started_at == NULL);
    CHECK(m.msg.finished_at == NULL);
    CHECK_STR_EQ(m.msg.result, "");
    CHECK_STR_EQ(m.msg.error, "");

    grpc_byte_buffer *bb = docq_codec_pack(&m.msg.base);
    Docq__V1__Task *back = (Docq__V1__Task *)docq_codec_unpack(&docq__v1__task__descriptor, bb);
    CHECK(back != NULL);
    if (back) {
        CHECK(back->created_at != NULL);
        CHECK(back->started_at == NULL);
        CHECK(back->finished_at == NULL);
        CHECK_INT_EQ(docq_codec_task_from_msg(back, &out, NULL), DOCQ_OK);
        CHECK_INT_EQ(out.created_at_ms, 1700000000000LL);
        CHECK_INT_EQ(out.started_at_ms, 0);
        CHECK_INT_EQ(out.finished_at_ms, 0);
        CHECK(out.result == NULL && out.error == NULL);
        protobuf_c_message_free_unpacked(&back->base, NULL);
    }
    grpc_byte_buffer_destroy(bb);
    docq_task_clear(&out);
    grpc_shutdown();
}

static void timestamp_from_ms(void) {
    Google__Protobuf__Timestamp ts;
    docq_codec_timestamp(1700000000123LL, &ts);
    CHECK_INT_EQ(ts.seconds, 1700000000LL);
    CHECK_INT_EQ(ts.nanos, 123000000);
    docq_codec_timestamp(999, &ts);
    CHECK_INT_EQ(ts.seconds, 0);
    CHECK_INT_EQ(ts.nanos, 999000000);
    docq_codec_timestamp(0, &ts);
    CHECK_INT_EQ(ts.seconds, 0);
    CHECK_INT_EQ(ts.nanos, 0);
}

static void unpack_refuses_malformed(void) {
    static const struct {
        const char *bytes;
        size_t len;
        const char *what;
    } bad[] = {
        {"\x08\xff", 2, "a varint cut short"},
        {"\x0f", 1, "wire type 7"},
        {"\x0e", 1, "wire type 6"},
        {"\x0a\x05" "ab", 4, "a string longer than the message"},
        {"\x0a", 1, "a string without its length"},
        {"\x3a\x02\x08", 3, "a Timestamp longer than its field"},
        {"\x3a\x02\x08\xff", 4, "a Timestamp holding a cut varint"},
        {"\x00", 1, "field number 0"},
        {"\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 12, "a varint of 11 bytes"},
    };
    grpc_init();
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        grpc_byte_buffer *bb = buffer_of(bad[i].bytes, bad[i].len);
        ProtobufCMessage *m = docq_codec_unpack(&docq__v1__task__descriptor, bb);
        CHECK_MSG(m == NULL, "%s was accepted", bad[i].what);
        if (m) protobuf_c_message_free_unpacked(m, NULL);
        grpc_byte_buffer_destroy(bb);
    }
    CHECK(docq_codec_unpack(&docq__v1__task__descriptor, NULL) == NULL);
    grpc_shutdown();
}

static void unpack_refuses_nul_in_string(void) {
    /* protobuf-c gives strings as C strings, so "a\0b" would arrive as "a":
     * such a message is refused instead of cut short. */
    static const struct {
        const ProtobufCMessageDescriptor *d;
        const char *bytes;
        size_t len;
        const char *what;
    } bad[] = {
        {&docq__v1__submit_doc_request__descriptor, "\x0a\x03" "a\0b", 5, "doc_id a NUL b"},
        {&docq__v1__submit_doc_request__descriptor, "\x0a\x01\0", 3, "doc_id of one NUL"},
        {&docq__v1__get_status_request__descriptor, "\x0a\x02" "s\0", 4, "task_id ending in NUL"},
        {&docq__v1__task__descriptor, "\x18\x01\x2a\x02" "e\0", 6, "Task error after a varint"},
        /* After an unknown fixed64 and fixed32 field, still found. */
        {&docq__v1__submit_doc_request__descriptor,
         "\x79\x01\x02\x03\x04\x05\x06\x07\x08\x7d\x01\x02\x03\x04\x0a\x02" "\0x", 18,
         "doc_id after unknown fixed fields"},
    };
    grpc_init();
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        grpc_byte_buffer *bb = buffer_of(bad[i].bytes, bad[i].len);
        ProtobufCMessage *m = docq_codec_unpack(bad[i].d, bb);
        CHECK_MSG(m == NULL, "%s was accepted", bad[i].what);
        if (m) protobuf_c_message_free_unpacked(m, NULL);
        grpc_byte_buffer_destroy(bb);
    }
    /* A NUL in a field that is not a string (here an unknown one) is data. */
    grpc_byte_buffer *bb = buffer_of("\x0a\x01" "d" "\x4a\x02\0\0", 7);
    Docq__V1__SubmitDocRequest *r =
        (Docq__V1__SubmitDocRequest *)docq_codec_unpack(&docq__v1__submit_doc_request__descriptor, bb);
    CHECK(r != NULL);
    if (r) {
        CHECK_STR_EQ(r->doc_id, "d");
        protobuf_c_message_free_unpacked(&r->base, NULL);
    }
    grpc_byte_buffer_destroy(bb);
    grpc_shutdown();
}

static void unpack_empty_and_split(void) {
    grpc_init();
    /* No bytes at all are a valid message: every field at its default. */
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(NULL, 0);
    Docq__V1__Task *m = (Docq__V1__Task *)docq_codec_unpack(&docq__v1__task__descriptor, bb);
    CHECK(m != NULL);
    if (m) {
        CHECK_STR_EQ(m->task_id, "");
        CHECK_INT_EQ(m->state, DOCQ__V1__TASK__STATE__STATE_UNSPECIFIED);
        CHECK(m->created_at == NULL);
        protobuf_c_message_free_unpacked(&m->base, NULL);
    }
    grpc_byte_buffer_destroy(bb);

    /* A message that arrives in several slices, cut inside fields, is read
     * whole. */
    grpc_slice parts[3] = {
        grpc_slice_from_copied_buffer((const char *)golden_task, 5),
        grpc_slice_from_copied_buffer((const char *)golden_task + 5, 60),
        grpc_slice_from_copied_buffer((const char *)golden_task + 65, sizeof(golden_task) - 65),
    };
    bb = grpc_raw_byte_buffer_create(parts, 3);
    for (int i = 0; i < 3; i++) grpc_slice_unref(parts[i]);
    m = (Docq__V1__Task *)docq_codec_unpack(&docq__v1__task__descriptor, bb);
    CHECK(m != NULL);
    if (m) {
        docq_task t = {0};
        CHECK_INT_EQ(docq_codec_task_from_msg(m, &t, NULL), DOCQ_OK);
        check_golden_fields(&t);
        docq_task_clear(&t);
        protobuf_c_message_free_unpacked(&m->base, NULL);
    }
    grpc_byte_buffer_destroy(bb);
    grpc_shutdown();
}

static void from_msg_refuses_long_ids(void) {
    Docq__V1__Task m = DOCQ__V1__TASK__INIT;
    char long_doc[DOCQ_DOC_ID_MAX + 2], long_task[DOCQ_TASK_ID_MAX + 1];
    docq_task t = {0};
    docq_error err = {0};
    memset(long_doc, 'd', DOCQ_DOC_ID_MAX + 1);
    long_doc[DOCQ_DOC_ID_MAX + 1] = '\0';
    m.task_id = (char *)"s1-00112233445566778899aabbccddeeff";
    m.doc_id = long_doc;
    CHECK_INT_EQ(docq_codec_task_from_msg(&m, &t, &err), DOCQ_EINVAL);
    CHECK_STR_CONTAINS(err.msg, "too long");
    memset(long_task, 't', DOCQ_TASK_ID_MAX);
    long_task[DOCQ_TASK_ID_MAX] = '\0';
    m.task_id = long_task;
    m.doc_id = (char *)"d";
    CHECK_INT_EQ(docq_codec_task_from_msg(&m, &t, &err), DOCQ_EINVAL);
    /* A doc_id of exactly the limit fits. */
    long_doc[DOCQ_DOC_ID_MAX] = '\0';
    m.task_id = (char *)"s1-00112233445566778899aabbccddeeff";
    m.doc_id = long_doc;
    CHECK_INT_EQ(docq_codec_task_from_msg(&m, &t, &err), DOCQ_OK);
    CHECK_INT_EQ(strlen(t.doc_id), DOCQ_DOC_ID_MAX);
    docq_task_clear(&t);
}

static void from_msg_replaces_previous(void) {
    /* out is cleared first: what it held is freed (valgrind) and gone. */
    Docq__V1__Task m = DOCQ__V1__TASK__INIT;
    docq_task t = {0};
    t.result = strdup("old result");
    t.result_len = 10;
    t.error = strdup("old error");
    t.finished_at_ms = 5;
    m.task_id = (char *)"s1-00112233445566778899aabbccddeeff";
    m.doc_id = (char *)"d";
    m.state = DOCQ__V1__TASK__STATE__PENDING;
    CHECK_INT_EQ(docq_codec_task_from_msg(&m, &t, NULL), DOCQ_OK);
    CHECK(t.result == NULL && t.result_len == 0 && t.error == NULL);
    CHECK_INT_EQ(t.finished_at_ms, 0);
    CHECK_INT_EQ(t.state, DOCQ_STATE_PENDING);
    docq_task_clear(&t);
}

static void stored_nul_result_never_cut(void) {
    docq_task t = {0};
    docq_task_msg m;
    strcpy(t.task_id, "s1-00112233445566778899aabbccddeeff");
    strcpy(t.doc_id, "d");
    t.state = DOCQ_STATE_SUCCESS;
    t.result = malloc(6);
    memcpy(t.result, "ok\0yes", 6);
    t.result_len = 6;
    docq_codec_task_msg(&t, &m);
    CHECK_STR_EQ(m.msg.result, "");
    CHECK_STR_CONTAINS(m.msg.error, "the stored result holds a NUL byte at offset 2");
    grpc_byte_buffer *bb = docq_codec_pack(&m.msg.base);
    Docq__V1__Task *back = (Docq__V1__Task *)docq_codec_unpack(&docq__v1__task__descriptor, bb);
    CHECK(back != NULL);
    if (back) {
        CHECK_STR_EQ(back->result, "");
        CHECK_STR_CONTAINS(back->error, "NUL byte at offset 2");
        protobuf_c_message_free_unpacked(&back->base, NULL);
    }
    grpc_byte_buffer_destroy(bb);
    t.result_len = 2; /* "ok" alone is sent as it is. */
    docq_codec_task_msg(&t, &m);
    CHECK_STR_EQ(m.msg.result, "ok");
    CHECK_STR_EQ(m.msg.error, "");
    docq_task_clear(&t);
}

static void status_names(void) {
    CHECK_STR_EQ(docq_grpc_status_name(0), "OK");
    CHECK_STR_EQ(docq_grpc_status_name(3), "INVALID_ARGUMENT");
    CHECK_STR_EQ(docq_grpc_status_name(5), "NOT_FOUND");
    CHECK_STR_EQ(docq_grpc_status_name(GRPC_STATUS_UNAVAILABLE), "UNAVAILABLE");
    CHECK_STR_EQ(docq_grpc_status_name(GRPC_STATUS_UNIMPLEMENTED), "UNIMPLEMENTED");
    CHECK_STR_EQ(docq_grpc_status_name(16), "UNAUTHENTICATED");
    CHECK_STR_EQ(docq_grpc_status_name(17), "UNKNOWN");
    CHECK_STR_EQ(docq_grpc_status_name(-1), "UNKNOWN");
    CHECK_STR_EQ(docq_grpc_status_name(1000), "UNKNOWN");
}

static void task_deliveries_golden_bytes(void) {
    docq_task t = {0}, back = {0};
    docq_task_msg m;
    docq_error err = {0};
    size_t len;
    strcpy(t.task_id, GOLDEN_TASK_ID);
    t.state = DOCQ_STATE_STARTED;
    t.attempts = 5;
    t.deliveries = 3;
    docq_codec_task_msg(&t, &m);
    uint8_t *bytes = pack(&m.msg.base, &len);
    CHECK_MEM_EQ(bytes, len, golden_task_deliveries, sizeof(golden_task_deliveries));
    free(bytes);
    Docq__V1__Task *u = docq__v1__task__unpack(NULL, sizeof(golden_task_deliveries), golden_task_deliveries);
    CHECK(u != NULL);
    if (!u) return;
    CHECK_INT_EQ(docq_codec_task_from_msg(u, &back, &err), DOCQ_OK);
    CHECK_INT_EQ(back.deliveries, 3);
    CHECK_INT_EQ(back.attempts, 5);
    docq_task_clear(&back);
    docq__v1__task__free_unpacked(u, NULL);
}

CHECK_MAIN(
    CHECK_CASE(task_golden_bytes, "a Task encodes to the same bytes as Google's protobuf makes"),
    CHECK_CASE(task_golden_bytes_read,
               "a Task encoded by Google's protobuf decodes to the same task"),
    CHECK_CASE(pending_task_golden_bytes,
               "a PENDING Task with a version and a queue position encodes to the same bytes as "
               "Google's protobuf makes and reads back"),
    CHECK_CASE(task_deliveries_golden_bytes,
               "a Task with deliveries encodes to the same bytes as Google's protobuf makes and "
               "reads back"),
    CHECK_CASE(submit_response_golden_bytes,
               "a SubmitDocResponse encodes to the same bytes as Google's protobuf makes, gRPC "
               "framing included"),
    CHECK_CASE(task_round_trip,
               "a task packed into a gRPC byte buffer and unpacked again has the same fields"),
    CHECK_CASE(task_round_trip_multibyte,
               "a task with a 256-byte multibyte doc_id, the largest attempt count and a far date "
               "survives the trip"),
    CHECK_CASE(unset_times_stay_unset, "unset timestamps stay off the wire and read back as 0"),
    CHECK_CASE(timestamp_from_ms, "milliseconds become Timestamp seconds and nanos"),
    CHECK_CASE(unpack_refuses_malformed, "malformed bytes and a missing buffer unpack to NULL"),
    CHECK_CASE(unpack_refuses_nul_in_string,
               "a message whose string field holds a NUL byte unpacks to NULL instead of being "
               "cut short"),
    CHECK_CASE(unpack_empty_and_split,
               "an empty buffer is a default message and a message split over slices is read "
               "whole"),
    CHECK_CASE(from_msg_refuses_long_ids,
               "a received Task whose task_id or doc_id is too long is refused"),
    CHECK_CASE(from_msg_replaces_previous,
               "reading a Task into a task frees and replaces what it held"),
    CHECK_CASE(status_names, "gRPC status 5 is named NOT_FOUND and codes out of range UNKNOWN"),
    CHECK_CASE(stored_nul_result_never_cut,
               "a stored result holding a NUL byte is never sent cut short: the Task says where "
               "the NUL is"))
