/* reflection_index.h -- what gRPC server reflection answers from: the files,
 * symbols and services of the descriptor set embedded in the server at build
 * time (protoc --include_imports --descriptor_set_out).
 *
 * Built once at start-up and read-only afterwards, so any thread may query
 * it without a lock. */
#ifndef DOCQ_REFLECTION_INDEX_H
#define DOCQ_REFLECTION_INDEX_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

typedef struct docq_reflection_index docq_reflection_index;

/* Parse a serialized google.protobuf.FileDescriptorSet (bytes are copied).
 * Returns the index (free with docq_reflection_index_free) or NULL with err
 * set when the bytes are not a descriptor set or memory runs out. */
docq_reflection_index *docq_reflection_index_create(const uint8_t *set, size_t len, docq_error *err);

void docq_reflection_index_free(docq_reflection_index *idx);

/* The file called name ("docq/v1/docq.proto"), or -1. */
int docq_reflection_file_by_name(const docq_reflection_index *idx, const char *name);

/* The file declaring the fully-qualified symbol (a service, method,
 * message, nested message, enum or enum value, e.g. "docq.v1.DocQueue",
 * "docq.v1.DocQueue.SubmitDoc", "docq.v1.Task.State"), or -1. A leading dot
 * is accepted. */
int docq_reflection_file_by_symbol(const docq_reflection_index *idx, const char *symbol);

/* Write into out (room for cap entries) file and every file it depends on,
 * transitively, each once, file first. Returns the number written. */
size_t docq_reflection_closure(const docq_reflection_index *idx, int file, int *out, size_t cap);

/* The serialized FileDescriptorProto of a file (owned by the index). */
const uint8_t *docq_reflection_file_bytes(const docq_reflection_index *idx, int file, size_t *len);

/* The number of files, and of services; the fully-qualified name of service
 * i (owned by the index). */
int docq_reflection_nfiles(const docq_reflection_index *idx);
int docq_reflection_nservices(const docq_reflection_index *idx);
const char *docq_reflection_service(const docq_reflection_index *idx, int i);

#endif
