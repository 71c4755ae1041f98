/* pem.h -- certificate and key files (PEM) for TLS, read and checked.
 *
 * gRPC takes certificates and keys as PEM text and, when one is wrong, only
 * fails to listen or to connect, without saying which file is at fault. These
 * functions read a file, check with OpenSSL that it holds what it should, and
 * name the file and the fault. Private keys are never quoted, in an error or
 * anywhere else, and their copies are wiped before they are freed. */
#ifndef DOCQ_PEM_H
#define DOCQ_PEM_H

#include <stddef.h>

#include "error.h"

#define DOCQ_PEM_MAX_BYTES (1024 * 1024)

typedef enum docq_pem_kind {
    DOCQ_PEM_CERTS,  /* One or more certificates (a chain, or a set of CAs). */
    DOCQ_PEM_KEY     /* One private key, unencrypted. */
} docq_pem_kind;

/* Read the PEM file at path and check that it holds kind. Returns DOCQ_OK
 * with *out the file's text (NUL-terminated, owned by the caller: free it
 * with docq_pem_free), or DOCQ_ENOTFOUND / DOCQ_EINVAL / DOCQ_ERR with a
 * reason naming path ("... holds no PEM certificate"). */
int docq_pem_load(const char *path, docq_pem_kind kind, char **out, docq_error *err);

/* Check that the private key key_pem belongs to the first certificate of
 * cert_pem (both as docq_pem_load read them). Returns DOCQ_OK, or
 * DOCQ_EINVAL naming the two files (cert_path, key_path). */
int docq_pem_key_matches(const char *cert_pem, const char *key_pem, const char *cert_path,
                         const char *key_path, docq_error *err);

/* Wipe and free a text docq_pem_load returned. NULL is fine. */
void docq_pem_free(char *pem);

#endif
