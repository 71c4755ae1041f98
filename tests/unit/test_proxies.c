/* test_proxies.c -- trusted proxy ranges and x-forwarded-for (common/proxies.c). */
#include <string.h>

#include "check.h"
#include "proxies.h"

static void parse_lists(void) {
    docq_proxies p;
    docq_error err = {0};
    CHECK_INT_EQ(docq_proxies_parse("", &p, &err), DOCQ_OK);
    CHECK_INT_EQ(p.count, 0);
    CHECK_INT_EQ(docq_proxies_parse("10.0.0.0/8, 192.168.1.7 ::1,fd00::/8", &p, &err), DOCQ_OK);
    CHECK_INT_EQ(p.count, 4);
    static const char *bad[] = {"10.0.0.0/33", "::1/129", "300.1.1.1", "10.0.0.1/", "10.0.0.1/x",
                                "localhost", "10.0.0.0/8/8"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CHECK_MSG(docq_proxies_parse(bad[i], &p, &err) == DOCQ_EINVAL, "%s", bad[i]);
        CHECK_STR_CONTAINS(err.msg, "not an IP address or CIDR range");
    }
}

static void ranges_match(void) {
    docq_proxies p;
    docq_error err = {0};
    CHECK_INT_EQ(docq_proxies_parse("10.1.0.0/16 127.0.0.1 2001:db8::/32 172.16.0.0/12", &p, &err), DOCQ_OK);
    CHECK(docq_proxies_trusts(&p, "10.1.255.3"));
    CHECK(!docq_proxies_trusts(&p, "10.2.0.1"));
    CHECK(docq_proxies_trusts(&p, "127.0.0.1"));
    CHECK(!docq_proxies_trusts(&p, "127.0.0.2"));
    CHECK(docq_proxies_trusts(&p, "2001:db8:1::5"));
    CHECK(!docq_proxies_trusts(&p, "2001:db9::5"));
    CHECK(docq_proxies_trusts(&p, "172.31.255.255"));
    CHECK(!docq_proxies_trusts(&p, "172.32.0.0"));
    CHECK(docq_proxies_trusts(&p, "::ffff:127.0.0.1")); /* IPv4-mapped counts as IPv4. */
    CHECK(!docq_proxies_trusts(&p, "not-an-ip"));
}

/* The client of peer with header xff under trusted list. */
static const char *client(const char *list, const char *peer, const char *xff) {
    static char buf[DOCQ_IP_MAX];
    docq_proxies p;
    docq_error err = {0};
    docq_proxies_parse(list, &p, &err);
    docq_proxies_client(&p, peer, xff, xff ? strlen(xff) : 0, buf, sizeof(buf));
    return buf;
}

static void forwarded_for_only_from_trusted_peers(void) {
    CHECK_STR_EQ(client("", "127.0.0.1", "203.0.113.7"), "127.0.0.1");
    CHECK_STR_EQ(client("10.0.0.1", "127.0.0.1", "203.0.113.7"), "127.0.0.1");
    CHECK_STR_EQ(client("127.0.0.1", "127.0.0.1", "203.0.113.7"), "203.0.113.7");
    CHECK_STR_EQ(client("127.0.0.1", "127.0.0.1", NULL), "127.0.0.1");
}

static void forwarded_for_walks_trusted_hops(void) {
    /* The client forged the first entry; the trusted proxies 10.0.0.2 and
     * the peer appended what they saw: 198.51.100.4 is the client. */
    CHECK_STR_EQ(client("10.0.0.0/8", "10.0.0.1", "6.6.6.6, 198.51.100.4, 10.0.0.2"), "198.51.100.4");
    /* Every hop trusted: the leftmost address. */
    CHECK_STR_EQ(client("10.0.0.0/8", "10.0.0.1", "10.0.0.9,10.0.0.2"), "10.0.0.9");
    /* Canonical forms, spaces and IPv6. */
    CHECK_STR_EQ(client("::1", "::1", " 2001:DB8:0:0::1 "), "2001:db8::1");
    CHECK_STR_EQ(client("127.0.0.1", "127.0.0.1", "::ffff:192.0.2.1"), "192.0.2.1");
}

static void forwarded_for_garbage_blames_the_last_trusted_hop(void) {
    CHECK_STR_EQ(client("127.0.0.1", "127.0.0.1", "garbage"), "127.0.0.1");
    CHECK_STR_EQ(client("127.0.0.1", "127.0.0.1", ""), "127.0.0.1");
    CHECK_STR_EQ(client("10.0.0.0/8", "10.0.0.1", "198.51.100.4, junk, 10.0.0.2"), "10.0.0.2");
    CHECK_STR_EQ(client("127.0.0.1", "127.0.0.1", "1.2.3.4,"), "127.0.0.1");
    CHECK_STR_EQ(client("127.0.0.1", "127.0.0.1", "{s1}:x"), "127.0.0.1");
}

static void non_ip_peers_are_kept(void) {
    CHECK_STR_EQ(client("127.0.0.1", "unix:/tmp/sock", "203.0.113.7"), "unix:/tmp/sock");
}

/* The address docq_peer_address decodes from peer. */
static const char *peer_address(const char *peer, int *rc) {
    static char buf[DOCQ_IP_MAX + 64];
    *rc = docq_peer_address(peer, buf, sizeof(buf));
    return buf;
}

static void grpc_peers_decode_to_the_address_alone(void) {
    int rc;
    CHECK_STR_EQ(peer_address("ipv4:127.0.0.1:50051", &rc), "127.0.0.1");
    CHECK_INT_EQ(rc, DOCQ_OK);
    /* gRPC 1.51 percent-encodes the brackets: the port must not stay. */
    CHECK_STR_EQ(peer_address("ipv6:%5B::1%5D:60926", &rc), "::1");
    CHECK_INT_EQ(rc, DOCQ_OK);
    CHECK_STR_EQ(peer_address("ipv6:%5b::1%5d:1", &rc), "::1");
    CHECK_STR_EQ(peer_address("ipv6:[::1]:60926", &rc), "::1");
    CHECK_STR_EQ(peer_address("ipv6:%5B2001:DB8:0:0:0:0:0:7%5D:443", &rc), "2001:db8::7");
    CHECK_STR_EQ(peer_address("ipv6:%5B::ffff:192.0.2.9%5D:80", &rc), "192.0.2.9");
    CHECK_STR_EQ(peer_address("ipv6:%5Bfe80::1%25eth0%5D:80", &rc), "fe80::1");
    CHECK_STR_EQ(peer_address("ipv6:[fe80::1%eth0]:80", &rc), "fe80::1");
    CHECK_INT_EQ(rc, DOCQ_OK);
    CHECK_STR_EQ(peer_address("ipv6:::1", &rc), "::1");   /* No port at all. */
    CHECK_STR_EQ(peer_address("ipv4:10.0.0.1", &rc), "10.0.0.1");
}

static void non_ip_peers_decode_to_themselves(void) {
    int rc;
    CHECK_STR_EQ(peer_address("unix:/tmp/sock", &rc), "unix:/tmp/sock");
    CHECK_INT_EQ(rc, DOCQ_EINVAL);
    CHECK_STR_EQ(peer_address("ipv6:%5Bnot-an-ip%5D:1", &rc), "ipv6:%5Bnot-an-ip%5D:1");
    CHECK_INT_EQ(rc, DOCQ_EINVAL);
    CHECK_STR_EQ(peer_address("ipv6:%00", &rc), "ipv6:%00");
    CHECK_INT_EQ(rc, DOCQ_EINVAL);
    CHECK_STR_EQ(peer_address("ipv4:", &rc), "ipv4:");
    CHECK_INT_EQ(rc, DOCQ_EINVAL);
}

/* The caller id docq_address_group makes of ip. */
static const char *group(const char *ip, int prefix) {
    static char buf[DOCQ_IP_MAX + 8];
    docq_address_group(ip, prefix, buf, sizeof(buf));
    return buf;
}

static void ipv6_callers_are_grouped_by_prefix(void) {
    CHECK_STR_EQ(group("2001:db8:1:2:aaaa:bbbb:cccc:dddd", 64), "2001:db8:1:2::/64");
    CHECK_STR_EQ(group("2001:db8:1:2::9", 64), "2001:db8:1:2::/64");
    CHECK_STR_EQ(group("2001:db8:1:2::9", 128), "2001:db8:1:2::9");
    CHECK_STR_EQ(group("2001:db8:1:ffff::9", 56), "2001:db8:1:ff00::/56");
    CHECK_STR_EQ(group("2001:db8:1:ffff::9", 49), "2001:db8:1:8000::/49");
    CHECK_STR_EQ(group("::1", 64), "::/64");
    CHECK_STR_EQ(group("192.0.2.1", 64), "192.0.2.1");
    CHECK_STR_EQ(group("unix:/tmp/sock", 64), "unix:/tmp/sock");
}

static void an_ipv6_proxy_is_trusted_by_its_decoded_peer(void) {
    docq_proxies p;
    docq_error err = {0};
    char peer[DOCQ_IP_MAX], buf[DOCQ_IP_MAX];
    CHECK_INT_EQ(docq_proxies_parse("::1", &p, &err), DOCQ_OK);
    CHECK_INT_EQ(docq_peer_address("ipv6:%5B::1%5D:60926", peer, sizeof(peer)), DOCQ_OK);
    CHECK(docq_proxies_trusts(&p, peer));
    docq_proxies_client(&p, peer, "2001:db8::5", 11, buf, sizeof(buf));
    CHECK_STR_EQ(buf, "2001:db8::5");
}

CHECK_MAIN(
    CHECK_CASE(grpc_peers_decode_to_the_address_alone,
               "a gRPC peer decodes to its address alone, percent-encoded or not, IPv4-mapped "
               "IPv6 as IPv4"),
    CHECK_CASE(non_ip_peers_decode_to_themselves,
               "a peer that is not an IP peer decodes to itself"),
    CHECK_CASE(ipv6_callers_are_grouped_by_prefix,
               "an IPv6 caller is its network masked to DOCQ_IPV6_PREFIX, an IPv4 caller its "
               "address"),
    CHECK_CASE(an_ipv6_proxy_is_trusted_by_its_decoded_peer,
               "an IPv6 proxy is trusted by its decoded peer and its x-forwarded-for is read"),
    CHECK_CASE(parse_lists,
               "trusted proxies parse as IPs and CIDR ranges, and bad entries are named"),
    CHECK_CASE(ranges_match,
               "an address is trusted only inside a listed range, IPv4-mapped IPv6 as IPv4"),
    CHECK_CASE(forwarded_for_only_from_trusted_peers,
               "x-forwarded-for names the caller only when the peer is a trusted proxy"),
    CHECK_CASE(forwarded_for_walks_trusted_hops,
               "x-forwarded-for is read right to left past trusted hops, so a forged first entry "
               "is ignored"),
    CHECK_CASE(forwarded_for_garbage_blames_the_last_trusted_hop,
               "a malformed x-forwarded-for entry makes the last trusted hop the caller"),
    CHECK_CASE(non_ip_peers_are_kept, "a peer that is not an IP address stays the caller"))
