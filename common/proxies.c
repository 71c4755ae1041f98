/* proxies.c -- trusted proxy ranges and x-forwarded-for. See proxies.h. */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "proxies.h"

/* Parse the IP address in s[0..len) into out (bits = all). IPv4-mapped IPv6
 * becomes IPv4. Returns DOCQ_OK or DOCQ_EINVAL. */
static int parse_ip(const char *s, size_t len, docq_cidr *out) {
    char text[DOCQ_IP_MAX];
    if (len == 0 || len >= sizeof(text)) return DOCQ_EINVAL;
    memcpy(text, s, len);
    text[len] = '\0';
    memset(out, 0, sizeof(*out));
    if (inet_pton(AF_INET, text, out->addr) == 1) {
        out->family = AF_INET;
        out->bits = 32;
        return DOCQ_OK;
    }
    if (inet_pton(AF_INET6, text, out->addr) != 1) return DOCQ_EINVAL;
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (memcmp(out->addr, mapped, 12) == 0) {
        memmove(out->addr, out->addr + 12, 4);
        memset(out->addr + 4, 0, 12);
        out->family = AF_INET;
        out->bits = 32;
        return DOCQ_OK;
    }
    out->family = AF_INET6;
    out->bits = 128;
    return DOCQ_OK;
}

/* Parse "ip" or "ip/bits" in s[0..len) into out. */
static int parse_cidr(const char *s, size_t len, docq_cidr *out) {
    const char *slash = memchr(s, '/', len);
    if (parse_ip(s, slash ? (size_t)(slash - s) : len, out) != DOCQ_OK) return DOCQ_EINVAL;
    if (!slash) return DOCQ_OK;
    const char *p = slash + 1, *end = s + len;
    if (p == end || end - p > 3) return DOCQ_EINVAL;
    int bits = 0;
    for (; p < end; p++) {
        if (!isdigit((unsigned char)*p)) return DOCQ_EINVAL;
        bits = bits * 10 + (*p - '0');
    }
    if (bits > out->bits) return DOCQ_EINVAL;
    out->bits = bits;
    return DOCQ_OK;
}

int docq_proxies_parse(const char *list, docq_proxies *out, docq_error *err) {
    memset(out, 0, sizeof(*out));
    const char *p = list;
    for (;;) {
        p += strspn(p, ", \t");
        if (!*p) return DOCQ_OK;
        size_t len = strcspn(p, ", \t");
        if (out->count == DOCQ_MAX_PROXIES)
            return docq_error_set(err, DOCQ_EINVAL, "more than %d trusted proxies", DOCQ_MAX_PROXIES);
        if (parse_cidr(p, len, &out->nets[out->count]) != DOCQ_OK)
            return docq_error_set(err, DOCQ_EINVAL, "'%.*s' is not an IP address or CIDR range",
                                  (int)(len > 64 ? 64 : len), p);
        out->count++;
        p += len;
    }
}

/* 1 when a (a single address) lies in net. */
static int in_net(const docq_cidr *net, const docq_cidr *a) {
    if (net->family != a->family) return 0;
    int full = net->bits / 8, rest = net->bits % 8;
    if (memcmp(net->addr, a->addr, (size_t)full) != 0) return 0;
    if (!rest) return 1;
    unsigned char mask = (unsigned char)(0xff << (8 - rest));
    return (net->addr[full] & mask) == (a->addr[full] & mask);
}

static int trusts(const docq_proxies *p, const docq_cidr *a) {
    for (int i = 0; i < p->count; i++)
        if (in_net(&p->nets[i], a)) return 1;
    return 0;
}

int docq_proxies_trusts(const docq_proxies *p, const char *ip) {
    docq_cidr a;
    return parse_ip(ip, strlen(ip), &a) == DOCQ_OK && trusts(p, &a);
}

/* Write a's canonical text into buf. */
static void format_ip(const docq_cidr *a, char *buf, size_t cap) {
    char text[DOCQ_IP_MAX];
    if (!inet_ntop(a->family, a->addr, text, sizeof(text))) text[0] = '\0';
    snprintf(buf, cap, "%s", text);
}

/* Trim spaces and tabs around s[0..*len); returns the new start. */
static const char *trim(const char *s, size_t *len) {
    while (*len && (*s == ' ' || *s == '\t')) s++, (*len)--;
    while (*len && (s[*len - 1] == ' ' || s[*len - 1] == '\t')) (*len)--;
    return s;
}

void docq_proxies_client(const docq_proxies *p, const char *peer_ip, const char *xff, size_t xff_len,
                         char *buf, size_t cap) {
    docq_cidr hop;
    if (!xff || parse_ip(peer_ip, strlen(peer_ip), &hop) != DOCQ_OK || !trusts(p, &hop)) {
        snprintf(buf, cap, "%s", peer_ip);
        return;
    }
    size_t end = xff_len;
    for (;;) {
        size_t start = end;
        while (start > 0 && xff[start - 1] != ',') start--;
        size_t len = end - start;
        const char *entry = trim(xff + start, &len);
        docq_cidr a;
        if (parse_ip(entry, len, &a) != DOCQ_OK) break;
        hop = a;
        if (!trusts(p, &hop) || start == 0) break;   /* The client, or the leftmost entry. */
        end = start - 1;
    }
    format_ip(&hop, buf, cap);
}
