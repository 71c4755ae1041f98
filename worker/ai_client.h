/* ai_client.h -- concurrent HTTP POSTs to the AI service, driven by one thread.
 *
 * A wrapper around the libcurl multi interface that keeps curl out of the
 * worker's loop: the loop starts calls with a user pointer, waits in
 * ai_client_poll (which can also watch the loop's own file descriptors) and
 * collects finished calls with ai_client_next. All calls share the multi
 * handle's connection cache, so HTTP keep-alive connections to the AI service
 * are reused from one call to the next.
 *
 * An ai_client belongs to one thread. curl_global_init must have been called
 * (by main) before ai_client_create. */
#ifndef DOCQ_AI_CLIENT_H
#define DOCQ_AI_CLIENT_H

#include <stddef.h>

#include "error.h"

typedef struct ai_client ai_client;

typedef struct ai_client_options {
    const char *url;          /* Endpoint every call POSTs to (copied). */
    long connect_timeout_ms;  /* Limit on connecting, ms. */
    long timeout_ms;          /* Limit on one whole call, ms. */
    size_t max_body;          /* Longest answer body kept, bytes; longer ones fail. */
    long max_calls;           /* Calls expected in flight at once (sizes the connection cache). */
} ai_client_options;

/* How a call ended. */
typedef enum ai_call_status {
    AI_CALL_ANSWERED = 0,  /* An HTTP answer arrived: see http_status and body. */
    AI_CALL_TOO_LARGE,     /* The answer body exceeded max_body and was dropped. */
    AI_CALL_FAILED         /* No answer: connection, timeout or protocol error. */
} ai_call_status;

/* Why a call got no answer (AI_CALL_FAILED). */
typedef enum ai_failure {
    AI_FAILURE_NONE = 0,
    AI_FAILURE_CONNECT,  /* Could not connect: refused, unresolvable, unreachable. */
    AI_FAILURE_TIMEOUT,  /* The connect or whole-call timeout passed. */
    AI_FAILURE_OTHER     /* Anything else: reset, protocol error, out of memory... */
} ai_failure;

/* A finished call, as ai_client_next hands it over. */
typedef struct ai_result {
    void *user;            /* The pointer given to ai_client_start. */
    ai_call_status status;
    long http_status;      /* HTTP status code when ANSWERED, else 0. */
    char *body;            /* Answer body (owned, NUL-terminated, may hold NULs) or NULL. */
    size_t body_len;       /* Bytes in body. */
    long retry_after_s;    /* When ANSWERED: the Retry-After header in seconds (both forms), else 0. */
    char error[512];       /* When FAILED: "<curl's text> (<details>)"; else empty. */
    ai_failure failure;    /* When FAILED: its kind; else AI_FAILURE_NONE. */
} ai_result;

/* A file descriptor of the caller's to watch while waiting for calls. */
typedef struct ai_waitfd {
    int fd;     /* Watched for readability (and errors and hang-ups). */
    int ready;  /* Set by ai_client_poll: 1 when fd needs attention, else 0. */
} ai_waitfd;

/* Create a client for opts (the url is copied). Returns NULL with err set
 * when curl cannot be set up or memory runs out. */
ai_client *ai_client_create(const ai_client_options *opts, docq_error *err);

/* Abort every call still in flight (their results are never reported) and
 * free c. NULL is fine. */
void ai_client_free(ai_client *c);

/* Start POSTing body (len bytes, sent as application/json; copied) and
 * remember user for the result. Returns DOCQ_OK, or DOCQ_ERR with err set,
 * in which case no result will ever be reported for user. */
int ai_client_start(ai_client *c, const char *body, size_t len, void *user, docq_error *err);

/* Abort the call started with user, if one is in flight: curl drops the
 * transfer and closes its connection, so the AI service sees the client
 * gone at once (no keep-alive reuse of a half-done exchange). Its result is
 * never reported, even when it had finished and was not yet collected.
 * Returns 1 when a call was aborted, 0 when none had that user. */
int ai_client_abort(ai_client *c, void *user);

/* Calls started and not yet collected with ai_client_next. */
int ai_client_in_flight(const ai_client *c);

/* Move the calls in flight forward, waiting up to timeout_ms (less when a
 * call needs attention sooner) for network activity or for one of the nfds
 * descriptors in fds to become readable; ready is set on each of those.
 * Returns DOCQ_OK, or DOCQ_ERR with err set when curl's poll fails. */
int ai_client_poll(ai_client *c, ai_waitfd *fds, unsigned nfds, int timeout_ms, docq_error *err);

/* Take one finished call into out (overwritten). Returns 1 when one was
 * taken (the caller then owns out->body: release it with ai_result_clear),
 * 0 when no call has finished since the last collection. */
int ai_client_next(ai_client *c, ai_result *out);

/* Free what r owns and empty it. */
void ai_result_clear(ai_result *r);

#endif
