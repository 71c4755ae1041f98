/* log.c -- JSON-lines logging on stderr. See log.h. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "error.h"
#include "json.h"
#include "log.h"

/* Written once at start-up, before threads exist; read-only afterwards. */
static docq_log_level min_level = DOCQ_LOG_INFO;

static const char *level_names[] = {"debug", "info", "warn", "error"};

void docq_log_set_level(docq_log_level level) { min_level = level; }

int docq_log_level_parse(const char *name, docq_log_level *out) {
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(name, level_names[i]) == 0) {
            *out = (docq_log_level)i;
            return DOCQ_OK;
        }
    }
    return DOCQ_EINVAL;
}

/* Append a literal (already valid JSON) piece to the line buffer. */
static void append_raw(char *buf, size_t cap, size_t *len, const char *s) {
    size_t n = strlen(s);
    if (*len + n + 1 > cap) n = cap - *len - 1;
    memcpy(buf + *len, s, n);
    *len += n;
    buf[*len] = '\0';
}

void docq_log(docq_log_level level, const char *task_id, const char *fmt, ...) {
    if (level < min_level) return;
    char msg[1024], line[4096], ts[40];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    struct timespec now;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    size_t tl = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + tl, sizeof(ts) - tl, ".%03ldZ", now.tv_nsec / 1000000);

    size_t len = 0;
    size_t cap = sizeof(line) - 2; /* Room for "\n". */
    append_raw(line, cap, &len, "{\"ts\":\"");
    append_raw(line, cap, &len, ts);
    append_raw(line, cap, &len, "\",\"level\":\"");
    append_raw(line, cap, &len, level_names[level]);
    append_raw(line, cap, &len, "\",\"msg\":\"");
    /* A long message is cut short so that what follows it always fits: the
     * closing "} and, with a task id, its key and at least 115 bytes of it. */
    size_t end = cap - 2;
    docq_json_escape(line, task_id ? end - 128 : end, &len, msg, strlen(msg));
    if (task_id) {
        append_raw(line, end, &len, "\",\"task_id\":\"");
        docq_json_escape(line, end, &len, task_id, strlen(task_id));
    }
    append_raw(line, cap, &len, "\"}");
    line[len++] = '\n';
    ssize_t ignored = write(STDERR_FILENO, line, len);
    (void)ignored;
}
