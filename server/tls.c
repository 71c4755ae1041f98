/* tls.c -- credentials and ports, plaintext policy, certificate callers.
 * See tls.h. */
#include <string.h>

#include <grpc/grpc_security.h>
#include <grpc/grpc_security_constants.h>

#include "pem.h"
#include "tls.h"

/* The PEM texts of the server's TLS settings (owned; wiped when freed). */
typedef struct tls_files {
    char *cert, *key, *client_ca;
} tls_files;

static void files_free(tls_files *f) {
    docq_pem_free(f->cert);
    docq_pem_free(f->key);
    docq_pem_free(f->client_ca);
    memset(f, 0, sizeof(*f));
}

/* Read and check cfg's certificate, key and client CAs into f. */
static int files_load(const docq_config *cfg, tls_files *f, docq_error *err) {
    memset(f, 0, sizeof(*f));
    int rc = docq_pem_load(cfg->tls_cert, DOCQ_PEM_CERTS, &f->cert, err);
    if (rc == DOCQ_OK) rc = docq_pem_load(cfg->tls_key, DOCQ_PEM_KEY, &f->key, err);
    if (rc == DOCQ_OK) rc = docq_pem_key_matches(f->cert, f->key, cfg->tls_cert, cfg->tls_key, err);
    if (rc == DOCQ_OK && cfg->tls_client_ca[0])
        rc = docq_pem_load(cfg->tls_client_ca, DOCQ_PEM_CERTS, &f->client_ca, err);
    if (rc != DOCQ_OK) files_free(f);
    return rc;
}

/* The credentials of DOCQ_LISTEN: TLS (requiring verified client
 * certificates with client CAs) or plaintext. NULL with err on failure. */
static grpc_server_credentials *main_credentials(const docq_config *cfg, docq_error *err) {
    if (!cfg->tls_cert[0]) return grpc_insecure_server_credentials_create();
    tls_files f;
    if (files_load(cfg, &f, err) != DOCQ_OK) return NULL;
    grpc_ssl_pem_key_cert_pair pair = {f.key, f.cert};
    /* gRPC copies the PEM texts: ours are wiped right after. */
    grpc_server_credentials *creds = grpc_ssl_server_credentials_create_ex(
        f.client_ca, &pair, 1,
        f.client_ca ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
                    : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE,
        NULL);
    files_free(&f);
    if (!creds) docq_error_set(err, DOCQ_ERR, "gRPC refused the TLS credentials of %s", cfg->tls_cert);
    return creds;
}

/* Bind addr with creds (released here). Returns the port, 0 on failure. */
static int add_port(grpc_server *server, const char *addr, grpc_server_credentials *creds) {
    int port = grpc_server_add_http2_port(server, addr, creds);
    grpc_server_credentials_release(creds);
    return port;
}

int tls_add_ports(grpc_server *server, const docq_config *cfg, int *port, int *plain_port,
                  docq_error *err) {
    *port = *plain_port = 0;
    grpc_server_credentials *creds = main_credentials(cfg, err);
    if (!creds) return DOCQ_ERR;
    *port = add_port(server, cfg->listen, creds);
    if (*port == 0)
        return docq_error_set(err, DOCQ_ERR, "cannot listen on %s (address in use or not available)",
                              cfg->listen);
    if (!cfg->plaintext_listen[0]) return DOCQ_OK;
    *plain_port = add_port(server, cfg->plaintext_listen, grpc_insecure_server_credentials_create());
    if (*plain_port == 0)
        return docq_error_set(err, DOCQ_ERR, "cannot listen on %s (DOCQ_PLAINTEXT_LISTEN: address in use "
                              "or not available)", cfg->plaintext_listen);
    return DOCQ_OK;
}

/* The first value of property name in ctx, or NULL (*len set when found). */
static const char *find_property(const grpc_auth_context *ctx, const char *name, size_t *len) {
    grpc_auth_property_iterator it = grpc_auth_context_find_properties_by_name(ctx, name);
    const grpc_auth_property *p = grpc_auth_property_iterator_next(&it);
    if (!p || !p->value) return NULL;
    *len = p->value_length;
    return p->value;
}

int tls_call_secure(grpc_call *call) {
    grpc_auth_context *ctx = grpc_call_auth_context(call);
    if (!ctx) return 0;
    size_t len = 0;
    const char *type = find_property(ctx, GRPC_TRANSPORT_SECURITY_TYPE_PROPERTY_NAME, &len);
    int secure = type && len == strlen(GRPC_SSL_TRANSPORT_SECURITY_TYPE) &&
                 memcmp(type, GRPC_SSL_TRANSPORT_SECURITY_TYPE, len) == 0;
    grpc_auth_context_release(ctx);
    return secure;
}

int tls_plaintext_allows(const docq_config *cfg, const char *method, size_t len) {
    size_t n = strlen(TLS_PLAINTEXT_SERVICE);
    return !cfg->tls_cert[0] || (len > n && memcmp(method, TLS_PLAINTEXT_SERVICE, n) == 0);
}

/* Copy the name at p (len bytes) into buf when it is usable (see tls.h).
 * Returns DOCQ_OK or DOCQ_EINVAL. */
static int usable_name(const char *p, size_t len, char *buf, size_t cap) {
    if (!p || len == 0 || len >= cap) return DOCQ_EINVAL;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)p[i] < 0x20 || (unsigned char)p[i] > 0x7e) return DOCQ_EINVAL;
    memcpy(buf, p, len);
    buf[len] = '\0';
    return DOCQ_OK;
}

int tls_peer_caller(grpc_call *call, char *buf, size_t cap) {
    grpc_auth_context *ctx = grpc_call_auth_context(call);
    if (!ctx) return DOCQ_ENOTFOUND;
    size_t len = 0;
    int rc = DOCQ_ENOTFOUND;
    /* Only a certificate the handshake verified counts. */
    if (grpc_auth_context_peer_is_authenticated(ctx)) {
        const char *cn = find_property(ctx, GRPC_X509_CN_PROPERTY_NAME, &len);
        if (usable_name(cn, len, buf, cap) == DOCQ_OK) {
            rc = DOCQ_OK;
        } else {
            const char *subject = find_property(ctx, GRPC_X509_SUBJECT_PROPERTY_NAME, &len);
            if (usable_name(subject, len, buf, cap) == DOCQ_OK) rc = DOCQ_OK;
        }
    }
    grpc_auth_context_release(ctx);
    return rc;
}
