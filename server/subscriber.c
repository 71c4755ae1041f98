/* subscriber.c -- the events subscription thread. See subscriber.h. */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "event.h"
#include "log.h"
#include "memory.h"
#include "redis.h"
#include "store.h"
#include "subscriber.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 2000
#define CHANNEL_MAX 96
#define TRIM_AFTER_CLOSED 512  /* Fewest watches ended since the peak that make a memory trim worth it. */
#define EXPIRY_CHECK_MS 250    /* Shortest pause between two reads of tasks past their queue deadline. */
#define LONGEST_SLEEP_MS 500   /* Longest poll: a deadline a watch opened meanwhile brought is seen by then. */

struct subscriber {
    const docq_config *cfg;
    subscriber_hooks hub;     /* The watch hub, as server.c wired it. */
    docq_redis *sub;          /* Subscribed to every shard's events channel. */
    redisContext **ctxs;      /* The distinct connections of sub that hold subscriptions: */
    int nctxs;                /* one, or in a cluster one per primary (sharded pub/sub). */
    struct pollfd *fds;       /* poll's: the stop pipe, then each of ctxs. */
    unsigned char *missing;   /* Cluster, per shard: not subscribed, its primary unreachable. */
    int nmissing;
    int64_t missing_at_ms;    /* The next try to subscribe the missing shards. */
    long missing_backoff_ms;
    docq_redis *cmd;          /* Snapshots and group progress. */
    pthread_t tid;
    int stop_pipe[2];         /* Written once by subscriber_stop; the thread polls the read end. */
    int subscribed;           /* sub is connected and its subscriptions confirmed. */
    long backoff_ms;          /* The next wait before subscribing again. */
    int64_t retry_at_ms;      /* No subscribe attempt before this time. */
    unsigned char *need;      /* Per shard: PENDING watched tasks to refresh. */
    int64_t *read;            /* Per shard: the group's progress, for the hub. */
};

/* One published change: hand it to the hub when somebody here watches the
 * task. A PENDING record gets its queue position first. */
static void handle_event(subscriber *s, const char *buf, size_t len) {
    const char *id;
    size_t idlen;
    docq_error err = {0};
    if (docq_event_task_id(buf, len, &id, &idlen) != DOCQ_OK) {
        docq_log_warn("events: dropped a malformed event of %zu bytes", len);
        return;
    }
    if (!s->hub.watching(s->hub.ctx, id, idlen)) return;
    docq_task t = {0};
    if (docq_event_parse(buf, len, &t, &err) != DOCQ_OK) {
        docq_log(DOCQ_LOG_WARN, t.task_id[0] ? t.task_id : NULL, "events: dropped an event: %s", err.msg);
        return;
    }
    if (t.state == DOCQ_STATE_PENDING) {
        int64_t read = -1;
        if (docq_store_group_read(s->cmd, s->cfg->key_prefix, docq_task_id_shard(t.task_id), s->cfg->group, &read,
                                  &err) != DOCQ_OK)
            read = -1; /* Unknown for now; the next refresh sets it. */
        t.queue_position = docq_queue_position(t.seq, read);
    }
    s->hub.update(s->hub.ctx, &t);
    docq_task_clear(&t);
}

/* 1 when rep is a pub/sub push whose kind is name. */
static int push_is(const redisReply *rep, const char *name) {
    return rep->type == REDIS_REPLY_ARRAY && rep->elements == 3 && rep->element[0]->type == REDIS_REPLY_STRING &&
           strcmp(rep->element[0]->str, name) == 0;
}

/* A reply on a subscribed connection: a message, or a confirmation.
 * Returns DOCQ_OK, or DOCQ_EUNAVAIL when Redis ended a subscription
 * ("sunsubscribe": a Redis Cluster moved the channel's slot to another
 * node, so the subscriptions must be made again where the slots are now). */
static int handle_reply(subscriber *s, redisReply *rep) {
    if (push_is(rep, "sunsubscribe")) return DOCQ_EUNAVAIL;
    if ((push_is(rep, "message") || push_is(rep, "smessage")) && rep->element[2]->type == REDIS_REPLY_STRING)
        handle_event(s, rep->element[2]->str, rep->element[2]->len);
    return DOCQ_OK;
}

/* Read replies on c until `confirmations` confirmations of kind arrived
 * (messages arriving meanwhile are handled). Returns DOCQ_OK or the
 * failure. */
static int await_confirmations(subscriber *s, redisContext *c, const char *kind, int confirmations,
                               docq_error *err) {
    int rc = DOCQ_OK;
    for (int confirmed = 0; rc == DOCQ_OK && confirmed < confirmations;) {
        redisReply *rep = NULL;
        if (redisGetReply(c, (void **)&rep) != REDIS_OK || !rep)
            return docq_error_set(err, DOCQ_EUNAVAIL, "%s: %s", kind, c->errstr[0] ? c->errstr : "no reply");
        if (rep->type == REDIS_REPLY_ERROR)
            rc = docq_error_set(err, DOCQ_ERR, "%s: %s", kind, rep->str);
        else if (push_is(rep, kind))
            confirmed++;
        else if (handle_reply(s, rep) != DOCQ_OK)
            rc = docq_error_set(err, DOCQ_EUNAVAIL, "%s: a subscription moved while subscribing", kind);
        freeReplyObject(rep);
    }
    return rc;
}

/* Remember c among the connections holding subscriptions, once. */
static void add_ctx(subscriber *s, redisContext *c) {
    for (int i = 0; i < s->nctxs; i++)
        if (s->ctxs[i] == c) return;
    redisEnableKeepAlive(c); /* Notice a vanished peer even while no event comes. */
    s->ctxs[s->nctxs++] = c;
}

/* Subscribe to shard's channel alone on the node serving it (a Redis
 * Cluster: SSUBSCRIBE, sharded pub/sub, as the scripts SPUBLISH there).
 * Returns DOCQ_OK or the failure; *unreachable is 1 when that node could
 * not be reached at all (no subscription was touched), else 0. */
static int subscribe_sharded(subscriber *s, int shard, int *unreachable, docq_error *err) {
    char name[CHANNEL_MAX];
    docq_key_events(name, sizeof(name), s->cfg->key_prefix, shard);
    redisContext *c = docq_redis_key_context(s->sub, name, strlen(name), err);
    *unreachable = c == NULL;
    if (!c) return DOCQ_EUNAVAIL;
    const char *argv[] = {"SSUBSCRIBE", name};
    if (redisAppendCommandArgv(c, 2, argv, NULL) != REDIS_OK)
        return docq_error_set(err, DOCQ_EUNAVAIL, "SSUBSCRIBE: %s", c->errstr);
    add_ctx(s, c);
    return await_confirmations(s, c, "ssubscribe", 1, err);
}

/* Subscribe to every shard's channel with one SUBSCRIBE on sub's one
 * connection (a standalone Redis). Returns DOCQ_OK or the failure. */
static int subscribe_all(subscriber *s, docq_error *err) {
    int n = (int)s->cfg->shards, rc = DOCQ_OK;
    redisContext *c = docq_redis_context(s->sub);
    const char **argv = malloc(((size_t)n + 1) * sizeof(*argv));
    char *names = malloc((size_t)n * CHANNEL_MAX);
    if (!argv || !names) {
        free(argv);
        free(names);
        return docq_error_set(err, DOCQ_ERR, "out of memory");
    }
    argv[0] = "SUBSCRIBE";
    for (int i = 0; i < n; i++) {
        docq_key_events(names + (size_t)i * CHANNEL_MAX, CHANNEL_MAX, s->cfg->key_prefix, i);
        argv[i + 1] = names + (size_t)i * CHANNEL_MAX;
    }
    if (redisAppendCommandArgv(c, n + 1, argv, NULL) != REDIS_OK)
        rc = docq_error_set(err, DOCQ_EUNAVAIL, "SUBSCRIBE: %s", c->errstr);
    free(argv);
    free(names);
    add_ctx(s, c);
    return rc == DOCQ_OK ? await_confirmations(s, c, "subscribe", n, err) : rc;
}

/* Connect sub and subscribe to every shard's channel, waiting for each
 * confirmation: with SUBSCRIBE on a standalone Redis, with SSUBSCRIBE on the
 * node serving each channel's slot in a Redis Cluster. */
static int subscribe(subscriber *s, docq_error *err) {
    s->nctxs = 0;
    s->nmissing = 0;
    memset(s->missing, 0, (size_t)s->cfg->shards);
    if (docq_redis_connect(s->sub, err) != DOCQ_OK) return DOCQ_EUNAVAIL;
    if (!docq_redis_is_cluster(s->sub)) return subscribe_all(s, err);
    for (int i = 0; i < (int)s->cfg->shards; i++) {
        int unreachable;
        if (subscribe_sharded(s, i, &unreachable, err) == DOCQ_OK) continue;
        if (!unreachable) return err->code ? err->code : DOCQ_EUNAVAIL;
        s->missing[i] = 1; /* Its primary cannot be reached: the others go on. */
        s->nmissing++;
    }
    return s->nmissing < (int)s->cfg->shards ? DOCQ_OK : DOCQ_EUNAVAIL;
}

/* Read every watched task again and hand it to the hub: what changed while
 * no subscription was listening is delivered now. Only the tasks of the
 * shards in shards[] (1: read) are read when shards is not NULL. */
static int resync(subscriber *s, const unsigned char *shards, size_t *count, docq_error *err) {
    size_t n;
    subscriber_task_id *ids = s->hub.ids(s->hub.ctx, &n);
    int rc = DOCQ_OK;
    for (size_t i = 0; i < n && rc == DOCQ_OK; i++) {
        if (shards && !shards[docq_task_id_shard(ids[i])]) continue;
        docq_task t = {0};
        rc = docq_store_get(s->cmd, s->cfg->key_prefix, s->cfg->group, ids[i], s->cfg->result_ttl_s, &t, err);
        if (rc == DOCQ_OK) {
            s->hub.update(s->hub.ctx, &t);
        } else if (rc == DOCQ_ENOTFOUND) {
            s->hub.gone(s->hub.ctx, ids[i]);
            rc = DOCQ_OK;
        }
        docq_task_clear(&t);
    }
    free(ids);
    *count = n;
    return rc;
}

/* Refresh the queue positions of watched PENDING tasks: one round trip per
 * shard that has some. */
static void refresh_positions(subscriber *s) {
    int n = (int)s->cfg->shards;
    if (s->hub.pending_shards(s->hub.ctx, s->need, n) == 0) return;
    for (int i = 0; i < n; i++) {
        docq_error err = {0};
        s->read[i] = -2; /* Leave alone. */
        if (s->need[i] &&
            docq_store_group_read(s->cmd, s->cfg->key_prefix, i, s->cfg->group, &s->read[i], &err) != DOCQ_OK) {
            docq_log_debug("events: cannot refresh queue positions of shard %d: %s", i, err.msg);
            s->read[i] = -2;
        }
    }
    s->hub.positions(s->hub.ctx, s->read, n);
}

/* The wall clock, Unix ms (queue deadlines are Redis TIME ms). */
static int64_t wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Read every watched PENDING task whose queue deadline has passed: the read
 * script ends it FAILURE (and publishes that); the hub gets the record read
 * at once as well. */
static void expire_due(subscriber *s) {
    size_t n;
    subscriber_task_id *ids = s->hub.expired(s->hub.ctx, wall_ms(), &n);
    for (size_t i = 0; i < n; i++) {
        docq_task t = {0};
        docq_error err = {0};
        int rc = docq_store_get(s->cmd, s->cfg->key_prefix, s->cfg->group, ids[i], s->cfg->result_ttl_s, &t, &err);
        if (rc == DOCQ_OK)
            s->hub.update(s->hub.ctx, &t);
        else if (rc == DOCQ_ENOTFOUND)
            s->hub.gone(s->hub.ctx, ids[i]);
        else
            docq_log(DOCQ_LOG_DEBUG, ids[i], "events: cannot read a task past its queue deadline: %s", err.msg);
        docq_task_clear(&t);
    }
    free(ids);
}

/* The monotonic time (docq_now_ms, now) at which the hub's earliest queue
 * deadline passes, but not before next_check; `until` when that is later
 * or no deadline is known. */
static int64_t expiry_due_at(subscriber *s, int64_t now, int64_t until, int64_t next_check) {
    int64_t d = s->hub.next_deadline(s->hub.ctx);
    if (d <= 0) return until;
    int64_t at = now + (d - wall_ms());
    if (at < next_check) at = next_check;
    return at < until ? at : until;
}

/* 1 when a watched task's queue deadline may have passed (the hub's
 * earliest one is not in the future), else 0. */
static int expiry_due(subscriber *s) {
    int64_t d = s->hub.next_deadline(s->hub.ctx);
    return d > 0 && d <= wall_ms();
}

/* After a wave of watches has ended, hand the memory they used back to the
 * operating system. glibc's malloc keeps freed memory in its arenas (one per
 * thread that allocated, and gRPC's streams are allocated by several), so
 * without this the server's RSS would stay at its peak for good although
 * the heap in use is back to where it was. Runs on this thread, outside any
 * lock the calls need. */
static void trim_memory(subscriber *s) {
#ifdef __GLIBC__
    size_t peak, open;
    if (!s->hub.trim_due(s->hub.ctx, TRIM_AFTER_CLOSED, &peak, &open)) return;
    int64_t t0 = docq_now_ms();
    docq_memory_trim();
    struct mallinfo2 mi = mallinfo2();
    docq_log_info("memory: trimmed after open watches fell from %zu to %zu, in %lld ms; heap in use %zu KiB",
                  peak, open, (long long)(docq_now_ms() - t0), mi.uordblks / 1024);
#else
    (void)s;
#endif
}

/* Subscribe and resync; on failure schedule the next attempt. */
static void try_subscribe(subscriber *s) {
    docq_error err = {0};
    size_t count = 0;
    int64_t t0 = docq_now_ms();
    if (subscribe(s, &err) == DOCQ_OK && resync(s, NULL, &count, &err) == DOCQ_OK) {
        s->subscribed = 1;
        s->backoff_ms = BACKOFF_MIN_MS;
        s->missing_backoff_ms = BACKOFF_MIN_MS;
        s->missing_at_ms = docq_now_ms() + BACKOFF_MIN_MS;
        if (s->nmissing > 0)
            docq_log_warn("events: %d of %ld shards not subscribed, their primary unreachable (%s); the others "
                          "are; trying those again", s->nmissing, s->cfg->shards, err.msg);
        if (docq_redis_is_cluster(s->sub))
            docq_log_info("events: subscribed to %ld sharded channels on %d Redis Cluster primaries; %zu watched "
                          "tasks read again in %lld ms", s->cfg->shards, s->nctxs, count,
                          (long long)(docq_now_ms() - t0));
        else
            docq_log_info("events: subscribed to %ld channels; %zu watched tasks read again in %lld ms",
                          s->cfg->shards, count, (long long)(docq_now_ms() - t0));
        return;
    }
    docq_redis_disconnect(s->sub);
    docq_log_warn("events: cannot subscribe, next try in %ld ms: %s", s->backoff_ms, err.msg);
    s->retry_at_ms = docq_now_ms() + s->backoff_ms;
    s->backoff_ms = s->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : s->backoff_ms * 2;
}

static void lost(subscriber *s, const char *why);

/* Subscribe the shards whose primary was unreachable (a Redis Cluster),
 * when their time has come, and re-read their watched tasks; back off while
 * they stay unreachable. A subscription that breaks meanwhile is lost(). */
static void retry_missing(subscriber *s) {
    if (!s->subscribed || s->nmissing == 0 || docq_now_ms() < s->missing_at_ms) return;
    unsigned char *now_in = calloc((size_t)s->cfg->shards, 1);
    docq_error err = {0};
    size_t count = 0;
    int added = 0, broken = 0;
    for (int i = 0; now_in && !broken && i < (int)s->cfg->shards; i++) {
        int unreachable;
        if (!s->missing[i]) continue;
        if (subscribe_sharded(s, i, &unreachable, &err) != DOCQ_OK) {
            broken = !unreachable;
            continue;
        }
        s->missing[i] = 0, now_in[i] = 1;
        s->nmissing--, added++;
    }
    if (!now_in || broken || (added && resync(s, now_in, &count, &err) != DOCQ_OK)) {
        free(now_in);
        lost(s, err.msg[0] ? err.msg : "out of memory");
        return;
    }
    free(now_in);
    if (added) docq_log_info("events: %d more shards subscribed; %zu watched tasks read again", added, count);
    s->missing_at_ms = docq_now_ms() + s->missing_backoff_ms;
    s->missing_backoff_ms = s->missing_backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : s->missing_backoff_ms * 2;
}

/* The subscription broke: drop it; try again at once (then with backoff). */
static void lost(subscriber *s, const char *why) {
    docq_log_warn("events: subscription lost (%s); subscribing again", why);
    docq_redis_disconnect(s->sub);
    s->subscribed = 0;
    s->retry_at_ms = 0;
}

/* Handle every reply hiredis has already read on c. Returns DOCQ_OK, or
 * DOCQ_EUNAVAIL when the subscription was lost (lost() was called). */
static int drain(subscriber *s, redisContext *c) {
    for (;;) {
        redisReply *rep = NULL;
        if (redisGetReplyFromReader(c, (void **)&rep) != REDIS_OK) {
            lost(s, c->errstr[0] ? c->errstr : "protocol error");
            return DOCQ_EUNAVAIL;
        }
        if (!rep) return DOCQ_OK;
        int rc = handle_reply(s, rep);
        freeReplyObject(rep);
        if (rc != DOCQ_OK) {
            lost(s, "Redis Cluster moved a channel's slot to another node");
            return DOCQ_EUNAVAIL;
        }
    }
}

/* Read what arrived on every subscribed connection that poll found ready
 * (fds[1..]) and handle it. */
static void read_ready(subscriber *s, const struct pollfd *fds) {
    for (int i = 0; s->subscribed && i < s->nctxs; i++) {
        if (!fds[i].revents) continue;
        redisContext *c = s->ctxs[i];
        if (redisBufferRead(c) != REDIS_OK) lost(s, c->errstr[0] ? c->errstr : "connection closed");
        else drain(s, c);
    }
}

static void *run(void *arg) {
    subscriber *s = arg;
    int64_t next_refresh = docq_now_ms() + s->cfg->position_refresh_ms, next_expiry_check = 0;
    for (;;) {
        int64_t now = docq_now_ms();
        if (!s->subscribed && now >= s->retry_at_ms) try_subscribe(s);
        retry_missing(s);
        for (int i = 0; s->subscribed && i < s->nctxs; i++) drain(s, s->ctxs[i]);
        now = docq_now_ms();
        if (s->subscribed && now >= next_expiry_check && expiry_due(s)) {
            expire_due(s);
            now = docq_now_ms();
            next_expiry_check = now + EXPIRY_CHECK_MS;
        }
        int64_t until = next_refresh < now + LONGEST_SLEEP_MS ? next_refresh : now + LONGEST_SLEEP_MS;
        if (s->subscribed) until = expiry_due_at(s, now, until, next_expiry_check);
        if (!s->subscribed && s->retry_at_ms < until) until = s->retry_at_ms;
        if (s->subscribed && s->nmissing > 0 && s->missing_at_ms < until) until = s->missing_at_ms;
        int timeout = until > now ? (int)(until - now) : 0;
        int nfds = 1 + (s->subscribed ? s->nctxs : 0);
        s->fds[0] = (struct pollfd){s->stop_pipe[0], POLLIN, 0};
        for (int i = 1; i < nfds; i++) s->fds[i] = (struct pollfd){s->ctxs[i - 1]->fd, POLLIN, 0};
        if (poll(s->fds, (nfds_t)nfds, timeout) < 0 && errno != EINTR) {
            docq_log_error("events: poll: %s", strerror(errno));
            break;
        }
        if (s->fds[0].revents) break;
        if (s->subscribed) read_ready(s, s->fds + 1);
        if (docq_now_ms() >= next_refresh) {
            if (s->subscribed) refresh_positions(s);
            trim_memory(s);
            next_refresh = docq_now_ms() + s->cfg->position_refresh_ms;
        }
    }
    return NULL;
}

static void subscriber_free(subscriber *s) {
    docq_redis_free(s->sub);
    docq_redis_free(s->cmd);
    if (s->stop_pipe[0] >= 0) close(s->stop_pipe[0]);
    if (s->stop_pipe[1] >= 0) close(s->stop_pipe[1]);
    free(s->need);
    free(s->read);
    free(s->ctxs);
    free(s->fds);
    free(s->missing);
    free(s);
}

subscriber *subscriber_start(const docq_config *cfg, const subscriber_hooks *hooks, docq_error *err) {
    subscriber *s = calloc(1, sizeof(*s));
    if (!s) return docq_error_set(err, DOCQ_ERR, "out of memory"), NULL;
    s->cfg = cfg;
    s->hub = *hooks;
    s->stop_pipe[0] = s->stop_pipe[1] = -1;
    s->backoff_ms = BACKOFF_MIN_MS;
    s->sub = docq_redis_create(&cfg->redis, cfg->redis_timeout_ms);
    s->cmd = docq_redis_create(&cfg->redis, cfg->redis_timeout_ms);
    s->need = calloc((size_t)cfg->shards, 1);
    s->read = calloc((size_t)cfg->shards, sizeof(*s->read));
    s->ctxs = calloc((size_t)cfg->shards, sizeof(*s->ctxs));
    s->fds = calloc((size_t)cfg->shards + 1, sizeof(*s->fds));
    s->missing = calloc((size_t)cfg->shards, 1);
    if (!s->sub || !s->cmd || !s->need || !s->read || !s->ctxs || !s->fds || !s->missing || pipe2(s->stop_pipe, O_CLOEXEC) != 0) {
        docq_error_set(err, DOCQ_ERR, "cannot set up the events subscriber: %s", strerror(errno));
        subscriber_free(s);
        return NULL;
    }
    if (pthread_create(&s->tid, NULL, run, s) != 0) {
        docq_error_set(err, DOCQ_ERR, "cannot start the events subscriber thread");
        subscriber_free(s);
        return NULL;
    }
    return s;
}

void subscriber_stop(subscriber *s) {
    if (!s) return;
    char b = 1;
    while (write(s->stop_pipe[1], &b, 1) < 0 && errno == EINTR) {
    }
    pthread_join(s->tid, NULL);
    subscriber_free(s);
}
