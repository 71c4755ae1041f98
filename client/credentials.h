/* credentials.h -- how the CLI and its load generator reach a server: in
 * plaintext, or over TLS with the CAs to trust and, for servers that require
 * one (mutual TLS), a client certificate.
 *
 * The settings are the CLI's --tls, --cacert, --cert, --key and
 * --tls-server-name (DOCQ_TLS, DOCQ_TLS_CACERT, DOCQ_TLS_CLIENT_CERT,
 * DOCQ_TLS_CLIENT_KEY, DOCQ_TLS_SERVER_NAME). */
#ifndef DOCQ_CLIENT_CREDENTIALS_H
#define DOCQ_CLIENT_CREDENTIALS_H

#include <grpc/grpc.h>
#include <grpc/grpc_security.h>

#include "config.h"
#include "error.h"

/* TLS settings of a client (strings borrowed). A zeroed struct means
 * plaintext. */
typedef struct docq_client_tls {
    int enabled;             /* Connect with TLS. */
    const char *cacert;      /* PEM file of the CAs to trust; NULL or "": the system's roots. */
    const char *cert;        /* PEM file of the client certificate chain; NULL or "": none. */
    const char *key;         /* PEM file of its private key (with cert). */
    const char *server_name; /* Name the server's certificate must hold; NULL or "": the target's host. */
} docq_client_tls;

/* The TLS settings cfg gives (pointing into cfg): TLS when --tls, --cacert
 * or --cert is set. */
void docq_client_tls_from_config(const docq_config *cfg, docq_client_tls *out);

/* Channel credentials for tls (NULL: plaintext), to release with
 * grpc_channel_credentials_release. The files are read and checked now, so
 * that a wrong one is named here rather than failing every call. Returns
 * NULL with err naming the file at fault. */
grpc_channel_credentials *docq_client_credentials(const docq_client_tls *tls, docq_error *err);

/* The channel argument that makes TLS check the server's certificate for
 * tls->server_name: 1 with *arg filled when one is needed, else 0. */
int docq_client_server_name_arg(const docq_client_tls *tls, grpc_arg *arg);

/* 1 when the gRPC target (host:port, [v6]:port, a dns:, ipv4: or ipv6:
 * target, or a unix: socket) stays on this machine: localhost, 127.0.0.0/8,
 * ::1, or a Unix socket; else 0 (an API key sent there in plaintext crosses
 * a network). A list of addresses (ipv4:a:1,b:2) counts as not loopback. */
int docq_client_target_is_loopback(const char *target);

#endif
