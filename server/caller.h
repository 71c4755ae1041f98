/* caller.h -- who is calling: the identity rate limits and shards use. */
#ifndef DOCQ_CALLER_H
#define DOCQ_CALLER_H

#include <stddef.h>

#include <grpc/grpc.h>

/* Write the caller identity of call into buf: the peer's IP address without
 * the port ("127.0.0.1", "::1"), or the whole peer string for other
 * transports (e.g. unix sockets). Never fails; "unknown" when gRPC does not
 * know the peer. */
void docq_caller_of(grpc_call *call, char *buf, size_t cap);

/* The same, from a peer string as grpc_call_get_peer returns it. */
void docq_caller_from_peer(const char *peer, char *buf, size_t cap);

#endif
