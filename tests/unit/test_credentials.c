/* test_credentials.c -- client/credentials.c: which targets stay on this
 * machine, for the CLI's warning about an API key sent without TLS. */
#include "check.h"
#include "credentials.h"

static void loopback_targets(void) {
    static const char *loopback[] = {
        "127.0.0.1:50051", "127.8.9.10:1",      "localhost:50051", "LocalHost:1",
        "[::1]:50051",     "::1",               "localhost",       "dns:///localhost:50051",
        "dns:127.0.0.1:5", "ipv4:127.0.0.1:50051", "ipv6:[::1]:50051", "[::ffff:127.0.0.1]:50051",
        "unix:/run/docq.sock", "unix-abstract:docq"};
    for (size_t i = 0; i < sizeof(loopback) / sizeof(loopback[0]); i++)
        CHECK_MSG(docq_client_target_is_loopback(loopback[i]), "%s not taken as loopback", loopback[i]);
}

static void network_targets(void) {
    static const char *network[] = {
        "10.0.0.5:50051",   "128.0.0.1:50051",    "docq.example.com:443", "localhost.example.com:1",
        "[::2]:50051",      "[2001:db8::1]:50051", "2001:db8::1",          "dns:///docq:50051",
        "ipv4:10.0.0.5:1",  "ipv6:[fe80::1]:1",    "[::ffff:10.0.0.1]:1",  "ipv4:127.0.0.1:1,10.0.0.5:1",
        "",                 "[::1",                "0.0.0.0:50051",        "127.0.0.1.nip.io:50051"};
    for (size_t i = 0; i < sizeof(network) / sizeof(network[0]); i++)
        CHECK_MSG(!docq_client_target_is_loopback(network[i]), "%s taken as loopback", network[i]);
}

CHECK_MAIN(
    CHECK_CASE(loopback_targets,
               "localhost, 127.0.0.0/8, ::1 and Unix sockets are loopback targets, with or "
               "without a scheme or port"),
    CHECK_CASE(network_targets,
               "other addresses, names and address lists are not loopback targets, so a key sent "
               "there in plaintext is warned about"))
