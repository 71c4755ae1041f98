/* apikeys.c -- parse the API keys file and look keys up. See apikeys.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "apikeys.h"

#define MAX_FILE_BYTES (64L * 1024 * 1024)

struct docq_apikeys {
    size_t count;
    docq_apikey *keys; /* Sorted by digest, for bsearch. */
};

int docq_sha256(const void *data, size_t len, unsigned char out[32]) {
    unsigned int n = 0;
    if (EVP_Digest(data, len, out, &n, EVP_sha256(), NULL) != 1 || n != 32) return DOCQ_ERR;
    return DOCQ_OK;
}

static int cmp_digest(const void *a, const void *b) {
    return memcmp(((const docq_apikey *)a)->digest, ((const docq_apikey *)b)->digest, 32);
}

/* One white-space separated field of a line. */
typedef struct field {
    const char *p;
    size_t len;
} field;

/* Split line[0..len) (comment already cut) into at most max fields; returns
 * the number found, or max + 1 when there are more. */
static int split_fields(const char *line, size_t len, field *out, int max) {
    int n = 0;
    size_t i = 0;
    for (;;) {
        while (i < len && (line[i] == ' ' || line[i] == '\t')) i++;
        if (i == len) return n;
        if (n == max) return max + 1;
        out[n].p = line + i;
        while (i < len && line[i] != ' ' && line[i] != '\t') i++;
        out[n].len = (size_t)(line + i - out[n].p);
        n++;
    }
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* Parse a decimal number in [lo, hi] from f. */
static int parse_long(const field *f, long lo, long hi, long *out) {
    long v = 0;
    if (f->len == 0 || f->len > 10) return DOCQ_EINVAL;
    for (size_t i = 0; i < f->len; i++) {
        if (f->p[i] < '0' || f->p[i] > '9') return DOCQ_EINVAL;
        v = v * 10 + (f->p[i] - '0');
    }
    if (v < lo || v > hi) return DOCQ_EINVAL;
    *out = v;
    return DOCQ_OK;
}

/* Parse the fields of line lineno into k. */
static int parse_entry(const field *f, int n, int lineno, docq_apikey *k, docq_error *err) {
    if (n < 2 || n > 4)
        return docq_error_set(err, DOCQ_EINVAL,
                              "line %d: expected <caller id> <sha256 hex> [<limit> [<window seconds>]]",
                              lineno);
    if (f[0].len > DOCQ_CALLER_ID_MAX)
        return docq_error_set(err, DOCQ_EINVAL, "line %d: caller id longer than %d characters", lineno,
                              DOCQ_CALLER_ID_MAX);
    for (size_t i = 0; i < f[0].len; i++)
        if (f[0].p[i] < 0x21 || f[0].p[i] > 0x7e)
            return docq_error_set(err, DOCQ_EINVAL,
                                  "line %d: caller id must be printable ASCII without spaces", lineno);
    k->line = lineno;
    memcpy(k->caller, f[0].p, f[0].len);
    k->caller[f[0].len] = '\0';
    if (f[1].len != 64)
        return docq_error_set(err, DOCQ_EINVAL, "line %d: the key hash must be 64 hex digits (SHA-256)",
                              lineno);
    for (int i = 0; i < 32; i++) {
        int hi = hexval(f[1].p[2 * i]), lo = hexval(f[1].p[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return docq_error_set(err, DOCQ_EINVAL,
                                  "line %d: the key hash must be lowercase hex digits (0-9, a-f)", lineno);
        k->digest[i] = (unsigned char)(hi << 4 | lo);
    }
    k->limit = k->window_s = -1;
    if (n >= 3 && parse_long(&f[2], 0, DOCQ_RATE_LIMIT_MAX, &k->limit) != DOCQ_OK)
        return docq_error_set(err, DOCQ_EINVAL, "line %d: the limit must be an integer from 0 to %ld",
                              lineno, DOCQ_RATE_LIMIT_MAX);
    if (n == 4 && parse_long(&f[3], 1, DOCQ_RATE_WINDOW_MAX_S, &k->window_s) != DOCQ_OK)
        return docq_error_set(err, DOCQ_EINVAL,
                              "line %d: the window must be an integer from 1 to %ld seconds", lineno,
                              DOCQ_RATE_WINDOW_MAX_S);
    return DOCQ_OK;
}

/* Append k to t, growing its array. */
static int append(docq_apikeys *t, size_t *cap, const docq_apikey *k) {
    if (t->count == *cap) {
        size_t ncap = *cap ? *cap * 2 : 16;
        docq_apikey *nk = realloc(t->keys, ncap * sizeof(*nk));
        if (!nk) return DOCQ_ERR;
        t->keys = nk;
        *cap = ncap;
    }
    t->keys[t->count++] = *k;
    return DOCQ_OK;
}

/* Sort by digest and refuse a digest that appears twice. */
static int sort_and_check(docq_apikeys *t, docq_error *err) {
    if (t->count) qsort(t->keys, t->count, sizeof(*t->keys), cmp_digest);
    for (size_t i = 1; i < t->count; i++) {
        int a = t->keys[i - 1].line, b = t->keys[i].line;
        if (memcmp(t->keys[i - 1].digest, t->keys[i].digest, 32) == 0)
            return docq_error_set(err, DOCQ_EINVAL, "line %d: the same key hash as line %d",
                                  a > b ? a : b, a > b ? b : a);
    }
    return DOCQ_OK;
}

docq_apikeys *docq_apikeys_parse(const char *buf, size_t len, docq_error *err) {
    docq_apikeys *t = calloc(1, sizeof(*t));
    size_t cap = 0, pos = 0;
    int lineno = 0;
    if (!t) return docq_error_set(err, DOCQ_ERR, "out of memory"), NULL;
    while (pos < len) {
        const char *line = buf + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - line) : len - pos;
        pos += n + (nl ? 1 : 0);
        lineno++;
        if (n && line[n - 1] == '\r') n--;
        const char *hash = memchr(line, '#', n);
        if (hash) n = (size_t)(hash - line);
        if (memchr(line, '\0', n)) {
            docq_error_set(err, DOCQ_EINVAL, "line %d: holds a NUL byte", lineno);
            goto fail;
        }
        field f[4];
        int nf = split_fields(line, n, f, 4);
        if (nf == 0) continue;
        docq_apikey k;
        if (parse_entry(f, nf, lineno, &k, err) != DOCQ_OK) goto fail;
        if (append(t, &cap, &k) != DOCQ_OK) {
            docq_error_set(err, DOCQ_ERR, "out of memory");
            goto fail;
        }
    }
    if (sort_and_check(t, err) == DOCQ_OK) return t;
fail:
    docq_apikeys_free(t);
    return NULL;
}

docq_apikeys *docq_apikeys_load(const char *path, docq_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return docq_error_set(err, errno == ENOENT ? DOCQ_ENOTFOUND : DOCQ_ERR, "cannot open %s: %s",
                              path, strerror(errno)), NULL;
    char *buf = NULL;
    size_t len = 0, cap = 0;
    docq_apikeys *t = NULL;
    for (;;) {
        if (len == cap) {
            size_t ncap = cap ? cap * 2 : 4096;
            char *nb = ncap <= (size_t)MAX_FILE_BYTES ? realloc(buf, ncap) : NULL;
            if (!nb) {
                docq_error_set(err, DOCQ_ERR, "%s: too large or out of memory", path);
                goto out;
            }
            buf = nb;
            cap = ncap;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0) break;
    }
    if (ferror(f)) {
        docq_error_set(err, DOCQ_ERR, "cannot read %s", path);
        goto out;
    }
    t = docq_apikeys_parse(buf, len, err);
    if (!t && err) {
        docq_error e = *err;
        docq_error_set(err, e.code, "%s: %s", path, e.msg);
    }
out:
    free(buf);
    fclose(f);
    return t;
}

void docq_apikeys_free(docq_apikeys *t) {
    if (!t) return;
    free(t->keys);
    free(t);
}

size_t docq_apikeys_count(const docq_apikeys *t) { return t->count; }

const docq_apikey *docq_apikeys_find(const docq_apikeys *t, const char *key, size_t len) {
    docq_apikey probe;
    if (docq_sha256(key, len, probe.digest) != DOCQ_OK || t->count == 0) return NULL;
    return bsearch(&probe, t->keys, t->count, sizeof(*t->keys), cmp_digest);
}
