/* test_ai_outcome.c -- the verdict on a finished AI call (worker/ai_outcome.c):
 * success, retry or failure, and the error a task shows. */
#include <string.h>

#include "ai_outcome.h"
#include "check.h"

/* An answered call with status and body. */
static ai_result answered(long status, const char *body) {
    ai_result r;
    memset(&r, 0, sizeof(r));
    r.status = AI_CALL_ANSWERED;
    r.http_status = status;
    r.body = (char *)body;
    r.body_len = body ? strlen(body) : 0;
    return r;
}

static void success_within_limit(void) {
    ai_outcome o;
    ai_result r = answered(200, "{\"summary\":\"ok\"}");
    ai_outcome_decide(&r, 1024, &o);
    CHECK_INT_EQ(o.verdict, AI_SUCCESS);
    CHECK_STR_EQ(o.error, "");
    /* Exactly the limit is still accepted; an empty 204 too. */
    ai_outcome_decide(&r, r.body_len, &o);
    CHECK_INT_EQ(o.verdict, AI_SUCCESS);
    r = answered(204, NULL);
    ai_outcome_decide(&r, 1024, &o);
    CHECK_INT_EQ(o.verdict, AI_SUCCESS);
}

static void over_limit_fails_for_good(void) {
    ai_outcome o;
    ai_result r = answered(200, "0123456789abcdef!");
    ai_outcome_decide(&r, 16, &o);
    CHECK_INT_EQ(o.verdict, AI_PERMANENT);
    CHECK_STR_CONTAINS(o.error, "larger than 16 bytes (DOCQ_MAX_RESULT_BYTES)");
    /* The client stopped reading it: the same verdict, whatever the status. */
    memset(&r, 0, sizeof(r));
    r.status = AI_CALL_TOO_LARGE;
    ai_outcome_decide(&r, 1048576, &o);
    CHECK_INT_EQ(o.verdict, AI_PERMANENT);
    CHECK_STR_CONTAINS(o.error, "larger than 1048576 bytes");
}

static void statuses_sorted(void) {
    static const struct {
        long status;
        ai_verdict want;
    } cases[] = {{429, AI_TRANSIENT}, {500, AI_TRANSIENT}, {503, AI_TRANSIENT}, {599, AI_TRANSIENT},
                 {400, AI_PERMANENT}, {404, AI_PERMANENT}, {301, AI_PERMANENT}, {100, AI_PERMANENT},
                 {0, AI_PERMANENT}, {-7, AI_PERMANENT}, {700, AI_PERMANENT}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ai_outcome o;
        ai_result r = answered(cases[i].status, "nope");
        ai_outcome_decide(&r, 1024, &o);
        CHECK_MSG(o.verdict == cases[i].want, "HTTP %ld", cases[i].status);
        CHECK_STR_CONTAINS(o.error, "AI service answered HTTP");
        CHECK_STR_CONTAINS(o.error, ": nope");
    }
}

static void retry_after_kept_and_capped(void) {
    ai_outcome o;
    ai_result r = answered(503, "busy");
    r.retry_after_s = 7;
    ai_outcome_decide(&r, 1024, &o);
    CHECK_INT_EQ(o.verdict, AI_TRANSIENT);
    CHECK_INT_EQ(o.retry_after_ms, 7000);
    r.retry_after_s = 10000000;
    ai_outcome_decide(&r, 1024, &o);
    CHECK_INT_EQ(o.retry_after_ms, 86400L * 1000);
}

static void error_text_is_one_clean_line(void) {
    ai_outcome o;
    ai_result r = answered(500, "line one\nline two\ttabbed   ");
    ai_outcome_decide(&r, 1024, &o);
    CHECK_STR_EQ(o.error, "AI service answered HTTP 500: line one line two tabbed");
    /* A body that is binary or holds control characters is not quoted. */
    r = answered(500, "bell\a here");
    ai_outcome_decide(&r, 1024, &o);
    CHECK_STR_EQ(o.error, "AI service answered HTTP 500");
    r = answered(502, "\xff\xfe");
    ai_outcome_decide(&r, 1024, &o);
    CHECK_STR_EQ(o.error, "AI service answered HTTP 502");
    /* A long one is cut at a character boundary and marked. */
    char body[400];
    memset(body, 'x', sizeof(body) - 1);
    body[sizeof(body) - 1] = '\0';
    memcpy(body + 198, "\xe2\x82\xac", 3); /* A euro sign across the cut. */
    r = answered(400, body);
    ai_outcome_decide(&r, 1024, &o);
    CHECK_STR_CONTAINS(o.error, "xx...");
    CHECK_STR_NOT_CONTAINS(o.error, "\xe2\x82");
}

static void no_answer_is_transient(void) {
    ai_outcome o;
    ai_result r;
    memset(&r, 0, sizeof(r));
    r.status = AI_CALL_FAILED;
    strcpy(r.error, "Couldn't connect to server (Failed to connect to 127.0.0.1 port 9: Connection refused)");
    ai_outcome_decide(&r, 1024, &o);
    CHECK_INT_EQ(o.verdict, AI_TRANSIENT);
    CHECK_STR_EQ(o.error, "AI call failed: Couldn't connect to server (Failed to connect to 127.0.0.1 port 9: "
                          "Connection refused)");
}

static void success_needs_utf8(void) {
    ai_outcome o;
    ai_result r = answered(200, "caf\xc3");
    ai_outcome_decide(&r, 1024, &o);
    CHECK_INT_EQ(o.verdict, AI_PERMANENT);
    CHECK_STR_CONTAINS(o.error, "not valid UTF-8");
}

static void nul_in_answer_fails_for_good(void) {
    ai_outcome o;
    ai_result r = answered(200, "ok");
    r.body = (char *)"ok\0yes";
    r.body_len = 6;
    ai_outcome_decide(&r, 1024, &o);
    CHECK_INT_EQ(o.verdict, AI_PERMANENT);
    CHECK_STR_CONTAINS(o.error, "AI answer contains a NUL byte at offset 2");
    r.body = (char *)"\0";
    r.body_len = 1;
    ai_outcome_decide(&r, 1024, &o);
    CHECK_INT_EQ(o.verdict, AI_PERMANENT);
    CHECK_STR_CONTAINS(o.error, "NUL byte at offset 0");
    r.status = AI_CALL_ANSWERED;
    r.http_status = 500;
    ai_outcome_decide(&r, 1024, &o);
    CHECK_INT_EQ(o.verdict, AI_TRANSIENT); /* An error answer's body is never a result. */
}

CHECK_MAIN(
    CHECK_CASE(success_within_limit,
               "a 2xx answer of UTF-8 within DOCQ_MAX_RESULT_BYTES succeeds, exactly at the limit "
               "and empty too"),
    CHECK_CASE(over_limit_fails_for_good,
               "an AI answer over DOCQ_MAX_RESULT_BYTES fails the task for good, saying so"),
    CHECK_CASE(statuses_sorted, "429 and 5xx are retried, and other statuses fail for good"),
    CHECK_CASE(retry_after_kept_and_capped, "Retry-After is kept, up to one day"),
    CHECK_CASE(error_text_is_one_clean_line,
               "an error answer's body is quoted as one line of text, cut at a character, or not "
               "at all"),
    CHECK_CASE(no_answer_is_transient,
               "no answer is a transient failure naming the transport error"),
    CHECK_CASE(success_needs_utf8, "a 2xx body that is not UTF-8 fails for good"),
    CHECK_CASE(nul_in_answer_fails_for_good,
               "a 2xx body holding a NUL byte fails for good, naming the offset of the NUL"))
