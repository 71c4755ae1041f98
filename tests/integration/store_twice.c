/* docq-store-twice: runs each of the worker's store steps (start, retry,
 * restart, finish) twice in a row with the same arguments, as the Redis layer
 * does when it resends a command whose reply was lost, against the Redis at
 * 127.0.0.1:<port>, through the same functions the worker calls. Prints one
 * line per call: "<step> <call> rc=<status> value=<n> version=<v>
 * failures=<f> attempts=<a> state=<s> queued=<XLEN> pending=<XPENDING>", for
 * test_store.py to judge. With a second argument "flush", Redis forgets its
 * scripts (SCRIPT FLUSH) before each second call, which must load them again,
 * and each flush prints "flush <n> reply=<reply>" (test_scripts.py). Exit
 * status 1 when the set-up fails. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"

#define PREFIX "docq"
#define GROUP "workers"

/* The reply of one command as a string ("" for nil or error); static buffer. */
static const char *ask(docq_redis *r, int argc, const char **argv) {
    static char out[128];
    docq_error err = {0};
    redisReply *rep = docq_redis_command(r, argc, argv, NULL, &err);
    out[0] = '\0';
    if (rep && (rep->type == REDIS_REPLY_STRING || rep->type == REDIS_REPLY_STATUS))
        snprintf(out, sizeof(out), "%s", rep->str);
    if (rep && rep->type == REDIS_REPLY_INTEGER) snprintf(out, sizeof(out), "%lld", rep->integer);
    if (rep && rep->type == REDIS_REPLY_ARRAY && rep->elements > 0 &&
        rep->element[0]->type == REDIS_REPLY_INTEGER)
        snprintf(out, sizeof(out), "%lld", rep->element[0]->integer);
    if (rep) freeReplyObject(rep);
    return out;
}

/* Print what one call left behind in the record and the stream. */
static void report(docq_redis *r, const char *step, int call, int rc, long value, const char *rkey,
                   const char *skey) {
    char line[512];
    const char *v[] = {"HGET", rkey, "version"}, *f[] = {"HGET", rkey, "failures"};
    const char *a[] = {"HGET", rkey, "attempts"}, *s[] = {"HGET", rkey, "state"};
    const char *q[] = {"XLEN", skey}, *p[] = {"XPENDING", skey, GROUP};
    int n = snprintf(line, sizeof(line), "%s %d rc=%d value=%ld version=%s", step, call, rc, value, ask(r, 3, v));
    n += snprintf(line + n, sizeof(line) - (size_t)n, " failures=%s", ask(r, 3, f));
    n += snprintf(line + n, sizeof(line) - (size_t)n, " attempts=%s", ask(r, 3, a));
    n += snprintf(line + n, sizeof(line) - (size_t)n, " state=%s", ask(r, 3, s));
    n += snprintf(line + n, sizeof(line) - (size_t)n, " queued=%s", ask(r, 2, q));
    snprintf(line + n, sizeof(line) - (size_t)n, " pending=%s", ask(r, 3, p));
    puts(line);
}

/* Submit one task to shard 0 and read its entry as consumer "c1" into
 * entry_id. Returns DOCQ_OK or DOCQ_ERR. */
static int queue_one(docq_redis *r, char *task_id, char *entry_id, docq_error *err) {
    docq_rate_policy none = {0, 60};
    docq_rate_result rate;
    int64_t created;
    const char *mk[] = {"XGROUP", "CREATE", PREFIX ":{s0}:tasks", GROUP, "0", "MKSTREAM"};
    redisReply *rep = docq_redis_command(r, 6, mk, NULL, err);
    if (!rep) return DOCQ_ERR;
    freeReplyObject(rep);
    if (docq_task_id_new(0, task_id, DOCQ_TASK_ID_MAX, err) != DOCQ_OK ||
        docq_store_submit(r, PREFIX, 0, task_id, "twice", 5, "127.0.0.1", NULL, &none, &created, &rate,
                          err) != DOCQ_OK)
        return DOCQ_ERR;
    const char *rd[] = {"XREADGROUP", "GROUP", GROUP, "c1", "COUNT", "1", "STREAMS", PREFIX ":{s0}:tasks", ">"};
    rep = docq_redis_command(r, 9, rd, NULL, err);
    if (!rep) return DOCQ_ERR;
    int ok = rep->type == REDIS_REPLY_ARRAY && rep->elements == 1;
    if (ok) snprintf(entry_id, 48, "%s", rep->element[0]->element[1]->element[0]->element[0]->str);
    freeReplyObject(rep);
    return ok ? DOCQ_OK : docq_error_set(err, DOCQ_ERR, "no entry read");
}

/* With flush, before a second call: make Redis forget every script, as a
 * restarted or failed-over Redis does, and print its reply. */
static void between_calls(docq_redis *r, int call, int flush) {
    static int flushes;
    const char *argv[] = {"SCRIPT", "FLUSH"};
    if (call == 2 && flush) printf("flush %d reply=%s\n", ++flushes, ask(r, 2, argv));
}

int main(int argc, char **argv) {
    docq_redis_addr addr;
    docq_error err = {0};
    char url[64], task_id[DOCQ_TASK_ID_MAX], entry_id[48], rkey[128], skey[96];
    snprintf(url, sizeof(url), "redis://127.0.0.1:%s", argc > 1 ? argv[1] : "6379");
    docq_redis *r = docq_redis_url_parse(url, &addr, &err) == DOCQ_OK ? docq_redis_create(&addr, 5000) : NULL;
    docq_queue q = {PREFIX, GROUP, "dead", 10, 3600, 100, "c1"};
    docq_start st;
    int flush = argc > 2 && strcmp(argv[2], "flush") == 0;
    if (!r || queue_one(r, task_id, entry_id, &err) != DOCQ_OK) {
        fprintf(stderr, "docq-store-twice: set-up failed: %s\n", err.msg);
        docq_redis_free(r);
        return 1;
    }
    docq_key_task(rkey, sizeof(rkey), PREFIX, task_id, 0);
    docq_key_stream(skey, sizeof(skey), PREFIX, 0);
    for (int call = 1; call <= 2; call++) {
        between_calls(r, call, flush);
        int rc = docq_store_start(r, &q, task_id, &st, &err);
        report(r, "start", call, rc, rc == DOCQ_OK ? (long)st.deliveries : -1, rkey, skey);
    }
    uint32_t out = 0, attempt = st.attempt;
    for (int call = 1; call <= 2; call++) {
        between_calls(r, call, flush);
        int rc = docq_store_retry(r, PREFIX, task_id, attempt, "boom", 4, &out, &err);
        report(r, "retry", call, rc, (long)out, rkey, skey);
    }
    for (int call = 1; call <= 2; call++) {
        between_calls(r, call, flush);
        int rc = docq_store_restart(r, PREFIX, task_id, attempt, &out, &err);
        report(r, "restart", call, rc, (long)out, rkey, skey);
    }
    attempt = out;
    for (int call = 1; call <= 2; call++) {
        between_calls(r, call, flush);
        int rc = docq_store_finish(r, PREFIX, GROUP, task_id, entry_id, attempt, DOCQ_STATE_SUCCESS, "ok", 2,
                                   3600, &err);
        report(r, "finish", call, rc, 0, rkey, skey);
    }
    docq_redis_free(r);
    return 0;
}
