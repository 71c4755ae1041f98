/* docq-cluster-map <port> <key>...: asks the Redis Cluster node at
 * 127.0.0.1:<port> for CLUSTER SHARDS, builds docq's slot map from the reply
 * (common/cluster.c) and prints, for each key, "<key> <slot> <host>:<port>"
 * of the primary the map routes it to ("-" for an uncovered slot), then
 * "covered <n>", for test_cluster.py to compare with what the cluster says.
 * Exit status 1 when the node cannot be asked or the reply is refused. */
#include <stdio.h>
#include <string.h>

#include "cluster.h"
#include "redis.h"

/* The map built from the CLUSTER SHARDS reply of the node at url into m.
 * Returns DOCQ_OK or a failure with err set. */
static int map_from_node(const char *url, docq_cluster_map *m, docq_error *err) {
    docq_redis_addr addr;
    const char *argv[] = {"CLUSTER", "SHARDS"};
    if (docq_redis_url_parse(url, &addr, err) != DOCQ_OK) return DOCQ_ERR;
    docq_redis *r = docq_redis_create(&addr, 5000);
    if (!r) return docq_error_set(err, DOCQ_ERR, "out of memory");
    redisReply *rep = docq_redis_command(r, 2, argv, NULL, err);
    int rc = rep ? docq_cluster_map_from_shards(m, rep, err) : DOCQ_ERR;
    if (rep) freeReplyObject(rep);
    docq_redis_free(r);
    return rc;
}

int main(int argc, char **argv) {
    char url[64];
    docq_error err = {0};
    docq_cluster_map *m = docq_cluster_map_create();
    snprintf(url, sizeof(url), "redis://127.0.0.1:%s", argc > 1 ? argv[1] : "7000");
    if (!m || map_from_node(url, m, &err) != DOCQ_OK) {
        fprintf(stderr, "docq-cluster-map: %s\n", m ? err.msg : "out of memory");
        docq_cluster_map_free(m);
        return 1;
    }
    for (int i = 2; i < argc; i++) {
        const char *host;
        int port;
        unsigned slot = docq_cluster_key_slot(argv[i], strlen(argv[i]));
        if (docq_cluster_map_node(m, slot, &host, &port) == DOCQ_OK) printf("%s %u %s:%d\n", argv[i], slot, host, port);
        else printf("%s %u -\n", argv[i], slot);
    }
    printf("covered %u\n", docq_cluster_map_covered(m));
    docq_cluster_map_free(m);
    return 0;
}
