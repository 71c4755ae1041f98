/* caller.c -- caller identity from the gRPC peer. See caller.h. */
#include <stdio.h>
#include <string.h>

#include <grpc/support/alloc.h>

#include "caller.h"

void docq_caller_from_peer(const char *peer, char *buf, size_t cap) {
    const char *start = peer, *end;
    if (strncmp(peer, "ipv4:", 5) == 0) {
        start = peer + 5;
        end = strrchr(start, ':');
    } else if (strncmp(peer, "ipv6:[", 6) == 0) {
        start = peer + 6;
        end = strchr(start, ']');
    } else {
        end = NULL;
    }
    if (!end) end = start + strlen(start);
    snprintf(buf, cap, "%.*s", (int)(end - start), start);
}

void docq_caller_of(grpc_call *call, char *buf, size_t cap) {
    char *peer = grpc_call_get_peer(call);
    docq_caller_from_peer(peer ? peer : "unknown", buf, cap);
    gpr_free(peer);
}
