/* auth.c -- API keys behind a read-write lock. See auth.h. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"

struct docq_auth {
    pthread_rwlock_t lock;  /* Guards keys: read by lookups, written by reloads. */
    docq_apikeys *keys;     /* NULL when no keys file is in use. */
    char *path;             /* Owned copy; NULL when no keys file is in use. */
};

docq_auth *docq_auth_create(const char *path, docq_error *err) {
    docq_auth *a = calloc(1, sizeof(*a));
    if (!a || pthread_rwlock_init(&a->lock, NULL) != 0) {
        free(a);
        return docq_error_set(err, DOCQ_ERR, "out of memory"), NULL;
    }
    if (path && path[0]) {
        a->path = strdup(path);
        a->keys = a->path ? docq_apikeys_load(path, err) : NULL;
        if (!a->path) docq_error_set(err, DOCQ_ERR, "out of memory");
        if (!a->keys) {
            docq_auth_free(a);
            return NULL;
        }
    }
    return a;
}

void docq_auth_free(docq_auth *a) {
    if (!a) return;
    docq_apikeys_free(a->keys);
    free(a->path);
    pthread_rwlock_destroy(&a->lock);
    free(a);
}

int docq_auth_enabled(const docq_auth *a) { return a->path != NULL; }

int docq_auth_reload(docq_auth *a, size_t *count, docq_error *err) {
    *count = 0;
    if (!a->path) return DOCQ_OK;
    docq_apikeys *fresh = docq_apikeys_load(a->path, err);
    if (!fresh) return err ? err->code : DOCQ_ERR;
    *count = docq_apikeys_count(fresh);
    pthread_rwlock_wrlock(&a->lock);
    docq_apikeys *old = a->keys;
    a->keys = fresh;
    pthread_rwlock_unlock(&a->lock);
    docq_apikeys_free(old);
    return DOCQ_OK;
}

int docq_auth_lookup(docq_auth *a, const char *key, size_t len, docq_apikey *out) {
    int rc = DOCQ_ENOTFOUND;
    pthread_rwlock_rdlock(&a->lock);
    const docq_apikey *k = a->keys ? docq_apikeys_find(a->keys, key, len) : NULL;
    if (k) {
        *out = *k;
        rc = DOCQ_OK;
    }
    pthread_rwlock_unlock(&a->lock);
    return rc;
}
