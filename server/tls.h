/* tls.h -- the server's transport security: its listening ports with their
 * credentials, what a call that came without TLS may do, and the caller a
 * client certificate names.
 *
 * Without DOCQ_TLS_CERT the server listens in plaintext on DOCQ_LISTEN, as
 * before. With it, DOCQ_LISTEN speaks TLS only, and DOCQ_TLS_CLIENT_CA makes
 * it require a client certificate signed by one of those CAs (mutual TLS).
 * DOCQ_PLAINTEXT_LISTEN then opens a second, plaintext port for health
 * probes (the kubelet's gRPC probe does not do TLS): every service the
 * server registers is reachable there, but calls that arrive over it are
 * refused with PERMISSION_DENIED unless they are to grpc.health.v1.Health
 * (tls_plaintext_allows), so nothing but health is served without TLS. */
#ifndef DOCQ_SERVER_TLS_H
#define DOCQ_SERVER_TLS_H

#include <stddef.h>

#include <grpc/grpc.h>

#include "config.h"
#include "error.h"

/* The only service served without TLS when TLS is on (method prefix). */
#define TLS_PLAINTEXT_SERVICE "/grpc.health.v1.Health/"

/* Bind cfg's ports on server (not started): DOCQ_LISTEN with TLS when
 * DOCQ_TLS_CERT is set, else in plaintext, and DOCQ_PLAINTEXT_LISTEN in
 * plaintext when set. The certificate files are read and checked first
 * (each must hold what it should, the key must match the certificate).
 * Returns DOCQ_OK with *port and *plain_port the bound ports (plain_port 0
 * when there is none), or DOCQ_ERR with err naming the file or the address
 * at fault. */
int tls_add_ports(grpc_server *server, const docq_config *cfg, int *port, int *plain_port,
                  docq_error *err);

/* 1 when call arrived over TLS (its auth context's transport security type
 * is "ssl"), else 0. */
int tls_call_secure(grpc_call *call);

/* 1 when a call to method (len bytes, such as "/docq.v1.DocQueue/GetStatus")
 * that did not arrive over TLS may be served by a server configured with
 * cfg: always without TLS settings; with them, only TLS_PLAINTEXT_SERVICE's
 * methods. Pure. */
int tls_plaintext_allows(const docq_config *cfg, const char *method, size_t len);

/* The caller named by call's verified client certificate: its subject's
 * common name, or when it has none (or an unusable one) the whole subject,
 * written into buf (capacity cap). A usable name is 1 to cap - 1 printable
 * ASCII characters. Returns DOCQ_OK, or DOCQ_ENOTFOUND when the call came
 * without a client certificate (or with one whose names are unusable). */
int tls_peer_caller(grpc_call *call, char *buf, size_t cap);

#endif
