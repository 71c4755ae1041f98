/* cluster.h -- Redis Cluster groundwork: the hash slot of a key and a map
 * from each slot to the primary that serves it.
 *
 * Nothing here talks to Redis: the map is built from a CLUSTER SHARDS reply
 * the caller obtained (Redis 7) and from MOVED redirections, so it can be
 * tested, and fuzzed, on replies built by hand. redis.c routes commands
 * with it. */
#ifndef DOCQ_CLUSTER_H
#define DOCQ_CLUSTER_H

#include <stddef.h>

#include <hiredis.h>

#include "error.h"

#define DOCQ_CLUSTER_SLOTS 16384

/* The hash slot (0..16383) of the key's len bytes, as Redis Cluster computes
 * it: CRC16 (XMODEM) mod 16384 of the key, or of its hash tag -- what lies
 * between the first '{' and the first '}' after it -- when that is not empty.
 * So "{user1000}.following" and "{user1000}.followers" share a slot, and
 * "foo{}{bar}" is hashed whole. Binary-safe. */
unsigned docq_cluster_key_slot(const char *key, size_t len);

/* CRC16 of len bytes as Redis Cluster uses it (XMODEM: polynomial 0x1021,
 * initial value 0, no reflection); "123456789" gives 0x31C3. */
unsigned docq_cluster_crc16(const char *buf, size_t len);

/* Which primary (host, port) serves each slot. Owned by its creator; not
 * thread-safe (one writer, or readers only). */
typedef struct docq_cluster_map docq_cluster_map;

/* A map with no slot covered. Returns NULL when out of memory. Free it with
 * docq_cluster_map_free. */
docq_cluster_map *docq_cluster_map_create(void);

/* Free m and its nodes (host strings given out before are then invalid).
 * NULL is fine. */
void docq_cluster_map_free(docq_cluster_map *m);

/* Replace m's contents with the slots and primaries of a CLUSTER SHARDS
 * reply (RESP2: an array of shards, each a flat map holding "slots", an
 * array of start/end integer pairs, and "nodes", an array of flat maps with
 * "ip", "endpoint", "port" or "tls-port", "role" and "health"). Each shard's
 * slots go to its node whose role is "master" and health "online", else to
 * its first "master"; a shard with no master leaves its slots uncovered. A
 * node's host is its "endpoint" unless that is empty or "?", then its "ip".
 * The reply stays owned by the caller and is not kept.
 * Returns DOCQ_OK, or DOCQ_ERR with the reason when the reply is malformed
 * (wrong types, odd slot list, slot out of range or claimed twice, missing
 * or bad host or port...) or memory runs out; m is then unchanged. Never
 * crashes on any reply shape (NULL elements included). */
int docq_cluster_map_from_shards(docq_cluster_map *m, const redisReply *rep, docq_error *err);

/* The primary serving slot: sets *host (owned by m, valid until m is
 * rebuilt or freed) and *port. Returns DOCQ_OK, or DOCQ_ENOTFOUND when the
 * slot is not covered or is not below DOCQ_CLUSTER_SLOTS (*host and *port
 * are then untouched). */
int docq_cluster_map_node(const docq_cluster_map *m, unsigned slot, const char **host, int *port);

/* How many slots m covers (16384 for a healthy cluster). */
unsigned docq_cluster_map_covered(const docq_cluster_map *m);

/* Give slot to the primary at host:port (a MOVED redirection said so).
 * Returns DOCQ_OK, or DOCQ_ERR when slot is out of range, host is empty or
 * too long, port is not 1..65535, or memory runs out (m is then unchanged). */
int docq_cluster_map_set(docq_cluster_map *m, unsigned slot, const char *host, int port, docq_error *err);

/* How many primaries m names; docq_cluster_map_primary gives the i-th
 * (0 <= i < count): host owned by m, as docq_cluster_map_node. A primary
 * that lost all its slots to MOVED redirections may still be listed. */
size_t docq_cluster_map_primaries(const docq_cluster_map *m);
void docq_cluster_map_primary(const docq_cluster_map *m, size_t i, const char **host, int *port);

/* A redirection error of Redis Cluster: "MOVED <slot> <host>:<port>" (the
 * slot lives elsewhere for good) or "ASK <slot> <host>:<port>" (ask that
 * node once, after ASKING: the slot is being moved there). */
typedef struct docq_cluster_redirect {
    int ask;            /* 1: ASK, 0: MOVED. */
    unsigned slot;
    char host[256];
    int port;
} docq_cluster_redirect;

/* Parse the error text msg (len bytes, not NUL-terminated necessarily) as a
 * redirection into *out. The host may be empty in Redis 7 ("MOVED 3999
 * :6381": the node that answered), which is returned as is. Returns DOCQ_OK,
 * or DOCQ_ENOTFOUND when msg is no well-formed redirection. */
int docq_cluster_redirect_parse(const char *msg, size_t len, docq_cluster_redirect *out);

#endif
