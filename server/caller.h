/* caller.h -- who is calling: the identity rate limits, shards and the
 * ownership of tasks use.
 *
 * With an API keys file (DOCQ_API_KEYS_FILE) the caller is the id its key
 * belongs to, and that id picks its shard; a call without a known key is
 * refused. With mutual TLS (DOCQ_TLS_CLIENT_CA) a call without a key is the
 * caller its client certificate names (its CN, else its subject: tls.h); a
 * call with a key is still the key's caller, so both kinds of ids share one
 * namespace (a key of caller "acme" and a certificate with CN=acme are the
 * same caller). Either way the caller is authenticated: its tasks are its
 * own. Otherwise the caller is the peer's IP address, or the client address
 * in x-forwarded-for when the peer is a trusted proxy (DOCQ_TRUSTED_PROXIES),
 * and tasks are not owned; an IPv6 address is grouped by its first
 * DOCQ_IPV6_PREFIX bits ("2001:db8:1:2::/64"), since a client usually holds
 * a whole /64. */
#ifndef DOCQ_CALLER_H
#define DOCQ_CALLER_H

#include <stddef.h>

#include <grpc/grpc.h>

#include "auth.h"
#include "config.h"
#include "ratelimit.h"

#define DOCQ_CALLER_MAX 128

typedef struct docq_caller {
    char id[DOCQ_CALLER_MAX];  /* Caller id or IP address; never a key. */
    docq_rate_policy submit;   /* SubmitDoc limit: the key's own, or DOCQ_RATE_LIMIT. */
    int authenticated;         /* 1: named by an API key or a client certificate, so it owns
                                * its tasks; 0: an address, which owns nothing. */
} docq_caller;

/* Identify the caller of call, whose client metadata is md, for a server
 * with settings cfg and keys auth. Returns DOCQ_OK and fills out, or
 * DOCQ_EUNAUTHENTICATED with a message for the client when keys are in use and the
 * call has none (and no client certificate stands in) or an unknown one
 * (the key is never copied into the message), or when its client
 * certificate names no usable caller. */
int docq_caller_identify(const docq_config *cfg, docq_auth *auth, grpc_call *call,
                         const grpc_metadata_array *md, docq_caller *out, docq_error *err);

/* The API key in md ("authorization: Bearer <key>", else "x-api-key"):
 * its start (borrowed from md) and *len, or NULL when there is none. */
const char *docq_caller_key(const grpc_metadata_array *md, size_t *len);

/* Write the address-based caller id of call into buf (cap bytes): the
 * peer's address, or the client in x-forwarded-for when the peer is a
 * trusted proxy, an IPv6 address grouped by DOCQ_IPV6_PREFIX. It is the
 * caller of a call without keys or certificates, and what a stream that
 * identifies no caller (a health probe) is counted against. */
void docq_caller_address(const docq_config *cfg, grpc_call *call, const grpc_metadata_array *md, char *buf,
                         size_t cap);

/* Write the peer address of call into buf: the peer's IP address without
 * the port, in canonical form ("127.0.0.1", "::1"; docq_peer_address), or
 * the whole peer string for other transports (e.g. unix sockets). Never
 * fails; "unknown" when gRPC does not know the peer. An IPv6 caller id is
 * this address grouped by DOCQ_IPV6_PREFIX (docq_caller_identify). */
void docq_caller_of(grpc_call *call, char *buf, size_t cap);

/* The same, from a peer string as grpc_call_get_peer returns it. */
void docq_caller_from_peer(const char *peer, char *buf, size_t cap);

#endif
