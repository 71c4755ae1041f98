/* http_endpoint.c -- a one-thread HTTP/1.1 endpoint. See http_endpoint.h. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <netinet/in.h>

#include "http_endpoint.h"

#define REQUEST_MAX 8192
#define IO_TIMEOUT_MS 2000

struct docq_http_endpoint {
    int listen_fd;
    int wake[2];         /* Writing to wake[1] stops the thread. */
    int port;
    pthread_t tid;
    docq_http_handler handler;
    void *ud;
};

/* Bind and listen on "host:port" (host may be [v6], empty or * for all). */
static int open_listener(const char *listen_addr, int *port, docq_error *err) {
    char host[256], portstr[16];
    const char *colon = strrchr(listen_addr, ':');
    if (!colon || (size_t)(colon - listen_addr) >= sizeof(host) || strlen(colon + 1) >= sizeof(portstr))
        return docq_error_set(err, DOCQ_EINVAL, "bad listen address '%s'", listen_addr);
    const char *h = listen_addr;
    size_t hl = (size_t)(colon - listen_addr);
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') h++, hl -= 2;
    memcpy(host, h, hl);
    host[hl] = '\0';
    snprintf(portstr, sizeof(portstr), "%s", colon + 1);
    struct addrinfo hints = {0}, *ai = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    int gai = getaddrinfo(hl && strcmp(host, "*") ? host : NULL, portstr, &hints, &ai);
    if (gai != 0) return docq_error_set(err, DOCQ_EINVAL, "cannot resolve '%s': %s", listen_addr, gai_strerror(gai));
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd >= 0) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (fd < 0 || bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 64) != 0) {
        int e = errno;
        if (fd >= 0) close(fd);
        freeaddrinfo(ai);
        return docq_error_set(err, DOCQ_ERR, "cannot listen on %s: %s", listen_addr, strerror(e));
    }
    freeaddrinfo(ai);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    *port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                           : ((struct sockaddr_in *)&ss)->sin_port);
    return fd;
}

/* Read until the end of the request head, within the I/O timeout. Returns
 * the bytes read, or -1. */
static ssize_t read_head(int fd, char *buf, size_t cap) {
    size_t len = 0;
    while (len + 1 < cap) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, IO_TIMEOUT_MS) <= 0) return -1;
        ssize_t n = recv(fd, buf + len, cap - 1 - len, 0);
        if (n <= 0) return -1;
        len += (size_t)n;
        buf[len] = '\0';
        if (strstr(buf, "\r\n\r\n") || strstr(buf, "\n\n")) return (ssize_t)len;
    }
    return -1;
}

static void send_all(int fd, const char *p, size_t n) {
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0) return;
        p += w;
        n -= (size_t)w;
    }
}

static const char *reason(int status) {
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 503: return "Service Unavailable";
    default: return "Error";
    }
}

/* Parse the request line, ask the handler, write the answer. */
static void serve(docq_http_endpoint *e, int fd) {
    char req[REQUEST_MAX], method[8], path[1024];
    docq_http_response out = {200, "text/plain; charset=utf-8", {0}};
    int head_only = 0;
    if (read_head(fd, req, sizeof(req)) < 0) return;
    if (sscanf(req, "%7s %1023s HTTP/1.%*d", method, path) != 2) {
        out.status = 400;
        docq_buf_printf(&out.body, "bad request\n");
    } else if (strcmp(method, "GET") && strcmp(method, "HEAD")) {
        out.status = 405;
        docq_buf_printf(&out.body, "only GET and HEAD\n");
    } else {
        head_only = !strcmp(method, "HEAD");
        path[strcspn(path, "?")] = '\0';
        e->handler(path, &out, e->ud);
    }
    if (out.body.oom) {
        out.status = 503;
        out.body.len = 0;
    }
    char head[256];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
                     out.status, reason(out.status), out.content_type, out.body.len);
    send_all(fd, head, (size_t)n);
    if (!head_only && out.body.len) send_all(fd, out.body.data, out.body.len);
    docq_buf_free(&out.body);
}

static void *endpoint_main(void *arg) {
    docq_http_endpoint *e = arg;
    for (;;) {
        struct pollfd p[2] = {{e->listen_fd, POLLIN, 0}, {e->wake[0], POLLIN, 0}};
        if (poll(p, 2, -1) < 0 && errno != EINTR) break;
        if (p[1].revents) break;
        if (!(p[0].revents & POLLIN)) continue;
        int fd = accept4(e->listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) continue;
        serve(e, fd);
        close(fd);
    }
    return NULL;
}

docq_http_endpoint *docq_http_start(const char *listen_addr, docq_http_handler handler, void *ud,
                                    docq_error *err) {
    docq_http_endpoint *e = calloc(1, sizeof(*e));
    if (!e) return docq_error_set(err, DOCQ_ERR, "out of memory"), NULL;
    e->handler = handler;
    e->ud = ud;
    e->wake[0] = e->wake[1] = -1;
    e->listen_fd = open_listener(listen_addr, &e->port, err);
    if (e->listen_fd < 0 || pipe2(e->wake, O_CLOEXEC) != 0 ||
        pthread_create(&e->tid, NULL, endpoint_main, e) != 0) {
        if (e->listen_fd >= 0 && err && err->code == DOCQ_OK)
            docq_error_set(err, DOCQ_ERR, "cannot start the HTTP endpoint: %s", strerror(errno));
        if (e->listen_fd >= 0) close(e->listen_fd);
        if (e->wake[0] >= 0) close(e->wake[0]), close(e->wake[1]);
        free(e);
        return NULL;
    }
    return e;
}

int docq_http_port(const docq_http_endpoint *e) { return e->port; }

void docq_http_stop(docq_http_endpoint *e) {
    if (!e) return;
    ssize_t ignored = write(e->wake[1], "x", 1);
    (void)ignored;
    pthread_join(e->tid, NULL);
    close(e->listen_fd);
    close(e->wake[0]);
    close(e->wake[1]);
    free(e);
}
