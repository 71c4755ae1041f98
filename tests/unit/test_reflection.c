/* Unit tests of server/reflection_index.c against the descriptor set the
 * build embeds in the server. */
#include <stdio.h>
#include <string.h>

#include "check.h"
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
    int ts = docq_reflection_file_by_name(idx, "google/protobuf/timestamp.proto");
    int out[16];
    size_t n = docq_reflection_closure(idx, docq, out, 16);
    CHECK_INT_EQ(n, 2);
    CHECK_INT_EQ(out[0], docq);
    CHECK_INT_EQ(out[1], ts);
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

CHECK_MAIN(CHECK_CASE(services_listed), CHECK_CASE(symbols_found), CHECK_CASE(closure_has_imports),
           CHECK_CASE(garbage_refused))
