/* proxies.h -- trusted proxies and the client address behind them.
 *
 * A caller is the peer's IP address, unless the peer is one of the proxies
 * named in DOCQ_TRUSTED_PROXIES: then the client is read from the
 * x-forwarded-for metadata that proxy added. Pure functions over strings, so
 * that they can be tested (and fuzzed) without a network. */
#ifndef DOCQ_PROXIES_H
#define DOCQ_PROXIES_H

#include <stddef.h>

#include "error.h"

#define DOCQ_MAX_PROXIES 32
#define DOCQ_IP_MAX 46 /* Longest IP address text (INET6_ADDRSTRLEN), NUL included. */

/* An address range: family AF_INET or AF_INET6, the network's bytes and its
 * prefix length in bits. A single address has all its bits. */
typedef struct docq_cidr {
    int family;
    unsigned char addr[16];
    int bits;
} docq_cidr;

typedef struct docq_proxies {
    int count;                            /* Ranges in nets; 0: trust no one. */
    docq_cidr nets[DOCQ_MAX_PROXIES];
} docq_proxies;

/* Parse a list of IP addresses and CIDR ranges separated by commas or white
 * space ("10.0.0.0/8, ::1"); an empty list trusts no one. IPv4-mapped IPv6
 * addresses count as IPv4. Returns DOCQ_OK, or DOCQ_EINVAL naming the first
 * bad entry. */
int docq_proxies_parse(const char *list, docq_proxies *out, docq_error *err);

/* 1 when the IP address text ip lies in one of p's ranges, else 0 (also for
 * text that is not an IP address). */
int docq_proxies_trusts(const docq_proxies *p, const char *ip);

/* Decode a peer as grpc_call_get_peer writes it ("ipv4:192.0.2.1:5",
 * "ipv6:%5B::1%5D:5", or unencoded "ipv6:[::1]:5") into its IP address alone,
 * in canonical form (inet_ntop; an IPv4-mapped IPv6 address as IPv4; an
 * IPv6 zone dropped). Returns DOCQ_OK, or DOCQ_EINVAL when peer is not an IP
 * peer (a unix socket...): buf then holds peer unchanged. */
int docq_peer_address(const char *peer, char *buf, size_t cap);

/* The caller id of the client address ip: an IPv4 address (or any text that
 * is not an IP address) unchanged; an IPv6 address masked to its first
 * v6_prefix bits and written as "network/prefix" ("2001:db8:1:2::/64"), or
 * unchanged when v6_prefix is 128 (DOCQ_IPV6_PREFIX: a client usually holds
 * a whole /64, so the address alone would let it pick new identities). */
void docq_address_group(const char *ip, int v6_prefix, char *buf, size_t cap);

/* The client address of a request that came from peer_ip (the connection's
 * peer, an IP address) with the x-forwarded-for value xff (xff_len bytes, not
 * NUL-terminated; NULL when absent). When the peer is not trusted, or there
 * is no header, the client is the peer. Otherwise the header's addresses are
 * read right to left (each proxy appends the address it received from): the
 * client is the first one that is not itself a trusted proxy. An entry that
 * is not an IP address stops the walk, and the last trusted hop read is taken
 * (a proxy wrote garbage: blame it, not whoever it names). The result, in
 * canonical form (inet_ntop), is written into buf. */
void docq_proxies_client(const docq_proxies *p, const char *peer_ip, const char *xff, size_t xff_len,
                         char *buf, size_t cap);

#endif
