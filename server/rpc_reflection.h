/* rpc_reflection.h -- the reflection service behind ServerReflectionInfo
 * (rpc_reflection.c): the index of the embedded descriptor set, built once,
 * and its open streams. server_parts.c creates it and ends its streams at
 * shutdown. */
#ifndef DOCQ_RPC_REFLECTION_H
#define DOCQ_RPC_REFLECTION_H

#include "error.h"

typedef struct reflection_service reflection_service;

/* Build the index of the descriptor set embedded at build time. Returns
 * NULL with err set when it does not parse or memory runs out. */
reflection_service *reflection_service_create(docq_error *err);

/* End every open reflection stream with UNAVAILABLE and refuse new ones. */
void reflection_service_end_streams(reflection_service *r);

/* Free r; every stream must have ended. NULL is fine. */
void reflection_service_free(reflection_service *r);

#endif
