/* observe.c -- the worker's HTTP endpoint and queue gauges. See observe.h. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "http_endpoint.h"
#include "log.h"
#include "observe.h"
#include "redis.h"
#include "store.h"

#define KEY_LEN 96

struct worker_observer {
    const docq_config *cfg;
    worker_metrics *m;
    docq_http_endpoint *http;   /* NULL when off. */
    docq_redis *redis;          /* The refresher's own connection. */
    pthread_t tid;
    int started;                /* The refresher thread runs. */
    int stop_pipe[2];           /* Written once by worker_observer_stop. */
};

static void serve_http(const char *path, docq_http_response *out, void *ud) {
    worker_observer *o = ud;
    if (strcmp(path, "/metrics") == 0) {
        out->content_type = "text/plain; version=0.0.4; charset=utf-8";
        worker_metrics_write(o->m, &out->body);
    } else if (strcmp(path, "/healthz") == 0) {
        docq_buf_printf(&out->body, "ok\n");
    } else if (strcmp(path, "/readyz") == 0) {
        int ready = docq_gauge_get(&o->m->ready) == 1;
        out->status = ready ? 200 : 503;
        docq_buf_printf(&out->body, "%s\n", ready ? "ready" : "not ready: Redis unusable or the group not joined");
    } else {
        out->status = 404;
        docq_buf_printf(&out->body, "not found: try /metrics, /healthz or /readyz\n");
    }
}

/* The lag of group in an XINFO GROUPS reply (RESP2: one flat array of field
 * and value per group) into *lag. Returns DOCQ_OK, or DOCQ_ENOTFOUND when
 * the group is not there or Redis cannot tell its lag (nil). */
static int group_lag(const redisReply *groups, const char *group, long long *lag) {
    for (size_t g = 0; groups->type == REDIS_REPLY_ARRAY && g < groups->elements; g++) {
        const redisReply *f = groups->element[g];
        const redisReply *name = NULL, *value = NULL;
        for (size_t i = 0; f->type == REDIS_REPLY_ARRAY && i + 1 < f->elements; i += 2) {
            const redisReply *k = f->element[i];
            if (k->type != REDIS_REPLY_STRING) continue;
            if (strcmp(k->str, "name") == 0) name = f->element[i + 1];
            else if (strcmp(k->str, "lag") == 0) value = f->element[i + 1];
        }
        if (!name || name->type != REDIS_REPLY_STRING || strcmp(name->str, group) != 0) continue;
        if (!value || value->type != REDIS_REPLY_INTEGER) return DOCQ_ENOTFOUND;
        *lag = value->integer;
        return DOCQ_OK;
    }
    return DOCQ_ENOTFOUND;
}

/* Add shard's XLEN and lag to *len and *lag. A stream that does not exist
 * yet holds nothing. Returns DOCQ_OK, or the Redis failure. */
static int read_shard(worker_observer *o, int shard, long long *len, long long *lag, docq_error *err) {
    char key[KEY_LEN];
    docq_key_stream(key, sizeof(key), o->cfg->key_prefix, shard);
    const char *xlen[] = {"XLEN", key}, *xinfo[] = {"XINFO", "GROUPS", key};
    redisReply *rep = docq_redis_command(o->redis, 2, xlen, NULL, err);
    if (!rep) return err->code;
    if (rep->type == REDIS_REPLY_INTEGER) *len += rep->integer;
    freeReplyObject(rep);
    rep = docq_redis_command(o->redis, 3, xinfo, NULL, err);
    if (!rep) return strstr(err->msg, "no such key") ? DOCQ_OK : err->code;
    long long l = 0;
    if (group_lag(rep, o->cfg->group, &l) == DOCQ_OK) *lag += l;
    freeReplyObject(rep);
    return DOCQ_OK;
}

/* Read every shard and publish the sums; on a Redis failure the gauges go
 * away from the page until the next refresh works. */
static void refresh(worker_observer *o) {
    long long len = 0, lag = 0;
    docq_error err = {0};
    for (int s = 0; s < o->cfg->shards; s++) {
        if (read_shard(o, s, &len, &lag, &err) != DOCQ_OK) {
            docq_log_debug("metrics: cannot read the queue length: %s", err.msg);
            docq_gauge_set(&o->m->queue_known, 0);
            return;
        }
    }
    docq_gauge_set(&o->m->queue_length, len);
    docq_gauge_set(&o->m->group_lag, lag);
    docq_gauge_set(&o->m->queue_known, 1);
}

static void *refresher(void *arg) {
    worker_observer *o = arg;
    for (;;) {
        refresh(o);
        struct pollfd p = {o->stop_pipe[0], POLLIN, 0};
        int n = poll(&p, 1, (int)o->cfg->metrics_refresh_ms);
        if (n > 0 || (n < 0 && errno != EINTR)) break;
    }
    return NULL;
}

worker_observer *worker_observer_start(const docq_config *cfg, worker_metrics *m, docq_error *err) {
    worker_observer *o = calloc(1, sizeof(*o));
    if (!o) return docq_error_set(err, DOCQ_ERR, "out of memory"), NULL;
    o->cfg = cfg;
    o->m = m;
    o->stop_pipe[0] = o->stop_pipe[1] = -1;
    if (docq_metrics_listen_off(cfg->metrics_listen)) return o;
    docq_error why = {0};
    o->http = docq_http_start(cfg->metrics_listen, serve_http, o, &why);
    if (!o->http) {
        docq_error_set(err, DOCQ_ERR, "metrics endpoint (DOCQ_METRICS_LISTEN): %s", why.msg);
        worker_observer_stop(o);
        return NULL;
    }
    o->redis = docq_redis_create(&cfg->redis, cfg->redis_timeout_ms);
    if (!o->redis || pipe2(o->stop_pipe, O_CLOEXEC) != 0 || pthread_create(&o->tid, NULL, refresher, o) != 0) {
        docq_error_set(err, DOCQ_ERR, "cannot start the queue metrics thread");
        worker_observer_stop(o);
        return NULL;
    }
    o->started = 1;
    return o;
}

int worker_observer_port(const worker_observer *o) { return o && o->http ? docq_http_port(o->http) : 0; }

void worker_observer_stop(worker_observer *o) {
    if (!o) return;
    if (o->started) {
        char b = 1;
        while (write(o->stop_pipe[1], &b, 1) < 0 && errno == EINTR) {
        }
        pthread_join(o->tid, NULL);
    }
    docq_http_stop(o->http);
    docq_redis_free(o->redis);
    if (o->stop_pipe[0] >= 0) close(o->stop_pipe[0]);
    if (o->stop_pipe[1] >= 0) close(o->stop_pipe[1]);
    free(o);
}
