/* libFuzzer target: trusted proxies and x-forwarded-for (common/proxies.c).
 * The input's first line is a DOCQ_TRUSTED_PROXIES list, its second the
 * peer's address, and the rest an x-forwarded-for value, which any client
 * can send. The caller found is always NUL-terminated within its buffer
 * and is the peer itself unless the peer is trusted. The peer line is also
 * decoded as a gRPC peer string (docq_peer_address) and grouped
 * (docq_address_group): both always NUL-terminate within their buffer. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "fuzz_check.h"
#include "proxies.h"

/* Cut the next line of [*p, end) into a NUL-terminated copy. */
static char *next_line(const char **p, const char *end) {
    const char *nl = memchr(*p, '\n', (size_t)(end - *p));
    const char *stop = nl ? nl : end;
    size_t n = (size_t)(stop - *p);
    char *s = malloc(n + 1);
    FUZZ_CHECK(s != NULL);
    memcpy(s, *p, n);
    s[n] = '\0';
    *p = nl ? nl + 1 : end;
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *p = (const char *)data, *end = p + size;
    char *list = next_line(&p, end), *peer = next_line(&p, end);
    docq_proxies proxies;
    docq_error err = {0};
    if (docq_proxies_parse(list, &proxies, &err) == DOCQ_OK) {
        FUZZ_CHECK(proxies.count >= 0 && proxies.count <= DOCQ_MAX_PROXIES);
        for (int i = 0; i < proxies.count; i++) {
            const docq_cidr *c = &proxies.nets[i];
            FUZZ_CHECK(c->bits >= 0 && c->bits <= (c->family == AF_INET ? 32 : 128));
        }
        char client[DOCQ_IP_MAX + 64];
        memset(client, 'x', sizeof(client));
        /* Half the time without a header, and with the buffer too small. */
        size_t cap = size % 2 ? sizeof(client) : 8;
        docq_proxies_client(&proxies, peer, p, (size_t)(end - p), client, cap);
        FUZZ_CHECK(memchr(client, '\0', cap) != NULL);
        if (!docq_proxies_trusts(&proxies, peer)) {
            char alone[sizeof(client)];
            docq_proxies_client(&proxies, peer, NULL, 0, alone, cap);
            FUZZ_CHECK(strcmp(client, alone) == 0);
        }
    } else {
        FUZZ_CHECK(err.code == DOCQ_EINVAL);
    }
    char addr[DOCQ_IP_MAX + 64];
    size_t cap = size % 3 ? sizeof(addr) : 8;
    memset(addr, 'x', sizeof(addr));
    int rc = docq_peer_address(peer, addr, cap);
    FUZZ_CHECK(memchr(addr, '\0', cap) != NULL);
    FUZZ_CHECK(rc == DOCQ_OK || rc == DOCQ_EINVAL);
    memset(addr, 'x', sizeof(addr));
    docq_address_group(peer, (int)(size % 130), addr, cap);
    FUZZ_CHECK(memchr(addr, '\0', cap) != NULL);
    free(list);
    free(peer);
    return 0;
}
