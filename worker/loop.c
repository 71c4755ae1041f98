/* loop.c -- the worker's event loop: Redis connections (outages: outage.c), reading
 * stream entries, stopping and waiting. See loop.h for the shape of one turn,
 * tasks.c for what happens to an entry once read, recovery.c for heartbeats
 * and reclaiming, and task.h for the states a task goes through.
 *
 * Everything here runs on the one thread that calls worker_loop_run; there
 * is no global state. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cancels.h"
#include "clock.h"
#include "log.h"
#include "loop.h"
#include "outage.h"
#include "recovery.h"
#include "shape.h"
#include "tasks.h"
#include "worker.h"

#define READ_BLOCK_MS 1000   /* XREADGROUP BLOCK: how long an idle read waits for entries. */
#define SHAPE_RECHECK_MS 1000 /* Until a server records the shape: how often to look. */
#define READ_POLL_MS 100     /* Pause after a round of partial reads that found nothing. */
#define READ_FIXED_ARGS 9    /* XREADGROUP GROUP g c COUNT n BLOCK ms STREAMS */

/* Ask for rd's client id, so that a blocked read can be cut short. */
static int fetch_client_id(worker_loop *w, docq_error *err) {
    const char *argv[] = {"CLIENT", "ID"};
    redisReply *rep = docq_redis_command(w->rd, 2, argv, NULL, err);
    if (!rep) return err->code;
    int rc = DOCQ_OK;
    if (rep->type == REDIS_REPLY_INTEGER)
        w->rs.client_id = rep->integer;
    else
        rc = docq_error_set(err, DOCQ_ERR, "unexpected reply to CLIENT ID");
    freeReplyObject(rep);
    return rc;
}

/* XGROUP CREATE <stream> <group> 0 MKSTREAM on every shard; a group that
 * exists already (BUSYGROUP) is fine. In a Redis Cluster a shard whose
 * primary fails is only paused (outage_shard_failed): it fails only when
 * every shard does. */
static int create_groups(worker_loop *w, docq_error *err) {
    int cluster = docq_redis_is_cluster(w->cmd), made = 0;
    for (int i = 0; i < w->nshards; i++) {
        const char *argv[] = {"XGROUP", "CREATE", w->keys[i], w->cfg->group, "0", "MKSTREAM"};
        redisReply *rep = docq_redis_command(w->cmd, 6, argv, NULL, err);
        if (rep || (err->code == DOCQ_ERR && strncmp(err->msg, "BUSYGROUP", 9) == 0)) {
            if (rep) freeReplyObject(rep);
            made++;
        } else if (!cluster) {
            return err->code;
        } else {
            outage_shard_failed(w, i, err);
        }
    }
    return made ? DOCQ_OK : err->code;
}

/* Start re-reading our own pending entries from the beginning of each stream. */
static void scan_reset(worker_loop *w) {
    w->rs.scanning = 1;
    for (int i = 0; i < w->nshards; i++) {
        w->rs.scan_done[i] = 0;
        strcpy(w->rs.scan_from[i], "0");
    }
}

/* Check our settings against the deployment's shape until it matches once
 * (shape.h). A conflict sets w->refused, which stops the loop. Returns
 * DOCQ_OK (matched, conflict, or nothing recorded yet: look again later) or
 * the Redis failure, with why set. */
static int check_shape(worker_loop *w, docq_error *why) {
    if (w->shape_seen || w->refused.code != DOCQ_OK) return DOCQ_OK;
    docq_shape shape = {w->cfg->key_prefix, w->cfg->shards, w->cfg->group};
    docq_error err = {0};
    int rc = docq_shape_check(w->cmd, &shape, 0, &err);
    w->shape_check_at_ms = docq_now_ms() + SHAPE_RECHECK_MS;
    if (rc == DOCQ_OK) {
        w->shape_seen = 1;
        if (w->shape_wait_logged) docq_log_info("deployment shape recorded by a server: it matches ours");
    } else if (rc == DOCQ_ENOTFOUND && !w->shape_wait_logged) {
        docq_log_info("no server has recorded the deployment's shape in Redis yet (%s:shape): working "
                      "meanwhile, checking it every %d ms until one has", w->cfg->key_prefix, SHAPE_RECHECK_MS);
        w->shape_wait_logged = 1;
    } else if (rc == DOCQ_ECONFLICT) {
        w->refused = err;
    } else if (rc != DOCQ_ENOTFOUND) {
        *why = err;
        return rc;
    }
    return DOCQ_OK;
}

/* Connect both connections, make sure the groups exist and start the re-read
 * of our pending entries. On failure, schedule the next try. */
static void redis_recover(worker_loop *w) {
    docq_error why = {0};
    if (docq_redis_connect(w->cmd, &why) != DOCQ_OK || docq_redis_connect(w->rd, &why) != DOCQ_OK ||
        fetch_client_id(w, &why) != DOCQ_OK || check_shape(w, &why) != DOCQ_OK ||
        (w->refused.code == DOCQ_OK && create_groups(w, &why) != DOCQ_OK) ||
        (w->refused.code == DOCQ_OK && cancels_mark(w, &why) != DOCQ_OK)) {
        long wait_ms = w->backoff_ms;
        outage_redis_failed(w, &why);
        docq_log_debug("redis still unusable, next try in %ld ms: %s", wait_ms, why.msg);
        return;
    }
    w->redis_ok = 1;
    scan_reset(w);
    if (!w->joined) {
        docq_log_info("worker %s joined group %s on %d shards, concurrency %d", w->consumer,
                      w->cfg->group, w->nshards, w->nslots);
        w->joined = 1;
    } else if (w->down_logged) {
        docq_log_info("redis usable again: group %s ready on %d shards, re-reading own pending entries",
                      w->cfg->group, w->nshards);
    }
    w->down_logged = 0;
}

/* The periodic look at the shape while no server has recorded it. */
static void recheck_shape(worker_loop *w) {
    docq_error why = {0};
    if (check_shape(w, &why) != DOCQ_OK) outage_redis_failed(w, &why);
}

/* ---- Reading entries ------------------------------------------------------ */

/* 1 when reads name some shards only, in turn, without blocking: with fewer
 * free slots than shards, or in a Redis Cluster, where one command reaches
 * one slot, so one shard (see loop.h). */
static int partial_reads(const worker_loop *w) {
    return w->nfree < w->nshards || docq_redis_is_cluster(w->rd);
}

/* choose_streams in a Redis Cluster: the next shard in turn (while
 * scanning, the next not re-read yet) whose primary is not paused by an
 * outage, with COUNT nfree; none (rs->nsent 0) when every one is paused. A
 * paused shard's re-read of our own pending entries is given up: the
 * reclaim rounds take them once idle. Never blocks. */
static int choose_one_shard(worker_loop *w, long *count) {
    reader *rs = &w->rs;
    rs->nsent = 0;
    for (int k = 0; k < w->nshards && rs->nsent == 0; k++) {
        int i = (rs->next_shard + k) % w->nshards;
        if (outage_shard_down(w, i)) {
            if (rs->scanning) rs->scan_done[i] = 1;
        } else if (!rs->scanning || !rs->scan_done[i]) {
            rs->sent[rs->nsent++] = i;
            if (!rs->scanning) rs->next_shard = (i + 1) % w->nshards;
        }
    }
    *count = w->nfree;
    return 0;
}

/* Choose the shards of the next read into rs->sent and the COUNT for each,
 * so that the read returns at most nfree entries (see loop.h). Returns 1 when
 * the read should BLOCK: only a read over every shard does, since a read
 * blocked on some shards would leave entries on the others waiting. */
static int choose_streams(worker_loop *w, long *count) {
    reader *rs = &w->rs;
    if (docq_redis_is_cluster(w->rd)) return choose_one_shard(w, count);
    int want = w->nfree < w->nshards ? w->nfree : w->nshards;
    rs->nsent = 0;
    if (rs->scanning) {
        for (int i = 0; i < w->nshards && rs->nsent < want; i++)
            if (!rs->scan_done[i]) rs->sent[rs->nsent++] = i;
        *count = w->nfree / rs->nsent;
        return 0;
    }
    for (int i = 0; i < want; i++) rs->sent[rs->nsent++] = (rs->next_shard + i) % w->nshards;
    rs->next_shard = (rs->next_shard + want) % w->nshards;
    *count = w->nfree / want;
    return want == w->nshards && !docq_redis_is_cluster(w->rd);
}

/* After a reply with n entries: a round of partial reads over every shard
 * that found nothing pauses the partial reads for READ_POLL_MS. */
static void note_read(worker_loop *w, int n) {
    reader *rs = &w->rs;
    if (rs->scanning || n > 0 || rs->blocking) {
        rs->empty_reads = 0;
        return;
    }
    if (++rs->empty_reads * rs->nsent >= w->nshards) {
        rs->empty_reads = 0;
        rs->next_read_ms = docq_now_ms() + READ_POLL_MS;
    }
}

/* 1 when a read may be sent now, else 0. */
static int read_wanted(const worker_loop *w) {
    if (!w->redis_ok || w->stopping || w->rs.in_flight || w->nfree == 0) return 0;
    if (recovery_reclaim_due(w)) return 0; /* The reclaim round takes the free slots first. */
    return w->rs.scanning || !partial_reads(w) || docq_now_ms() >= w->rs.next_read_ms;
}

/* 1 when the re-read of our pending entries has reached the end of every
 * stream, else 0. */
static int scan_finished(const worker_loop *w) {
    for (int i = 0; i < w->nshards; i++)
        if (!w->rs.scan_done[i]) return 0;
    return 1;
}

/* The read in flight (or being sent) failed: in a Redis Cluster, where it
 * names one shard, only that shard pauses (and rd is dropped: its reply will
 * never be read); else Redis is unusable. */
static void read_failed(worker_loop *w, const docq_error *why) {
    if (!docq_redis_is_cluster(w->rd) || w->rs.nsent != 1) {
        outage_redis_failed(w, why);
        return;
    }
    docq_redis_disconnect(w->rd);
    w->rs.in_flight = 0;
    outage_shard_failed(w, w->rs.sent[0], why);
}

/* Write the whole output buffer of ctx to the socket. */
static int flush_ctx(redisContext *ctx) {
    int done = 0;
    while (!done)
        if (redisBufferWrite(ctx, &done) != REDIS_OK) return DOCQ_ERR;
    return DOCQ_OK;
}

/* Send one XREADGROUP on rd for up to nfree entries, without waiting for the
 * reply: new entries ('>') normally, our own pending ones (from the ids
 * reached) while scanning. */
static void send_read(worker_loop *w) {
    reader *rs = &w->rs;
    long count;
    if (rs->scanning && scan_finished(w)) {
        rs->scanning = 0;
        docq_log_debug("own pending entries re-read");
    }
    int block = choose_streams(w, &count);
    if (rs->nsent == 0) { /* A cluster whose every primary is paused: look again later. */
        rs->next_read_ms = docq_now_ms() + READ_POLL_MS;
        return;
    }
    int argc = 0;
    snprintf(rs->count_arg, sizeof(rs->count_arg), "%ld", count);
    snprintf(rs->block_arg, sizeof(rs->block_arg), "%d", READ_BLOCK_MS);
    const char **av = w->argv;
    av[argc++] = "XREADGROUP", av[argc++] = "GROUP", av[argc++] = w->cfg->group;
    av[argc++] = w->consumer, av[argc++] = "COUNT", av[argc++] = rs->count_arg;
    if (block) av[argc++] = "BLOCK", av[argc++] = rs->block_arg;
    av[argc++] = "STREAMS";
    for (int i = 0; i < rs->nsent; i++) av[argc++] = w->keys[rs->sent[i]];
    for (int i = 0; i < rs->nsent; i++) av[argc++] = rs->scanning ? rs->scan_from[rs->sent[i]] : ">";
    for (int i = 0; i < argc; i++) w->argvlen[i] = strlen(av[i]);

    docq_error why = {0};
    const char *key = w->keys[rs->sent[0]];
    redisContext *ctx = docq_redis_is_cluster(w->rd) ? docq_redis_key_context(w->rd, key, strlen(key), &why)
                                                     : docq_redis_context(w->rd);
    if (!ctx || redisAppendCommandArgv(ctx, argc, av, w->argvlen) != REDIS_OK || flush_ctx(ctx) != DOCQ_OK) {
        docq_error_set(&why, DOCQ_EUNAVAIL, "sending XREADGROUP: %s",
                       ctx && ctx->errstr[0] ? ctx->errstr : why.msg[0] ? why.msg : "connection lost");
        read_failed(w, &why);
        return;
    }
    rs->ctx = ctx;
    rs->in_flight = 1;
    rs->blocking = block;
    rs->unblocked = 0;
    rs->deadline_ms = docq_now_ms() + (block ? READ_BLOCK_MS : 0) + w->cfg->redis_timeout_ms;
}

/* The shard of a stream key that the read in flight named, or -1. */
static int sent_shard_of(const worker_loop *w, const redisReply *key) {
    if (key->type != REDIS_REPLY_STRING) return -1;
    for (int i = 0; i < w->rs.nsent; i++)
        if (strcmp(w->keys[w->rs.sent[i]], key->str) == 0) return w->rs.sent[i];
    return -1;
}

/* Handle the entries of one stream in a read's reply. Returns how many there
 * were through *n; DOCQ_OK, or DOCQ_EUNAVAIL after a Redis failure. */
static int take_stream(worker_loop *w, const redisReply *st, int *n) {
    reader *rs = &w->rs;
    if (st->type != REDIS_REPLY_ARRAY || st->elements != 2) return DOCQ_OK;
    int shard = sent_shard_of(w, st->element[0]);
    const redisReply *entries = st->element[1];
    if (shard < 0 || entries->type != REDIS_REPLY_ARRAY) return DOCQ_OK;
    if (rs->scanning && entries->elements == 0) rs->scan_done[shard] = 1;
    for (size_t i = 0; i < entries->elements; i++) {
        const redisReply *e = entries->element[i];
        (*n)++;
        if (rs->scanning && e->type == REDIS_REPLY_ARRAY && e->elements == 2 &&
            e->element[0]->type == REDIS_REPLY_STRING && e->element[0]->len < ENTRY_ID_MAX)
            memcpy(rs->scan_from[shard], e->element[0]->str, e->element[0]->len + 1);
        if (tasks_take_entry(w, shard, e, rs->scanning ? ENTRY_OWN : ENTRY_NEW) != DOCQ_OK)
            return DOCQ_EUNAVAIL;
    }
    return DOCQ_OK;
}

/* Handle the reply of a read: nil (BLOCK timed out), an error or, per
 * stream, [key, [entry...]]. */
static void handle_read_reply(worker_loop *w, const redisReply *rep) {
    int n = 0;
    if (rep->type == REDIS_REPLY_ERROR) {
        docq_error why;
        /* NOGROUP: the group is gone; UNBLOCKED: a stream we waited on was
         * deleted while we waited. */
        if (strncmp(rep->str, "NOGROUP", 7) == 0 || strncmp(rep->str, "UNBLOCKED", 9) == 0) {
            docq_log_warn("stream or consumer group %s is gone (did Redis lose its data?): "
                          "re-creating it: %s", w->cfg->group, rep->str);
            w->redis_ok = 0;
            w->retry_at_ms = 0;
            return;
        }
        docq_error_set(&why, DOCQ_ERR, "XREADGROUP: %s", rep->str);
        read_failed(w, &why);
        return;
    }
    if (rep->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i < rep->elements; i++)
            if (take_stream(w, rep->element[i], &n) != DOCQ_OK) return;
    } else if (rep->type != REDIS_REPLY_NIL) {
        docq_error why;
        docq_error_set(&why, DOCQ_ERR, "unexpected reply type %d to XREADGROUP", rep->type);
        read_failed(w, &why);
        return;
    }
    outage_redis_worked(w);
    if (docq_redis_is_cluster(w->rd) && w->rs.nsent == 1) outage_shard_worked(w, w->rs.sent[0]);
    note_read(w, n);
}

/* rd is readable: take in what arrived and handle the reply once complete. */
static void on_rd_ready(worker_loop *w) {
    redisContext *ctx = w->rs.ctx;
    void *rep = NULL;
    if (redisBufferRead(ctx) != REDIS_OK || redisGetReplyFromReader(ctx, &rep) != REDIS_OK) {
        docq_error why;
        docq_error_set(&why, DOCQ_EUNAVAIL, "reading XREADGROUP reply: %s",
                       ctx->errstr[0] ? ctx->errstr : "connection lost");
        read_failed(w, &why);
        return;
    }
    if (!rep) return; /* Only part of the reply is here. */
    w->rs.in_flight = 0;
    handle_read_reply(w, rep);
    freeReplyObject(rep);
}

/* ---- Stopping and waiting ------------------------------------------------- */

/* Cut a blocked read short (it then answers nil, or the entries it already
 * got), so that a stop or a reclaim round need not wait for its BLOCK to
 * end. */
static void unblock_read(worker_loop *w) {
    char id[32];
    docq_error why = {0};
    snprintf(id, sizeof(id), "%lld", w->rs.client_id);
    const char *argv[] = {"CLIENT", "UNBLOCK", id};
    w->rs.unblocked = 1;
    redisReply *rep = docq_redis_command(w->cmd, 3, argv, NULL, &why);
    if (rep) freeReplyObject(rep);
    else outage_redis_failed(w, &why);
}

/* The stop descriptor fired: read no more, give the calls in flight the
 * grace to finish, and leave the tasks waiting for a retry to other
 * workers. */
static void begin_stop(worker_loop *w) {
    w->stopping = 1;
    tasks_leave_waiting(w);
    w->stop_at_ms = docq_now_ms() + w->cfg->shutdown_grace_ms;
    docq_log_info("stopping: waiting up to %ld ms for %d tasks in flight", w->cfg->shutdown_grace_ms,
                  w->nslots - w->nfree);
    if (w->rs.in_flight && w->redis_ok) unblock_read(w);
}

/* 1 when the loop may return: stopping, and nothing left or the grace over. */
static int loop_done(const worker_loop *w) {
    if (w->refused.code != DOCQ_OK) return 1;
    if (!w->stopping) return 0;
    if (w->nfree == w->nslots && !w->rs.in_flight) return 1;
    return docq_now_ms() >= w->stop_at_ms;
}

/* How long the next poll may wait, ms: until the read's deadline, the next
 * partial read, retry, heartbeat or reclaim, the next reconnect or the end
 * of the grace, and never more than READ_BLOCK_MS. */
static int poll_timeout(const worker_loop *w) {
    int64_t now = docq_now_ms(), until = now + READ_BLOCK_MS;
    if (w->redis_ok && tasks_next_retry_ms(w) < until) until = tasks_next_retry_ms(w);
    if (w->redis_ok && recovery_next_ms(w) < until) until = recovery_next_ms(w);
    if (w->redis_ok && cancels_next_ms(w) < until) until = cancels_next_ms(w);
    if (w->rs.in_flight && w->rs.deadline_ms < until) until = w->rs.deadline_ms;
    if (w->redis_ok && !w->stopping && !w->rs.in_flight && w->nfree > 0 &&
        w->rs.next_read_ms < until)
        until = w->rs.next_read_ms;
    if (!w->redis_ok && w->retry_at_ms < until) until = w->retry_at_ms;
    if (w->stopping && w->stop_at_ms < until) until = w->stop_at_ms;
    return until > now ? (int)(until - now) : 0;
}

/* Wait once for AI traffic, the read's reply or the stop, and handle what
 * happened. Returns DOCQ_OK, or DOCQ_ERR when the HTTP client fails. */
static int poll_once(worker_loop *w, docq_error *err) {
    ai_waitfd fds[2];
    unsigned n = 0;
    int rd_i = -1, stop_i = -1;
    if (w->rs.in_flight) {
        fds[n] = (ai_waitfd){w->rs.ctx->fd, 0};
        rd_i = (int)n++;
    }
    if (!w->stopping) {
        fds[n] = (ai_waitfd){w->stop_fd, 0};
        stop_i = (int)n++;
    }
    if (ai_client_poll(w->ai, fds, n, poll_timeout(w), err) != DOCQ_OK) return DOCQ_ERR;
    if (stop_i >= 0 && fds[stop_i].ready) begin_stop(w);
    if (rd_i >= 0 && w->rs.in_flight && fds[rd_i].ready) {
        on_rd_ready(w);
    } else if (w->rs.in_flight && docq_now_ms() >= w->rs.deadline_ms) {
        docq_error why;
        docq_error_set(&why, DOCQ_EUNAVAIL, "no reply to XREADGROUP within %ld ms",
                       READ_BLOCK_MS + w->cfg->redis_timeout_ms);
        read_failed(w, &why);
    }
    tasks_collect_results(w);
    return DOCQ_OK;
}

/* ---- The loop ------------------------------------------------------------- */

/* A reclaim round is due: run it when no read is in flight, or cut a
 * blocked read short so that it can run next. */
static void maybe_reclaim(worker_loop *w) {
    if (!recovery_reclaim_due(w)) return;
    if (!w->rs.in_flight)
        recovery_reclaim(w);
    else if (w->rs.blocking && !w->rs.unblocked)
        unblock_read(w);
}

/* Stopped: delete this worker's consumer on every shard where it holds no
 * pending entry, so that stopped workers leave nothing behind in the group
 * (one that holds entries stays until they are reclaimed; recovery.c then
 * deletes it once idle). Best effort: a Redis failure only logs. */
static void leave_group(worker_loop *w) {
    if (!w->redis_ok) return;
    docq_redis_disconnect(w->rd); /* No read of ours may recreate a consumer. */
    long long deleted, total = 0;
    for (int i = 0; i < w->nshards; i++) {
        docq_error why = {0};
        if (docq_store_prune(w->cmd, w->cfg->key_prefix, i, w->cfg->group, w->consumer,
                             w->cfg->consumer_idle_ms, &deleted, &why) != DOCQ_OK) {
            docq_log_warn("could not delete this worker's consumers from group %s: %s", w->cfg->group,
                          why.msg);
            return;
        }
        total += deleted;
    }
    docq_log_debug("deleted %lld consumers without pending entries from group %s", total, w->cfg->group);
}

int worker_loop_run(worker_loop *w, docq_error *err) {
    while (!loop_done(w)) {
        worker_metrics_loop_state(&w->metrics, w->redis_ok, ai_client_in_flight(w->ai));
        if (!w->redis_ok && docq_now_ms() >= w->retry_at_ms) redis_recover(w);
        if (w->redis_ok && !w->shape_seen && docq_now_ms() >= w->shape_check_at_ms)
            recheck_shape(w);
        if (loop_done(w)) break;
        if (w->redis_ok) cancels_poll(w);
        if (w->redis_ok) tasks_flush_writes(w);
        if (w->redis_ok) tasks_start_due_retries(w);
        recovery_heartbeat(w);
        maybe_reclaim(w);
        if (read_wanted(w)) send_read(w);
        if (poll_once(w, err) != DOCQ_OK) return DOCQ_ERR;
    }
    if (w->refused.code != DOCQ_OK) {
        *err = w->refused;
        return DOCQ_ECONFLICT;
    }
    int left = w->nslots - w->nfree;
    if (left > 0)
        docq_log_warn("shutdown grace over: %d tasks left pending in Redis for another worker to "
                      "reclaim (%d AI calls cut off, %d outcomes not written)",
                      left, ai_client_in_flight(w->ai), w->nwriting);
    leave_group(w);
    docq_log_info("worker %s stopped", w->consumer);
    return DOCQ_OK;
}

/* Fill w->consumer with "<hostname>-<pid>-<random hex>" (docq_consumer_name).
 * Returns DOCQ_OK or the error of docq_consumer_name. */
static int make_consumer_name(worker_loop *w, docq_error *err) {
    char host[256];
    if (gethostname(host, sizeof(host)) != 0) strcpy(host, "worker");
    host[sizeof(host) - 1] = '\0';
    return docq_consumer_name(w->consumer, sizeof(w->consumer), host, (long)getpid(), err);
}

/* Allocate the tables sized by the configuration. Returns DOCQ_OK or DOCQ_ERR. */
static int alloc_tables(worker_loop *w) {
    int n = w->nshards;
    w->slots = calloc((size_t)w->nslots, sizeof(*w->slots));
    w->free_list = calloc((size_t)w->nslots, sizeof(*w->free_list));
    w->keys = calloc((size_t)n, sizeof(*w->keys));
    w->argv = calloc((size_t)(READ_FIXED_ARGS + 2 * n), sizeof(*w->argv));
    w->argvlen = calloc((size_t)(READ_FIXED_ARGS + 2 * n), sizeof(*w->argvlen));
    w->rs.sent = calloc((size_t)n, sizeof(*w->rs.sent));
    w->rs.scan_done = calloc((size_t)n, sizeof(*w->rs.scan_done));
    w->rs.scan_from = calloc((size_t)n, sizeof(*w->rs.scan_from));
    w->shard_out = calloc((size_t)n, sizeof(*w->shard_out));
    if (!w->slots || !w->free_list || !w->keys || !w->argv || !w->argvlen || !w->rs.sent ||
        !w->rs.scan_done || !w->rs.scan_from || !w->shard_out)
        return DOCQ_ERR;
    for (int i = 0; i < w->nslots; i++) w->free_list[i] = w->nslots - 1 - i;
    w->nfree = w->nslots;
    for (int i = 0; i < n; i++) docq_key_stream(w->keys[i], KEY_MAX, w->cfg->key_prefix, i);
    return DOCQ_OK;
}

worker_loop *worker_loop_create(const docq_config *cfg, int stop_fd, docq_error *err) {
    worker_loop *w = calloc(1, sizeof(*w));
    if (!w) goto oom;
    w->cfg = cfg;
    w->stop_fd = stop_fd;
    w->nslots = (int)cfg->concurrency;
    w->nshards = (int)cfg->shards;
    w->backoff_ms = OUTAGE_BACKOFF_MIN_MS;
    w->queue = (docq_queue){cfg->key_prefix, cfg->group, cfg->dead_stream, cfg->max_deliveries,
                            cfg->result_ttl_s, cfg->dead_maxlen, w->consumer};
    w->rng = (uint64_t)docq_now_ms() * 1000003u ^ (uint64_t)getpid();
    worker_metrics_init(&w->metrics);
    if (make_consumer_name(w, err) != DOCQ_OK) {
        worker_loop_free(w);
        return NULL;
    }
    w->cmd = docq_redis_create(&cfg->redis, cfg->redis_timeout_ms);
    w->rd = docq_redis_create(&cfg->redis, cfg->redis_timeout_ms);
    if (!w->cmd || !w->rd || alloc_tables(w) != DOCQ_OK || recovery_init(w) != DOCQ_OK ||
        cancels_init(w) != DOCQ_OK)
        goto oom;
    ai_client_options opts = {cfg->ai_url, cfg->ai_connect_timeout_ms, cfg->ai_timeout_ms,
                              (size_t)cfg->max_result_bytes, cfg->concurrency};
    w->ai = ai_client_create(&opts, err);
    if (!w->ai) {
        worker_loop_free(w);
        return NULL;
    }
    return w;
oom:
    worker_loop_free(w);
    docq_error_set(err, DOCQ_ERR, "cannot set up the worker: out of memory");
    return NULL;
}

worker_metrics *worker_loop_metrics(worker_loop *w) { return &w->metrics; }

void worker_loop_free(worker_loop *w) {
    if (!w) return;
    ai_client_free(w->ai);
    for (int i = 0; w->slots && i < w->nslots; i++) free(w->slots[i].result);
    docq_redis_free(w->cmd);
    docq_redis_free(w->rd);
    free(w->slots);
    free(w->free_list);
    free(w->keys);
    free(w->argv);
    free(w->argvlen);
    free(w->rs.sent);
    free(w->rs.scan_done);
    free(w->rs.scan_from);
    free(w->shard_out);
    recovery_free(w);
    cancels_free(w);
    free(w);
}
