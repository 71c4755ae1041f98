/* test_metrics.c -- the Prometheus writers (common/metrics.c) and the HTTP
 * endpoint that serves them (common/http_endpoint.c), over a real socket. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check.h"
#include "http_endpoint.h"
#include "metrics.h"

static const double bounds[] = {0.001, 0.01, 0.1};

static void histogram_cumulative(void) {
    docq_histogram h;
    docq_buf b = {0};
    docq_histogram_init(&h, bounds, 3);
    docq_histogram_observe_ns(&h, 500000);     /* 0.5 ms: first bucket. */
    docq_histogram_observe_ns(&h, 1000000);    /* Exactly 1 ms: le="0.001" holds it. */
    docq_histogram_observe_ns(&h, 50000000);   /* 50 ms. */
    docq_histogram_observe_ns(&h, 2000000000); /* 2 s: only +Inf. */
    docq_metrics_histogram(&b, "docq_t_seconds", "method=\"m\"", &h);
    CHECK_STR_EQ(b.data, "docq_t_seconds_bucket{method=\"m\",le=\"0.001\"} 2\n"
                         "docq_t_seconds_bucket{method=\"m\",le=\"0.01\"} 2\n"
                         "docq_t_seconds_bucket{method=\"m\",le=\"0.1\"} 3\n"
                         "docq_t_seconds_bucket{method=\"m\",le=\"+Inf\"} 4\n"
                         "docq_t_seconds_sum{method=\"m\"} 2.0515\n"
                         "docq_t_seconds_count{method=\"m\"} 4\n");
    docq_buf_free(&b);
    docq_metrics_histogram(&b, "docq_u_seconds", NULL, &h);
    CHECK_STR_CONTAINS(b.data, "docq_u_seconds_bucket{le=\"+Inf\"} 4\ndocq_u_seconds_sum 2.0515\n");
    docq_buf_free(&b);
}

static void family_and_samples(void) {
    docq_buf b = {0};
    docq_counter c = {0};
    docq_counter_add(&c, 3);
    docq_metrics_family(&b, "docq_x_total", "counter", "Things done.");
    docq_metrics_sample(&b, "docq_x_total", "kind=\"a\"", (double)docq_counter_get(&c));
    docq_metrics_sample(&b, "docq_x_total", NULL, 0.25);
    CHECK_STR_EQ(b.data, "# HELP docq_x_total Things done.\n# TYPE docq_x_total counter\n"
                         "docq_x_total{kind=\"a\"} 3\ndocq_x_total 0.25\n");
    docq_buf_free(&b);
}

static void buf_grows(void) {
    docq_buf b = {0};
    for (int i = 0; i < 10000; i++) docq_buf_printf(&b, "line %d\n", i);
    CHECK(!b.oom);
    CHECK_INT_EQ(strlen(b.data), b.len);
    CHECK_STR_CONTAINS(b.data, "line 9999\n");
    docq_buf_free(&b);
    CHECK(b.data == NULL && b.len == 0);
}

static void process_families(void) {
    docq_buf b = {0};
    docq_metrics_process(&b);
    const char *names[] = {"process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds",
                           "process_max_fds", "process_start_time_seconds"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char line[128];
        snprintf(line, sizeof(line), "# TYPE %s ", names[i]);
        CHECK_STR_CONTAINS(b.data, line);
    }
    docq_buf_free(&b);
}

/* The endpoint's handler for these tests: /ok answers, /down is 503. */
static void handler(const char *path, docq_http_response *out, void *ud) {
    (*(int *)ud)++;
    if (strcmp(path, "/ok") == 0) docq_buf_printf(&out->body, "fine\n");
    else if (strcmp(path, "/down") == 0) out->status = 503;
    else out->status = 404;
}

/* Send request to 127.0.0.1:port and read the whole answer into buf. */
static void exchange(int port, const char *request, char *buf, size_t cap) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    size_t len = 0;
    buf[0] = '\0';
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0) {
        if (write(fd, request, strlen(request)) == (ssize_t)strlen(request)) {
            ssize_t n;
            while (len + 1 < cap && (n = read(fd, buf + len, cap - 1 - len)) > 0) len += (size_t)n;
        }
    }
    buf[len] = '\0';
    close(fd);
}

static void endpoint_serves(void) {
    docq_error err = {0};
    int calls = 0;
    char answer[4096];
    docq_http_endpoint *e = docq_http_start("127.0.0.1:0", handler, &calls, &err);
    CHECK_MSG(e != NULL, "%s", err.msg);
    if (!e) return;
    int port = docq_http_port(e);
    CHECK(port > 0);
    exchange(port, "GET /ok?x=1 HTTP/1.1\r\nHost: x\r\n\r\n", answer, sizeof(answer));
    CHECK_STR_CONTAINS(answer, "HTTP/1.1 200 OK\r\n");
    CHECK_STR_CONTAINS(answer, "Content-Length: 5\r\n");
    CHECK_STR_CONTAINS(answer, "\r\n\r\nfine\n");
    exchange(port, "HEAD /ok HTTP/1.0\r\n\r\n", answer, sizeof(answer));
    CHECK_STR_CONTAINS(answer, "Content-Length: 5\r\n");
    CHECK_STR_NOT_CONTAINS(answer, "fine");
    exchange(port, "GET /down HTTP/1.1\r\n\r\n", answer, sizeof(answer));
    CHECK_STR_CONTAINS(answer, "HTTP/1.1 503 Service Unavailable\r\n");
    exchange(port, "POST /ok HTTP/1.1\r\n\r\n", answer, sizeof(answer));
    CHECK_STR_CONTAINS(answer, "HTTP/1.1 405");
    exchange(port, "garbage\r\n\r\n", answer, sizeof(answer));
    CHECK_STR_CONTAINS(answer, "HTTP/1.1 400");
    CHECK_INT_EQ(calls, 3);
    docq_http_stop(e);
}

static void endpoint_bad_address(void) {
    docq_error err = {0};
    int calls = 0;
    CHECK(docq_http_start("no-port", handler, &calls, &err) == NULL);
    CHECK_STR_CONTAINS(err.msg, "no-port");
    docq_http_endpoint *e = docq_http_start("127.0.0.1:0", handler, &calls, &err);
    CHECK(e != NULL);
    if (!e) return;
    char busy[64];
    snprintf(busy, sizeof(busy), "127.0.0.1:%d", docq_http_port(e));
    memset(&err, 0, sizeof(err));
    CHECK(docq_http_start(busy, handler, &calls, &err) == NULL);
    CHECK_STR_CONTAINS(err.msg, "cannot listen");
    docq_http_stop(e);
}

CHECK_MAIN(
    CHECK_CASE(histogram_cumulative,
               "a histogram is written with cumulative buckets up to +Inf, a bound holding its "
               "own value, then _sum and _count"),
    CHECK_CASE(family_and_samples, "a family is written with HELP and TYPE, then its samples"),
    CHECK_CASE(buf_grows, "the text buffer grows to any size and stays NUL-terminated"),
    CHECK_CASE(process_families, "the process families are written for this process"),
    CHECK_CASE(endpoint_serves,
               "the HTTP endpoint answers GET and HEAD through the handler, 400 for garbage and "
               "405 for POST"),
    CHECK_CASE(endpoint_bad_address,
               "the HTTP endpoint refuses a bad address and a busy port, naming them"))
