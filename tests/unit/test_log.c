/* test_log.c -- JSON escaping (common/json.c), the JSON-lines log (common/log.c) and error messages (common/error.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "error.h"
#include "json.h"
#include "log.h"

/* Escape the n bytes at s into a fresh buffer of capacity cap; the result
 * and its length are in buf and *len. */
static void escape(char *buf, size_t cap, size_t *len, const char *s, size_t n) {
    *len = 0;
    docq_json_escape(buf, cap, len, s, n);
}

static void escape_specials(void) {
    static const struct {
        const char *in;
        size_t n;
        const char *out;
    } cases[] = {
        {"plain text", 10, "plain text"},
        {"say \"hi\"", 8, "say \\\"hi\\\""},
        {"C:\\dir\\", 7, "C:\\\\dir\\\\"},
        {"two\nlines", 9, "two\\nlines"},
        {"tab\there", 8, "tab\\u0009here"},
        {"cr\r", 3, "cr\\u000d"},
        {"\x01\x1f", 2, "\\u0001\\u001f"},
        {"del\x7f", 4, "del\\u007f"},
        {"nul\0in", 6, "nul\\u0000in"},
        {"caf\xc3\xa9 \xe6\x97\xa5", 9, "caf\xc3\xa9 \xe6\x97\xa5"}, /* UTF-8 as is. */
        {"/ and '", 7, "/ and '"},
        {"", 0, ""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char buf[128];
        size_t len;
        escape(buf, sizeof(buf), &len, cases[i].in, cases[i].n);
        CHECK_STR_EQ(buf, cases[i].out);
        CHECK_INT_EQ(len, strlen(cases[i].out));
    }
}

static void escape_appends(void) {
    char buf[64] = "{\"msg\":\"";
    size_t len = strlen(buf);
    docq_json_escape(buf, sizeof(buf), &len, "a\"b", 3);
    CHECK_STR_EQ(buf, "{\"msg\":\"a\\\"b");
    CHECK_INT_EQ(len, strlen(buf));
    /* Only n bytes are read. */
    docq_json_escape(buf, sizeof(buf), &len, "cdef", 1);
    CHECK_STR_EQ(buf, "{\"msg\":\"a\\\"bc");
}

/* The escapes of full, as offsets where each one ends: a truncated result
 * must end at one of them. */
static int ends_on_escape(const char *full, size_t at) {
    size_t i = 0;
    while (i < at) {
        if (full[i] == '\\') i += full[i + 1] == 'u' ? 6 : 2;
        else i++;
    }
    return i == at;
}

static void escape_truncates_whole_escapes(void) {
    const char in[] = "a\"b\\c\nd\x01" "e";
    const size_t n = sizeof(in) - 1;
    char full[128];
    size_t full_len;
    escape(full, sizeof(full), &full_len, in, n);
    CHECK_STR_EQ(full, "a\\\"b\\\\c\\nd\\u0001e");

    /* Every capacity from 1 up: a prefix of the full escape, cut between
     * escapes, NUL-terminated within cap, nothing written past it. */
    for (size_t cap = 1; cap <= full_len + 2; cap++) {
        char buf[160];
        size_t len;
        memset(buf, '#', sizeof(buf));
        escape(buf, cap, &len, in, n);
        CHECK_MSG(len < cap, "cap %zu: len %zu", cap, len);
        CHECK_MSG(buf[len] == '\0', "cap %zu: not terminated at %zu", cap, len);
        CHECK_MSG(strncmp(buf, full, len) == 0, "cap %zu: '%s' is not a prefix", cap, buf);
        CHECK_MSG(ends_on_escape(full, len), "cap %zu: '%s' ends inside an escape", cap, buf);
        CHECK_MSG(len + 1 == cap || len == full_len || len + 6 >= cap,
                  "cap %zu: stopped early at %zu", cap, len);
        for (size_t j = cap; j < sizeof(buf); j++) CHECK_MSG(buf[j] == '#', "cap %zu: byte %zu written", cap, j);
    }
    /* Room for "a" and the NUL but not for the escaped quote: "a" only. */
    char buf[4];
    size_t len;
    escape(buf, 3, &len, "a\"b", 3);
    CHECK_STR_EQ(buf, "a");
    CHECK_INT_EQ(len, 1);
    /* A buffer of capacity 0 is not touched. */
    buf[0] = '#';
    escape(buf, 0, &len, "abc", 3);
    CHECK_INT_EQ(len, 0);
    CHECK(buf[0] == '#');
}

static void level_names(void) {
    static const struct {
        const char *name;
        docq_log_level level;
    } good[] = {
        {"debug", DOCQ_LOG_DEBUG}, {"info", DOCQ_LOG_INFO}, {"warn", DOCQ_LOG_WARN},
        {"error", DOCQ_LOG_ERROR}, {"WARN", DOCQ_LOG_WARN},
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        docq_log_level l = DOCQ_LOG_ERROR + 1;
        CHECK_INT_EQ(docq_log_level_parse(good[i].name, &l), DOCQ_OK);
        CHECK_INT_EQ(l, good[i].level);
    }
    static const char *bad[] = {"", "loud", "warning", "err", "info "};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        docq_log_level l = DOCQ_LOG_WARN;
        CHECK_MSG(docq_log_level_parse(bad[i], &l) == DOCQ_EINVAL, "'%s' parsed", bad[i]);
        CHECK_INT_EQ(l, DOCQ_LOG_WARN);
    }
}

/* Capture what docq_log writes to stderr while fn runs. Returns a malloc'd,
 * NUL-terminated copy (free it). Check failures go to the real stderr. */
static char *capture_stderr(void (*fn)(void)) {
    FILE *tmp = tmpfile();
    if (!tmp) return NULL;
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    dup2(fileno(tmp), STDERR_FILENO);
    fn();
    dup2(saved, STDERR_FILENO);
    close(saved);
    fseek(tmp, 0, SEEK_END);
    long size = ftell(tmp);
    if (size < 0) size = 0;
    char *out = malloc((size_t)size + 1);
    rewind(tmp);
    size_t got = out ? fread(out, 1, (size_t)size, tmp) : 0;
    if (out) out[got] = '\0';
    fclose(tmp);
    return out;
}

static void log_some_lines(void) {
    docq_log_set_level(DOCQ_LOG_INFO);
    docq_log_debug("not written");
    docq_log_info("stored \"%s\"", "doc\n1");
    docq_log(DOCQ_LOG_WARN, "s3-00112233445566778899aabbccddeeff", "retrying after %d ms", 250);
}

static void log_line_is_json(void) {
    char *out = capture_stderr(log_some_lines);
    CHECK(out != NULL);
    if (!out) return;
    /* Two lines, the debug one filtered out. */
    char *second = strchr(out, '\n');
    CHECK(second != NULL);
    if (!second) goto done;
    *second++ = '\0';
    CHECK_STR_NOT_CONTAINS(out, "not written");
    CHECK_STR_NOT_CONTAINS(second, "not written");
    CHECK(strncmp(out, "{\"ts\":\"", 7) == 0);
    /* ts is ISO 8601 UTC with milliseconds: 2026-01-02T03:04:05.678Z. */
    CHECK_INT_EQ(strcspn(out + 7, "\""), 24);
    CHECK(out[7 + 10] == 'T' && out[7 + 23] == 'Z' && out[7 + 19] == '.');
    CHECK_STR_CONTAINS(out, "\",\"level\":\"info\",\"msg\":\"stored \\\"doc\\n1\\\"\"}");
    CHECK_STR_NOT_CONTAINS(out, "task_id");
    CHECK_STR_CONTAINS(second, "\"level\":\"warn\",\"msg\":\"retrying after 250 ms\","
                               "\"task_id\":\"s3-00112233445566778899aabbccddeeff\"}\n");
    CHECK(strchr(second, '\n') == second + strlen(second) - 1);
done:
    free(out);
}

/* 1000 control characters escape to 6000 bytes, more than a line holds.
 * The header's length differs by level name, so each level is tried, with
 * and without a task id, and with a task id far too long to fit. */
static char long_msg[1001];
static char long_task_id[301];
#define NLONG 7

static void log_long_lines(void) {
    memset(long_msg, '\x01', 1000);
    memset(long_task_id, 't', 300);
    for (int l = DOCQ_LOG_INFO; l <= DOCQ_LOG_ERROR; l++) {
        docq_log((docq_log_level)l, NULL, "%s", long_msg);
        docq_log((docq_log_level)l, "s1-00112233445566778899aabbccddeeff", "%s", long_msg);
    }
    docq_log(DOCQ_LOG_INFO, long_task_id, "%s", long_msg);
}

static void log_long_line_stays_json(void) {
    docq_log_set_level(DOCQ_LOG_INFO);
    char *out = capture_stderr(log_long_lines);
    CHECK(out != NULL);
    if (!out) return;
    char *line = out;
    for (int i = 0; i < NLONG; i++) {
        char *nl = strchr(line, '\n');
        CHECK_MSG(nl != NULL, "line %d has no newline", i);
        if (!nl) break;
        *nl = '\0';
        /* Cut short, but still one whole JSON object: the message ends on a
         * whole escape, the task id (if any) is there, the line ends on "}. */
        size_t n = strlen(line);
        CHECK_MSG(n > 3000 && n < 4096, "line %d is %zu bytes", i, n);
        CHECK_MSG(n >= 2 && strcmp(line + n - 2, "\"}") == 0, "line %d ends '%s'", i,
                  n >= 20 ? line + n - 20 : line);
        const char *m = strstr(line, "\"msg\":\"");
        CHECK(m != NULL);
        if (m) {
            m += 7;
            while (strncmp(m, "\\u0001", 6) == 0) m += 6;
            CHECK_MSG(*m == '"', "line %d: message ends '%.20s'", i, m);
            const char *rest = i == NLONG - 1 ? "\",\"task_id\":\"tttt"
                               : i % 2 ? "\",\"task_id\":\"s1-00112233445566778899aabbccddeeff\"}"
                                       : "\"}";
            CHECK_MSG(strncmp(m, rest, strlen(rest)) == 0, "line %d: after the message '%.60s'", i, m);
        }
        line = nl + 1;
    }
    CHECK_STR_EQ(line, "");
    free(out);
}

static void error_set_fills(void) {
    docq_error err = {0};
    CHECK_INT_EQ(docq_error_set(&err, DOCQ_EINVAL, "bad %s %d", "value", 7), DOCQ_EINVAL);
    CHECK_INT_EQ(err.code, DOCQ_EINVAL);
    CHECK_STR_EQ(err.msg, "bad value 7");
    CHECK_INT_EQ(docq_error_set(NULL, DOCQ_ERR, "ignored"), DOCQ_ERR);
    /* A long message is cut and stays NUL-terminated. */
    char big[600];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    docq_error_set(&err, DOCQ_ERR, "%s", big);
    CHECK_INT_EQ(strlen(err.msg), sizeof(err.msg) - 1);
}

CHECK_MAIN(
    CHECK_CASE(escape_specials,
               "JSON escaping escapes quotes, backslashes, newlines and control characters and "
               "keeps UTF-8"),
    CHECK_CASE(escape_appends, "JSON escaping appends to what the buffer holds"),
    CHECK_CASE(escape_truncates_whole_escapes,
               "JSON escaping into a small buffer stops between escapes, never inside one"),
    CHECK_CASE(level_names, "log levels parse from their names and other names are refused"),
    CHECK_CASE(log_line_is_json,
               "a log line is one JSON object with ts, level, msg and task_id, below the level "
               "nothing"),
    CHECK_CASE(log_long_line_stays_json,
               "a message too long for a log line is cut and the line is still one JSON object"),
    CHECK_CASE(error_set_fills, "an error message is formatted, cut to fit and NUL-terminated"))
