/* reflection.h -- answers of gRPC server reflection (v1 and v1alpha, which
 * share one wire format), independent of the call that carries them. */
#ifndef DOCQ_REFLECTION_H
#define DOCQ_REFLECTION_H

#include <grpc/byte_buffer.h>

#include "reflection_index.h"

/* The serialized FileDescriptorSet of every service the server offers, with
 * their imports, embedded at build time (gen/descriptor_set.c). */
extern const unsigned char docq_descriptor_set[];
extern const size_t docq_descriptor_set_len;

/* Answer one ServerReflectionRequest received as req. Returns a new byte
 * buffer holding the ServerReflectionResponse (the caller destroys it), or
 * NULL when req is not a valid request or memory runs out. Unknown files and
 * symbols are answered with an error_response NOT_FOUND, as the protocol
 * wants, not with a failed call. */
grpc_byte_buffer *docq_reflection_answer(const docq_reflection_index *idx, grpc_byte_buffer *req);

#endif
