/* caller_counts.c -- per-caller counts (a small chained hash table). See caller_counts.h. */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "caller_counts.h"

#define INITIAL_BUCKETS 64

struct caller_count {
    caller_count *next;  /* Hash chain. */
    long n;              /* Things the caller holds; the entry goes when it reaches 0. */
    size_t hash;
    char id[];           /* The caller id, NUL-terminated. */
};

struct caller_counts {
    pthread_mutex_t lock;  /* Guards everything below and every count. */
    caller_count **buckets;
    size_t nbuckets;     /* A power of two. */
    size_t entries;
};

static size_t hash_id(const char *id) {
    uint64_t h = 14695981039346656037ULL; /* FNV-1a. */
    for (const unsigned char *p = (const unsigned char *)id; *p; p++) {
        h ^= *p;
        h *= 1099511628211ULL;
    }
    return (size_t)h;
}

caller_counts *caller_counts_create(void) {
    caller_counts *t = calloc(1, sizeof(*t));
    if (t) t->buckets = calloc(INITIAL_BUCKETS, sizeof(*t->buckets));
    if (!t || !t->buckets) {
        free(t);
        return NULL;
    }
    t->nbuckets = INITIAL_BUCKETS;
    pthread_mutex_init(&t->lock, NULL);
    return t;
}

void caller_counts_free(caller_counts *t) {
    if (!t) return;
    for (size_t i = 0; i < t->nbuckets; i++) {
        for (caller_count *c = t->buckets[i], *next; c; c = next) {
            next = c->next;
            free(c);
        }
    }
    free(t->buckets);
    pthread_mutex_destroy(&t->lock);
    free(t);
}

/* The slot holding id's entry, or the empty slot at the end of its chain. */
static caller_count **find_slot(const caller_counts *t, const char *id, size_t hash) {
    caller_count **p = &t->buckets[hash & (t->nbuckets - 1)];
    for (; *p; p = &(*p)->next)
        if ((*p)->hash == hash && strcmp((*p)->id, id) == 0) break;
    return p;
}

/* Double the buckets when there are more entries than buckets; failing to
 * grow only makes chains longer. */
static void maybe_grow(caller_counts *t) {
    if (t->entries <= t->nbuckets) return;
    size_t n = t->nbuckets * 2;
    caller_count **b = calloc(n, sizeof(*b));
    if (!b) return;
    for (size_t i = 0; i < t->nbuckets; i++) {
        for (caller_count *c = t->buckets[i], *next; c; c = next) {
            next = c->next;
            c->next = b[c->hash & (n - 1)];
            b[c->hash & (n - 1)] = c;
        }
    }
    free(t->buckets);
    t->buckets = b;
    t->nbuckets = n;
}

/* caller_counts_acquire with t's lock held. */
static int acquire_locked(caller_counts *t, const char *id, long max, caller_count **out) {
    size_t hash = hash_id(id);
    caller_count **slot = find_slot(t, id, hash);
    caller_count *c = *slot;
    if (c && max > 0 && c->n >= max) return DOCQ_ELIMITED;
    if (!c) {
        size_t len = strlen(id);
        c = calloc(1, sizeof(*c) + len + 1);
        if (!c) return DOCQ_ERR;
        memcpy(c->id, id, len + 1);
        c->hash = hash;
        *slot = c;
        t->entries++;
        maybe_grow(t);
    }
    c->n++;
    *out = c;
    return DOCQ_OK;
}

int caller_counts_acquire(caller_counts *t, const char *id, long max, caller_count **out) {
    pthread_mutex_lock(&t->lock);
    int rc = acquire_locked(t, id, max, out);
    pthread_mutex_unlock(&t->lock);
    return rc;
}

void caller_counts_release(caller_counts *t, caller_count *c) {
    if (!c) return;
    pthread_mutex_lock(&t->lock);
    if (--c->n == 0) {
        caller_count **slot = find_slot(t, c->id, c->hash);
        *slot = c->next;
        t->entries--;
        free(c);
    }
    pthread_mutex_unlock(&t->lock);
}

long caller_counts_get(caller_counts *t, const char *id) {
    pthread_mutex_lock(&t->lock);
    caller_count *c = *find_slot(t, id, hash_id(id));
    long n = c ? c->n : 0;
    pthread_mutex_unlock(&t->lock);
    return n;
}

void stream_hold_release(stream_hold *h) {
    if (!h || !h->count) return;
    caller_counts_release(h->table, h->count);
    h->count = NULL;
}
