/* redis.c -- self-reconnecting Redis connections, script runner and
 * pipelines, for a standalone Redis or a Redis Cluster. Every command,
 * pipelined or not, goes through docq_pipeline_run, the one place that
 * decides where a command goes and what is sent again. */
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "clock.h"
#include "cluster.h"
#include "redis.h"

#define MAX_CONNS 64          /* Nodes one docq_redis talks to: seeds and primaries. */
#define MAX_REDIRECTS 5       /* MOVED/ASK a command may follow before it fails. */
#define REFRESH_MIN_MS 100    /* Slot map refreshes: at most this often... */
#define REFRESH_MAX_MS 1000   /* ...backing off to this while they fail. */

/* One connection to one node. */
typedef struct redis_conn {
    redisContext *ctx;                   /* NULL while disconnected. */
    char host[256];
    int port;
    int64_t retry_at_ms;                 /* No connect attempt before this time. */
    char last_error[256];                /* Why the last connect failed. */
    char shas[DOCQ_MAX_SCRIPTS][41];     /* Script SHAs loaded on this connection. */
    const char *srcs[DOCQ_MAX_SCRIPTS];  /* The source each SHA was loaded from: two
                                          * scripts given one slot by mistake then
                                          * cost reloads, never the wrong script. */
} redis_conn;

/* What the node(s) behind a docq_redis turned out to be. */
typedef enum redis_mode {
    MODE_UNKNOWN,    /* Never reached yet: the first connect asks (INFO cluster). */
    MODE_STANDALONE, /* One node: conns[home] serves everything. */
    MODE_CLUSTER     /* A Redis Cluster: each command goes to the primary of its key's slot. */
} redis_mode;

struct docq_redis {
    docq_redis_addr addr;                /* Seeds, credentials, database. */
    long timeout_ms;
    redis_mode mode;
    redis_conn *conns[MAX_CONNS];        /* The seeds first, then primaries met. */
    int nconns;
    int home;                            /* The connection for keyless commands and
                                          * docq_redis_context. */
    docq_cluster_map *map;               /* Cluster: the slot map, NULL until loaded. */
    int map_stale;                       /* Cluster: refresh the map when next allowed. */
    int64_t refresh_at_ms;               /* No refresh before this time. */
    long refresh_backoff_ms;
};

/* The index of the connection to host:port, created (disconnected) when new.
 * Returns it, or -1 when memory runs out or MAX_CONNS are in use. */
static int conn_index(docq_redis *r, const char *host, int port) {
    for (int i = 0; i < r->nconns; i++)
        if (r->conns[i]->port == port && strcmp(r->conns[i]->host, host) == 0) return i;
    if (r->nconns >= MAX_CONNS || strlen(host) >= sizeof(r->conns[0]->host)) return -1;
    redis_conn *c = calloc(1, sizeof(*c));
    if (!c) return -1;
    strcpy(c->host, host);
    c->port = port;
    r->conns[r->nconns] = c;
    return r->nconns++;
}

docq_redis *docq_redis_create(const docq_redis_addr *addr, long timeout_ms) {
    docq_redis *r = calloc(1, sizeof(*r));
    if (!r) return NULL;
    r->addr = *addr;
    r->timeout_ms = timeout_ms;
    r->refresh_backoff_ms = REFRESH_MIN_MS;
    int ok = conn_index(r, addr->host, addr->port) == 0;
    for (int i = 0; ok && i < addr->nseeds; i++) ok = conn_index(r, addr->seeds[i].host, addr->seeds[i].port) >= 0;
    if (!ok) {
        docq_redis_free(r);
        return NULL;
    }
    return r;
}

/* Close c's connection and forget the scripts loaded on it. */
static void conn_disconnect(redis_conn *c) {
    if (c->ctx) redisFree(c->ctx);
    c->ctx = NULL;
    memset(c->shas, 0, sizeof(c->shas));
}

void docq_redis_free(docq_redis *r) {
    if (!r) return;
    for (int i = 0; i < r->nconns; i++) {
        conn_disconnect(r->conns[i]);
        free(r->conns[i]);
    }
    docq_cluster_map_free(r->map);
    free(r);
}

void docq_redis_disconnect(docq_redis *r) {
    for (int i = 0; i < r->nconns; i++) conn_disconnect(r->conns[i]);
    r->map_stale = 1;
}

redisContext *docq_redis_context(docq_redis *r) { return r->conns[r->home]->ctx; }

int docq_redis_is_cluster(const docq_redis *r) { return r->mode == MODE_CLUSTER; }

/* Send AUTH (as the URL's ACL user, if any) and SELECT as the URL asks.
 * Returns DOCQ_OK or DOCQ_EUNAVAIL. */
static int handshake(docq_redis *r, redis_conn *c, docq_error *err) {
    redisReply *rep = NULL;
    if (r->addr.password[0]) {
        /* AUTH password for the default user, which Redis before 6 knows too. */
        const char *argv[3] = {"AUTH", r->addr.user, r->addr.password};
        int with_user = r->addr.user[0] != '\0';
        rep = redisCommandArgv(c->ctx, 2 + with_user, with_user ? argv : (const char *[]){"AUTH", r->addr.password},
                               NULL);
        if (!rep || rep->type == REDIS_REPLY_ERROR) goto fail;
        freeReplyObject(rep);
    }
    if (r->addr.db) {
        rep = redisCommand(c->ctx, "SELECT %d", r->addr.db);
        if (!rep || rep->type == REDIS_REPLY_ERROR) goto fail;
        freeReplyObject(rep);
    }
    return DOCQ_OK;
fail:
    docq_error_set(err, DOCQ_EUNAVAIL, "redis %s:%d: %s", c->host, c->port, rep ? rep->str : c->ctx->errstr);
    if (rep) freeReplyObject(rep);
    return DOCQ_EUNAVAIL;
}

/* Connect c now if not connected (AUTH and SELECT included). After a failed
 * connect, fails fast with the same reason for DOCQ_REDIS_RETRY_MS. Returns
 * DOCQ_OK or DOCQ_EUNAVAIL with the reason. */
static int conn_connect(docq_redis *r, redis_conn *c, docq_error *err) {
    if (c->ctx) return DOCQ_OK;
    int64_t now = docq_now_ms();
    if (now < c->retry_at_ms) return docq_error_set(err, DOCQ_EUNAVAIL, "%s", c->last_error);
    struct timeval tv = {r->timeout_ms / 1000, (r->timeout_ms % 1000) * 1000};
    c->ctx = redisConnectWithTimeout(c->host, c->port, tv);
    docq_error why = {0};
    if (!c->ctx || c->ctx->err) {
        docq_error_set(&why, DOCQ_EUNAVAIL, "redis %s:%d unreachable: %s", c->host, c->port,
                       c->ctx ? c->ctx->errstr : "out of memory");
    } else if (redisSetTimeout(c->ctx, tv) != REDIS_OK) {
        docq_error_set(&why, DOCQ_EUNAVAIL, "redis %s:%d: cannot set timeout", c->host, c->port);
    } else if (handshake(r, c, &why) == DOCQ_OK) {
        return DOCQ_OK;
    }
    if (c->ctx) redisFree(c->ctx);
    c->ctx = NULL;
    c->retry_at_ms = now + DOCQ_REDIS_RETRY_MS;
    snprintf(c->last_error, sizeof(c->last_error), "%s", why.msg);
    return docq_error_set(err, DOCQ_EUNAVAIL, "%s", why.msg);
}

/* Ask c's live node whether it runs in cluster mode (INFO cluster), setting
 * r->mode. Returns DOCQ_OK, or DOCQ_EUNAVAIL when the connection failed
 * (it is dropped). */
static int detect_mode(docq_redis *r, redis_conn *c, docq_error *err) {
    redisReply *rep = redisCommand(c->ctx, "INFO cluster");
    if (!rep) {
        docq_error_set(err, DOCQ_EUNAVAIL, "redis %s:%d: %s", c->host, c->port, c->ctx->errstr);
        conn_disconnect(c);
        return DOCQ_EUNAVAIL;
    }
    int cluster = rep->type == REDIS_REPLY_STRING && strstr(rep->str, "cluster_enabled:1") != NULL;
    freeReplyObject(rep);
    r->mode = cluster ? MODE_CLUSTER : MODE_STANDALONE;
    r->map_stale = cluster;
    return DOCQ_OK;
}

/* Load the slot map (CLUSTER SHARDS) from c's node, connecting it first,
 * and make sure every primary it names has a connection slot. Returns
 * DOCQ_OK or the failure. */
static int load_map_from(docq_redis *r, redis_conn *c, docq_error *err) {
    if (conn_connect(r, c, err) != DOCQ_OK) return DOCQ_EUNAVAIL;
    redisReply *rep = redisCommand(c->ctx, "CLUSTER SHARDS");
    if (!rep) {
        docq_error_set(err, DOCQ_EUNAVAIL, "redis %s:%d: %s", c->host, c->port, c->ctx->errstr);
        conn_disconnect(c);
        return DOCQ_EUNAVAIL;
    }
    if (!r->map) r->map = docq_cluster_map_create();
    int rc = r->map ? docq_cluster_map_from_shards(r->map, rep, err)
                    : docq_error_set(err, DOCQ_ERR, "out of memory");
    freeReplyObject(rep);
    if (rc != DOCQ_OK) return rc;
    if (docq_cluster_map_covered(r->map) < DOCQ_CLUSTER_SLOTS)
        rc = docq_error_set(err, DOCQ_EUNAVAIL, "redis %s:%d: the cluster serves only %u of %d slots", c->host,
                            c->port, docq_cluster_map_covered(r->map), DOCQ_CLUSTER_SLOTS);
    for (size_t i = 0; i < docq_cluster_map_primaries(r->map); i++) {
        const char *host;
        int port;
        docq_cluster_map_primary(r->map, i, &host, &port);
        conn_index(r, host, port);
    }
    return rc;
}

/* Refresh the slot map from the first node that answers, home first, at
 * most every REFRESH_MIN_MS and backing off to REFRESH_MAX_MS while no node
 * gives a map covering every slot. Returns DOCQ_OK, or the last failure
 * (the old map, if any, is kept when none answered). */
static int refresh_map(docq_redis *r, docq_error *err) {
    int64_t now = docq_now_ms();
    if (now < r->refresh_at_ms) return docq_error_set(err, DOCQ_EUNAVAIL, "the cluster's slot map is being refreshed");
    int rc = DOCQ_EUNAVAIL;
    docq_error_set(err, DOCQ_EUNAVAIL, "no cluster node reachable");
    for (int k = 0; k < r->nconns && rc != DOCQ_OK; k++) rc = load_map_from(r, r->conns[(r->home + k) % r->nconns], err);
    if (rc == DOCQ_OK) {
        r->map_stale = 0;
        r->refresh_backoff_ms = REFRESH_MIN_MS;
        r->refresh_at_ms = now + REFRESH_MIN_MS;
    } else {
        r->refresh_at_ms = now + r->refresh_backoff_ms;
        r->refresh_backoff_ms = r->refresh_backoff_ms * 2 > REFRESH_MAX_MS ? REFRESH_MAX_MS : r->refresh_backoff_ms * 2;
    }
    return rc;
}

/* Make r usable: on the first use, find a seed that answers and learn the
 * mode; in a cluster, refresh a stale map when allowed and make home a node
 * that answers. Returns DOCQ_OK or DOCQ_EUNAVAIL with the reason. */
static int redis_ready(docq_redis *r, docq_error *err) {
    if (r->mode == MODE_UNKNOWN) {
        int rc = DOCQ_EUNAVAIL;
        for (int k = 0; k < r->nconns && rc != DOCQ_OK; k++) {
            redis_conn *c = r->conns[(r->home + k) % r->nconns];
            if (conn_connect(r, c, err) == DOCQ_OK && detect_mode(r, c, err) == DOCQ_OK) {
                r->home = (r->home + k) % r->nconns;
                rc = DOCQ_OK;
            }
        }
        if (rc != DOCQ_OK) return rc;
    }
    if (r->mode == MODE_STANDALONE) return conn_connect(r, r->conns[r->home], err);
    docq_error why = {0};
    if (r->map_stale && refresh_map(r, &why) != DOCQ_OK && !r->map) return docq_error_set(err, why.code, "%s", why.msg);
    for (int k = 0; k < r->nconns; k++) {
        if (conn_connect(r, r->conns[(r->home + k) % r->nconns], k ? &why : err) == DOCQ_OK) {
            r->home = (r->home + k) % r->nconns;
            return DOCQ_OK;
        }
    }
    return DOCQ_EUNAVAIL;
}

int docq_redis_connect(docq_redis *r, docq_error *err) { return redis_ready(r, err); }

/* The connection serving slot: home in standalone mode or for a keyless
 * command (slot < 0). Returns its index, or -1 with err set when the map
 * names no node for the slot (the map is then marked stale). */
static int conn_for_slot(docq_redis *r, int slot, docq_error *err) {
    if (r->mode != MODE_CLUSTER || slot < 0) return r->home;
    const char *host;
    int port, i = -1;
    if (r->map && docq_cluster_map_node(r->map, (unsigned)slot, &host, &port) == DOCQ_OK) i = conn_index(r, host, port);
    if (i >= 0) return i;
    r->map_stale = 1;
    docq_error_set(err, DOCQ_EUNAVAIL, "no Redis Cluster node known to serve slot %d (the cluster is changing or down)",
                   slot);
    return -1;
}

redisContext *docq_redis_key_context(docq_redis *r, const char *key, size_t len, docq_error *err) {
    if (redis_ready(r, err) != DOCQ_OK) return NULL;
    int i = conn_for_slot(r, (int)docq_cluster_key_slot(key, len), err);
    if (i < 0 || conn_connect(r, r->conns[i], err) != DOCQ_OK) {
        r->map_stale = 1;
        return NULL;
    }
    return r->conns[i]->ctx;
}

/* A queued command's progress through docq_pipeline_run. */
typedef enum cmd_state {
    CMD_TO_SEND, /* Queued, or to be sent again. */
    CMD_SENT,    /* Appended to the connection; its reply not read yet. */
    CMD_DONE     /* Its outcome is known: reply, or err. */
} cmd_state;

typedef struct pipe_cmd {
    const docq_script *script; /* NULL: a plain command. */
    int nkeys;                 /* Scripts: how many of the arguments are keys. */
    int argc;                  /* Its arguments are p->args[first .. first + argc). */
    size_t first;
    int slot;                  /* The hash slot of its first key; -1: it has none. */
    int conn;                  /* The connection it is sent on this round (route). */
    int ask;                   /* >= 0: ASK redirected it there: send it there once, after ASKING. */
    int asking;                /* 1 while an ASKING sent before it awaits its reply. */
    int redirects;             /* MOVED and ASK redirections followed. */
    int rerouted;              /* Cluster: 1 once routed again after its node could not be reached. */
    cmd_state state;
    int resent_noscript;       /* 1 once queued again after NOSCRIPT. */
    int resent_lost;           /* 1 once queued again after a lost connection. */
    char sha[41];              /* Scripts: the SHA to send, copied when loaded. */
    redisReply *reply;         /* CMD_DONE: the reply, or NULL with err set. */
    docq_error err;
} pipe_cmd;

typedef struct pipe_arg {
    size_t off, len;           /* Where the argument's bytes are in p->bytes. */
} pipe_arg;

struct docq_pipeline {
    pipe_cmd *cmds;            /* In queueing order, which is sending order. */
    size_t ncmds, cmds_cap;
    pipe_arg *args;            /* Every command's arguments, back to back. */
    size_t nargs, args_cap;
    char *bytes;               /* Copies of the argument bytes. */
    size_t nbytes, bytes_cap;
    const char **av;           /* Scratch: the argument vector of the command */
    size_t *al;                /* being sent (EVALSHA, SHA and key count first). */
    size_t av_cap;
    int wait_replicas;         /* docq_pipeline_wait_replicas: 0, no WAIT. */
    long wait_ms;
    long long wait_acked;      /* Fewest replicas any answered WAIT counted; LLONG_MAX: none answered. */
    docq_error wait_err;       /* Set (code != 0) when some write may be on no replica's WAIT. */
};

/* Make room for need items of size bytes in buf, whose capacity is *cap
 * items. Returns the (maybe moved) buffer with *cap updated, or NULL when out
 * of memory (buf and *cap unchanged). */
static void *grow(void *buf, size_t *cap, size_t need, size_t size) {
    if (need <= *cap) return buf;
    size_t n = *cap ? *cap : 16;
    while (n < need) n *= 2;
    void *b = realloc(buf, n * size);
    if (b) *cap = n;
    return b;
}

/* Make room in p for one more command of argc arguments, total bytes
 * long. Returns DOCQ_OK, or DOCQ_ERR when out of memory. */
static int reserve(docq_pipeline *p, int argc, size_t total) {
    size_t vec = (size_t)argc + 3, al_cap = p->av_cap; /* EVALSHA, SHA, key count. */
    pipe_cmd *cmds = grow(p->cmds, &p->cmds_cap, p->ncmds + 1, sizeof(*cmds));
    if (!cmds) return DOCQ_ERR;
    p->cmds = cmds;
    pipe_arg *args = grow(p->args, &p->args_cap, p->nargs + (size_t)argc, sizeof(*args));
    if (!args) return DOCQ_ERR;
    p->args = args;
    char *bytes = grow(p->bytes, &p->bytes_cap, p->nbytes + total + 1, 1);
    if (!bytes) return DOCQ_ERR;
    p->bytes = bytes;
    size_t *al = grow(p->al, &al_cap, vec, sizeof(*al));
    if (!al) return DOCQ_ERR;
    p->al = al;
    const char **av = grow(p->av, &p->av_cap, vec, sizeof(*av));
    if (!av) return DOCQ_ERR;
    p->av = av;
    return DOCQ_OK;
}

/* The index in argv of a plain command's first key, or -1 when it has
 * none (docq sends no other keyless commands than these). */
static int first_key(int argc, const char **argv, const size_t *argvlen) {
    static const char *const keyless[] = {"PING", "INFO", "WAIT", "CLUSTER", "SCRIPT", "CLIENT", "ECHO", "TIME"};
    size_t len = argvlen ? argvlen[0] : strlen(argv[0]);
    for (size_t i = 0; i < sizeof(keyless) / sizeof(keyless[0]); i++)
        if (len == strlen(keyless[i]) && strncasecmp(argv[0], keyless[i], len) == 0) return -1;
    if (len == 10 && strncasecmp(argv[0], "XREADGROUP", len) == 0) {
        for (int i = 1; i + 1 < argc; i++)
            if ((argvlen ? argvlen[i] : strlen(argv[i])) == 7 && strncasecmp(argv[i], "STREAMS", 7) == 0) return i + 1;
        return -1;
    }
    if ((len == 6 && strncasecmp(argv[0], "XGROUP", len) == 0) || (len == 5 && strncasecmp(argv[0], "XINFO", len) == 0))
        return argc > 2 ? 2 : -1; /* XGROUP CREATE key..., XINFO GROUPS key... */
    return argc > 1 ? 1 : -1;
}

/* The hash slot of a command's first key (scripts: argv[0] when nkeys > 0),
 * or -1 when it has none. */
static int command_slot(const docq_script *script, int nkeys, int argc, const char **argv, const size_t *argvlen) {
    int k = script ? (nkeys > 0 && argc > 0 ? 0 : -1) : first_key(argc, argv, argvlen);
    if (k < 0) return -1;
    return (int)docq_cluster_key_slot(argv[k], argvlen ? argvlen[k] : strlen(argv[k]));
}

/* Queue a command (script NULL: docq_redis_command) or a script call (see
 * docq_pipeline_eval). */
static int queue(docq_pipeline *p, const docq_script *script, int nkeys, int argc, const char **argv,
                 const size_t *argvlen, docq_error *err) {
    size_t total = 0;
    for (int i = 0; i < argc; i++) total += argvlen ? argvlen[i] : strlen(argv[i]);
    if (p->ncmds >= INT_MAX || reserve(p, argc, total) != DOCQ_OK)
        return docq_error_set(err, DOCQ_ERR, "out of memory queueing a Redis command");
    pipe_cmd *c = &p->cmds[p->ncmds];
    memset(c, 0, sizeof(*c));
    c->script = script;
    c->nkeys = nkeys;
    c->argc = argc;
    c->first = p->nargs;
    c->slot = argc > 0 ? command_slot(script, nkeys, argc, argv, argvlen) : -1;
    c->ask = -1;
    for (int i = 0; i < argc; i++) {
        size_t len = argvlen ? argvlen[i] : strlen(argv[i]);
        p->args[p->nargs++] = (pipe_arg){p->nbytes, len};
        memcpy(p->bytes + p->nbytes, argv[i], len);
        p->nbytes += len;
    }
    return (int)p->ncmds++;
}

docq_pipeline *docq_pipeline_create(void) {
    docq_pipeline *p = calloc(1, sizeof(docq_pipeline));
    if (p) docq_pipeline_reset(p); /* The state of an empty pipeline: one definition. */
    return p;
}

void docq_pipeline_reset(docq_pipeline *p) {
    for (size_t i = 0; i < p->ncmds; i++)
        if (p->cmds[i].reply) freeReplyObject(p->cmds[i].reply);
    p->ncmds = 0;
    p->nargs = 0;
    p->nbytes = 0;
    p->wait_replicas = 0;
    p->wait_ms = 0;
    p->wait_acked = LLONG_MAX;
    memset(&p->wait_err, 0, sizeof(p->wait_err));
}

/* Free what p holds, not p itself (one-shot pipelines live on the stack). */
static void pipeline_release(docq_pipeline *p) {
    docq_pipeline_reset(p);
    free(p->cmds);
    free(p->args);
    free(p->bytes);
    free(p->av);
    free(p->al);
}

void docq_pipeline_free(docq_pipeline *p) {
    if (!p) return;
    pipeline_release(p);
    free(p);
}

int docq_pipeline_eval(docq_pipeline *p, const docq_script *script, int nkeys, int argc,
                       const char **argv, const size_t *argvlen, docq_error *err) {
    return queue(p, script, nkeys, argc, argv, argvlen, err);
}

void docq_pipeline_wait_replicas(docq_pipeline *p, int replicas, long ms) {
    p->wait_replicas = replicas;
    p->wait_ms = ms;
}

int docq_pipeline_replicated(const docq_pipeline *p, docq_error *err) {
    if (p->wait_err.code) return docq_error_set(err, DOCQ_EUNAVAIL, "not confirmed by WAIT: %s", p->wait_err.msg);
    if (p->wait_acked == LLONG_MAX)
        return docq_error_set(err, DOCQ_EUNAVAIL, "not confirmed: no WAIT was answered");
    if (p->wait_acked < p->wait_replicas)
        return docq_error_set(err, DOCQ_EUNAVAIL, "confirmed on only %lld of %d replicas within %ld ms",
                              p->wait_acked, p->wait_replicas, p->wait_ms);
    return DOCQ_OK;
}

int docq_pipeline_reply(const docq_pipeline *p, int i, const redisReply **rep, docq_error *err) {
    *rep = NULL;
    if (i < 0 || (size_t)i >= p->ncmds || p->cmds[i].state != CMD_DONE)
        return docq_error_set(err, DOCQ_ERR, "no outcome for pipelined command %d", i);
    const pipe_cmd *c = &p->cmds[i];
    if (c->reply) {
        *rep = c->reply;
        return DOCQ_OK;
    }
    if (err) *err = c->err;
    return c->err.code;
}

/* Give command c its outcome: an error. */
static void settle_error(pipe_cmd *c, const docq_error *err) {
    c->err = *err;
    c->state = CMD_DONE;
}

/* 1 when some command is in state and, unless conn is -1, sent on
 * connection conn. */
static int any_in(const docq_pipeline *p, cmd_state state, int conn) {
    for (size_t i = 0; i < p->ncmds; i++)
        if (p->cmds[i].state == state && (conn < 0 || p->cmds[i].conn == conn)) return 1;
    return 0;
}

/* Connection conn failed (or was found dead) while its commands in state
 * were outstanding: each is queued again when the connection had been open
 * before this round and it was not resent for that yet, else it fails with
 * DOCQ_EUNAVAIL. Drops the connection (in a cluster, the slot map is then
 * refreshed: the node may have failed over). When the round's commands had
 * been sent (state CMD_SENT) and a WAIT is asked for, what they wrote may
 * be covered by no WAIT (a WAIT on a new connection only covers its own
 * writes): the pipeline's replication is then unconfirmed, for good. */
static void connection_lost(docq_pipeline *p, docq_redis *r, int conn, cmd_state state, int reused) {
    redis_conn *rc = r->conns[conn];
    docq_error why = {0};
    docq_error_set(&why, DOCQ_EUNAVAIL, "redis %s:%d: %s", rc->host, rc->port,
                   rc->ctx->errstr[0] ? rc->ctx->errstr : "connection lost");
    conn_disconnect(rc);
    r->map_stale = 1;
    if (p->wait_replicas && state == CMD_SENT) p->wait_err = why;
    for (size_t i = 0; i < p->ncmds; i++) {
        pipe_cmd *c = &p->cmds[i];
        if (c->state != state || c->conn != conn) continue;
        c->asking = 0;
        if (reused && !c->resent_lost) {
            c->resent_lost = 1;
            c->state = CMD_TO_SEND;
        } else {
            settle_error(c, &why);
        }
    }
}

/* The code for an error reply of Redis whose text is msg: DOCQ_EUNAVAIL
 * when Redis is in a passing state in which it runs no command (LOADING its
 * data after a restart, BUSY with a long script, MASTERDOWN, TRYAGAIN or
 * CLUSTERDOWN), so that callers answer UNAVAILABLE and clients retry;
 * DOCQ_ERR for any other error. */
static int reply_error_code(const char *msg) {
    static const char *const passing[] = {"LOADING ", "BUSY ", "MASTERDOWN ", "TRYAGAIN ", "CLUSTERDOWN "};
    for (size_t i = 0; i < sizeof(passing) / sizeof(passing[0]); i++)
        if (strncmp(msg, passing[i], strlen(passing[i])) == 0) return DOCQ_EUNAVAIL;
    return DOCQ_ERR;
}

/* The source of s that r runs: its cluster variant in a Redis Cluster. */
static const char *script_src(const docq_redis *r, const docq_script *s) {
    return r->mode == MODE_CLUSTER && s->cluster_src ? s->cluster_src : s->src;
}

/* SCRIPT LOAD src (the source of script s) on c's live connection and
 * remember its SHA. Returns DOCQ_OK, DOCQ_ERR with err when Redis refused it
 * (err->code is reply_error_code's), or DOCQ_EUNAVAIL when the connection
 * failed (c->ctx->errstr says how). */
static int load_script(redis_conn *c, const docq_script *s, const char *src, docq_error *err) {
    const char *argv[] = {"SCRIPT", "LOAD", src};
    redisReply *rep = redisCommandArgv(c->ctx, 3, argv, NULL);
    if (!rep) return DOCQ_EUNAVAIL;
    int rc = DOCQ_OK;
    if (rep->type == REDIS_REPLY_ERROR) {
        docq_error_set(err, reply_error_code(rep->str), "SCRIPT LOAD: %s", rep->str);
        rc = DOCQ_ERR;
    } else if (rep->type != REDIS_REPLY_STRING || rep->len != 40) {
        rc = docq_error_set(err, DOCQ_ERR, "SCRIPT LOAD gave an unexpected reply");
    } else {
        memcpy(c->shas[s->slot], rep->str, 41);
        c->srcs[s->slot] = src;
    }
    freeReplyObject(rep);
    return rc;
}

/* Make sure every script of a command to send on connection conn is loaded
 * there (nothing of the round has been appended yet, so plain commands may
 * run) and copy its SHA into the command: two scripts given one slot by
 * mistake then cost reloads, never the wrong script. A command sent again
 * after NOSCRIPT needs no SHA (it goes as EVAL, see take_reply). A command
 * whose script Redis refuses fails with that error. Returns DOCQ_OK, or
 * DOCQ_EUNAVAIL when the connection failed. */
static int load_scripts(docq_pipeline *p, const docq_redis *r, redis_conn *rc, int conn) {
    for (size_t i = 0; i < p->ncmds; i++) {
        pipe_cmd *c = &p->cmds[i];
        if (c->state != CMD_TO_SEND || c->conn != conn || !c->script || c->resent_noscript) continue;
        int slot = c->script->slot;
        const char *src = script_src(r, c->script);
        if (!rc->shas[slot][0] || rc->srcs[slot] != src) {
            docq_error why = {0};
            int st = load_script(rc, c->script, src, &why);
            if (st == DOCQ_EUNAVAIL) return st;
            if (st != DOCQ_OK) {
                settle_error(c, &why);
                continue;
            }
        }
        memcpy(c->sha, rc->shas[slot], sizeof(c->sha));
    }
    return DOCQ_OK;
}

/* Append command c to rc's output buffer, after an ASKING when an ASK
 * redirection sent it there. */
static void append_one(docq_pipeline *p, const docq_redis *r, redis_conn *rc, pipe_cmd *c) {
    char nkeys[16];
    int n = 0;
    if (c->script) {
        int source = c->resent_noscript; /* Sent again after NOSCRIPT: with its source. */
        p->av[0] = source ? "EVAL" : "EVALSHA", p->al[0] = source ? 4 : 7;
        p->av[1] = source ? script_src(r, c->script) : c->sha;
        p->al[1] = source ? strlen(script_src(r, c->script)) : 40;
        p->al[2] = (size_t)snprintf(nkeys, sizeof(nkeys), "%d", c->nkeys), p->av[2] = nkeys;
        n = 3;
    }
    for (int k = 0; k < c->argc; k++, n++) {
        const pipe_arg *a = &p->args[c->first + (size_t)k];
        p->av[n] = p->bytes + a->off;
        p->al[n] = a->len;
    }
    c->asking = c->ask >= 0;
    if ((c->asking && redisAppendCommand(rc->ctx, "ASKING") != REDIS_OK) ||
        redisAppendCommandArgv(rc->ctx, n, p->av, p->al) != REDIS_OK) {
        docq_error why = {0};
        docq_error_set(&why, DOCQ_ERR, "out of memory sending a Redis command");
        settle_error(c, &why);
    } else {
        c->state = CMD_SENT;
    }
    c->ask = -1; /* An ASK holds for one try. */
}

/* Follow the redirection in c's error reply rep, read from connection conn:
 * MOVED updates the slot map (and asks for a refresh: more slots moved, most
 * likely) and sends c again where the map now says; ASK sends it once to the
 * named node after ASKING. Returns 1 when c is to be sent again, 0 when rep
 * is no redirection or c followed MAX_REDIRECTS already (err then says so). */
static int follow_redirect(docq_redis *r, pipe_cmd *c, int conn, const redisReply *rep, docq_error *err) {
    docq_cluster_redirect to;
    if (docq_cluster_redirect_parse(rep->str, rep->len, &to) != DOCQ_OK) return 0;
    if (r->mode != MODE_CLUSTER) {
        r->mode = MODE_UNKNOWN; /* Redis became a cluster node: learn it again. */
        docq_error_set(err, DOCQ_EUNAVAIL, "redis redirected a command (%s) to a cluster node", rep->str);
        return 0;
    }
    if (c->redirects++ >= MAX_REDIRECTS) {
        docq_error_set(err, DOCQ_EUNAVAIL, "too many Redis Cluster redirections, the last: %s", rep->str);
        return 0;
    }
    const char *host = to.host[0] ? to.host : r->conns[conn]->host;
    if (to.ask) {
        c->ask = conn_index(r, host, to.port);
        if (c->ask < 0) return docq_error_set(err, DOCQ_EUNAVAIL, "too many Redis nodes, at %s", rep->str), 0;
    } else {
        docq_error why = {0};
        if (r->map) docq_cluster_map_set(r->map, to.slot, host, to.port, &why);
        r->map_stale = 1;
    }
    return 1;
}

/* Give command c (CMD_SENT on connection conn) the reply Redis sent it. A
 * NOSCRIPT error (Redis lost the script since it was loaded: the command did
 * not run) queues it again, once, after forgetting the script's SHA: it is
 * then sent as EVAL with the script's source, which no NOSCRIPT can refuse,
 * so that a second SCRIPT FLUSH landing between a reload and the resend
 * costs no call. A MOVED or ASK redirection (the command did not run) queues
 * it again for the node named (follow_redirect). */
static void take_reply(pipe_cmd *c, docq_redis *r, int conn, redisReply *rep) {
    if (rep->type != REDIS_REPLY_ERROR) {
        c->reply = rep;
        c->state = CMD_DONE;
        return;
    }
    docq_error why = {0};
    if (c->script && !c->resent_noscript && strncmp(rep->str, "NOSCRIPT", 8) == 0) {
        c->resent_noscript = 1;
        c->state = CMD_TO_SEND;
        r->conns[conn]->shas[c->script->slot][0] = '\0';
    } else if (follow_redirect(r, c, conn, rep, &why)) {
        c->state = CMD_TO_SEND;
    } else {
        if (!why.code) docq_error_set(&why, reply_error_code(rep->str), "%s", rep->str);
        if (strncmp(rep->str, "CLUSTERDOWN ", 12) == 0) r->map_stale = 1;
        settle_error(c, &why);
    }
    freeReplyObject(rep);
}

/* Append WAIT (docq_pipeline_wait_replicas) after the round's commands on
 * connection conn when it asks for one and some command was sent. Returns 1
 * when appended. */
static int append_wait(docq_pipeline *p, redis_conn *rc, int conn) {
    if (!p->wait_replicas || !any_in(p, CMD_SENT, conn)) return 0;
    if (redisAppendCommand(rc->ctx, "WAIT %d %ld", p->wait_replicas, p->wait_ms) == REDIS_OK) return 1;
    docq_error_set(&p->wait_err, DOCQ_ERR, "out of memory sending WAIT");
    return 0;
}

/* Set the socket timeout of c's live connection to ms. Returns REDIS_OK or
 * REDIS_ERR. */
static int set_timeout(redis_conn *c, long ms) {
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    return redisSetTimeout(c->ctx, tv);
}

/* Read the reply of the WAIT append_wait sent on conn, allowing it its WAIT
 * time on top of the command timeout, and keep the fewest replicas any WAIT
 * of the run counted. */
static void read_wait(docq_pipeline *p, docq_redis *r, int conn, int reused) {
    redis_conn *rc = r->conns[conn];
    void *rep = NULL;
    if (set_timeout(rc, r->timeout_ms + p->wait_ms) != REDIS_OK || redisGetReply(rc->ctx, &rep) != REDIS_OK ||
        !rep || set_timeout(rc, r->timeout_ms) != REDIS_OK) {
        if (rep) freeReplyObject(rep);
        connection_lost(p, r, conn, CMD_SENT, reused);
        return;
    }
    redisReply *w = rep;
    if (w->type == REDIS_REPLY_INTEGER && w->integer < p->wait_acked)
        p->wait_acked = w->integer;
    else if (w->type != REDIS_REPLY_INTEGER)
        docq_error_set(&p->wait_err, DOCQ_EUNAVAIL, "WAIT: %s",
                       w->type == REDIS_REPLY_ERROR ? w->str : "unexpected reply");
    freeReplyObject(w);
}

/* Write the whole output buffer of ctx to its socket. Returns REDIS_OK or
 * REDIS_ERR. */
static int flush(redisContext *ctx) {
    int done = 0;
    while (!done)
        if (redisBufferWrite(ctx, &done) != REDIS_OK) return REDIS_ERR;
    return REDIS_OK;
}

/* The first half of a round trip on connection conn: (re)connect, load
 * scripts, append every command to send there (and a WAIT after them when
 * asked) and write them out. Returns 1 when something was sent and its
 * replies are to be read (round_read), with *waiting set when a WAIT is
 * among them. */
static int round_send(docq_pipeline *p, docq_redis *r, int conn, int *reused, int *waiting) {
    redis_conn *rc = r->conns[conn];
    docq_error why = {0};
    *reused = rc->ctx != NULL;
    *waiting = 0;
    if (conn_connect(r, rc, &why) != DOCQ_OK) {
        /* In a cluster the node may have failed over: each command is routed
         * once more after the map is refreshed (when the refresh is due),
         * and fails if it lands on an unreachable node again. */
        if (r->mode == MODE_CLUSTER) r->map_stale = 1;
        for (size_t i = 0; i < p->ncmds; i++) {
            pipe_cmd *c = &p->cmds[i];
            if (c->state != CMD_TO_SEND || c->conn != conn) continue;
            if (r->mode == MODE_CLUSTER && !c->rerouted) {
                c->rerouted = 1;
                c->ask = -1;
            } else {
                settle_error(c, &why);
            }
        }
        return 0;
    }
    if (load_scripts(p, r, rc, conn) != DOCQ_OK) {
        connection_lost(p, r, conn, CMD_TO_SEND, *reused);
        return 0;
    }
    for (size_t i = 0; i < p->ncmds; i++)
        if (p->cmds[i].state == CMD_TO_SEND && p->cmds[i].conn == conn) append_one(p, r, rc, &p->cmds[i]);
    *waiting = append_wait(p, rc, conn);
    if (!any_in(p, CMD_SENT, conn)) return 0;
    if (flush(rc->ctx) != REDIS_OK) {
        connection_lost(p, r, conn, CMD_SENT, *reused);
        return 0;
    }
    return 1;
}

/* The second half: read, in order, the replies of what round_send sent on
 * conn. */
static void round_read(docq_pipeline *p, docq_redis *r, int conn, int reused, int waiting) {
    redis_conn *rc = r->conns[conn];
    for (size_t i = 0; i < p->ncmds; i++) {
        pipe_cmd *c = &p->cmds[i];
        if (c->state != CMD_SENT || c->conn != conn) continue;
        void *rep = NULL;
        if (c->asking) { /* ASKING's +OK, or an error its command's reply will repeat. */
            if (redisGetReply(rc->ctx, &rep) != REDIS_OK || !rep) {
                connection_lost(p, r, conn, CMD_SENT, reused);
                return;
            }
            freeReplyObject(rep);
            c->asking = 0;
            rep = NULL;
        }
        if (redisGetReply(rc->ctx, &rep) != REDIS_OK || !rep) {
            connection_lost(p, r, conn, CMD_SENT, reused);
            return;
        }
        take_reply(c, r, conn, rep);
    }
    if (waiting) read_wait(p, r, conn, reused);
}

/* Choose each command to send's connection: where an ASK sent it, else the
 * primary of its slot (home for a standalone Redis or a keyless command).
 * A command whose slot no known node serves fails with DOCQ_EUNAVAIL. */
static void route(docq_pipeline *p, docq_redis *r) {
    for (size_t i = 0; i < p->ncmds; i++) {
        pipe_cmd *c = &p->cmds[i];
        if (c->state != CMD_TO_SEND) continue;
        docq_error why = {0};
        c->conn = c->ask >= 0 ? c->ask : conn_for_slot(r, c->slot, &why);
        if (c->conn < 0) settle_error(c, &why);
    }
}

/* Every command to send fails with err. */
static void fail_all(docq_pipeline *p, const docq_error *err) {
    for (size_t i = 0; i < p->ncmds; i++)
        if (p->cmds[i].state == CMD_TO_SEND) settle_error(&p->cmds[i], err);
}

/* Rounds follow each other until every command has its outcome: each
 * command is sent at most once more for NOSCRIPT, once more for a lost
 * connection, MAX_REDIRECTS more times for MOVED/ASK and routed once more
 * after its node could not be reached, so this ends. In a
 * cluster each round sends to every node concerned before reading any
 * reply, so the nodes work in parallel. */
void docq_pipeline_run(docq_pipeline *p, docq_redis *r) {
    int used[MAX_CONNS], reused[MAX_CONNS], waiting[MAX_CONNS];
    while (any_in(p, CMD_TO_SEND, -1)) {
        docq_error why = {0};
        if (redis_ready(r, &why) != DOCQ_OK) {
            fail_all(p, &why);
            return;
        }
        route(p, r);
        for (int k = 0; k < r->nconns; k++)
            used[k] = any_in(p, CMD_TO_SEND, k) && round_send(p, r, k, &reused[k], &waiting[k]);
        for (int k = 0; k < r->nconns; k++)
            if (used[k]) round_read(p, r, k, reused[k], waiting[k]);
    }
}

/* Run one command (script NULL) or one script call as a pipeline of one.
 * Returns its reply, now owned by the caller, or NULL with err set. */
static redisReply *run_one(docq_redis *r, const docq_script *script, int nkeys, int argc,
                           const char **argv, const size_t *argvlen, docq_error *err) {
    docq_pipeline p = {0};
    redisReply *rep = NULL;
    if (queue(&p, script, nkeys, argc, argv, argvlen, err) == 0) {
        docq_pipeline_run(&p, r);
        rep = p.cmds[0].reply;
        if (!rep && err) *err = p.cmds[0].err;
        p.cmds[0].reply = NULL; /* The caller's now. */
    }
    pipeline_release(&p);
    return rep;
}

redisReply *docq_redis_command(docq_redis *r, int argc, const char **argv, const size_t *argvlen,
                               docq_error *err) {
    return run_one(r, NULL, 0, argc, argv, argvlen, err);
}

redisReply *docq_redis_eval(docq_redis *r, const docq_script *script, int nkeys, int argc,
                            const char **argv, const size_t *argvlen, docq_error *err) {
    return run_one(r, script, nkeys, argc, argv, argvlen, err);
}
