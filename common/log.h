/* log.h -- structured logging: one JSON object per line on stderr.
 *
 * Each line has ts (UTC, ISO 8601 with milliseconds), level, msg and, when
 * given, task_id. Lines are written with a single write(2), so lines from
 * different threads never interleave. Safe to call from any thread. */
#ifndef DOCQ_LOG_H
#define DOCQ_LOG_H

typedef enum docq_log_level {
    DOCQ_LOG_DEBUG = 0,
    DOCQ_LOG_INFO,
    DOCQ_LOG_WARN,
    DOCQ_LOG_ERROR
} docq_log_level;

/* Set the lowest level that is written (default DOCQ_LOG_INFO). Call before
 * starting threads. */
void docq_log_set_level(docq_log_level level);

/* Parse "debug", "info", "warn" or "error". Returns DOCQ_OK and sets *out, or
 * DOCQ_EINVAL. */
int docq_log_level_parse(const char *name, docq_log_level *out);

/* Write one log line. task_id may be NULL. The message is JSON-escaped. */
void docq_log(docq_log_level level, const char *task_id, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define docq_log_debug(...) docq_log(DOCQ_LOG_DEBUG, NULL, __VA_ARGS__)
#define docq_log_info(...) docq_log(DOCQ_LOG_INFO, NULL, __VA_ARGS__)
#define docq_log_warn(...) docq_log(DOCQ_LOG_WARN, NULL, __VA_ARGS__)
#define docq_log_error(...) docq_log(DOCQ_LOG_ERROR, NULL, __VA_ARGS__)

#endif
