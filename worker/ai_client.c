/* ai_client.c -- the libcurl multi wrapper behind the worker's AI calls. See
 * ai_client.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "ai_client.h"

#define MAX_WAITFDS 8
#define FIRST_BODY_CAP 4096

/* One call in flight. */
typedef struct ai_call {
    CURL *easy;
    void *user;                    /* Handed back in the result. */
    size_t max_body;               /* Copy of the client's limit, for the write callback. */
    char *buf;                     /* Answer body so far (owned), or NULL. */
    size_t len, cap;               /* Bytes in buf; its size. */
    int too_large;                 /* The body passed max_body; the transfer was stopped. */
    int out_of_memory;             /* buf could not grow; the transfer was stopped. */
    char errbuf[CURL_ERROR_SIZE];  /* curl's details on a failure. */
    struct ai_call *prev, *next;   /* The client's list of calls in flight. */
} ai_call;

struct ai_client {
    CURLM *multi;
    struct curl_slist *headers;  /* Shared by every call; freed after them. */
    char *url;
    long connect_timeout_ms, timeout_ms;
    size_t max_body;
    ai_call *calls;              /* Calls in flight, newest first. */
    int in_flight;
};

ai_client *ai_client_create(const ai_client_options *opts, docq_error *err) {
    ai_client *c = calloc(1, sizeof(*c));
    if (!c) goto oom;
    c->url = strdup(opts->url);
    c->multi = curl_multi_init();
    if (!c->url || !c->multi) goto oom;
    /* "Expect:" drops the 100-continue round trip curl makes before a large
     * body. Appending to a non-empty list returns its unchanged head. */
    c->headers = curl_slist_append(NULL, "Content-Type: application/json");
    if (!c->headers || !curl_slist_append(c->headers, "Expect:")) goto oom;
    c->connect_timeout_ms = opts->connect_timeout_ms;
    c->timeout_ms = opts->timeout_ms;
    c->max_body = opts->max_body;
    /* The cache otherwise shrinks with the number of handles attached, which
     * would close idle keep-alive connections between bursts of calls. */
    curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS, opts->max_calls);
    return c;
oom:
    ai_client_free(c);
    docq_error_set(err, DOCQ_ERR, "cannot set up the HTTP client: out of memory");
    return NULL;
}

/* Detach call from the client and free it (and its easy handle). */
static void call_free(ai_client *c, ai_call *call) {
    if (call->prev) call->prev->next = call->next;
    else c->calls = call->next;
    if (call->next) call->next->prev = call->prev;
    c->in_flight--;
    curl_multi_remove_handle(c->multi, call->easy);
    curl_easy_cleanup(call->easy);
    free(call->buf);
    free(call);
}

void ai_client_free(ai_client *c) {
    if (!c) return;
    while (c->calls) call_free(c, c->calls);
    if (c->multi) curl_multi_cleanup(c->multi);
    curl_slist_free_all(c->headers);
    free(c->url);
    free(c);
}

/* Make room in call->buf for need bytes. Returns DOCQ_OK or DOCQ_ERR. */
static int body_reserve(ai_call *call, size_t need) {
    if (need <= call->cap) return DOCQ_OK;
    size_t cap = call->cap ? call->cap : FIRST_BODY_CAP;
    while (cap < need) cap *= 2;
    if (cap > call->max_body + 1) cap = call->max_body + 1;
    char *grown = realloc(call->buf, cap);
    if (!grown) return DOCQ_ERR;
    call->buf = grown;
    call->cap = cap;
    return DOCQ_OK;
}

/* CURLOPT_WRITEFUNCTION: append a piece of the answer body, keeping it
 * NUL-terminated. Returning less than n makes curl stop the transfer. */
static size_t on_body(char *data, size_t size, size_t nmemb, void *userdata) {
    ai_call *call = userdata;
    size_t n = size * nmemb;
    if (n > call->max_body - call->len) {
        call->too_large = 1;
        return 0;
    }
    if (body_reserve(call, call->len + n + 1) != DOCQ_OK) {
        call->out_of_memory = 1;
        return 0;
    }
    memcpy(call->buf + call->len, data, n);
    call->len += n;
    call->buf[call->len] = '\0';
    return n;
}

/* Set the options of one POST. Returns DOCQ_OK, or DOCQ_ERR when curl
 * refuses one (in practice: out of memory copying the URL or the body). */
static int easy_setup(ai_client *c, ai_call *call, const char *body, size_t len) {
    CURL *e = call->easy;
    if (curl_easy_setopt(e, CURLOPT_URL, c->url) != CURLE_OK) return DOCQ_ERR;
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    if (curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, body) != CURLE_OK) return DOCQ_ERR;
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, c->headers);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "docq-worker");
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, call);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, call->errbuf);
    curl_easy_setopt(e, CURLOPT_PRIVATE, call);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, c->connect_timeout_ms);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, c->timeout_ms);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    /* An answer whose Content-Length is over the limit is refused before
     * its body is read (the write callback stops the others). */
    curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)call->max_body);
    return DOCQ_OK;
}

int ai_client_start(ai_client *c, const char *body, size_t len, void *user, docq_error *err) {
    ai_call *call = calloc(1, sizeof(*call));
    if (!call) return docq_error_set(err, DOCQ_ERR, "out of memory");
    call->user = user;
    call->max_body = c->max_body;
    call->easy = curl_easy_init();
    if (!call->easy || easy_setup(c, call, body, len) != DOCQ_OK) {
        if (call->easy) curl_easy_cleanup(call->easy);
        free(call);
        return docq_error_set(err, DOCQ_ERR, "cannot set up the HTTP request: out of memory");
    }
    CURLMcode mc = curl_multi_add_handle(c->multi, call->easy);
    if (mc != CURLM_OK) {
        curl_easy_cleanup(call->easy);
        free(call);
        return docq_error_set(err, DOCQ_ERR, "cannot start the HTTP request: %s",
                              curl_multi_strerror(mc));
    }
    call->next = c->calls;
    if (c->calls) c->calls->prev = call;
    c->calls = call;
    c->in_flight++;
    return DOCQ_OK;
}

int ai_client_abort(ai_client *c, void *user) {
    for (ai_call *call = c->calls; call; call = call->next) {
        if (call->user != user) continue;
        /* Removing a handle mid-transfer makes curl close its connection
         * and drop any message it queued for the handle. */
        call_free(c, call);
        return 1;
    }
    return 0;
}

int ai_client_in_flight(const ai_client *c) { return c->in_flight; }

int ai_client_poll(ai_client *c, ai_waitfd *fds, unsigned nfds, int timeout_ms, docq_error *err) {
    struct curl_waitfd extra[MAX_WAITFDS];
    int running;
    if (nfds > MAX_WAITFDS) return docq_error_set(err, DOCQ_ERR, "too many descriptors to watch");
    for (unsigned i = 0; i < nfds; i++) {
        extra[i].fd = fds[i].fd;
        extra[i].events = CURL_WAIT_POLLIN;
        extra[i].revents = 0;
    }
    CURLMcode mc = curl_multi_poll(c->multi, extra, nfds, timeout_ms, NULL);
    if (mc == CURLM_OK) mc = curl_multi_perform(c->multi, &running);
    if (mc != CURLM_OK)
        return docq_error_set(err, DOCQ_ERR, "HTTP client: %s", curl_multi_strerror(mc));
    for (unsigned i = 0; i < nfds; i++) fds[i].ready = extra[i].revents != 0;
    return DOCQ_OK;
}

/* The kind of a transfer that ended with code (not CURLE_OK). */
static ai_failure failure_of(CURLcode code) {
    switch (code) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY: return AI_FAILURE_CONNECT;
    case CURLE_OPERATION_TIMEDOUT: return AI_FAILURE_TIMEOUT;
    default: return AI_FAILURE_OTHER;
    }
}

/* Fill out from a call that curl reports done with code. The body moves from
 * call to out. */
static void result_fill(ai_call *call, CURLcode code, ai_result *out) {
    memset(out, 0, sizeof(*out));
    out->user = call->user;
    if (code == CURLE_OK) {
        out->status = AI_CALL_ANSWERED;
        curl_easy_getinfo(call->easy, CURLINFO_RESPONSE_CODE, &out->http_status);
        curl_off_t retry_after = 0; /* curl parses both delta-seconds and an HTTP date. */
        if (curl_easy_getinfo(call->easy, CURLINFO_RETRY_AFTER, &retry_after) == CURLE_OK && retry_after > 0)
            out->retry_after_s = retry_after > 86400 ? 86400 : (long)retry_after;
        out->body = call->buf;
        out->body_len = call->len;
        call->buf = NULL;
    } else if (call->too_large || code == CURLE_FILESIZE_EXCEEDED) {
        out->status = AI_CALL_TOO_LARGE;
    } else if (call->out_of_memory) {
        out->status = AI_CALL_FAILED;
        out->failure = AI_FAILURE_OTHER;
        snprintf(out->error, sizeof(out->error), "out of memory receiving the answer");
    } else {
        out->status = AI_CALL_FAILED;
        out->failure = failure_of(code);
        if (call->errbuf[0])
            snprintf(out->error, sizeof(out->error), "%s (%s)", curl_easy_strerror(code), call->errbuf);
        else
            snprintf(out->error, sizeof(out->error), "%s", curl_easy_strerror(code));
    }
}

int ai_client_next(ai_client *c, ai_result *out) {
    int left;
    CURLMsg *msg;
    while ((msg = curl_multi_info_read(c->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE) continue;
        char *priv = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
        ai_call *call = (ai_call *)priv;
        /* msg is invalid once its handle is removed: read it first. */
        result_fill(call, msg->data.result, out);
        call_free(c, call);
        return 1;
    }
    return 0;
}

void ai_result_clear(ai_result *r) {
    free(r->body);
    memset(r, 0, sizeof(*r));
}
