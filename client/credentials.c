/* credentials.c -- plaintext or TLS channel credentials. See credentials.h. */
#include <arpa/inet.h>
#include <strings.h>
#include <string.h>

#include "credentials.h"
#include "pem.h"

/* 1 when s is set (not NULL, not empty). */
static int set(const char *s) { return s && s[0]; }

void docq_client_tls_from_config(const docq_config *cfg, docq_client_tls *out) {
    memset(out, 0, sizeof(*out));
    out->enabled = cfg->tls || cfg->tls_cacert[0] || cfg->tls_client_cert[0];
    out->cacert = cfg->tls_cacert;
    out->cert = cfg->tls_client_cert;
    out->key = cfg->tls_client_key;
    out->server_name = cfg->tls_server_name;
}

grpc_channel_credentials *docq_client_credentials(const docq_client_tls *tls, docq_error *err) {
    if (!tls || !tls->enabled) return grpc_insecure_credentials_create();
    char *roots = NULL, *cert = NULL, *key = NULL;
    int rc = DOCQ_OK;
    if (set(tls->cacert)) rc = docq_pem_load(tls->cacert, DOCQ_PEM_CERTS, &roots, err);
    if (rc == DOCQ_OK && set(tls->cert)) {
        rc = docq_pem_load(tls->cert, DOCQ_PEM_CERTS, &cert, err);
        if (rc == DOCQ_OK) rc = docq_pem_load(tls->key, DOCQ_PEM_KEY, &key, err);
        if (rc == DOCQ_OK) rc = docq_pem_key_matches(cert, key, tls->cert, tls->key, err);
    }
    grpc_channel_credentials *creds = NULL;
    if (rc == DOCQ_OK) {
        grpc_ssl_pem_key_cert_pair pair = {key, cert};
        /* gRPC copies the PEM texts; NULL roots: the system's. */
        creds = grpc_ssl_credentials_create(roots, cert ? &pair : NULL, NULL, NULL);
        if (!creds) docq_error_set(err, DOCQ_ERR, "gRPC refused the TLS settings");
    }
    docq_pem_free(roots);
    docq_pem_free(cert);
    docq_pem_free(key);
    return creds;
}

int docq_client_server_name_arg(const docq_client_tls *tls, grpc_arg *arg) {
    if (!tls || !tls->enabled || !set(tls->server_name)) return 0;
    memset(arg, 0, sizeof(*arg));
    arg->type = GRPC_ARG_STRING;
    arg->key = (char *)GRPC_SSL_TARGET_NAME_OVERRIDE_ARG;
    arg->value.string = (char *)tls->server_name;
    return 1;
}

/* 1 when host (len bytes, no brackets) is localhost or a loopback address:
 * 127.0.0.0/8, ::1, or 127.0.0.0/8 mapped into IPv6. */
static int host_is_loopback(const char *host, size_t len) {
    char text[INET6_ADDRSTRLEN + 1];
    unsigned char a[16];
    static const unsigned char one[16] = {[15] = 1}, mapped[12] = {[10] = 0xff, [11] = 0xff};
    if (len == 0 || len >= sizeof(text)) return 0;
    memcpy(text, host, len);
    text[len] = '\0';
    if (strcasecmp(text, "localhost") == 0) return 1;
    if (inet_pton(AF_INET, text, a) == 1) return a[0] == 127;
    if (inet_pton(AF_INET6, text, a) == 1)
        return memcmp(a, one, 16) == 0 || (memcmp(a, mapped, 12) == 0 && a[12] == 127);
    return 0;
}

int docq_client_target_is_loopback(const char *target) {
    static const char *schemes[] = {"dns:///", "dns:", "ipv4:", "ipv6:"};
    if (strncmp(target, "unix:", 5) == 0 || strncmp(target, "unix-abstract:", 14) == 0) return 1;
    for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++) {
        size_t n = strlen(schemes[i]);
        if (strncmp(target, schemes[i], n) == 0) {
            target += n;
            break;
        }
    }
    if (target[0] == '[') {
        const char *close = strchr(target, ']');
        return close && host_is_loopback(target + 1, (size_t)(close - target - 1));
    }
    const char *colon = strrchr(target, ':');
    if (colon && strchr(target, ':') != colon) colon = NULL; /* An IPv6 address without a port. */
    return host_is_loopback(target, colon ? (size_t)(colon - target) : strlen(target));
}
