/* redis.c -- self-reconnecting Redis connection and script runner. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

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

/* Send AUTH and SELECT as the URL asks. Returns DOCQ_OK or DOCQ_EUNAVAIL. */
static int handshake(docq_redis *r, docq_error *err) {
    redisReply *rep = NULL;
    if (r->addr.password[0]) {
        rep = redisCommand(r->ctx, "AUTH %s", r->addr.password);
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
    int64_t now = now_ms();
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

/* Turn a reply into the result convention of docq_redis_command. */
static redisReply *check_reply(docq_redis *r, redisReply *rep, docq_error *err) {
    if (!rep) {
        docq_error_set(err, DOCQ_EUNAVAIL, "redis %s:%d: %s", r->addr.host, r->addr.port,
                       r->ctx->errstr[0] ? r->ctx->errstr : "connection lost");
        docq_redis_disconnect(r);
        return NULL;
    }
    if (rep->type == REDIS_REPLY_ERROR) {
        docq_error_set(err, DOCQ_ERR, "%s", rep->str);
        freeReplyObject(rep);
        return NULL;
    }
    return rep;
}

redisReply *docq_redis_command(docq_redis *r, int argc, const char **argv, const size_t *argvlen,
                               docq_error *err) {
    int reused = r->ctx != NULL;
    if (docq_redis_connect(r, err) != DOCQ_OK) return NULL;
    redisReply *rep = redisCommandArgv(r->ctx, argc, argv, argvlen);
    if (!rep && reused) {
        /* The connection may have died while idle (Redis restarted): one
         * more try on a fresh one. Callers' commands are safe to repeat. */
        docq_redis_disconnect(r);
        if (docq_redis_connect(r, err) != DOCQ_OK) return NULL;
        rep = redisCommandArgv(r->ctx, argc, argv, argvlen);
    }
    return check_reply(r, rep, err);
}

/* SCRIPT LOAD the script on this connection and remember its SHA. */
static int load_script(docq_redis *r, const docq_script *s, docq_error *err) {
    const char *argv[] = {"SCRIPT", "LOAD", s->src};
    redisReply *rep = docq_redis_command(r, 3, argv, NULL, err);
    if (!rep) return err ? err->code : DOCQ_ERR;
    if (rep->type != REDIS_REPLY_STRING || rep->len != 40) {
        freeReplyObject(rep);
        return docq_error_set(err, DOCQ_ERR, "SCRIPT LOAD gave an unexpected reply");
    }
    memcpy(r->shas[s->slot], rep->str, 41);
    r->srcs[s->slot] = s->src;
    freeReplyObject(rep);
    return DOCQ_OK;
}

redisReply *docq_redis_eval(docq_redis *r, const docq_script *script, int nkeys, int argc,
                            const char **argv, const size_t *argvlen, docq_error *err) {
    enum { MAX_ARGS = 32 };
    const char *av[MAX_ARGS + 3];
    size_t al[MAX_ARGS + 3];
    char nk[16], sha[41];
    if (argc > MAX_ARGS) {
        docq_error_set(err, DOCQ_ERR, "too many script arguments");
        return NULL;
    }
    for (int attempt = 0; attempt < 2; attempt++) {
        if (docq_redis_connect(r, err) != DOCQ_OK) return NULL;
        if ((!r->shas[script->slot][0] || r->srcs[script->slot] != script->src) &&
            load_script(r, script, err) != DOCQ_OK)
            return NULL;
        /* A copy: a reconnect inside docq_redis_command clears r->shas. */
        memcpy(sha, r->shas[script->slot], sizeof(sha));
        av[0] = "EVALSHA", al[0] = 7;
        av[1] = sha, al[1] = 40;
        al[2] = (size_t)snprintf(nk, sizeof(nk), "%d", nkeys), av[2] = nk;
        for (int i = 0; i < argc; i++) {
            av[i + 3] = argv[i];
            al[i + 3] = argvlen ? argvlen[i] : strlen(argv[i]);
        }
        docq_error why = {0};
        redisReply *rep = docq_redis_command(r, argc + 3, av, al, &why);
        if (rep) return rep;
        if (why.code != DOCQ_ERR || strncmp(why.msg, "NOSCRIPT", 8) != 0) {
            if (err) *err = why;
            return NULL;
        }
        r->shas[script->slot][0] = '\0'; /* Redis restarted or flushed its scripts. */
    }
    docq_error_set(err, DOCQ_ERR, "script could not be loaded");
    return NULL;
}
