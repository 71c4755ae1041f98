/* test_cluster.c -- Redis Cluster groundwork (common/cluster.c): the hash
 * slot of a key, and the slot map built from CLUSTER SHARDS replies, well
 * formed or not, built here by hand as hiredis reply trees (freed with
 * freeReplyObject, as real ones are). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "check.h"
#include "cluster.h"
#include "store.h"

/* Reply builders; out of memory aborts the test. */
static redisReply *new_reply(int type) {
    redisReply *r = calloc(1, sizeof(*r));
    if (!r) abort();
    r->type = type;
    return r;
}

/* A bulk string of len bytes (binary-safe). */
static redisReply *str_len(const char *s, size_t len) {
    redisReply *r = new_reply(REDIS_REPLY_STRING);
    r->str = malloc(len + 1);
    if (!r->str) abort();
    memcpy(r->str, s, len);
    r->str[len] = '\0';
    r->len = len;
    return r;
}

static redisReply *str(const char *s) {
    return str_len(s, strlen(s));
}

static redisReply *num(long long v) {
    redisReply *r = new_reply(REDIS_REPLY_INTEGER);
    r->integer = v;
    return r;
}

/* An array of n replies (NULL ones allowed). */
static redisReply *arr(size_t n, ...) {
    redisReply *r = new_reply(REDIS_REPLY_ARRAY);
    va_list ap;
    r->elements = n;
    r->element = n ? calloc(n, sizeof(*r->element)) : NULL;
    if (n && !r->element) abort();
    va_start(ap, n);
    for (size_t i = 0; i < n; i++) r->element[i] = va_arg(ap, redisReply *);
    va_end(ap);
    return r;
}

/* A node as CLUSTER SHARDS lists it. */
static redisReply *node(const char *ip, long long port, const char *role, const char *health) {
    return arr(14, str("id"), str("e2f1"), str("port"), num(port), str("ip"), str(ip), str("endpoint"), str(ip),
               str("role"), str(role), str("replication-offset"), num(42), str("health"), str(health));
}

static redisReply *shard(redisReply *slots, redisReply *nodes) {
    return arr(4, str("slots"), slots, str("nodes"), nodes);
}

/* The three-shard reply of a fresh 3-primary, 3-replica cluster, each
 * replica listed before its primary. */
static redisReply *three_shards(void) {
    return arr(3,
               shard(arr(2, num(0), num(5460)),
                     arr(2, node("10.0.0.4", 7004, "replica", "online"), node("10.0.0.1", 7001, "master", "online"))),
               shard(arr(2, num(5461), num(10922)),
                     arr(2, node("10.0.0.5", 7005, "replica", "online"), node("10.0.0.2", 7002, "master", "online"))),
               shard(arr(2, num(10923), num(16383)),
                     arr(2, node("10.0.0.6", 7006, "replica", "online"), node("10.0.0.3", 7003, "master", "online"))));
}

/* Check that slot maps to host:port in m. */
static void check_owner(const docq_cluster_map *m, unsigned slot, const char *host, int port) {
    const char *h = NULL;
    int p = 0;
    CHECK_MSG(docq_cluster_map_node(m, slot, &h, &p) == DOCQ_OK, "slot %u", slot);
    CHECK_STR_EQ(h, host);
    CHECK_INT_EQ(p, port);
}

static unsigned slot_of(const char *key) {
    return docq_cluster_key_slot(key, strlen(key));
}

static void crc16_check_value(void) {
    CHECK_INT_EQ(docq_cluster_crc16("123456789", 9), 0x31C3);
    CHECK_INT_EQ(docq_cluster_crc16("", 0), 0);
}

static void known_slots(void) {
    CHECK_INT_EQ(slot_of("foo"), 12182);
    CHECK_INT_EQ(slot_of("bar"), 5061);
    CHECK_INT_EQ(slot_of("hello"), 866);
    CHECK_INT_EQ(slot_of(""), 0);
    CHECK_INT_EQ(slot_of("123456789"), 0x31C3 & 0x3FFF);
    /* A hash tag: the first {...} with something inside. */
    CHECK_INT_EQ(slot_of("{user1000}.following"), slot_of("user1000"));
    CHECK_INT_EQ(slot_of("{user1000}.followers"), slot_of("user1000"));
    CHECK_INT_EQ(slot_of("foo{bar}{zap}"), slot_of("bar"));
    CHECK_INT_EQ(slot_of("foo{{bar}}zap"), slot_of("{bar"));
    CHECK_INT_EQ(slot_of("a{foo}"), 12182);
    /* An empty tag, or no closing brace: the whole key. */
    CHECK_INT_EQ(slot_of("foo{}{bar}"), docq_cluster_crc16("foo{}{bar}", 10) & 0x3FFF);
    CHECK_INT_EQ(slot_of("{}"), docq_cluster_crc16("{}", 2) & 0x3FFF);
    CHECK_INT_EQ(slot_of("foo{bar"), docq_cluster_crc16("foo{bar", 7) & 0x3FFF);
    CHECK(slot_of("foo{}{bar}") != slot_of("bar"));
    /* Binary-safe: the bytes after a NUL count. */
    CHECK_INT_EQ(docq_cluster_key_slot("x\0{foo}", 7), 12182);
}

static void docq_keys_share_slot(void) {
    char stream[96], task[128], events[96], tag[16];
    for (int s = 0; s < 16; s++) {
        docq_key_stream(stream, sizeof(stream), "docq", s);
        docq_key_task(task, sizeof(task), "docq", "0123456789abcdef0123456789abcdef", s);
        docq_key_events(events, sizeof(events), "docq", s);
        snprintf(tag, sizeof(tag), "s%d", s);
        CHECK_MSG(slot_of(stream) == slot_of(tag), "%s", stream);
        CHECK_MSG(slot_of(task) == slot_of(tag), "%s", task);
        CHECK_MSG(slot_of(events) == slot_of(tag), "%s", events);
    }
}

static void map_routes_to_online_primaries(void) {
    docq_cluster_map *m = docq_cluster_map_create();
    docq_error err = {0};
    redisReply *rep = three_shards();
    const char *h;
    int p;
    CHECK_INT_EQ(docq_cluster_map_covered(m), 0);
    CHECK_INT_EQ(docq_cluster_map_node(m, 0, &h, &p), DOCQ_ENOTFOUND);
    CHECK_INT_EQ(docq_cluster_map_from_shards(m, rep, &err), DOCQ_OK);
    CHECK_INT_EQ(docq_cluster_map_covered(m), 16384);
    check_owner(m, 0, "10.0.0.1", 7001);
    check_owner(m, 5460, "10.0.0.1", 7001);
    check_owner(m, 5461, "10.0.0.2", 7002);
    check_owner(m, 12182, "10.0.0.3", 7003);
    check_owner(m, 16383, "10.0.0.3", 7003);
    CHECK_INT_EQ(docq_cluster_map_node(m, 16384, &h, &p), DOCQ_ENOTFOUND);
    freeReplyObject(rep);
    docq_cluster_map_free(m);
}

static void map_prefers_online_then_any_master(void) {
    docq_cluster_map *m = docq_cluster_map_create();
    docq_error err = {0};
    const char *h;
    int p;
    /* A failed master and its promoted replica; a shard whose only master
     * failed; a shard of replicas only; ranges split in two; an endpoint "?". */
    redisReply *unknown_endpoint = arr(10, str("port"), num(7009), str("ip"), str("10.0.0.9"), str("endpoint"),
                                       str("?"), str("role"), str("master"), str("health"), str("online"));
    redisReply *rep = arr(4,
        shard(arr(4, num(0), num(99), num(200), num(299)),
              arr(2, node("10.0.0.1", 7001, "master", "fail"), node("10.0.0.4", 7004, "master", "online"))),
        shard(arr(2, num(100), num(199)), arr(1, node("10.0.0.2", 7002, "master", "fail"))),
        shard(arr(2, num(300), num(399)), arr(1, node("10.0.0.5", 7005, "replica", "online"))),
        shard(arr(2, num(400), num(400)), arr(1, unknown_endpoint)));
    CHECK_INT_EQ(docq_cluster_map_from_shards(m, rep, &err), DOCQ_OK);
    check_owner(m, 0, "10.0.0.4", 7004);
    check_owner(m, 250, "10.0.0.4", 7004);
    check_owner(m, 150, "10.0.0.2", 7002);
    CHECK_INT_EQ(docq_cluster_map_node(m, 350, &h, &p), DOCQ_ENOTFOUND);
    check_owner(m, 400, "10.0.0.9", 7009);
    CHECK_INT_EQ(docq_cluster_map_node(m, 401, &h, &p), DOCQ_ENOTFOUND);
    CHECK_INT_EQ(docq_cluster_map_covered(m), 301);
    freeReplyObject(rep);
    docq_cluster_map_free(m);
}

/* A well-formed online primary. */
static redisReply *good(void) {
    return node("10.0.0.1", 7001, "master", "online");
}

/* Shard lists that are each malformed in one way. */
static redisReply *malformed(int i) {
    char long_host[300];
    memset(long_host, 'h', sizeof(long_host) - 1);
    long_host[sizeof(long_host) - 1] = '\0';
    switch (i) {
    case 0: return num(3);
    case 1: return str("CLUSTER SHARDS");
    case 2: return arr(1, NULL);
    case 3: return arr(1, num(1));
    case 4: return arr(1, arr(3, str("slots"), arr(2, num(0), num(1)), str("nodes")));
    case 5: return arr(1, arr(2, str("nodes"), arr(1, good())));
    case 6: return arr(1, shard(arr(1, num(0)), arr(1, good())));
    case 7: return arr(1, shard(arr(2, str("0"), num(1)), arr(1, good())));
    case 8: return arr(1, shard(arr(2, num(-1), num(1)), arr(1, good())));
    case 9: return arr(1, shard(arr(2, num(0), num(16384)), arr(1, good())));
    case 10: return arr(1, shard(arr(2, num(9), num(8)), arr(1, good())));
    case 11: return arr(1, shard(arr(2, NULL, num(8)), arr(1, good())));
    case 12: return arr(1, shard(arr(2, num(0), num(1)), good()));
    case 13: return arr(1, arr(2, str("slots"), arr(2, num(0), num(1))));
    case 14: return arr(1, shard(arr(2, num(0), num(1)), arr(1, node("", 7001, "master", "online"))));
    case 15: return arr(1, shard(arr(2, num(0), num(1)), arr(1, node("h", 0, "master", "online"))));
    case 16: return arr(1, shard(arr(2, num(0), num(1)), arr(1, node("h", 65536, "master", "online"))));
    case 17:
        return arr(1, shard(arr(2, num(0), num(1)), arr(1, node(long_host, 7001, "master", "online"))));
    case 18:
        return arr(1, shard(arr(2, num(0), num(1)),
                            arr(1, arr(6, str("ip"), str_len("a\0b", 3), str("port"), num(1), str("role"), str("master")))));
    case 19:
        return arr(1, shard(arr(2, num(0), num(1)), arr(1, arr(4, str("ip"), str("h"), str("role"), str("master")))));
    case 20: return arr(2, shard(arr(2, num(0), num(10)), arr(1, good())),
                        shard(arr(2, num(10), num(20)), arr(1, node("10.0.0.2", 7002, "master", "online"))));
    case 21:
        return arr(1, shard(arr(2, num(0), num(1)), arr(1, arr(3, str("role"), str("master"), NULL))));
    default: return good();
    }
}
#define MALFORMED 22

static void malformed_replies_refused(void) {
    docq_cluster_map *m = docq_cluster_map_create();
    docq_error err = {0};
    redisReply *fine = three_shards(), *error = new_reply(REDIS_REPLY_ERROR);
    CHECK_INT_EQ(docq_cluster_map_from_shards(m, fine, &err), DOCQ_OK);
    for (int i = 0; i < MALFORMED; i++) {
        redisReply *rep = malformed(i);
        err.msg[0] = '\0';
        CHECK_MSG(docq_cluster_map_from_shards(m, rep, &err) == DOCQ_ERR, "reply %d", i);
        CHECK_MSG(strncmp(err.msg, "CLUSTER SHARDS", 14) == 0, "reply %d: \"%s\"", i, err.msg);
        freeReplyObject(rep);
    }
    CHECK_INT_EQ(docq_cluster_map_from_shards(m, NULL, &err), DOCQ_ERR);
    CHECK_INT_EQ(docq_cluster_map_from_shards(m, error, &err), DOCQ_ERR);
    error->str = strdup("ERR This instance has cluster support disabled");
    error->len = strlen(error->str);
    CHECK_INT_EQ(docq_cluster_map_from_shards(m, error, &err), DOCQ_ERR);
    CHECK_STR_CONTAINS(err.msg, "cluster support disabled");
    /* A refused reply leaves the map as it was. */
    CHECK_INT_EQ(docq_cluster_map_covered(m), 16384);
    check_owner(m, 12182, "10.0.0.3", 7003);
    freeReplyObject(fine);
    freeReplyObject(error);
    docq_cluster_map_free(m);
}

static void redirects_parsed(void) {
    docq_cluster_redirect r;
    const char *moved = "MOVED 3999 127.0.0.1:6381";
    CHECK_INT_EQ(docq_cluster_redirect_parse(moved, strlen(moved), &r), DOCQ_OK);
    CHECK_INT_EQ(r.ask, 0);
    CHECK_INT_EQ(r.slot, 3999);
    CHECK_STR_EQ(r.host, "127.0.0.1");
    CHECK_INT_EQ(r.port, 6381);
    const char *ask = "ASK 16383 ::1:7000";
    CHECK_INT_EQ(docq_cluster_redirect_parse(ask, strlen(ask), &r), DOCQ_OK);
    CHECK_INT_EQ(r.ask, 1);
    CHECK_INT_EQ(r.slot, 16383);
    CHECK_STR_EQ(r.host, "::1");
    CHECK_INT_EQ(r.port, 7000);
    const char *hostless = "MOVED 0 :6380";
    CHECK_INT_EQ(docq_cluster_redirect_parse(hostless, strlen(hostless), &r), DOCQ_OK);
    CHECK_STR_EQ(r.host, "");
    CHECK_INT_EQ(r.port, 6380);
    static const char *const bad[] = {"MOVED", "MOVED 3999", "MOVED 16384 h:1", "MOVED x h:1", "MOVED 1 h",
                                      "MOVED 1 h:0", "MOVED 1 h:65536", "MOVED 1 h:1 extra", "ASK 1 a b:1",
                                      "ERR unknown command", "MOVED 1 h:1x", "NOSCRIPT No matching script",
                                      "MOVED -1 h:1", "ASK 1 h:"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        CHECK_MSG(docq_cluster_redirect_parse(bad[i], strlen(bad[i]), &r) == DOCQ_ENOTFOUND, "%s was read", bad[i]);
    /* Only len bytes count. */
    CHECK_INT_EQ(docq_cluster_redirect_parse(moved, 10, &r), DOCQ_ENOTFOUND);
}

static void map_set_by_moved(void) {
    docq_cluster_map *m = docq_cluster_map_create();
    docq_error err = {0};
    const char *host;
    int port;
    CHECK_INT_EQ(docq_cluster_map_set(m, 42, "10.0.0.9", 7009, &err), DOCQ_OK);
    CHECK_INT_EQ(docq_cluster_map_node(m, 42, &host, &port), DOCQ_OK);
    CHECK_STR_EQ(host, "10.0.0.9");
    CHECK_INT_EQ(port, 7009);
    CHECK_INT_EQ(docq_cluster_map_covered(m), 1);
    CHECK_INT_EQ(docq_cluster_map_set(m, 43, "10.0.0.9", 7009, &err), DOCQ_OK);
    CHECK_INT_EQ(docq_cluster_map_primaries(m), 1); /* One node, listed once. */
    docq_cluster_map_primary(m, 0, &host, &port);
    CHECK_STR_EQ(host, "10.0.0.9");
    CHECK_INT_EQ(docq_cluster_map_set(m, 16384, "h", 1, &err), DOCQ_ERR);
    CHECK_INT_EQ(docq_cluster_map_set(m, 1, "", 1, &err), DOCQ_ERR);
    CHECK_INT_EQ(docq_cluster_map_set(m, 1, "h", 0, &err), DOCQ_ERR);
    CHECK_INT_EQ(docq_cluster_map_covered(m), 2);
    docq_cluster_map_free(m);
}

CHECK_MAIN(
    CHECK_CASE(redirects_parsed,
               "MOVED and ASK redirections are read (IPv6 and empty hosts too) and anything else is refused"),
    CHECK_CASE(map_set_by_moved, "a MOVED redirection gives its slot to the named primary, and a bad one is refused"),
    CHECK_CASE(crc16_check_value, "the cluster CRC16 of \"123456789\" is 0x31C3, the XMODEM check value"),
    CHECK_CASE(known_slots,
               "key slots match Redis Cluster's: \"foo\" is 12182, the first non-empty {tag} is hashed alone, "
               "an empty one hashes the whole key"),
    CHECK_CASE(docq_keys_share_slot, "a shard's stream, task and events keys all hash to the slot of its {sN} tag"),
    CHECK_CASE(map_routes_to_online_primaries,
               "the slot map from a three-shard CLUSTER SHARDS reply names each slot's primary, never a replica"),
    CHECK_CASE(map_prefers_online_then_any_master,
               "the slot map prefers an online master, falls back to a failed one and leaves a shard without "
               "master uncovered"),
    CHECK_CASE(malformed_replies_refused,
               "malformed CLUSTER SHARDS replies are refused with a reason and leave the slot map as it was"))
