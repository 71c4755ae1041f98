/* caller.c -- caller identity from the gRPC peer. See caller.h. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <grpc/support/alloc.h>

#include "caller.h"
#include "tls.h"

void docq_caller_from_peer(const char *peer, char *buf, size_t cap) {
    docq_peer_address(peer, buf, cap);
}

void docq_caller_of(grpc_call *call, char *buf, size_t cap) {
    char *peer = grpc_call_get_peer(call);
    docq_caller_from_peer(peer ? peer : "unknown", buf, cap);
    gpr_free(peer);
}

/* The value of the first (or, with last, the last) metadata entry named
 * key, or NULL. */
static const grpc_slice *find_metadata(const grpc_metadata_array *md, const char *key, int last) {
    size_t klen = strlen(key);
    const grpc_slice *found = NULL;
    for (size_t i = 0; i < md->count && !(found && !last); i++) {
        const grpc_slice *k = &md->metadata[i].key;
        if (GRPC_SLICE_LENGTH(*k) == klen && memcmp(GRPC_SLICE_START_PTR(*k), key, klen) == 0)
            found = &md->metadata[i].value;
    }
    return found;
}

/* Trim spaces and tabs around s[0..*len); returns the new start. */
static const char *trim(const char *s, size_t *len) {
    while (*len && (*s == ' ' || *s == '\t')) s++, (*len)--;
    while (*len && (s[*len - 1] == ' ' || s[*len - 1] == '\t')) (*len)--;
    return s;
}

/* The API key of the call: "authorization: Bearer <key>", else "x-api-key:
 * <key>". Returns its start and *len, or NULL when there is none. */
static const char *api_key_of(const grpc_metadata_array *md, size_t *len) {
    const grpc_slice *v = find_metadata(md, "authorization", 0);
    if (v) {
        size_t n = GRPC_SLICE_LENGTH(*v);
        const char *p = (const char *)GRPC_SLICE_START_PTR(*v);
        if (n > 7 && strncasecmp(p, "bearer ", 7) == 0) {
            *len = n - 7;
            p = trim(p + 7, len);
            if (*len) return p;
        }
    }
    v = find_metadata(md, "x-api-key", 0);
    if (!v) return NULL;
    *len = GRPC_SLICE_LENGTH(*v);
    const char *p = trim((const char *)GRPC_SLICE_START_PTR(*v), len);
    return *len ? p : NULL;
}

const char *docq_caller_key(const grpc_metadata_array *md, size_t *len) { return api_key_of(md, len); }

/* The caller of an API key (keys file in use): DOCQ_OK, or DOCQ_EUNAUTHENTICATED
 * for an unknown key (the key is never copied into the message). */
static int identify_by_key(docq_auth *auth, const char *key, size_t len, docq_caller *out,
                           docq_error *err) {
    docq_apikey k;
    if (docq_auth_lookup(auth, key, len, &k) != DOCQ_OK)
        return docq_error_set(err, DOCQ_EUNAUTHENTICATED, "unknown API key");
    snprintf(out->id, sizeof(out->id), "%s", k.caller);
    if (k.limit >= 0) out->submit.limit = k.limit;
    if (k.window_s > 0) out->submit.window_s = k.window_s;
    out->authenticated = 1;
    return DOCQ_OK;
}

/* The caller named by the call's verified client certificate (mutual TLS). */
static int identify_by_cert(grpc_call *call, docq_caller *out, docq_error *err) {
    if (tls_peer_caller(call, out->id, sizeof(out->id)) != DOCQ_OK)
        return docq_error_set(err, DOCQ_EUNAUTHENTICATED,
                              "no usable client certificate: its CN (or else its subject) must be 1 to %d "
                              "printable ASCII characters", DOCQ_CALLER_MAX - 1);
    out->authenticated = 1;
    return DOCQ_OK;
}

int docq_caller_identify(const docq_config *cfg, docq_auth *auth, grpc_call *call,
                         const grpc_metadata_array *md, docq_caller *out, docq_error *err) {
    out->submit.limit = cfg->rate_limit;
    out->submit.window_s = cfg->rate_window_s;
    out->authenticated = 0;
    int by_cert = cfg->tls_client_ca[0] != '\0';
    if (docq_auth_enabled(auth)) {
        size_t len;
        const char *key = api_key_of(md, &len);
        if (key) return identify_by_key(auth, key, len, out, err);
        if (!by_cert)
            return docq_error_set(err, DOCQ_EUNAUTHENTICATED,
                                  "missing API key: send 'authorization: Bearer <key>' or 'x-api-key: <key>'");
    }
    if (by_cert) return identify_by_cert(call, out, err);
    docq_caller_address(cfg, call, md, out->id, sizeof(out->id));
    return DOCQ_OK;
}

void docq_caller_address(const docq_config *cfg, grpc_call *call, const grpc_metadata_array *md, char *buf,
                         size_t cap) {
    char peer[DOCQ_CALLER_MAX], client[DOCQ_CALLER_MAX];
    docq_caller_of(call, peer, sizeof(peer));
    /* The last header: the one the nearest proxy wrote, when there are several. */
    const grpc_slice *xff = cfg->proxies.count ? find_metadata(md, "x-forwarded-for", 1) : NULL;
    docq_proxies_client(&cfg->proxies, peer, xff ? (const char *)GRPC_SLICE_START_PTR(*xff) : NULL,
                        xff ? GRPC_SLICE_LENGTH(*xff) : 0, client, sizeof(client));
    docq_address_group(client, (int)cfg->ipv6_prefix, buf, cap);
}
