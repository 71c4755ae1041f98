/* redis.c -- self-reconnecting Redis connection, script runner and
 * pipelines. Every command, pipelined or not, goes through
 * docq_pipeline_run, the one place that decides what is sent again. */
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "redis.h"

struct docq_redis {
    redisContext *ctx;                   /* NULL while disconnected. */
    docq_redis_addr addr;
    long timeout_ms;
    int64_t retry_at_ms;                 /* No connect attempt before this time. */
    char last_error[256];                /* Why the last connect failed. */
    char shas[DOCQ_MAX_SCRIPTS][41];     /* Script SHAs loaded on this connection. */
    const char *srcs[DOCQ_MAX_SCRIPTS];  /* The source each SHA was loaded from: two
                                          * scripts given one slot by mistake then
                                          * cost reloads, never the wrong script. */
};

docq_redis *docq_redis_create(const docq_redis_addr *addr, long timeout_ms) {
    docq_redis *r = calloc(1, sizeof(*r));
    if (!r) return NULL;
    r->addr = *addr;
    r->timeout_ms = timeout_ms;
    return r;
}

void docq_redis_free(docq_redis *r) {
    if (!r) return;
    docq_redis_disconnect(r);
    free(r);
}

void docq_redis_disconnect(docq_redis *r) {
    if (r->ctx) redisFree(r->ctx);
    r->ctx = NULL;
    memset(r->shas, 0, sizeof(r->shas));
}

redisContext *docq_redis_context(docq_redis *r) { return r->ctx; }

/* Send AUTH (as the URL's ACL user, if any) and SELECT as the URL asks.
 * Returns DOCQ_OK or DOCQ_EUNAVAIL. */
static int handshake(docq_redis *r, docq_error *err) {
    redisReply *rep = NULL;
    if (r->addr.password[0]) {
        /* AUTH password for the default user, which Redis before 6 knows too. */
        const char *argv[3] = {"AUTH", r->addr.user, r->addr.password};
        int with_user = r->addr.user[0] != '\0';
        rep = redisCommandArgv(r->ctx, 2 + with_user, with_user ? argv : (const char *[]){"AUTH", r->addr.password},
                               NULL);
        if (!rep || rep->type == REDIS_REPLY_ERROR) goto fail;
        freeReplyObject(rep);
    }
    if (r->addr.db) {
        rep = redisCommand(r->ctx, "SELECT %d", r->addr.db);
        if (!rep || rep->type == REDIS_REPLY_ERROR) goto fail;
        freeReplyObject(rep);
    }
    return DOCQ_OK;
fail:
    docq_error_set(err, DOCQ_EUNAVAIL, "redis %s:%d: %s", r->addr.host, r->addr.port,
                   rep ? rep->str : r->ctx->errstr);
    if (rep) freeReplyObject(rep);
    return DOCQ_EUNAVAIL;
}

int docq_redis_connect(docq_redis *r, docq_error *err) {
    if (r->ctx) return DOCQ_OK;
    int64_t now = docq_now_ms();
    if (now < r->retry_at_ms) return docq_error_set(err, DOCQ_EUNAVAIL, "%s", r->last_error);
    struct timeval tv = {r->timeout_ms / 1000, (r->timeout_ms % 1000) * 1000};
    r->ctx = redisConnectWithTimeout(r->addr.host, r->addr.port, tv);
    docq_error why = {0};
    if (!r->ctx || r->ctx->err) {
        docq_error_set(&why, DOCQ_EUNAVAIL, "redis %s:%d unreachable: %s", r->addr.host, r->addr.port,
                       r->ctx ? r->ctx->errstr : "out of memory");
    } else if (redisSetTimeout(r->ctx, tv) != REDIS_OK) {
        docq_error_set(&why, DOCQ_EUNAVAIL, "redis %s:%d: cannot set timeout", r->addr.host, r->addr.port);
    } else if (handshake(r, &why) == DOCQ_OK) {
        return DOCQ_OK;
    }
    if (r->ctx) redisFree(r->ctx);
    r->ctx = NULL;
    r->retry_at_ms = now + DOCQ_REDIS_RETRY_MS;
    snprintf(r->last_error, sizeof(r->last_error), "%s", why.msg);
    return docq_error_set(err, DOCQ_EUNAVAIL, "%s", why.msg);
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
    if (p) p->wait_acked = LLONG_MAX;
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

/* 1 when some command is in state. */
static int any_in(const docq_pipeline *p, cmd_state state) {
    for (size_t i = 0; i < p->ncmds; i++)
        if (p->cmds[i].state == state) return 1;
    return 0;
}

/* The connection failed (or was found dead) while the commands in state
 * were outstanding: each is queued again when the connection had been open
 * before this round and it was not resent for that yet, else it fails with
 * DOCQ_EUNAVAIL. Drops the connection. When the round's commands had been
 * sent (state CMD_SENT) and a WAIT is asked for, what they wrote may be
 * covered by no WAIT (a WAIT on a new connection only covers its own
 * writes): the pipeline's replication is then unconfirmed, for good.
 * Returns 1 when some command is to be sent again. */
static int connection_lost(docq_pipeline *p, docq_redis *r, cmd_state state, int reused) {
    docq_error why = {0};
    docq_error_set(&why, DOCQ_EUNAVAIL, "redis %s:%d: %s", r->addr.host, r->addr.port,
                   r->ctx->errstr[0] ? r->ctx->errstr : "connection lost");
    docq_redis_disconnect(r);
    if (p->wait_replicas && state == CMD_SENT) p->wait_err = why;
    for (size_t i = 0; i < p->ncmds; i++) {
        pipe_cmd *c = &p->cmds[i];
        if (c->state != state) continue;
        if (reused && !c->resent_lost) {
            c->resent_lost = 1;
            c->state = CMD_TO_SEND;
        } else {
            settle_error(c, &why);
        }
    }
    return any_in(p, CMD_TO_SEND);
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

/* SCRIPT LOAD s on r's live connection and remember its SHA. Returns DOCQ_OK,
 * DOCQ_ERR with err when Redis refused it (err->code is reply_error_code's),
 * or DOCQ_EUNAVAIL when the connection failed (r->ctx->errstr says how). */
static int load_script(docq_redis *r, const docq_script *s, docq_error *err) {
    const char *argv[] = {"SCRIPT", "LOAD", s->src};
    redisReply *rep = redisCommandArgv(r->ctx, 3, argv, NULL);
    if (!rep) return DOCQ_EUNAVAIL;
    int rc = DOCQ_OK;
    if (rep->type == REDIS_REPLY_ERROR) {
        docq_error_set(err, reply_error_code(rep->str), "SCRIPT LOAD: %s", rep->str);
        rc = DOCQ_ERR;
    } else if (rep->type != REDIS_REPLY_STRING || rep->len != 40) {
        rc = docq_error_set(err, DOCQ_ERR, "SCRIPT LOAD gave an unexpected reply");
    } else {
        memcpy(r->shas[s->slot], rep->str, 41);
        r->srcs[s->slot] = s->src;
    }
    freeReplyObject(rep);
    return rc;
}

/* Make sure every script of a command to send is loaded on the connection
 * (nothing of the round has been appended yet, so plain commands may run)
 * and copy its SHA into the command: two scripts given one slot by mistake
 * then cost reloads, never the wrong script. A command sent again after
 * NOSCRIPT needs no SHA (it goes as EVAL, see take_reply). A command whose
 * script Redis refuses fails with that error. Returns DOCQ_OK, or
 * DOCQ_EUNAVAIL when the connection failed. */
static int load_scripts(docq_pipeline *p, docq_redis *r) {
    for (size_t i = 0; i < p->ncmds; i++) {
        pipe_cmd *c = &p->cmds[i];
        if (c->state != CMD_TO_SEND || !c->script || c->resent_noscript) continue;
        int slot = c->script->slot;
        if (!r->shas[slot][0] || r->srcs[slot] != c->script->src) {
            docq_error why = {0};
            int rc = load_script(r, c->script, &why);
            if (rc == DOCQ_EUNAVAIL) return rc;
            if (rc != DOCQ_OK) {
                settle_error(c, &why);
                continue;
            }
        }
        memcpy(c->sha, r->shas[slot], sizeof(c->sha));
    }
    return DOCQ_OK;
}

/* Append every command to send to the connection's output buffer (hiredis
 * writes it all with the first redisGetReply). */
static void append_all(docq_pipeline *p, docq_redis *r) {
    for (size_t i = 0; i < p->ncmds; i++) {
        pipe_cmd *c = &p->cmds[i];
        if (c->state != CMD_TO_SEND) continue;
        char nkeys[16];
        int n = 0;
        if (c->script) {
            int source = c->resent_noscript; /* Sent again after NOSCRIPT: with its source. */
            p->av[0] = source ? "EVAL" : "EVALSHA", p->al[0] = source ? 4 : 7;
            p->av[1] = source ? c->script->src : c->sha;
            p->al[1] = source ? strlen(c->script->src) : 40;
            p->al[2] = (size_t)snprintf(nkeys, sizeof(nkeys), "%d", c->nkeys), p->av[2] = nkeys;
            n = 3;
        }
        for (int k = 0; k < c->argc; k++, n++) {
            const pipe_arg *a = &p->args[c->first + (size_t)k];
            p->av[n] = p->bytes + a->off;
            p->al[n] = a->len;
        }
        if (redisAppendCommandArgv(r->ctx, n, p->av, p->al) != REDIS_OK) {
            docq_error why = {0};
            docq_error_set(&why, DOCQ_ERR, "out of memory sending a Redis command");
            settle_error(c, &why);
        } else {
            c->state = CMD_SENT;
        }
    }
}

/* Give command c (CMD_SENT) the reply Redis sent it. A NOSCRIPT error
 * (Redis lost the script since it was loaded: the command did not run)
 * queues it again, once, after forgetting the script's SHA: it is then sent
 * as EVAL with the script's source, which no NOSCRIPT can refuse, so that a
 * second SCRIPT FLUSH landing between a reload and the resend costs no call. */
static void take_reply(pipe_cmd *c, docq_redis *r, redisReply *rep) {
    if (rep->type != REDIS_REPLY_ERROR) {
        c->reply = rep;
        c->state = CMD_DONE;
        return;
    }
    if (c->script && !c->resent_noscript && strncmp(rep->str, "NOSCRIPT", 8) == 0) {
        c->resent_noscript = 1;
        c->state = CMD_TO_SEND;
        r->shas[c->script->slot][0] = '\0';
    } else {
        docq_error why = {0};
        docq_error_set(&why, reply_error_code(rep->str), "%s", rep->str);
        settle_error(c, &why);
    }
    freeReplyObject(rep);
}

/* Append WAIT (docq_pipeline_wait_replicas) after the round's commands when
 * it asks for one and some command was sent. Returns 1 when appended. */
static int append_wait(docq_pipeline *p, docq_redis *r) {
    if (!p->wait_replicas || !any_in(p, CMD_SENT)) return 0;
    if (redisAppendCommand(r->ctx, "WAIT %d %ld", p->wait_replicas, p->wait_ms) == REDIS_OK) return 1;
    docq_error_set(&p->wait_err, DOCQ_ERR, "out of memory sending WAIT");
    return 0;
}

/* Set the socket timeout of r's live connection to ms. Returns REDIS_OK or
 * REDIS_ERR. */
static int set_timeout(docq_redis *r, long ms) {
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    return redisSetTimeout(r->ctx, tv);
}

/* Read the reply of the WAIT append_wait sent, allowing it its WAIT time on
 * top of the command timeout, and keep the fewest replicas any WAIT of the
 * run counted. Returns 1 when some command is to be sent again (the
 * connection failed: see connection_lost). */
static int read_wait(docq_pipeline *p, docq_redis *r, int reused) {
    void *rep = NULL;
    if (set_timeout(r, r->timeout_ms + p->wait_ms) != REDIS_OK || redisGetReply(r->ctx, &rep) != REDIS_OK ||
        !rep || set_timeout(r, r->timeout_ms) != REDIS_OK) {
        if (rep) freeReplyObject(rep);
        return connection_lost(p, r, CMD_SENT, reused);
    }
    redisReply *w = rep;
    if (w->type == REDIS_REPLY_INTEGER && w->integer < p->wait_acked)
        p->wait_acked = w->integer;
    else if (w->type != REDIS_REPLY_INTEGER)
        docq_error_set(&p->wait_err, DOCQ_EUNAVAIL, "WAIT: %s",
                       w->type == REDIS_REPLY_ERROR ? w->str : "unexpected reply");
    freeReplyObject(w);
    return any_in(p, CMD_TO_SEND);
}

/* One round trip: (re)connect, load scripts, send every command to send
 * (and a WAIT after them when asked), read their replies in order. Returns
 * 1 when some command is to be sent again (another round). */
static int run_round(docq_pipeline *p, docq_redis *r) {
    docq_error why = {0};
    if (!any_in(p, CMD_TO_SEND)) return 0;
    int reused = r->ctx != NULL;
    if (docq_redis_connect(r, &why) != DOCQ_OK) {
        for (size_t i = 0; i < p->ncmds; i++)
            if (p->cmds[i].state == CMD_TO_SEND) settle_error(&p->cmds[i], &why);
        return 0;
    }
    if (load_scripts(p, r) != DOCQ_OK) return connection_lost(p, r, CMD_TO_SEND, reused);
    append_all(p, r);
    int waiting = append_wait(p, r);
    for (size_t i = 0; i < p->ncmds; i++) {
        if (p->cmds[i].state != CMD_SENT) continue;
        void *rep = NULL;
        if (redisGetReply(r->ctx, &rep) != REDIS_OK || !rep) return connection_lost(p, r, CMD_SENT, reused);
        take_reply(&p->cmds[i], r, rep);
    }
    return waiting ? read_wait(p, r, reused) : any_in(p, CMD_TO_SEND);
}

void docq_pipeline_run(docq_pipeline *p, docq_redis *r) {
    while (run_round(p, r)) {
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
