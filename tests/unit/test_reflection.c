/* Unit tests of server/reflection_index.c against the descriptor set the
 * build embeds in the server. */
#include <stdio.h>
#include <string.h>

#include <grpc/grpc.h>

#include "check.h"
#include "codec.h"
#include "grpc/reflection/v1/reflection.pb-c.h"
#include "reflection.h"
#include "google/protobuf/descriptor.pb-c.h"
#include "reflection_index.h"

extern const unsigned char docq_descriptor_set[];
extern const size_t docq_descriptor_set_len;

static docq_reflection_index *load(void) {
    docq_error err = {0};
    docq_reflection_index *idx = docq_reflection_index_create(docq_descriptor_set, docq_descriptor_set_len, &err);
    CHECK_MSG(idx != NULL, "%s", err.msg);
    return idx;
}

static int has_service(const docq_reflection_index *idx, const char *name) {
    for (int i = 0; i < docq_reflection_nservices(idx); i++)
        if (strcmp(docq_reflection_service(idx, i), name) == 0) return 1;
    return 0;
}

static void services_listed(void) {
    docq_reflection_index *idx = load();
    if (!idx) return;
    CHECK(has_service(idx, "docq.v1.DocQueue"));
    CHECK(has_service(idx, "grpc.health.v1.Health"));
    CHECK(has_service(idx, "grpc.reflection.v1.ServerReflection"));
    CHECK(has_service(idx, "grpc.reflection.v1alpha.ServerReflection"));
    CHECK_INT_EQ(docq_reflection_nservices(idx), 4);
    docq_reflection_index_free(idx);
}

static void symbols_found(void) {
    docq_reflection_index *idx = load();
    if (!idx) return;
    int docq = docq_reflection_file_by_name(idx, "docq/v1/docq.proto");
    CHECK(docq >= 0);
    const char *in_docq[] = {"docq.v1.DocQueue", "docq.v1.DocQueue.SubmitDoc", ".docq.v1.Task",
                             "docq.v1.Task.State", "docq.v1.Task.PENDING", "docq.v1.SubmitDocRequest"};
    for (size_t i = 0; i < sizeof(in_docq) / sizeof(in_docq[0]); i++)
        CHECK_MSG(docq_reflection_file_by_symbol(idx, in_docq[i]) == docq, "%s", in_docq[i]);
    CHECK(docq_reflection_file_by_symbol(idx, "google.protobuf.Timestamp") ==
          docq_reflection_file_by_name(idx, "google/protobuf/timestamp.proto"));
    CHECK_INT_EQ(docq_reflection_file_by_symbol(idx, "docq.v1.Nope"), -1);
    CHECK_INT_EQ(docq_reflection_file_by_symbol(idx, "docq.v1"), -1);
    CHECK_INT_EQ(docq_reflection_file_by_name(idx, "nope.proto"), -1);
    docq_reflection_index_free(idx);
}

static void closure_has_imports(void) {
    docq_reflection_index *idx = load();
    if (!idx) return;
    int docq = docq_reflection_file_by_name(idx, "docq/v1/docq.proto");
    const char *imports[] = {"google/protobuf/duration.proto", "google/protobuf/empty.proto",
                             "google/protobuf/timestamp.proto"};
    int out[16];
    size_t n = docq_reflection_closure(idx, docq, out, 16);
    CHECK_INT_EQ(n, 4);
    CHECK_INT_EQ(out[0], docq);
    for (size_t i = 0; i < 3; i++)
        CHECK_MSG(out[i + 1] == docq_reflection_file_by_name(idx, imports[i]), "import %s", imports[i]);
    /* Each file's bytes parse back as its FileDescriptorProto. */
    size_t len;
    const uint8_t *bytes = docq_reflection_file_bytes(idx, docq, &len);
    Google__Protobuf__FileDescriptorProto *f = google__protobuf__file_descriptor_proto__unpack(NULL, len, bytes);
    CHECK(f != NULL);
    if (f) {
        CHECK_STR_EQ(f->name, "docq/v1/docq.proto");
        CHECK_STR_EQ(f->package, "docq.v1");
        google__protobuf__file_descriptor_proto__free_unpacked(f, NULL);
    }
    docq_reflection_index_free(idx);
}

static void garbage_refused(void) {
    docq_error err = {0};
    const uint8_t junk[] = {0x0a, 0xff, 0xff, 0x01};
    CHECK(docq_reflection_index_create(junk, sizeof(junk), &err) == NULL);
    CHECK_STR_CONTAINS(err.msg, "descriptor set");
}

typedef Grpc__Reflection__V1__ServerReflectionRequest request;
typedef Grpc__Reflection__V1__ServerReflectionResponse response;

/* Send req through docq_reflection_answer and parse what comes back. */
static response *ask(const docq_reflection_index *idx, request *req) {
    grpc_byte_buffer *in = docq_codec_pack(&req->base);
    grpc_byte_buffer *out = docq_reflection_answer(idx, in);
    grpc_byte_buffer_destroy(in);
    CHECK(out != NULL);
    if (!out) return NULL;
    response *r = (response *)docq_codec_unpack(&grpc__reflection__v1__server_reflection_response__descriptor, out);
    grpc_byte_buffer_destroy(out);
    CHECK(r != NULL);
    return r;
}

static void answers_questions(void) {
    grpc_init();
    docq_reflection_index *idx = load();
    request req = GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__INIT;
    response *r;
    req.message_request_case = GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_LIST_SERVICES;
    req.list_services = (char *)"*";
    if (idx && (r = ask(idx, &req))) {
        CHECK_INT_EQ(r->message_response_case,
                     GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_LIST_SERVICES_RESPONSE);
        CHECK_INT_EQ(r->list_services_response->n_service, 4);
        CHECK(r->original_request && r->original_request->message_request_case == req.message_request_case);
        protobuf_c_message_free_unpacked(&r->base, NULL);
    }
    req.message_request_case = GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_SYMBOL;
    req.file_containing_symbol = (char *)"docq.v1.DocQueue";
    if (idx && (r = ask(idx, &req))) {
        CHECK_INT_EQ(r->message_response_case,
                     GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_FILE_DESCRIPTOR_RESPONSE);
        CHECK_INT_EQ(r->file_descriptor_response->n_file_descriptor_proto, 4); /* docq.proto and 3 imports. */
        protobuf_c_message_free_unpacked(&r->base, NULL);
    }
    req.file_containing_symbol = (char *)"docq.v1.Missing";
    if (idx && (r = ask(idx, &req))) {
        CHECK_INT_EQ(r->message_response_case,
                     GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ERROR_RESPONSE);
        CHECK_INT_EQ(r->error_response->error_code, 5);
        CHECK_STR_CONTAINS(r->error_response->error_message, "docq.v1.Missing");
        protobuf_c_message_free_unpacked(&r->base, NULL);
    }
    req.message_request_case = GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_BY_FILENAME;
    req.file_by_filename = (char *)"google/protobuf/timestamp.proto";
    if (idx && (r = ask(idx, &req))) {
        CHECK_INT_EQ(r->file_descriptor_response->n_file_descriptor_proto, 1);
        protobuf_c_message_free_unpacked(&r->base, NULL);
    }
    grpc_slice junk = grpc_slice_from_static_string("\x0a\xff");
    grpc_byte_buffer *bad = grpc_raw_byte_buffer_create(&junk, 1);
    CHECK(idx && docq_reflection_answer(idx, bad) == NULL);
    grpc_byte_buffer_destroy(bad);
    docq_reflection_index_free(idx);
    grpc_shutdown();
}

CHECK_MAIN(
    CHECK_CASE(answers_questions,
               "reflection answers list_services, files by symbol and name, and NOT_FOUND for "
               "unknown symbols"),
    CHECK_CASE(services_listed,
               "reflection lists DocQueue, Health and both ServerReflection versions"),
    CHECK_CASE(symbols_found,
               "reflection finds the file of services, methods, messages, nested enums and their "
               "values"),
    CHECK_CASE(closure_has_imports,
               "reflection sends a file with its imports, each once, as FileDescriptorProto bytes"),
    CHECK_CASE(garbage_refused, "a descriptor set that does not parse is refused"))
