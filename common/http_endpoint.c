/* http_endpoint.c -- a one-thread HTTP/1.1 endpoint. See http_endpoint.h. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <unistd.h>

#include <netinet/in.h>

#include "clock.h"
#include "http_endpoint.h"

#define REQUEST_MAX 8192
#define REQUEST_DEADLINE_MS 2000 /* From accept to the last byte sent. */
#define MAX_CONNS 64             /* Open connections; the oldest makes room. */

/* One client connection: it reads the request head, then sends the answer,
 * then is closed; whatever is not done by its deadline is closed too. */
typedef struct http_conn {
    int fd;              /* -1 when the slot is free. */
    int writing;         /* The head is in and the answer is being sent. */
    int64_t deadline;    /* Monotonic ms: accept time + REQUEST_DEADLINE_MS. */
    char *req;           /* REQUEST_MAX bytes, NUL-terminated. Owned. */
    size_t req_len;
    char head[256];      /* The answer's status line and headers. */
    size_t head_len;
    docq_buf body;       /* The answer's body (empty for HEAD). Owned. */
    size_t sent;         /* Bytes of head, then body, sent so far. */
} http_conn;

struct docq_http_endpoint {
    int listen_fd;
    int wake[2];         /* Writing to wake[1] stops the thread. */
    int port;
    pthread_t tid;
    docq_http_handler handler;
    void *ud;
    http_conn conns[MAX_CONNS]; /* Touched by the endpoint's thread only. */
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
    if (fd >= 0) fcntl(fd, F_SETFL, O_NONBLOCK);
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

/* Parse the request line of the complete head in c->req, ask the handler
 * and lay out the answer in c->head and c->body, ready to send. */
static void answer(docq_http_endpoint *e, http_conn *c) {
    char method[8], path[1024];
    docq_http_response out = {200, "text/plain; charset=utf-8", {0}};
    int head_only = 0;
    if (sscanf(c->req, "%7s %1023s HTTP/1.%*d", method, path) != 2) {
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
    int n = snprintf(c->head, sizeof(c->head),
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
                     out.status, reason(out.status), out.content_type, out.body.len);
    c->head_len = n > 0 && (size_t)n < sizeof(c->head) ? (size_t)n : 0;
    if (head_only) out.body.len = 0;
    c->body = out.body;
    c->writing = 1;
}

/* Close c's socket and free what it holds; the slot becomes free. */
static void conn_close(http_conn *c) {
    if (c->fd < 0) return;
    close(c->fd);
    docq_buf_free(&c->body);
    free(c->req);
    memset(c, 0, sizeof(*c));
    c->fd = -1;
}

/* Read what c's socket holds without blocking. Returns 1 to keep c open,
 * 0 to close it (peer gone, head too large). Answers once the head is in. */
static int conn_read(docq_http_endpoint *e, http_conn *c) {
    for (;;) {
        if (c->req_len + 1 >= REQUEST_MAX) return 0;
        ssize_t n = recv(c->fd, c->req + c->req_len, REQUEST_MAX - 1 - c->req_len, 0);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return 1;
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return 0;
        c->req_len += (size_t)n;
        c->req[c->req_len] = '\0';
        if (strstr(c->req, "\r\n\r\n") || strstr(c->req, "\n\n")) {
            answer(e, c);
            return 1;
        }
    }
}

/* Send what the socket takes of c's answer without blocking. Returns 1 while
 * some is left, 0 when all is sent or the peer is gone. */
static int conn_write(http_conn *c) {
    for (;;) {
        size_t total = c->head_len + c->body.len;
        if (c->sent >= total) return 0;
        const char *p = c->sent < c->head_len ? c->head + c->sent : c->body.data + (c->sent - c->head_len);
        size_t left = c->sent < c->head_len ? c->head_len - c->sent : total - c->sent;
        ssize_t w = send(c->fd, p, left, MSG_NOSIGNAL);
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return 1;
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return 0;
        c->sent += (size_t)w;
    }
}

/* The open connection accepted first, to make room for a new one; NULL
 * when a slot is free (then *free_slot points at it). */
static http_conn *oldest_or_free(docq_http_endpoint *e, http_conn **free_slot) {
    http_conn *oldest = NULL;
    for (int i = 0; i < MAX_CONNS; i++) {
        http_conn *c = &e->conns[i];
        if (c->fd < 0) {
            *free_slot = c;
            return NULL;
        }
        if (!oldest || c->deadline < oldest->deadline) oldest = c;
    }
    return oldest;
}

/* Accept every pending connection. When all slots are taken the oldest
 * connection is closed for the new one: a flood of idle connections then
 * cannot lock a probe out, since each new probe evicts the stalest. */
static void accept_all(docq_http_endpoint *e) {
    for (;;) {
        int fd = accept4(e->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0) return;
        char *req = malloc(REQUEST_MAX);
        if (!req) {
            close(fd);
            continue;
        }
        http_conn *slot = NULL, *oldest = oldest_or_free(e, &slot);
        if (oldest) {
            conn_close(oldest);
            slot = oldest;
        }
        slot->fd = fd;
        slot->req = req;
        slot->deadline = docq_now_ms() + REQUEST_DEADLINE_MS;
    }
}

/* Fill p with the listener, the wake pipe and every open connection; set
 * *timeout to the time left until the nearest deadline. Returns the count. */
static int fill_pollfds(docq_http_endpoint *e, struct pollfd *p, http_conn **who, int *timeout) {
    int n = 2;
    int64_t now = docq_now_ms(), next = -1;
    p[0] = (struct pollfd){e->listen_fd, POLLIN, 0};
    p[1] = (struct pollfd){e->wake[0], POLLIN, 0};
    for (int i = 0; i < MAX_CONNS; i++) {
        http_conn *c = &e->conns[i];
        if (c->fd < 0) continue;
        if (c->deadline <= now) {
            conn_close(c);
            continue;
        }
        if (next < 0 || c->deadline < next) next = c->deadline;
        who[n] = c;
        p[n++] = (struct pollfd){c->fd, c->writing ? POLLOUT : POLLIN, 0};
    }
    *timeout = next < 0 ? -1 : (int)(next - now);
    return n;
}

/* The endpoint's thread: one poll over the listener, the wake pipe and up
 * to MAX_CONNS connections, none of which can hold the others up. */
static void *endpoint_main(void *arg) {
    docq_http_endpoint *e = arg;
    struct pollfd p[MAX_CONNS + 2];
    http_conn *who[MAX_CONNS + 2];
    for (;;) {
        int timeout, n = fill_pollfds(e, p, who, &timeout);
        if (poll(p, (nfds_t)n, timeout) < 0 && errno != EINTR) break;
        if (p[1].revents) break;
        for (int i = 2; i < n; i++) {
            http_conn *c = who[i];
            if (!p[i].revents) continue;
            int keep = c->writing ? conn_write(c) : conn_read(e, c);
            if (keep && c->writing && !(p[i].events & POLLOUT)) keep = conn_write(c);
            if (!keep) conn_close(c);
        }
        if (p[0].revents & POLLIN) accept_all(e);
    }
    for (int i = 0; i < MAX_CONNS; i++) conn_close(&e->conns[i]);
    return NULL;
}

docq_http_endpoint *docq_http_start(const char *listen_addr, docq_http_handler handler, void *ud,
                                    docq_error *err) {
    docq_http_endpoint *e = calloc(1, sizeof(*e));
    if (!e) return docq_error_set(err, DOCQ_ERR, "out of memory"), NULL;
    e->handler = handler;
    e->ud = ud;
    e->wake[0] = e->wake[1] = -1;
    for (int i = 0; i < MAX_CONNS; i++) e->conns[i].fd = -1;
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
