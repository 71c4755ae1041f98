/* libFuzzer target: Redis Cluster redirections (common/cluster.c). The
 * input is an error reply's text, which a node (or anything answering on
 * its port) chooses. A redirection read from it names a slot below 16384, a
 * port from 1 to 65535 and a NUL-terminated host without spaces, and giving
 * that slot to that node in a slot map either works and routes the slot
 * there or is refused (an empty host), never anything else. */
#include <stdint.h>
#include <string.h>

#include "cluster.h"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    docq_cluster_redirect r;
    if (docq_cluster_redirect_parse((const char *)data, size, &r) != DOCQ_OK) return 0;
    FUZZ_CHECK(r.ask == 0 || r.ask == 1);
    FUZZ_CHECK(r.slot < DOCQ_CLUSTER_SLOTS);
    FUZZ_CHECK(r.port >= 1 && r.port <= 65535);
    size_t len = strnlen(r.host, sizeof(r.host));
    FUZZ_CHECK(len < sizeof(r.host));
    FUZZ_CHECK(memchr(r.host, ' ', len) == NULL);
    docq_cluster_map *m = docq_cluster_map_create();
    FUZZ_CHECK(m != NULL);
    docq_error err = {0};
    int rc = docq_cluster_map_set(m, r.slot, r.host, r.port, &err);
    FUZZ_CHECK(rc == (len ? DOCQ_OK : DOCQ_ERR));
    const char *host;
    int port;
    if (rc == DOCQ_OK) {
        FUZZ_CHECK(docq_cluster_map_node(m, r.slot, &host, &port) == DOCQ_OK);
        FUZZ_CHECK(strcmp(host, r.host) == 0 && port == r.port);
    } else {
        FUZZ_CHECK(docq_cluster_map_node(m, r.slot, &host, &port) == DOCQ_ENOTFOUND);
    }
    docq_cluster_map_free(m);
    return 0;
}
