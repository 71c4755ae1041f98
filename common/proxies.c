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

/* Percent-decode s[0..len) into out (cap bytes, NUL-terminated): gRPC
 * writes peers as URIs ("ipv6:%5B::1%5D:5"). A '%' without two hex digits
 * stays as it is (an unencoded zone: "[fe80::1%eth0]"). Returns DOCQ_OK, or
 * DOCQ_EINVAL when it does not fit or decodes to a NUL. */
static int percent_decode(const char *s, size_t len, char *out, size_t cap) {
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned int c = (unsigned char)s[i];
        if (c == '%' && i + 2 < len && isxdigit((unsigned char)s[i + 1]) &&
            isxdigit((unsigned char)s[i + 2])) {
            char hex[3] = {s[i + 1], s[i + 2], '\0'};
            c = (unsigned int)strtoul(hex, NULL, 16);
            i += 2;
        }
        if (c == 0 || n + 1 >= cap) return DOCQ_EINVAL;
        out[n++] = (char)c;
    }
    out[n] = '\0';
    return DOCQ_OK;
}

/* The address part of a decoded peer without its port: "[addr]:port" or
 * "addr:port" (the last colon; an address that parses whole has no port).
 * Sets *start and *len within text. */
static void split_port(const char *text, const char **start, size_t *len) {
    docq_cidr a;
    const char *close;
    if (text[0] == '[' && (close = strchr(text, ']')) != NULL) {
        *start = text + 1;
        *len = (size_t)(close - text - 1);
        return;
    }
    *start = text;
    *len = strlen(text);
    const char *colon = strrchr(text, ':');
    if (colon && parse_ip(text, *len, &a) != DOCQ_OK) *len = (size_t)(colon - text);
}

int docq_peer_address(const char *peer, char *buf, size_t cap) {
    char text[256];
    const char *rest = NULL, *start;
    size_t len;
    docq_cidr a;
    if (strncmp(peer, "ipv4:", 5) == 0 || strncmp(peer, "ipv6:", 5) == 0) rest = peer + 5;
    if (!rest || percent_decode(rest, strlen(rest), text, sizeof(text)) != DOCQ_OK) goto not_ip;
    split_port(text, &start, &len);
    const char *zone = memchr(start, '%', len);   /* fe80::1%eth0: the interface is not the caller. */
    if (zone) len = (size_t)(zone - start);
    if (parse_ip(start, len, &a) != DOCQ_OK) goto not_ip;
    format_ip(&a, buf, cap);
    return DOCQ_OK;
not_ip:
    snprintf(buf, cap, "%s", peer);
    return DOCQ_EINVAL;
}

void docq_address_group(const char *ip, int v6_prefix, char *buf, size_t cap) {
    docq_cidr a;
    if (v6_prefix >= 128 || parse_ip(ip, strlen(ip), &a) != DOCQ_OK || a.family != AF_INET6) {
        snprintf(buf, cap, "%s", ip);
        return;
    }
    if (v6_prefix < 0) v6_prefix = 0;
    int full = v6_prefix / 8, rest = v6_prefix % 8;
    if (rest) a.addr[full] &= (unsigned char)(0xff << (8 - rest));
    memset(a.addr + full + (rest ? 1 : 0), 0, (size_t)(16 - full - (rest ? 1 : 0)));
    char net[DOCQ_IP_MAX];
    format_ip(&a, net, sizeof(net));
    snprintf(buf, cap, "%s/%d", net, v6_prefix);
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
