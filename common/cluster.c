/* cluster.c -- hash slots and the slot map built from CLUSTER SHARDS. See
 * cluster.h. Every reply element is checked before use: a reply of any
 * shape, hand-built ones with NULL elements included, is refused or read,
 * never trusted. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cluster.h"

#define NO_NODE 0xFFFF  /* slot_node value of an uncovered slot. */
#define HOST_MAX 256

typedef struct cluster_node {
    char host[HOST_MAX];
    int port;
} cluster_node;

struct docq_cluster_map {
    uint16_t slot_node[DOCQ_CLUSTER_SLOTS]; /* Index into nodes, or NO_NODE. */
    cluster_node *nodes;                     /* The primaries, each once. */
    size_t nnodes, cap;
};

unsigned docq_cluster_crc16(const char *buf, size_t len) {
    unsigned crc = 0;
    for (size_t i = 0; i < len; i++) {
        crc ^= (unsigned)(unsigned char)buf[i] << 8;
        for (int bit = 0; bit < 8; bit++) crc = (crc & 0x8000) ? (crc << 1) ^ 0x1021 : crc << 1;
        crc &= 0xFFFF;
    }
    return crc;
}

unsigned docq_cluster_key_slot(const char *key, size_t len) {
    const char *open = len ? memchr(key, '{', len) : NULL;
    if (open) {
        size_t rest = len - (size_t)(open - key) - 1;
        const char *close = rest ? memchr(open + 1, '}', rest) : NULL;
        if (close && close > open + 1) return docq_cluster_crc16(open + 1, (size_t)(close - open - 1)) & 0x3FFF;
    }
    return docq_cluster_crc16(key, len) & 0x3FFF;
}

docq_cluster_map *docq_cluster_map_create(void) {
    docq_cluster_map *m = calloc(1, sizeof(*m));
    if (m) memset(m->slot_node, 0xFF, sizeof(m->slot_node));
    return m;
}

void docq_cluster_map_free(docq_cluster_map *m) {
    if (!m) return;
    free(m->nodes);
    free(m);
}

/* 1 when r is an array reply whose elements can be read. */
static int is_array(const redisReply *r) {
    return r && r->type == REDIS_REPLY_ARRAY && (r->elements == 0 || r->element);
}

/* Element i of array reply arr (NULL when it is NULL); i < arr->elements. */
static const redisReply *elem(const redisReply *arr, size_t i) {
    return arr->element[i];
}

/* 1 when r is a string reply equal to s. */
static int str_is(const redisReply *r, const char *s) {
    size_t n = strlen(s);
    return r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS) && r->str && r->len == n &&
           memcmp(r->str, s, n) == 0;
}

/* The value of name in the flat map reply map (key, value, key, value...),
 * or NULL when map is no array or has no such key. */
static const redisReply *field(const redisReply *map, const char *name) {
    if (!is_array(map)) return NULL;
    for (size_t i = 0; i + 1 < map->elements; i += 2)
        if (str_is(elem(map, i), name)) return elem(map, i + 1);
    return NULL;
}

/* 1 when r is an integer reply within [lo, hi]. */
static int int_within(const redisReply *r, long long lo, long long hi) {
    return r && r->type == REDIS_REPLY_INTEGER && r->integer >= lo && r->integer <= hi;
}

/* In the shard's "nodes" array, the node whose role is "master" and health
 * "online", else its first "master", into *out (NULL when it has none).
 * Returns DOCQ_OK, or DOCQ_ERR when nodes is no array of maps. */
static int pick_primary(const redisReply *nodes, size_t shard, const redisReply **out, docq_error *err) {
    *out = NULL;
    if (!is_array(nodes))
        return docq_error_set(err, DOCQ_ERR, "CLUSTER SHARDS: shard %zu: \"nodes\" is not an array", shard);
    for (size_t i = 0; i < nodes->elements; i++) {
        const redisReply *n = elem(nodes, i);
        if (!is_array(n) || n->elements % 2)
            return docq_error_set(err, DOCQ_ERR, "CLUSTER SHARDS: shard %zu: node %zu is not a map", shard, i);
        if (!str_is(field(n, "role"), "master")) continue;
        if (str_is(field(n, "health"), "online")) {
            *out = n;
            return DOCQ_OK;
        }
        if (!*out) *out = n;
    }
    return DOCQ_OK;
}

/* The node's address into *node: host from "endpoint" (unless empty or "?")
 * or "ip", port from "port" or "tls-port". Returns DOCQ_OK, or DOCQ_ERR
 * when either is missing or unusable. */
static int node_address(const redisReply *n, size_t shard, cluster_node *node, docq_error *err) {
    const redisReply *host = field(n, "endpoint"), *port = field(n, "port");
    if (!host || host->type != REDIS_REPLY_STRING || !host->str || host->len == 0 || str_is(host, "?"))
        host = field(n, "ip");
    if (!host || host->type != REDIS_REPLY_STRING || !host->str || host->len == 0 || host->len >= HOST_MAX ||
        memchr(host->str, '\0', host->len))
        return docq_error_set(err, DOCQ_ERR, "CLUSTER SHARDS: shard %zu: the primary has no usable host", shard);
    if (!int_within(port, 1, 65535)) port = field(n, "tls-port");
    if (!int_within(port, 1, 65535))
        return docq_error_set(err, DOCQ_ERR, "CLUSTER SHARDS: shard %zu: the primary has no usable port", shard);
    memcpy(node->host, host->str, host->len);
    node->host[host->len] = '\0';
    node->port = (int)port->integer;
    return DOCQ_OK;
}

/* The index in m->nodes of node's address, added when new, into *idx.
 * Returns DOCQ_OK, or DOCQ_ERR when memory runs out or the table is full. */
static int node_index(docq_cluster_map *m, const cluster_node *node, uint16_t *idx, docq_error *err) {
    for (size_t i = 0; i < m->nnodes; i++) {
        if (m->nodes[i].port == node->port && strcmp(m->nodes[i].host, node->host) == 0) {
            *idx = (uint16_t)i;
            return DOCQ_OK;
        }
    }
    if (m->nnodes >= NO_NODE) return docq_error_set(err, DOCQ_ERR, "CLUSTER SHARDS: too many primaries");
    if (m->nnodes == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 8;
        cluster_node *grown = realloc(m->nodes, cap * sizeof(*grown));
        if (!grown) return docq_error_set(err, DOCQ_ERR, "out of memory");
        m->nodes = grown;
        m->cap = cap;
    }
    m->nodes[m->nnodes] = *node;
    *idx = (uint16_t)m->nnodes++;
    return DOCQ_OK;
}

/* Check that slots is a list of start/end pairs within 0..16383, start <=
 * end. Returns DOCQ_OK or DOCQ_ERR with the reason. */
static int slots_check(const redisReply *slots, size_t shard, docq_error *err) {
    if (!is_array(slots) || slots->elements % 2)
        return docq_error_set(err, DOCQ_ERR, "CLUSTER SHARDS: shard %zu: \"slots\" is not a list of start/end pairs",
                              shard);
    for (size_t i = 0; i < slots->elements; i += 2) {
        const redisReply *start = elem(slots, i), *end = elem(slots, i + 1);
        if (!int_within(start, 0, DOCQ_CLUSTER_SLOTS - 1) || !int_within(end, start->integer, DOCQ_CLUSTER_SLOTS - 1))
            return docq_error_set(err, DOCQ_ERR, "CLUSTER SHARDS: shard %zu: bad slot range", shard);
    }
    return DOCQ_OK;
}

/* Give the slots of shard (element number `index` of the reply) to its
 * primary in m. Returns DOCQ_OK, or DOCQ_ERR when the shard is malformed or
 * claims a slot already given. */
static int shard_apply(docq_cluster_map *m, const redisReply *shard, size_t index, docq_error *err) {
    const redisReply *slots = field(shard, "slots"), *primary;
    cluster_node node;
    uint16_t idx = NO_NODE;
    if (!is_array(shard) || shard->elements % 2)
        return docq_error_set(err, DOCQ_ERR, "CLUSTER SHARDS: shard %zu is not a map", index);
    if (slots_check(slots, index, err) != DOCQ_OK || pick_primary(field(shard, "nodes"), index, &primary, err) != DOCQ_OK)
        return DOCQ_ERR;
    if (!primary || slots->elements == 0) return DOCQ_OK;
    if (node_address(primary, index, &node, err) != DOCQ_OK || node_index(m, &node, &idx, err) != DOCQ_OK)
        return DOCQ_ERR;
    for (size_t i = 0; i < slots->elements; i += 2) {
        for (long long s = elem(slots, i)->integer; s <= elem(slots, i + 1)->integer; s++) {
            if (m->slot_node[s] != NO_NODE)
                return docq_error_set(err, DOCQ_ERR, "CLUSTER SHARDS: slot %lld is claimed twice", s);
            m->slot_node[s] = idx;
        }
    }
    return DOCQ_OK;
}

int docq_cluster_map_from_shards(docq_cluster_map *m, const redisReply *rep, docq_error *err) {
    if (rep && rep->type == REDIS_REPLY_ERROR)
        return docq_error_set(err, DOCQ_ERR, "CLUSTER SHARDS: %.200s", rep->str ? rep->str : "error");
    if (!is_array(rep)) return docq_error_set(err, DOCQ_ERR, "CLUSTER SHARDS: the reply is not an array");
    docq_cluster_map *fresh = docq_cluster_map_create();
    if (!fresh) return docq_error_set(err, DOCQ_ERR, "out of memory");
    for (size_t i = 0; i < rep->elements; i++) {
        if (shard_apply(fresh, elem(rep, i), i, err) != DOCQ_OK) {
            docq_cluster_map_free(fresh);
            return DOCQ_ERR;
        }
    }
    free(m->nodes);
    memcpy(m, fresh, sizeof(*m));
    free(fresh);
    return DOCQ_OK;
}

int docq_cluster_map_node(const docq_cluster_map *m, unsigned slot, const char **host, int *port) {
    if (slot >= DOCQ_CLUSTER_SLOTS || m->slot_node[slot] == NO_NODE) return DOCQ_ENOTFOUND;
    *host = m->nodes[m->slot_node[slot]].host;
    *port = m->nodes[m->slot_node[slot]].port;
    return DOCQ_OK;
}

unsigned docq_cluster_map_covered(const docq_cluster_map *m) {
    unsigned n = 0;
    for (unsigned s = 0; s < DOCQ_CLUSTER_SLOTS; s++) n += m->slot_node[s] != NO_NODE;
    return n;
}

int docq_cluster_map_set(docq_cluster_map *m, unsigned slot, const char *host, int port, docq_error *err) {
    cluster_node node;
    uint16_t idx;
    size_t len = strlen(host);
    if (slot >= DOCQ_CLUSTER_SLOTS) return docq_error_set(err, DOCQ_ERR, "slot %u out of range", slot);
    if (len == 0 || len >= HOST_MAX || port < 1 || port > 65535)
        return docq_error_set(err, DOCQ_ERR, "bad node address for slot %u", slot);
    memcpy(node.host, host, len + 1);
    node.port = port;
    if (node_index(m, &node, &idx, err) != DOCQ_OK) return DOCQ_ERR;
    m->slot_node[slot] = idx;
    return DOCQ_OK;
}

size_t docq_cluster_map_primaries(const docq_cluster_map *m) { return m->nnodes; }

void docq_cluster_map_primary(const docq_cluster_map *m, size_t i, const char **host, int *port) {
    *host = m->nodes[i].host;
    *port = m->nodes[i].port;
}

/* Parse the decimal number at s[*i..len) into *out, at most max, moving *i
 * past it. Returns 1 when there was one, else 0. */
static int parse_number(const char *s, size_t len, size_t *i, long max, long *out) {
    long v = 0;
    size_t start = *i;
    while (*i < len && s[*i] >= '0' && s[*i] <= '9' && *i - start < 6) v = v * 10 + (s[(*i)++] - '0');
    if (*i == start || v > max) return 0;
    *out = v;
    return 1;
}

int docq_cluster_redirect_parse(const char *msg, size_t len, docq_cluster_redirect *out) {
    size_t i;
    long slot, port;
    if (len > 6 && memcmp(msg, "MOVED ", 6) == 0) {
        out->ask = 0, i = 6;
    } else if (len > 4 && memcmp(msg, "ASK ", 4) == 0) {
        out->ask = 1, i = 4;
    } else {
        return DOCQ_ENOTFOUND;
    }
    if (!parse_number(msg, len, &i, DOCQ_CLUSTER_SLOTS - 1, &slot) || i >= len || msg[i++] != ' ')
        return DOCQ_ENOTFOUND;
    const char *colon = NULL;
    for (size_t k = i; k < len; k++)
        if (msg[k] == ':') colon = msg + k; /* The last one: IPv6 hosts hold colons. */
    if (!colon || (size_t)(colon - msg) - i >= sizeof(out->host)) return DOCQ_ENOTFOUND;
    size_t hlen = (size_t)(colon - msg) - i, p = (size_t)(colon - msg) + 1;
    if (memchr(msg + i, '\0', hlen) || memchr(msg + i, ' ', hlen) || !parse_number(msg, len, &p, 65535, &port) ||
        port < 1 || p != len)
        return DOCQ_ENOTFOUND;
    memcpy(out->host, msg + i, hlen);
    out->host[hlen] = '\0';
    out->slot = (unsigned)slot;
    out->port = (int)port;
    return DOCQ_OK;
}
