/* ai_outcome.c -- the verdict on a finished AI call. See ai_outcome.h. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "ai_outcome.h"
#include "retry.h"
#include "task.h"

/* Write into out (cap bytes) ": <start of body>" when the body's first
 * AI_SNIPPET_MAX bytes are printable text, else an empty string. */
static void body_snippet(const char *body, size_t len, char *out, size_t cap) {
    char text[AI_SNIPPET_MAX];
    size_t n = len < AI_SNIPPET_MAX ? len : AI_SNIPPET_MAX, t = 0;
    out[0] = '\0';
    if (!body) return;
    while (n > 0 && n < len && ((unsigned char)body[n] & 0xc0) == 0x80) n--; /* Whole characters. */
    if (!docq_utf8_valid(body, n)) return;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)body[i];
        if (c == '\n' || c == '\r' || c == '\t') c = ' ';
        else if (c < 0x20 || c == 0x7f) return;
        text[t++] = (char)c;
    }
    while (t > 0 && text[t - 1] == ' ') t--;
    if (t > 0) snprintf(out, cap, ": %.*s%s", (int)t, text, n < len ? "..." : "");
}

/* Set out to a failure: transient or not, with a printf-style reason. */
static void fail(ai_outcome *out, ai_verdict verdict, long retry_after_ms, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void fail(ai_outcome *out, ai_verdict verdict, long retry_after_ms, const char *fmt, ...) {
    va_list ap;
    out->verdict = verdict;
    out->retry_after_ms = retry_after_ms;
    va_start(ap, fmt);
    vsnprintf(out->error, sizeof(out->error), fmt, ap);
    va_end(ap);
}

void ai_outcome_decide(const ai_result *r, size_t max_result, ai_outcome *out) {
    char snippet[AI_SNIPPET_MAX + 16];
    const char *nul;
    long status = r->http_status;
    memset(out, 0, sizeof(*out));
    if (r->status == AI_CALL_TOO_LARGE || (r->status == AI_CALL_ANSWERED && r->body_len > max_result)) {
        fail(out, AI_PERMANENT, 0, "AI answer larger than %zu bytes (DOCQ_MAX_RESULT_BYTES): not stored",
             max_result);
    } else if (r->status != AI_CALL_ANSWERED) {
        fail(out, AI_TRANSIENT, 0, "AI call failed: %.*s", (int)strnlen(r->error, sizeof(r->error)),
             r->error);
    } else if (status < 200 || status > 299) {
        body_snippet(r->body, r->body_len, snippet, sizeof(snippet));
        long retry_after_s = r->retry_after_s < 0 ? 0 : r->retry_after_s > 86400 ? 86400 : r->retry_after_s;
        fail(out, docq_retry_status_transient(status) ? AI_TRANSIENT : AI_PERMANENT, retry_after_s * 1000,
             "AI service answered HTTP %ld%s", status, snippet);
    } else if (!docq_utf8_valid(r->body ? r->body : "", r->body ? r->body_len : 0)) {
        fail(out, AI_PERMANENT, 0, "AI service answered with a body that is not valid UTF-8");
    } else if (r->body && (nul = memchr(r->body, '\0', r->body_len)) != NULL) {
        fail(out, AI_PERMANENT, 0, "AI answer contains a NUL byte at offset %zu: a Task.result cannot hold it",
             (size_t)(nul - r->body));
    } else {
        out->verdict = AI_SUCCESS;
    }
}
