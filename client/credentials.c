/* credentials.c -- plaintext or TLS channel credentials. See credentials.h. */
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
