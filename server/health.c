/* health.c -- the gRPC health status and its watchers. See health.h. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "call_stream.h"
#include "codec.h"
#include "grpc/health/v1/health.pb-c.h"
#include "health.h"
#include "log.h"
#include "redis.h"
#include "shape.h"

#define SERVING GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING
#define NOT_SERVING GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING
#define SERVICE_UNKNOWN GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVICE_UNKNOWN
#define SHUTDOWN_DETAILS "server shutting down"

struct docq_health {
    const docq_config *cfg;
    docq_redis *redis;       /* The pinger's own connection. */
    call_stream_group watches;    /* Open Watch streams; its lock guards everything below. */
    int serving;             /* The last PING was answered, and not shutting down. */
    int stopping;            /* docq_health_stop_serving ran: NOT_SERVING for good. */
    pthread_t tid;
    int started;             /* The pinger thread runs. */
    int stop_pipe[2];        /* Written once by docq_health_free; the pinger polls the read end. */
    int shape_seen;          /* The shape matched once: a conflict after that is logged, not
                                fatal (pinger only, as conflict_logged). */
    int conflict_logged;     /* The current conflict was logged. */
    docq_error refused;      /* A conflict with the recorded shape (shape.h); set once, before
                                SIGTERM is raised, and read by main after sigwait. */
};

/* One Watch stream. */
typedef struct health_watch {
    call_stream s;         /* Its batches; s.lock is the health lock. */
    docq_health *h;
    int known;               /* The service is one of ours (else SERVICE_UNKNOWN). */
    int sent;                /* The last status sent, or -1 before the first. */
    stream_hold hold;        /* Its place in its caller's open streams. */
} health_watch;

grpc_byte_buffer *docq_health_pack(int status) {
    Grpc__Health__V1__HealthCheckResponse resp = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
    resp.status = (Grpc__Health__V1__HealthCheckResponse__ServingStatus)status;
    return docq_codec_pack(&resp.base);
}

static int known_service(const char *service) {
    return service[0] == '\0' || strcmp(service, "docq.v1.DocQueue") == 0;
}

/* Send w the status it has not seen yet, if it can send now (lock held).
 * Otherwise its send in flight completes first and this runs again. */
static void offer(health_watch *w) {
    if (!call_stream_sendable(&w->s)) return;
    int status = !w->known ? SERVICE_UNKNOWN : w->h->serving ? SERVING : NOT_SERVING;
    if (status == w->sent) return;
    grpc_byte_buffer *msg = docq_health_pack(status);
    if (!msg) {
        call_stream_end(&w->s, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    if (call_stream_send(&w->s, msg) == DOCQ_OK) w->sent = status;
}

static void watch_sent(call_stream *s) { offer((health_watch *)s); }

static void watch_release(call_stream *s) {
    stream_hold_release(&((health_watch *)s)->hold);
    free(s);
}

static const call_stream_ops watch_ops = {.sent = watch_sent, .release = watch_release};

/* Offer every watch the current status (lock held). Offering may end a
 * watch and take it out of the group: take the next first. */
static void offer_all(docq_health *h) {
    for (call_stream *s = h->watches.head, *next; s; s = next) {
        next = s->gnext;
        offer((health_watch *)s);
    }
}

/* Record what the last PING said: a change is logged and pushed. */
static void set_serving(docq_health *h, int serving, const char *why) {
    pthread_mutex_lock(&h->watches.lock);
    if (!h->stopping && h->serving != serving) {
        h->serving = serving;
        if (serving) docq_log_info("health: SERVING (Redis answers)");
        else docq_log_warn("health: NOT_SERVING: %s", why);
        offer_all(h);
    }
    pthread_mutex_unlock(&h->watches.lock);
}

/* Record this server's shape, or check it against the one recorded, after
 * each PING Redis answers (shape.h). The first conflict stops the server
 * (SIGTERM, which main takes; docq_health_refused says why); a later one
 * (another server recorded its shape after Redis lost its data) is logged
 * once. */
static void check_shape(docq_health *h) {
    docq_shape shape = {h->cfg->key_prefix, h->cfg->shards, h->cfg->group};
    docq_error err = {0};
    int rc = docq_shape_check(h->redis, &shape, 1, &err);
    if (rc != DOCQ_ECONFLICT) {
        if (rc == DOCQ_OK) h->shape_seen = 1, h->conflict_logged = 0;
        return;
    }
    if (h->shape_seen) {
        if (!h->conflict_logged) docq_log_error("deployment shape: %s", err.msg);
        h->conflict_logged = 1;
        return;
    }
    pthread_mutex_lock(&h->watches.lock);
    h->refused = err;
    pthread_mutex_unlock(&h->watches.lock);
    if (h->started) kill(getpid(), SIGTERM);
}

/* PING Redis and record the answer; check the shape once it answers. */
static void ping(docq_health *h) {
    docq_error err = {0};
    const char *argv[] = {"PING"};
    redisReply *rep = docq_redis_command(h->redis, 1, argv, NULL, &err);
    int ok = rep && rep->type == REDIS_REPLY_STATUS && strcmp(rep->str, "PONG") == 0;
    if (rep && !ok) docq_error_set(&err, DOCQ_ERR, "unexpected answer to PING");
    if (rep) freeReplyObject(rep);
    if (ok && !docq_health_refused(h, NULL)) check_shape(h);
    set_serving(h, ok && !docq_health_refused(h, NULL), err.msg);
}

static void *pinger(void *arg) {
    docq_health *h = arg;
    for (;;) {
        struct pollfd p = {h->stop_pipe[0], POLLIN, 0};
        int n = poll(&p, 1, (int)h->cfg->health_interval_ms);
        if (n > 0 || (n < 0 && errno != EINTR)) break;
        ping(h);
    }
    return NULL;
}

docq_health *docq_health_create(const docq_config *cfg, docq_error *err) {
    docq_health *h = calloc(1, sizeof(*h));
    if (!h) return docq_error_set(err, DOCQ_ERR, "out of memory"), NULL;
    h->cfg = cfg;
    h->stop_pipe[0] = h->stop_pipe[1] = -1;
    call_stream_group_init(&h->watches);
    h->redis = docq_redis_create(&cfg->redis, cfg->redis_timeout_ms);
    if (!h->redis || pipe2(h->stop_pipe, O_CLOEXEC) != 0) {
        docq_error_set(err, DOCQ_ERR, "cannot set up the health status: %s", h->redis ? strerror(errno) : "out of memory");
        docq_health_free(h);
        return NULL;
    }
    return h;
}

int docq_health_refused(docq_health *h, docq_error *why) {
    pthread_mutex_lock(&h->watches.lock);
    int refused = h->refused.code != DOCQ_OK;
    if (refused && why) *why = h->refused;
    pthread_mutex_unlock(&h->watches.lock);
    return refused;
}

int docq_health_start(docq_health *h, docq_error *err) {
    ping(h);
    if (docq_health_refused(h, err)) return DOCQ_ECONFLICT;
    if (!docq_health_serving(h)) docq_log_warn("health: NOT_SERVING until Redis answers");
    if (pthread_create(&h->tid, NULL, pinger, h) != 0)
        return docq_error_set(err, DOCQ_ERR, "cannot start the health thread");
    h->started = 1;
    return DOCQ_OK;
}

int docq_health_serving(docq_health *h) {
    pthread_mutex_lock(&h->watches.lock);
    int serving = h->serving;
    pthread_mutex_unlock(&h->watches.lock);
    return serving;
}

int docq_health_check(docq_health *h, const char *service, int *serving) {
    if (!known_service(service)) return DOCQ_ENOTFOUND;
    *serving = docq_health_serving(h);
    return DOCQ_OK;
}

int docq_health_watch(docq_health *h, grpc_call *call, const char *service, const stream_hold *hold,
                      rpc_metrics *m, rpc_reply *out) {
    health_watch *w = calloc(1, sizeof(*w));
    if (!w) {
        rpc_reply_error(out, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
        return DOCQ_ERR;
    }
    w->h = h;
    w->known = known_service(service);
    w->sent = -1;
    w->hold = *hold;
    call_stream_init(&w->s, &h->watches.lock, &watch_ops, m);
    pthread_mutex_lock(&h->watches.lock);
    int rc = h->watches.closed ? DOCQ_EUNAVAIL : call_stream_start(&w->s, call);
    if (rc == DOCQ_OK) {
        call_stream_group_add(&h->watches, &w->s);
        offer(w);
    }
    pthread_mutex_unlock(&h->watches.lock);
    if (rc == DOCQ_OK) return DOCQ_OK;
    free(w);
    if (rc == DOCQ_EUNAVAIL) rpc_reply_error(out, GRPC_STATUS_UNAVAILABLE, SHUTDOWN_DETAILS);
    else rpc_reply_error(out, GRPC_STATUS_INTERNAL, "cannot start the watch");
    return DOCQ_ERR;
}

void docq_health_stop_serving(docq_health *h) {
    pthread_mutex_lock(&h->watches.lock);
    if (!h->stopping) {
        h->stopping = 1;
        h->serving = 0;
        docq_log_info("health: NOT_SERVING (shutting down; %zu health watches told)", h->watches.count);
        offer_all(h);
    }
    pthread_mutex_unlock(&h->watches.lock);
}

void docq_health_end_watches(docq_health *h) { call_stream_group_close(&h->watches, GRPC_STATUS_UNAVAILABLE, SHUTDOWN_DETAILS); }

void docq_health_free(docq_health *h) {
    if (!h) return;
    if (h->started) {
        char b = 1;
        while (write(h->stop_pipe[1], &b, 1) < 0 && errno == EINTR) {
        }
        pthread_join(h->tid, NULL);
    }
    docq_redis_free(h->redis);
    if (h->stop_pipe[0] >= 0) close(h->stop_pipe[0]);
    if (h->stop_pipe[1] >= 0) close(h->stop_pipe[1]);
    call_stream_group_destroy(&h->watches);
    free(h);
}
