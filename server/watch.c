/* watch.c -- WatchStatus streams and the watch index. See watch.h.
 *
 * A watch's batches are a call_stream (call_stream.h), whose lock is the hub's
 * mutex. Its states, as the watch sees them:
 *
 *   CALL_STREAM_IDLE    opening: registered in the index; its cq thread is
 *                  reading the snapshot. Updates of its task are recorded
 *                  in the index but nothing is sent: the call is not ours
 *                  yet (an error is still answered by server.c).
 *   CALL_STREAM_OPEN    every change is offered (offer below): at most one
 *                  SEND_MESSAGE in flight.
 *   CALL_STREAM_ENDING  a status is decided (shutdown, or an error) while a send
 *                  is in flight: it is sent when that send completes.
 *   CALL_STREAM_ENDED   the status is sent, or the call was cancelled: the watch
 *                  is out of the index (watch_ended) and is freed when its
 *                  last batch completes. */
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/byte_buffer.h>
#include <grpc/slice.h>

#include "access.h"
#include "auth.h"
#include "call_stream.h"
#include "caller_counts.h"
#include "codec.h"
#include "log.h"
#include "store.h"
#include "watch.h"

#define INITIAL_BUCKETS 1024
#define SHUTDOWN_DETAILS "server shutting down; reopen the watch"
#define REVOKED_DETAILS "API key revoked (no longer in DOCQ_API_KEYS_FILE); reopen the watch with a valid key"

typedef struct watched_task watched_task;
typedef struct watch watch;

struct watch {
    call_stream s;             /* First: the call's batches (call_stream.h); s.lock is the hub's. */
    watch_hub *hub;
    watched_task *task;          /* Index entry while registered, else NULL. */
    caller_count *quota;         /* The caller's open-watch count while registered, else NULL. */
    char *key;                   /* Owned copy of the API key that opened it, or NULL. */
    size_t key_len;
    watch *prev, *next;          /* Siblings watching the same task. */
    uint64_t after_version;      /* From the request: send only versions above it. */
    uint64_t sent_version;       /* Version of the last message sent (valid once sent_any). */
    uint32_t sent_position;      /* Its queue_position. */
    unsigned sent_any : 1;       /* A message was sent. */
    unsigned sent_terminal : 1;  /* The last message sent held an ending: SUCCESS, FAILURE, CANCELLED. */
};

struct watched_task {
    watched_task *next;          /* Hash chain. */
    docq_task latest;            /* Newest record known; latest.task_id is the key. */
    int known;                   /* latest holds a record. */
    int shard;
    grpc_byte_buffer *packed;    /* latest as a Task message, shared by the sends (each
                                  * sends a copy, which shares its slices); NULL until
                                  * needed and after latest changes. A record with a
                                  * result is packed at once and its result dropped from
                                  * latest: the hub holds one copy of it (hold_result). */
    size_t held;                 /* Bytes of packed, counted in the hub's held_bytes. */
    unsigned over_budget : 1;    /* latest had a result that did not fit the budget: it was
                                  * dropped unpacked, and watches that need it end. */
    watch *watches;              /* Never empty while the entry is in the index. */
};

struct watch_hub {
    const docq_config *cfg;
    pthread_mutex_t lock;        /* Guards everything below, and every watch and entry. */
    watched_task **buckets;
    size_t nbuckets;             /* A power of two. */
    size_t ntasks;               /* Entries in the index. */
    size_t nwatches;             /* Registered watches: the open-watch gauge. */
    size_t high_water;           /* Most watches open since the last memory trim. */
    size_t held_bytes;           /* Bytes of packed messages held by the entries. */
    caller_counts *per_caller;   /* Borrowed: open streams of each caller (caller_counts.h). */
    int shutting_down;           /* New watches are refused. */
    int64_t next_deadline;       /* Unix ms: no watched PENDING task's queue deadline is before
                                  * it (it may be stale: earlier than any); 0: none known. */
};

/* -- The index ----------------------------------------------------------- */

static size_t hash_id(const char *id, size_t len) {
    uint64_t h = 14695981039346656037ULL; /* FNV-1a. */
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)id[i];
        h *= 1099511628211ULL;
    }
    return (size_t)h;
}

static watched_task **find_slot(watch_hub *h, const char *id, size_t len) {
    watched_task **p = &h->buckets[hash_id(id, len) & (h->nbuckets - 1)];
    for (; *p; p = &(*p)->next)
        if (strlen((*p)->latest.task_id) == len && memcmp((*p)->latest.task_id, id, len) == 0) break;
    return p;
}

/* Double the buckets when the index is fuller than one entry per bucket.
 * Failing to grow only makes chains longer. */
static void maybe_grow(watch_hub *h) {
    if (h->ntasks < h->nbuckets) return;
    size_t n = h->nbuckets * 2;
    watched_task **b = calloc(n, sizeof(*b));
    if (!b) return;
    for (size_t i = 0; i < h->nbuckets; i++) {
        for (watched_task *e = h->buckets[i], *next; e; e = next) {
            next = e->next;
            size_t k = hash_id(e->latest.task_id, strlen(e->latest.task_id)) & (n - 1);
            e->next = b[k];
            b[k] = e;
        }
    }
    free(h->buckets);
    h->buckets = b;
    h->nbuckets = n;
}

/* Count w against caller's open watches and add it to the entry of task_id,
 * creating it. Returns DOCQ_OK, DOCQ_ELIMITED when the caller has
 * DOCQ_MAX_WATCHES_PER_CALLER watches open, or DOCQ_ERR (out of memory). */
static int register_watch(watch_hub *h, watch *w, const docq_caller *caller, const char *task_id) {
    size_t len = strlen(task_id);
    int rc = caller_counts_acquire(h->per_caller, caller->id, h->cfg->max_watches_per_caller, &w->quota);
    if (rc != DOCQ_OK) return rc;
    watched_task **slot = find_slot(h, task_id, len);
    watched_task *e = *slot;
    if (!e) {
        e = calloc(1, sizeof(*e));
        if (!e) {
            caller_counts_release(h->per_caller, w->quota);
            w->quota = NULL;
            return DOCQ_ERR;
        }
        memcpy(e->latest.task_id, task_id, len + 1);
        e->shard = docq_task_id_shard(task_id);
        *slot = e;
        h->ntasks++;
        maybe_grow(h);
    }
    w->task = e;
    w->prev = NULL;
    w->next = e->watches;
    if (e->watches) e->watches->prev = w;
    e->watches = w;
    if (++h->nwatches > h->high_water) h->high_water = h->nwatches;
    return DOCQ_OK;
}

/* Destroy e's packed message, if any, and stop counting it. */
static void drop_packed(watch_hub *h, watched_task *e) {
    if (!e->packed) return;
    grpc_byte_buffer_destroy(e->packed);
    e->packed = NULL;
    h->held_bytes -= e->held;
    e->held = 0;
}

/* Pack e's record into e->packed and count it. With budget (the held bytes
 * it may bring the hub to; 0: any), leave it unpacked when it would not fit.
 * Returns DOCQ_OK, or DOCQ_ELIMITED (past the budget) or DOCQ_ERR (out of
 * memory) with e->packed NULL. */
static int pack(watch_hub *h, watched_task *e, size_t budget) {
    docq_task_msg m;
    docq_codec_task_msg(&e->latest, &m);
    size_t need = protobuf_c_message_get_packed_size(&m.msg.base);
    if (budget && h->held_bytes + need > budget) return DOCQ_ELIMITED;
    e->packed = docq_codec_pack(&m.msg.base);
    if (!e->packed) return DOCQ_ERR;
    e->held = need;
    h->held_bytes += need;
    return DOCQ_OK;
}

/* e's new record carries a result: pack it now, within
 * DOCQ_WATCH_RESULT_BYTES, and drop the result from latest, so that the
 * message is the one copy held (nothing repacks a record with a result:
 * only PENDING records change in place). When it does not fit, the entry is
 * marked over budget and its watches end (offer). */
static void hold_result(watch_hub *h, watched_task *e) {
    e->over_budget = pack(h, e, (size_t)h->cfg->watch_result_bytes) != DOCQ_OK;
    free(e->latest.result);
    e->latest.result = NULL;
    e->latest.result_len = 0;
}

/* Take w out of the index (no more updates reach it); the entry goes with
 * its last watch. */
static void unregister_watch(watch_hub *h, watch *w) {
    watched_task *e = w->task;
    if (!e) return;
    caller_counts_release(h->per_caller, w->quota);
    w->quota = NULL;
    if (w->prev) w->prev->next = w->next;
    else e->watches = w->next;
    if (w->next) w->next->prev = w->prev;
    w->task = NULL;
    w->prev = w->next = NULL;
    h->nwatches--;
    if (e->watches) return;
    watched_task **slot = find_slot(h, e->latest.task_id, strlen(e->latest.task_id));
    *slot = e->next;
    h->ntasks--;
    drop_packed(h, e);
    docq_task_clear(&e->latest);
    free(e);
}

/* Merge t into e: a higher version replaces the record; the same version
 * with another queue position updates the position; the same version read
 * again while e's result did not fit the budget is tried again (memory may
 * have been freed since). t is moved out when taken. Returns 1 when e
 * changed. */
static int merge(watch_hub *h, watched_task *e, docq_task *t) {
    if (e->known && t->version < e->latest.version) return 0;
    if (e->known && t->version == e->latest.version && !(e->over_budget && t->result_len)) {
        if (t->queue_position == e->latest.queue_position || e->latest.state != DOCQ_STATE_PENDING)
            return 0;
        e->latest.queue_position = t->queue_position;
        drop_packed(h, e);
        return 1;
    }
    drop_packed(h, e);
    docq_task_clear(&e->latest);
    e->latest = *t;
    memset(t, 0, sizeof(*t));
    e->known = 1;
    e->over_budget = 0;
    if (e->latest.result_len) hold_result(h, e);
    if (e->latest.state == DOCQ_STATE_PENDING && e->latest.deadline_ms > 0 &&
        (h->next_deadline == 0 || e->latest.deadline_ms < h->next_deadline))
        h->next_deadline = e->latest.deadline_ms;
    return 1;
}

/* -- Sending (all with the hub's mutex held) --------------------------------- */

/* Send what the watch has not seen yet of its task's record, if anything
 * and if no send is in flight; end it with OK once a terminal state has gone
 * out (or the client had already seen it, by after_version). */
static void offer(watch *w) {
    if (w->s.state != CALL_STREAM_OPEN || !call_stream_sendable(&w->s) || !w->task || !w->task->known) return;
    watched_task *e = w->task;
    const docq_task *t = &e->latest;
    int newer;
    if (!w->sent_any)
        newer = w->after_version == 0 || t->version > w->after_version;
    else
        newer = t->version > w->sent_version ||
                (t->version == w->sent_version && t->queue_position != w->sent_position);
    if (!newer) {
        if (docq_task_state_terminal(t->state) && (w->sent_terminal || !w->sent_any))
            call_stream_end(&w->s, GRPC_STATUS_OK, "");
        return;
    }
    if (e->over_budget) {
        call_stream_end(&w->s, GRPC_STATUS_RESOURCE_EXHAUSTED,
                   "the task's result does not fit in the memory this server holds for watched results "
                   "now (DOCQ_WATCH_RESULT_BYTES): read the task with GetStatus");
        return;
    }
    if (!e->packed) pack(w->hub, e, 0);
    grpc_byte_buffer *msg = e->packed ? grpc_byte_buffer_copy(e->packed) : NULL;
    if (!msg) {
        call_stream_end(&w->s, GRPC_STATUS_INTERNAL, "out of memory");
        return;
    }
    /* Recorded first: a failed send ends the watch, which may free e. */
    w->sent_any = 1;
    w->sent_version = t->version;
    w->sent_position = t->queue_position;
    w->sent_terminal = docq_task_state_terminal(t->state);
    call_stream_send(&w->s, msg);
}

/* Offer every open watch of e what is new. Sending may end a watch and
 * unregister it (and free e with the last one), so the next sibling is
 * taken first and e is not touched after the last offer. */
static void offer_all(watched_task *e) {
    for (watch *w = e->watches, *next; w; w = next) {
        next = w->next;
        offer(w);
    }
}

/* -- The watch's stream callbacks (hub's mutex held, but release) ----------- */

static void watch_sent(call_stream *s) { offer((watch *)s); }

/* Ended (status sent, or cancelled): out of the index, so no update reaches
 * it any more. Logged under the mutex so that the counts appear in order. */
static void watch_ended(call_stream *s) {
    watch *w = (watch *)s;
    unregister_watch(w->hub, w);
    docq_log_debug("watch %s (%zu open)", s->cancelled ? "cancelled" : "closed", w->hub->nwatches);
}

/* Free w and what it owns. */
static void watch_free(watch *w) {
    free(w->key);
    free(w);
}

static void watch_release(call_stream *s) { watch_free((watch *)s); }

static const call_stream_ops watch_ops = {.sent = watch_sent, .ended = watch_ended, .release = watch_release};

/* -- The hub --------------------------------------------------------------- */

watch_hub *watch_hub_create(const docq_config *cfg, caller_counts *per_caller, docq_error *err) {
    watch_hub *h = calloc(1, sizeof(*h));
    if (h) h->buckets = calloc(INITIAL_BUCKETS, sizeof(*h->buckets));
    if (!h || !h->buckets) {
        if (h) free(h->buckets);
        free(h);
        docq_error_set(err, DOCQ_ERR, "out of memory");
        return NULL;
    }
    h->cfg = cfg;
    h->per_caller = per_caller;
    h->nbuckets = INITIAL_BUCKETS;
    pthread_mutex_init(&h->lock, NULL);
    return h;
}

/* Fill out with the refusal of a watch that could not be registered
 * (register_watch's rc; DOCQ_EUNAVAIL: shutting down). */
static void refuse_watch(const watch_hub *h, const docq_caller *caller, int rc, rpc_reply *out) {
    if (rc == DOCQ_EUNAVAIL)
        rpc_reply_error(out, GRPC_STATUS_UNAVAILABLE, SHUTDOWN_DETAILS);
    else if (rc == DOCQ_ELIMITED)
        rpc_reply_error(out, GRPC_STATUS_RESOURCE_EXHAUSTED, STREAM_LIMIT_DETAILS,
                        h->cfg->max_watches_per_caller, caller->id);
    else
        rpc_reply_error(out, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
}

/* A new watch for a call by API key (key_len bytes; NULL: none), or NULL
 * when out of memory. */
static watch *watch_new(const char *key, size_t key_len) {
    watch *w = calloc(1, sizeof(*w));
    if (w && key) {
        w->key = malloc(key_len ? key_len : 1);
        if (w->key) memcpy(w->key, key, key_len);
        w->key_len = key_len;
    }
    if (w && key && !w->key) {
        free(w);
        w = NULL;
    }
    return w;
}

int watch_open(watch_hub *h, docq_redis *redis, grpc_call *call, const docq_caller *caller, const char *key,
               size_t key_len, const char *task_id, uint64_t after_version, rpc_metrics *metrics,
               rpc_reply *out) {
    docq_error err = {0};
    docq_task snap = {0};
    watch *w = watch_new(key, key_len);
    if (!w) {
        rpc_reply_error(out, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
        return DOCQ_ERR;
    }
    call_stream_init(&w->s, &h->lock, &watch_ops, metrics);
    w->hub = h;
    w->after_version = after_version;

    /* Register first, then read: a change published in between is caught. */
    pthread_mutex_lock(&h->lock);
    int rc = h->shutting_down ? DOCQ_EUNAVAIL : register_watch(h, w, caller, task_id);
    pthread_mutex_unlock(&h->lock);
    if (rc != DOCQ_OK) {
        watch_free(w);
        refuse_watch(h, caller, rc, out);
        return DOCQ_ERR;
    }
    rc = docq_store_get(redis, h->cfg->key_prefix, h->cfg->group, task_id, h->cfg->result_ttl_s, &snap, &err);
    /* Another caller's task is answered as an unknown one, before anything
     * of it is sent. */
    if (rc == DOCQ_OK && !access_task_visible(caller, &snap)) rc = DOCQ_ENOTFOUND;

    pthread_mutex_lock(&h->lock);
    if (rc == DOCQ_OK && !h->shutting_down && call_stream_start(&w->s, call) != DOCQ_OK) rc = DOCQ_ERR;
    if (rc != DOCQ_OK || h->shutting_down) {
        unregister_watch(h, w);
        pthread_mutex_unlock(&h->lock);
        watch_free(w);
        docq_task_clear(&snap);
        if (rc == DOCQ_ENOTFOUND)
            access_reply_not_found(out, task_id);
        else if (rc == DOCQ_OK)
            rpc_reply_error(out, GRPC_STATUS_UNAVAILABLE, SHUTDOWN_DETAILS);
        else if (err.code == DOCQ_EUNAVAIL || err.code == DOCQ_ERR)
            rpc_reply_store_error(out, &err);
        else
            rpc_reply_error(out, GRPC_STATUS_INTERNAL, "cannot start the watch");
        return DOCQ_ERR;
    }
    watched_task *e = w->task;
    docq_log(DOCQ_LOG_DEBUG, task_id, "watch opened after version %llu (%zu open)",
             (unsigned long long)after_version, h->nwatches);
    /* The snapshot may be older than an update the subscriber recorded
     * meanwhile (merge keeps the newer), and a fresher position is news for
     * the other watches of the task too. */
    if (merge(h, e, &snap)) offer_all(e);
    else offer(w);
    pthread_mutex_unlock(&h->lock);
    docq_task_clear(&snap);
    return DOCQ_OK;
}

void watch_hub_shutdown(watch_hub *h) {
    pthread_mutex_lock(&h->lock);
    h->shutting_down = 1;
    size_t ended = 0;
    for (size_t i = 0; i < h->nbuckets; i++) {
        /* Ending a watch unregisters it and may free its entry: walk with
         * the next pointers taken first. */
        for (watched_task *e = h->buckets[i], *enext; e; e = enext) {
            enext = e->next;
            for (watch *w = e->watches, *wnext; w; w = wnext) {
                wnext = w->next;
                /* An opening watch is answered by its own thread. */
                if (w->s.state == CALL_STREAM_OPEN) {
                    call_stream_end(&w->s, GRPC_STATUS_UNAVAILABLE, SHUTDOWN_DETAILS);
                    ended++;
                }
            }
        }
    }
    pthread_mutex_unlock(&h->lock);
    docq_log_debug("shutdown: ending %zu open watches with UNAVAILABLE", ended);
}

void watch_hub_free(watch_hub *h) {
    if (!h) return;
    if (h->nwatches) docq_log_error("watch hub freed with %zu watches open", h->nwatches);
    for (size_t i = 0; i < h->nbuckets; i++) {
        for (watched_task *e = h->buckets[i], *next; e; e = next) {
            next = e->next;
            drop_packed(h, e);
            docq_task_clear(&e->latest);
            free(e);
        }
    }
    free(h->buckets);
    pthread_mutex_destroy(&h->lock);
    free(h);
}

size_t watch_hub_held_bytes(watch_hub *h) {
    pthread_mutex_lock(&h->lock);
    size_t n = h->held_bytes;
    pthread_mutex_unlock(&h->lock);
    return n;
}

size_t watch_hub_revoke(watch_hub *h, docq_auth *auth) {
    docq_apikey k;
    size_t ended = 0;
    pthread_mutex_lock(&h->lock);
    for (size_t i = 0; i < h->nbuckets; i++) {
        /* Ending a watch may free its entry: next pointers are taken first. */
        for (watched_task *e = h->buckets[i], *enext; e; e = enext) {
            enext = e->next;
            for (watch *w = e->watches, *wnext; w; w = wnext) {
                wnext = w->next;
                if (w->s.state != CALL_STREAM_OPEN || !w->key || docq_auth_lookup(auth, w->key, w->key_len, &k) == DOCQ_OK)
                    continue;
                call_stream_end(&w->s, GRPC_STATUS_UNAUTHENTICATED, REVOKED_DETAILS);
                ended++;
            }
        }
    }
    pthread_mutex_unlock(&h->lock);
    return ended;
}

size_t watch_hub_open_count(watch_hub *h) {
    pthread_mutex_lock(&h->lock);
    size_t n = h->nwatches;
    pthread_mutex_unlock(&h->lock);
    return n;
}

int watch_hub_trim_due(watch_hub *h, size_t min_closed, size_t *peak, size_t *open) {
    pthread_mutex_lock(&h->lock);
    *peak = h->high_water;
    *open = h->nwatches;
    size_t closed = h->high_water - h->nwatches;
    int due = (closed >= min_closed && h->nwatches <= h->high_water / 2) ||
              (h->nwatches == 0 && closed >= min_closed / 8);
    if (due) h->high_water = h->nwatches;
    pthread_mutex_unlock(&h->lock);
    return due;
}

int watch_hub_watching(watch_hub *h, const char *id, size_t len) {
    pthread_mutex_lock(&h->lock);
    int found = *find_slot(h, id, len) != NULL;
    pthread_mutex_unlock(&h->lock);
    return found;
}

void watch_hub_update(watch_hub *h, docq_task *t) {
    pthread_mutex_lock(&h->lock);
    watched_task *e = *find_slot(h, t->task_id, strlen(t->task_id));
    if (e && merge(h, e, t)) offer_all(e);
    pthread_mutex_unlock(&h->lock);
}

void watch_hub_gone(watch_hub *h, const char *task_id) {
    pthread_mutex_lock(&h->lock);
    watched_task *e = *find_slot(h, task_id, strlen(task_id));
    for (watch *w = e ? e->watches : NULL, *next; w; w = next) {
        next = w->next;
        if (w->s.state == CALL_STREAM_OPEN)
            call_stream_end(&w->s, GRPC_STATUS_NOT_FOUND, "the task no longer exists (expired, or lost by Redis)");
    }
    pthread_mutex_unlock(&h->lock);
}

char (*watch_hub_ids(watch_hub *h, size_t *n))[DOCQ_TASK_ID_MAX] {
    pthread_mutex_lock(&h->lock);
    char(*ids)[DOCQ_TASK_ID_MAX] = h->ntasks ? malloc(h->ntasks * sizeof(*ids)) : NULL;
    *n = 0;
    for (size_t i = 0; ids && i < h->nbuckets; i++)
        for (watched_task *e = h->buckets[i]; e; e = e->next) memcpy(ids[(*n)++], e->latest.task_id, DOCQ_TASK_ID_MAX);
    pthread_mutex_unlock(&h->lock);
    return ids;
}

int watch_hub_pending_shards(watch_hub *h, unsigned char *need, int nshards) {
    int count = 0;
    memset(need, 0, (size_t)nshards);
    pthread_mutex_lock(&h->lock);
    for (size_t i = 0; i < h->nbuckets; i++) {
        for (watched_task *e = h->buckets[i]; e; e = e->next) {
            if (e->known && e->latest.state == DOCQ_STATE_PENDING && e->shard < nshards && !need[e->shard]) {
                need[e->shard] = 1;
                count++;
            }
        }
    }
    pthread_mutex_unlock(&h->lock);
    return count;
}

void watch_hub_positions(watch_hub *h, const int64_t *read, int nshards) {
    pthread_mutex_lock(&h->lock);
    for (size_t i = 0; i < h->nbuckets; i++) {
        for (watched_task *e = h->buckets[i], *next; e; e = next) {
            next = e->next; /* offer_all may free e. */
            if (!e->known || e->latest.state != DOCQ_STATE_PENDING || e->shard >= nshards ||
                read[e->shard] < -1)
                continue;
            uint32_t pos = docq_queue_position(e->latest.seq, read[e->shard]);
            if (pos == e->latest.queue_position) continue;
            e->latest.queue_position = pos;
            drop_packed(h, e);
            offer_all(e);
        }
    }
    pthread_mutex_unlock(&h->lock);
}

int64_t watch_hub_next_deadline(watch_hub *h) {
    pthread_mutex_lock(&h->lock);
    int64_t d = h->next_deadline;
    pthread_mutex_unlock(&h->lock);
    return d;
}

char (*watch_hub_expired(watch_hub *h, int64_t now_ms, size_t *n))[DOCQ_TASK_ID_MAX] {
    char(*ids)[DOCQ_TASK_ID_MAX] = NULL;
    size_t cap = 0;
    *n = 0;
    pthread_mutex_lock(&h->lock);
    h->next_deadline = 0;
    for (size_t i = 0; i < h->nbuckets; i++) {
        for (watched_task *e = h->buckets[i]; e; e = e->next) {
            int64_t d = e->latest.deadline_ms;
            if (!e->known || e->latest.state != DOCQ_STATE_PENDING || d <= 0) continue;
            if (h->next_deadline == 0 || d < h->next_deadline) h->next_deadline = d;
            if (d > now_ms) continue;
            if (*n == cap) {
                size_t ncap = cap ? cap * 2 : 16;
                void *p = realloc(ids, ncap * sizeof(*ids));
                if (!p) continue; /* Out of memory: this one waits for the next round. */
                ids = p;
                cap = ncap;
            }
            memcpy(ids[(*n)++], e->latest.task_id, DOCQ_TASK_ID_MAX);
        }
    }
    pthread_mutex_unlock(&h->lock);
    return ids;
}
