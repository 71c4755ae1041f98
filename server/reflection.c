/* reflection.c -- gRPC server reflection answers. See reflection.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/status.h>

#include "codec.h"
#include "grpc/reflection/v1/reflection.pb-c.h"
#include "reflection.h"

typedef Grpc__Reflection__V1__ServerReflectionRequest request;
typedef Grpc__Reflection__V1__ServerReflectionResponse response;

#define MAX_FILES 64

/* What one answer points into; lives on the answering function's stack. */
typedef struct answer {
    response resp;
    Grpc__Reflection__V1__FileDescriptorResponse files;
    ProtobufCBinaryData blobs[MAX_FILES];
    Grpc__Reflection__V1__ListServiceResponse list;
    Grpc__Reflection__V1__ServiceResponse services[16];
    Grpc__Reflection__V1__ServiceResponse *service_ptrs[16];
    Grpc__Reflection__V1__ExtensionNumberResponse ext;
    Grpc__Reflection__V1__ErrorResponse error;
    char message[300];
} answer;

static void set_error(answer *a, grpc_status_code code, const char *what, const char *name) {
    grpc__reflection__v1__error_response__init(&a->error);
    snprintf(a->message, sizeof(a->message), "%s not found: %s", what, name);
    a->error.error_code = (int32_t)code;
    a->error.error_message = a->message;
    a->resp.message_response_case = GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ERROR_RESPONSE;
    a->resp.error_response = &a->error;
}

/* Answer with file and its imports, or NOT_FOUND when file is -1. */
static void set_files(answer *a, const docq_reflection_index *idx, int file, const char *what, const char *name) {
    int list[MAX_FILES];
    if (file < 0) {
        set_error(a, GRPC_STATUS_NOT_FOUND, what, name);
        return;
    }
    size_t n = docq_reflection_closure(idx, file, list, MAX_FILES);
    grpc__reflection__v1__file_descriptor_response__init(&a->files);
    for (size_t i = 0; i < n; i++) {
        size_t len;
        a->blobs[i].data = (uint8_t *)docq_reflection_file_bytes(idx, list[i], &len);
        a->blobs[i].len = len;
    }
    a->files.n_file_descriptor_proto = n;
    a->files.file_descriptor_proto = a->blobs;
    a->resp.message_response_case =
        GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_FILE_DESCRIPTOR_RESPONSE;
    a->resp.file_descriptor_response = &a->files;
}

static void set_services(answer *a, const docq_reflection_index *idx) {
    int n = docq_reflection_nservices(idx);
    if (n > 16) n = 16;
    grpc__reflection__v1__list_service_response__init(&a->list);
    for (int i = 0; i < n; i++) {
        grpc__reflection__v1__service_response__init(&a->services[i]);
        a->services[i].name = (char *)docq_reflection_service(idx, i);
        a->service_ptrs[i] = &a->services[i];
    }
    a->list.n_service = (size_t)n;
    a->list.service = a->service_ptrs;
    a->resp.message_response_case =
        GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_LIST_SERVICES_RESPONSE;
    a->resp.list_services_response = &a->list;
}

/* docq declares no extensions: a known type has none, others are unknown. */
static void set_extensions(answer *a, const docq_reflection_index *idx, const char *type) {
    if (docq_reflection_file_by_symbol(idx, type) < 0) {
        set_error(a, GRPC_STATUS_NOT_FOUND, "type", type);
        return;
    }
    grpc__reflection__v1__extension_number_response__init(&a->ext);
    a->ext.base_type_name = (char *)type;
    a->resp.message_response_case =
        GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ALL_EXTENSION_NUMBERS_RESPONSE;
    a->resp.all_extension_numbers_response = &a->ext;
}

static void fill(answer *a, const docq_reflection_index *idx, request *req) {
    switch (req->message_request_case) {
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_BY_FILENAME:
        set_files(a, idx, docq_reflection_file_by_name(idx, req->file_by_filename), "file", req->file_by_filename);
        break;
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_SYMBOL:
        set_files(a, idx, docq_reflection_file_by_symbol(idx, req->file_containing_symbol), "symbol",
                  req->file_containing_symbol);
        break;
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_EXTENSION:
        set_error(a, GRPC_STATUS_NOT_FOUND, "extension of",
                  req->file_containing_extension ? req->file_containing_extension->containing_type : "");
        break;
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_ALL_EXTENSION_NUMBERS_OF_TYPE:
        set_extensions(a, idx, req->all_extension_numbers_of_type);
        break;
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_LIST_SERVICES:
        set_services(a, idx);
        break;
    default:
        grpc__reflection__v1__error_response__init(&a->error);
        a->error.error_code = GRPC_STATUS_INVALID_ARGUMENT;
        a->error.error_message = (char *)"the request names no question (message_request is not set)";
        a->resp.message_response_case =
            GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ERROR_RESPONSE;
        a->resp.error_response = &a->error;
    }
}

grpc_byte_buffer *docq_reflection_answer(const docq_reflection_index *idx, grpc_byte_buffer *bb) {
    request *req = (request *)docq_codec_unpack(&grpc__reflection__v1__server_reflection_request__descriptor, bb);
    if (!req) return NULL;
    answer *a = calloc(1, sizeof(*a));
    grpc_byte_buffer *out = NULL;
    if (a) {
        grpc__reflection__v1__server_reflection_response__init(&a->resp);
        a->resp.valid_host = req->host;
        a->resp.original_request = req;
        fill(a, idx, req);
        out = docq_codec_pack(&a->resp.base);
        free(a);
    }
    protobuf_c_message_free_unpacked(&req->base, NULL);
    return out;
}
