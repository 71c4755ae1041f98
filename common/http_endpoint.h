/* http_endpoint.h -- a tiny HTTP/1.1 endpoint for /metrics and health probes.
 *
 * One thread serves every connection from a poll loop (non-blocking
 * sockets) and answers one GET (or HEAD) per connection, then closes it:
 * enough for Prometheus scrapes and kubelet probes. A slow client cannot hold
 * the others up: each connection has 2 s from accept to its last byte sent,
 * at most 64 are open (a new one closes the oldest), and docq_http_stop
 * never waits for a client. The answer comes from a handler the
 * owner passes in; it runs on the endpoint's thread, so whatever it reads
 * must be safe to read from another thread (metrics are atomics). */
#ifndef DOCQ_HTTP_ENDPOINT_H
#define DOCQ_HTTP_ENDPOINT_H

#include "error.h"
#include "metrics.h"

typedef struct docq_http_response {
    int status;               /* HTTP status; 200 unless the handler changes it. */
    const char *content_type; /* Static string; "text/plain; charset=utf-8" by default. */
    docq_buf body;            /* Filled by the handler; freed by the endpoint. */
} docq_http_response;

/* Answer a GET of path (without the query string) into out. */
typedef void (*docq_http_handler)(const char *path, docq_http_response *out, void *ud);

typedef struct docq_http_endpoint docq_http_endpoint;

/* Listen on listen ("host:port"; port 0 picks one) and serve requests with
 * handler(ud) on a new thread. Returns the endpoint (stop it with
 * docq_http_stop) or NULL with err set when the address cannot be bound or
 * the thread cannot start. */
docq_http_endpoint *docq_http_start(const char *listen, docq_http_handler handler, void *ud, docq_error *err);

/* The port actually bound. */
int docq_http_port(const docq_http_endpoint *e);

/* Stop serving, close every connection at once, join the thread and free
 * e. NULL is fine. */
void docq_http_stop(docq_http_endpoint *e);

#endif
