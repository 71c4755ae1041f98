/* libFuzzer target: the worker's handling of an AI answer
 * (worker/ai_outcome.c): whatever the AI service sends back, status and
 * body, the task gets a verdict and, unless it succeeded, an error that is
 * one line of valid UTF-8 text (it goes into the record, the logs and the
 * clients' Task). Nothing larger than the limit is ever accepted, and only
 * a 2xx with a UTF-8 body succeeds.
 *
 * Input: byte 0 picks how the call ended, bytes 1-2 the HTTP status (0 to
 * 65535), byte 3 Retry-After, byte 4 the result limit (in 16-byte steps,
 * 0: 1 MiB), the rest is the body of an answer, or the transport error of
 * a failed call (its printable ASCII bytes, as curl's are). */
#include <stdint.h>
#include <string.h>

#include "ai_outcome.h"
#include "fuzz_check.h"
#include "task.h"

/* 1 when s is one line of valid UTF-8 without control characters. */
static int one_line_of_text(const char *s) {
    size_t n = strlen(s);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) return 0;
    return docq_utf8_valid(s, n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 5) return 0;
    ai_result r;
    memset(&r, 0, sizeof(r));
    r.status = (ai_call_status)(data[0] % 3);
    r.http_status = data[1] << 8 | data[2];
    r.retry_after_s = data[3] * 400L; /* Past the one-day cap. */
    size_t max = data[4] ? (size_t)data[4] * 16 : 1024 * 1024;
    const char *rest = (const char *)data + 5;
    size_t nrest = size - 5;
    if (r.status == AI_CALL_ANSWERED) {
        r.body = (char *)rest;
        r.body_len = nrest;
    } else if (r.status == AI_CALL_FAILED) {
        size_t e = 0;
        for (size_t i = 0; i < nrest && e + 1 < sizeof(r.error); i++)
            if (rest[i] >= 0x20 && rest[i] < 0x7f) r.error[e++] = rest[i];
    }

    ai_outcome o;
    ai_outcome_decide(&r, max, &o);
    FUZZ_CHECK(o.verdict == AI_SUCCESS || o.verdict == AI_TRANSIENT || o.verdict == AI_PERMANENT);
    FUZZ_CHECK(memchr(o.error, '\0', sizeof(o.error)) != NULL);
    if (o.verdict == AI_SUCCESS) {
        FUZZ_CHECK(r.status == AI_CALL_ANSWERED && r.http_status >= 200 && r.http_status <= 299);
        FUZZ_CHECK(r.body_len <= max && docq_utf8_valid(r.body, r.body_len));
        FUZZ_CHECK(o.error[0] == '\0');
    } else {
        FUZZ_CHECK(o.error[0] != '\0' && one_line_of_text(o.error));
    }
    FUZZ_CHECK(o.retry_after_ms >= 0 && o.retry_after_ms <= 86400L * 1000);
    if (r.status == AI_CALL_TOO_LARGE || (r.status == AI_CALL_ANSWERED && r.body_len > max))
        FUZZ_CHECK(o.verdict == AI_PERMANENT);
    return 0;
}
