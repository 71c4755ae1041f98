/* pem.c -- reading and checking PEM files with OpenSSL. See pem.h. */
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "files.h"
#include "pem.h"

/* A read-only memory BIO over pem (NUL-terminated). */
static BIO *pem_bio(const char *pem) { return BIO_new_mem_buf(pem, -1); }

/* The number of certificates in pem (0 when none parses). */
static int count_certs(const char *pem) {
    BIO *b = pem_bio(pem);
    int n = 0;
    X509 *x;
    while (b && (x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
        X509_free(x);
        n++;
    }
    BIO_free(b);
    ERR_clear_error(); /* The read that ended the loop left an error behind. */
    return n;
}

/* The first private key in pem, or NULL. An encrypted key is refused: the
 * empty passphrase given never opens it, and nothing prompts for another. */
static EVP_PKEY *read_key(const char *pem) {
    BIO *b = pem_bio(pem);
    EVP_PKEY *k = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, (void *)"") : NULL;
    BIO_free(b);
    ERR_clear_error();
    return k;
}

int docq_pem_load(const char *path, docq_pem_kind kind, char **out, docq_error *err) {
    size_t len;
    char *pem;
    *out = NULL;
    int rc = docq_file_read(path, DOCQ_PEM_MAX_BYTES, &pem, &len, err);
    if (rc != DOCQ_OK) return rc;
    if (memchr(pem, '\0', len)) {
        explicit_bzero(pem, len);
        free(pem);
        return docq_error_set(err, DOCQ_EINVAL, "%s holds a NUL byte: not a PEM file", path);
    }
    if (kind == DOCQ_PEM_CERTS && count_certs(pem) == 0) {
        docq_pem_free(pem);
        return docq_error_set(err, DOCQ_EINVAL, "%s holds no PEM certificate", path);
    }
    if (kind == DOCQ_PEM_KEY) {
        EVP_PKEY *k = read_key(pem);
        if (!k) {
            docq_pem_free(pem);
            return docq_error_set(err, DOCQ_EINVAL, "%s holds no unencrypted PEM private key", path);
        }
        EVP_PKEY_free(k);
    }
    *out = pem;
    return DOCQ_OK;
}

int docq_pem_key_matches(const char *cert_pem, const char *key_pem, const char *cert_path,
                         const char *key_path, docq_error *err) {
    BIO *b = pem_bio(cert_pem);
    X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
    EVP_PKEY *k = read_key(key_pem);
    int ok = x && k && X509_check_private_key(x, k) == 1;
    X509_free(x);
    EVP_PKEY_free(k);
    BIO_free(b);
    ERR_clear_error();
    if (!ok)
        return docq_error_set(err, DOCQ_EINVAL,
                              "the private key in %s does not belong to the certificate in %s", key_path,
                              cert_path);
    return DOCQ_OK;
}

void docq_pem_free(char *pem) {
    if (!pem) return;
    explicit_bzero(pem, strlen(pem));
    free(pem);
}
