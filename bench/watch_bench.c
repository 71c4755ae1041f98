/* watch_bench.c -- docq-watch-bench: how many watchers one docq-server holds,
 * and how fast a change reaches them. Run it through bench/watch, which starts
 * its own redis-server and docq-server.
 *
 *   docq-watch-bench --server HOST:PORT --redis-url URL --server-pid PID
 *                    [--watchers 10000] [--channels 10] [--rate 1000]
 *                    [--changes 20000] [--shards 16]
 *
 * 1. Stores `watchers` PENDING tasks with the server's own submit script
 *    (spread over the shards) and reads the server's RSS.
 * 2. Opens one WatchStatus per task, over `channels` HTTP/2 connections, all
 *    driven by one completion queue and one thread; once every watch has
 *    its first message, reads the server's RSS again: (open - before) /
 *    watchers is the server's memory per watcher.
 * 3. Plays the worker: starts and then finishes tasks with the worker's own
 *    scripts (docq_store_start, docq_store_finish), `rate` changes a second,
 *    `changes` in all, noting when each write was sent. Latency is from
 *    that moment to the watcher's receipt of that version (same clock, one
 *    process), so it covers the script, the publish, the server's
 *    subscriber and fan-out, gRPC and the network stack.
 *
 * Prints the numbers as `key: value` lines. Exit status 0 when every
 * expected message arrived, 1 otherwise. */
#include <getopt.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "codec.h"
#include "config.h"
#include "redis.h"
#include "store.h"

enum { TAG_START, TAG_STATUS, TAG_MESSAGE };

typedef struct wcall wcall;

typedef struct tag {
    int kind;
    wcall *c;
} tag;

/* One watch and its task. */
struct wcall {
    char task_id[DOCQ_TASK_ID_MAX];
    grpc_call *call;
    grpc_byte_buffer *send, *recv;
    grpc_metadata_array md, trailing;
    grpc_status_code status;
    grpc_slice details;
    tag start_tag, status_tag, msg_tag;
    int64_t written_ns[4];   /* When versions 2 and 3 were written (0: not yet). */
    uint64_t last_version;
    int messages, ended;
    int batches;             /* In flight; atomic. */
};

static struct {
    const char *server, *redis_url;
    int pid, watchers, channels, rate, changes, shards;
} opt = {NULL, NULL, 0, 10000, 10, 1000, 20000, 16};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER; /* Guards the counters below and written_ns. */
static int first_messages, received_changes, ended_calls;
static int64_t *latencies_ns;
static int nlatencies;

static long rss_kib(int pid) {
    char path[64], line[256];
    long kib = -1;
    snprintf(path, sizeof(path), "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1) break;
    fclose(f);
    return kib;
}

/* batches is changed by the main and the polling thread: atomics. */
static void batch_started(wcall *c) { __atomic_add_fetch(&c->batches, 1, __ATOMIC_SEQ_CST); }

static void start_read(wcall *c) {
    grpc_op op;
    memset(&op, 0, sizeof(op));
    op.op = GRPC_OP_RECV_MESSAGE;
    op.data.recv_message.recv_message = &c->recv;
    if (grpc_call_start_batch(c->call, &op, 1, &c->msg_tag, NULL) == GRPC_CALL_OK) batch_started(c);
}

static void open_watch(wcall *c, grpc_channel *ch, grpc_completion_queue *cq) {
    grpc_slice method = grpc_slice_from_static_string("/docq.v1.DocQueue/WatchStatus");
    c->call = grpc_channel_create_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq, method, NULL,
                                       gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    Docq__V1__WatchStatusRequest req = DOCQ__V1__WATCH_STATUS_REQUEST__INIT;
    req.task_id = c->task_id;
    c->send = docq_codec_pack(&req.base);
    grpc_metadata_array_init(&c->md);
    grpc_metadata_array_init(&c->trailing);
    c->start_tag = (tag){TAG_START, c};
    c->status_tag = (tag){TAG_STATUS, c};
    c->msg_tag = (tag){TAG_MESSAGE, c};
    grpc_op ops[4];
    memset(ops, 0, sizeof(ops));
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = c->send;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &c->md;
    if (grpc_call_start_batch(c->call, ops, 4, &c->start_tag, NULL) == GRPC_CALL_OK) batch_started(c);
    memset(ops, 0, sizeof(ops));
    ops[0].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[0].data.recv_status_on_client.trailing_metadata = &c->trailing;
    ops[0].data.recv_status_on_client.status = &c->status;
    ops[0].data.recv_status_on_client.status_details = &c->details;
    if (grpc_call_start_batch(c->call, ops, 1, &c->status_tag, NULL) == GRPC_CALL_OK) batch_started(c);
    start_read(c);
}

/* A message arrived on c: count it, time it against its write, read on. */
static void on_message(wcall *c, int64_t at) {
    Docq__V1__Task *t = (Docq__V1__Task *)docq_codec_unpack(&docq__v1__task__descriptor, c->recv);
    grpc_byte_buffer_destroy(c->recv);
    c->recv = NULL;
    if (t) {
        pthread_mutex_lock(&lock);
        if (c->messages++ == 0) first_messages++;
        if (t->version > c->last_version && t->version >= 2 && t->version <= 3) {
            int64_t w = c->written_ns[t->version];
            if (w) latencies_ns[nlatencies++] = at - w;
            received_changes++;
        }
        if (t->version > c->last_version) c->last_version = t->version;
        pthread_mutex_unlock(&lock);
        protobuf_c_message_free_unpacked(&t->base, NULL);
    }
    start_read(c);
}

static void *poll_main(void *arg) {
    grpc_completion_queue *cq = arg;
    for (;;) {
        grpc_event ev = grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN) break;
        if (ev.type != GRPC_OP_COMPLETE) continue;
        int64_t at = docq_now_ns();
        tag *tg = ev.tag;
        wcall *c = tg->c;
        if (tg->kind == TAG_MESSAGE && ev.success && c->recv) on_message(c, at);
        if (tg->kind == TAG_STATUS) {
            pthread_mutex_lock(&lock);
            c->ended = 1;
            ended_calls++;
            pthread_mutex_unlock(&lock);
        }
        __atomic_sub_fetch(&c->batches, 1, __ATOMIC_SEQ_CST);
    }
    return NULL;
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static double pct_ms(const int64_t *v, int n, double p) {
    if (n == 0) return 0;
    int i = (int)(p / 100.0 * (n - 1) + 0.5);
    return v[i] / 1e6;
}

/* Wait until *counter reaches want (reading it under the lock) or timeout. */
static int wait_count(int *counter, int want, int timeout_s) {
    int64_t end = docq_now_ns() + (int64_t)timeout_s * 1000000000;
    for (;;) {
        pthread_mutex_lock(&lock);
        int have = *counter;
        pthread_mutex_unlock(&lock);
        if (have >= want) return 1;
        if (docq_now_ns() > end) return 0;
        struct timespec ms = {0, 10000000};
        nanosleep(&ms, NULL);
    }
}

static void usage(void) {
    fprintf(stderr, "usage: docq-watch-bench --server HOST:PORT --redis-url URL --server-pid PID "
                    "[--watchers N] [--channels N] [--rate N] [--changes N] [--shards N]\n");
}

int main(int argc, char **argv) {
    static const struct option longs[] = {
        {"server", 1, NULL, 's'}, {"redis-url", 1, NULL, 'r'}, {"server-pid", 1, NULL, 'p'},
        {"watchers", 1, NULL, 'w'}, {"channels", 1, NULL, 'c'}, {"rate", 1, NULL, 'R'},
        {"changes", 1, NULL, 'n'}, {"shards", 1, NULL, 'S'}, {NULL, 0, NULL, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "", longs, NULL)) != -1) {
        switch (o) {
        case 's': opt.server = optarg; break;
        case 'r': opt.redis_url = optarg; break;
        case 'p': opt.pid = atoi(optarg); break;
        case 'w': opt.watchers = atoi(optarg); break;
        case 'c': opt.channels = atoi(optarg); break;
        case 'R': opt.rate = atoi(optarg); break;
        case 'n': opt.changes = atoi(optarg); break;
        case 'S': opt.shards = atoi(optarg); break;
        default: usage(); return 2;
        }
    }
    if (!opt.server || !opt.redis_url || opt.pid <= 0 || opt.watchers <= 0 || opt.channels <= 0 ||
        opt.rate <= 0 || opt.shards <= 0 || opt.changes > 2 * opt.watchers) {
        usage();
        return 2;
    }
    docq_redis_addr addr;
    docq_error err = {0};
    if (docq_redis_url_parse(opt.redis_url, &addr, &err) != DOCQ_OK) {
        fprintf(stderr, "docq-watch-bench: %s\n", err.msg);
        return 2;
    }
    docq_redis *r = docq_redis_create(&addr, 5000);
    wcall *calls = calloc((size_t)opt.watchers, sizeof(*calls));
    latencies_ns = calloc((size_t)opt.changes + 1, sizeof(*latencies_ns));

    /* 1. The consumer group (the start script asks it about the entry), then
     * the tasks, stored as SubmitDoc stores them. */
    docq_queue queue = {"docq", "workers", "dead", 10, 600, 100000, "watch-bench"};
    for (int i = 0; i < opt.shards; i++) {
        char skey[96];
        docq_key_stream(skey, sizeof(skey), "docq", i);
        const char *argv[] = {"XGROUP", "CREATE", skey, "workers", "$", "MKSTREAM"};
        redisReply *rep = docq_redis_command(r, 6, argv, NULL, &err);
        if (!rep && strncmp(err.msg, "BUSYGROUP", 9) != 0) {
            fprintf(stderr, "docq-watch-bench: XGROUP CREATE: %s\n", err.msg);
            return 1;
        }
        if (rep) freeReplyObject(rep);
    }
    docq_rate_policy no_limit = {0, 60};
    for (int i = 0; i < opt.watchers; i++) {
        int64_t created;
        docq_rate_result rate;
        char doc[32];
        int shard = i % opt.shards;
        snprintf(doc, sizeof(doc), "bench_%d", i);
        if (docq_task_id_new(shard, calls[i].task_id, sizeof(calls[i].task_id), &err) != DOCQ_OK ||
            docq_store_submit(r, "docq", shard, calls[i].task_id, doc, strlen(doc), "bench", NULL, &no_limit,
                              &created, &rate, &err) != DOCQ_OK) {
            fprintf(stderr, "docq-watch-bench: submit: %s\n", err.msg);
            return 1;
        }
    }
    struct timespec settle = {1, 0};
    nanosleep(&settle, NULL);
    long rss_before = rss_kib(opt.pid);

    /* 2. The watches. */
    grpc_init();
    grpc_completion_queue *cq = grpc_completion_queue_create_for_next(NULL);
    grpc_channel **chans = calloc((size_t)opt.channels, sizeof(*chans));
    grpc_arg a = {GRPC_ARG_INTEGER, GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, {.integer = 1}};
    grpc_channel_args args = {1, &a};
    for (int i = 0; i < opt.channels; i++) {
        grpc_channel_credentials *creds = grpc_insecure_credentials_create();
        chans[i] = grpc_channel_create(opt.server, creds, &args);
        grpc_channel_credentials_release(creds);
    }
    pthread_t poller;
    pthread_create(&poller, NULL, poll_main, cq);
    int64_t t0 = docq_now_ns();
    for (int i = 0; i < opt.watchers; i++) open_watch(&calls[i], chans[i % opt.channels], cq);
    int opened = wait_count(&first_messages, opt.watchers, 120);
    double open_s = (docq_now_ns() - t0) / 1e9;
    nanosleep(&settle, NULL);
    long rss_open = rss_kib(opt.pid);
    printf("watchers: %d over %d connections (%s)\n", first_messages, opt.channels,
           opened ? "all open" : "NOT ALL OPEN");
    printf("open_seconds: %.2f\n", open_s);
    printf("server_rss_before_kib: %ld\n", rss_before);
    printf("server_rss_open_kib: %ld\n", rss_open);
    printf("server_rss_per_watcher_bytes: %.0f\n", (rss_open - rss_before) * 1024.0 / opt.watchers);
    fflush(stdout);

    /* 3. Changes at a fixed rate: start (version 2), then finish (3). */
    t0 = docq_now_ns();
    int ntasks = (opt.changes + 1) / 2;
    for (int k = 0; k < opt.changes; k++) {
        int64_t due = t0 + (int64_t)k * 1000000000 / opt.rate;
        int64_t now = docq_now_ns();
        if (due > now) {
            struct timespec ts = {(due - now) / 1000000000, (due - now) % 1000000000};
            nanosleep(&ts, NULL);
        }
        wcall *c = &calls[k % ntasks];
        int version = k < ntasks ? 2 : 3;
        pthread_mutex_lock(&lock);
        c->written_ns[version] = docq_now_ns();
        pthread_mutex_unlock(&lock);
        /* The entry id only matters to the group's bookkeeping (XPENDING,
         * XACK, XDEL), which the bench leaves alone: no worker reads. */
        docq_start started;
        int rc = version == 2 ? docq_store_start(r, &queue, c->task_id, &started, &err)
                              : docq_store_finish(r, "docq", "workers", c->task_id, "0-1", 1,
                                                  DOCQ_STATE_SUCCESS, "{\"ok\":true}", 11, 600, &err);
        if (rc != DOCQ_OK) {
            fprintf(stderr, "docq-watch-bench: write: %s\n", err.msg);
            return 1;
        }
    }
    double write_s = (docq_now_ns() - t0) / 1e9;
    int all = wait_count(&received_changes, opt.changes, 60);
    pthread_mutex_lock(&lock);
    qsort(latencies_ns, (size_t)nlatencies, sizeof(int64_t), cmp_i64);
    printf("changes: %d written in %.2f s (%.0f/s), %d received%s\n", opt.changes, write_s,
           opt.changes / write_s, received_changes, all ? "" : " (SOME LOST)");
    printf("latency_ms_p50: %.2f\n", pct_ms(latencies_ns, nlatencies, 50));
    printf("latency_ms_p90: %.2f\n", pct_ms(latencies_ns, nlatencies, 90));
    printf("latency_ms_p99: %.2f\n", pct_ms(latencies_ns, nlatencies, 99));
    printf("latency_ms_p999: %.2f\n", pct_ms(latencies_ns, nlatencies, 99.9));
    printf("latency_ms_max: %.2f\n", nlatencies ? latencies_ns[nlatencies - 1] / 1e6 : 0.0);
    printf("server_rss_after_changes_kib: %ld\n", rss_kib(opt.pid));
    pthread_mutex_unlock(&lock);
    fflush(stdout);

    /* The finished tasks' watches have ended; cancel the others. */
    for (int i = 0; i < opt.watchers; i++) grpc_call_cancel(calls[i].call, NULL);
    wait_count(&ended_calls, opt.watchers, 30);
    for (int i = 0; i < opt.watchers; i++) {
        while (__atomic_load_n(&calls[i].batches, __ATOMIC_SEQ_CST) > 0) {
            struct timespec ms = {0, 1000000};
            nanosleep(&ms, NULL);
        }
    }
    for (int i = 0; i < opt.watchers; i++) {
        wcall *c = &calls[i];
        grpc_call_unref(c->call);
        grpc_byte_buffer_destroy(c->send);
        if (c->recv) grpc_byte_buffer_destroy(c->recv);
        grpc_metadata_array_destroy(&c->md);
        grpc_metadata_array_destroy(&c->trailing);
        grpc_slice_unref(c->details);
    }
    for (int i = 0; i < opt.channels; i++) grpc_channel_destroy(chans[i]);
    grpc_completion_queue_shutdown(cq);
    pthread_join(poller, NULL);
    grpc_completion_queue_destroy(cq);
    grpc_shutdown();
    docq_redis_free(r);
    free(chans);
    free(calls);
    free(latencies_ns);
    return opened && all ? 0 : 1;
}
