/* shape.c -- the deployment's shape in Redis. See shape.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shape.h"

#define KEY_MAX 160
#define VALUE_MAX 192

/* Run a command whose reply is a bulk string, nil or OK, copying a string
 * into out (empty for nil or a status). Returns DOCQ_OK or the failure. */
static int command_str(docq_redis *r, int argc, const char **argv, char *out, size_t cap, docq_error *err) {
    redisReply *rep = docq_redis_command(r, argc, argv, NULL, err);
    if (!rep) return err->code;
    out[0] = '\0';
    if (rep->type == REDIS_REPLY_STRING) snprintf(out, cap, "%.*s", (int)rep->len, rep->str);
    freeReplyObject(rep);
    return DOCQ_OK;
}

/* Compare the recorded shape text with s. Returns DOCQ_OK or DOCQ_ECONFLICT
 * naming the first setting that differs. */
static int compare(const docq_shape *s, const char *recorded, docq_error *err) {
    long shards = -1;
    char group[VALUE_MAX] = "";
    if (sscanf(recorded, "shards=%ld group=%191s", &shards, group) != 2)
        return docq_error_set(err, DOCQ_ECONFLICT, "%s:shape holds '%s', not a shape docq wrote: "
                              "delete the key if no docq deployment uses prefix %s",
                              s->prefix, recorded, s->prefix);
    if (shards != s->shards)
        return docq_error_set(err, DOCQ_ECONFLICT, "DOCQ_SHARDS is %ld here but %ld in the deployment "
                              "with DOCQ_KEY_PREFIX %s (recorded in Redis by its first server): "
                              "use the same value everywhere", s->shards, shards, s->prefix);
    if (strcmp(group, s->group) != 0)
        return docq_error_set(err, DOCQ_ECONFLICT, "DOCQ_GROUP is '%s' here but '%s' in the deployment "
                              "with DOCQ_KEY_PREFIX %s (recorded in Redis by its first server): "
                              "use the same value everywhere", s->group, group, s->prefix);
    return DOCQ_OK;
}

/* Nothing is recorded for s->prefix: DOCQ_ENOTFOUND when no deployment is
 * registered, else DOCQ_ECONFLICT listing (some of) the registered prefixes. */
static int unknown_prefix(docq_redis *r, const docq_shape *s, docq_error *err) {
    const char *argv[] = {"SRANDMEMBER", DOCQ_SHAPE_REGISTRY, "8"};
    redisReply *rep = docq_redis_command(r, 3, argv, NULL, err);
    if (!rep) return err->code;
    char known[160] = "";
    size_t len = 0;
    for (size_t i = 0; rep->type == REDIS_REPLY_ARRAY && i < rep->elements && len + 1 < sizeof(known); i++) {
        int n = snprintf(known + len, sizeof(known) - len, "%s%.*s", len ? ", " : "",
                         (int)rep->element[i]->len, rep->element[i]->str);
        len = n < 0 ? len : len + (size_t)n;
    }
    freeReplyObject(rep);
    if (!known[0]) return docq_error_set(err, DOCQ_ENOTFOUND, "no deployment recorded in Redis yet");
    return docq_error_set(err, DOCQ_ECONFLICT, "DOCQ_KEY_PREFIX is '%s' here, but no server has used it; "
                          "Redis holds the deployments with DOCQ_KEY_PREFIX %s: use one of these "
                          "(or start this deployment's servers first)", s->prefix, known);
}

int docq_shape_check(docq_redis *r, const docq_shape *s, int record, docq_error *err) {
    char key[KEY_MAX], value[VALUE_MAX], recorded[VALUE_MAX];
    snprintf(key, sizeof(key), "%s:shape", s->prefix);
    snprintf(value, sizeof(value), "shards=%ld group=%s", s->shards, s->group);
    if (record) {
        /* SET NX GET (Redis 7.0): nil when this call wrote the key. */
        const char *set[] = {"SET", key, value, "NX", "GET"}, *add[] = {"SADD", DOCQ_SHAPE_REGISTRY, s->prefix};
        char ignored[8];
        if (command_str(r, 5, set, recorded, sizeof(recorded), err) != DOCQ_OK) return err->code;
        if (recorded[0]) return compare(s, recorded, err);
        return command_str(r, 3, add, ignored, sizeof(ignored), err);
    }
    const char *get[] = {"GET", key};
    if (command_str(r, 2, get, recorded, sizeof(recorded), err) != DOCQ_OK) return err->code;
    if (!recorded[0]) return unknown_prefix(r, s, err);
    return compare(s, recorded, err);
}
