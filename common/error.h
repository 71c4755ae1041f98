/* error.h -- status codes and the error struct every docq library call fills.
 *
 * Library functions return DOCQ_OK or a negative status and, when they fail,
 * write a one-line reason into a caller-owned docq_error (hiredis style:
 * err + errstr). They never print or exit: the caller decides what to do. */
#ifndef DOCQ_ERROR_H
#define DOCQ_ERROR_H

#define DOCQ_OK 0
#define DOCQ_ERR -1        /* Failed; see the error message. */
#define DOCQ_ENOTFOUND -2  /* The thing asked for does not exist. */
#define DOCQ_EUNAVAIL -3   /* Redis (or another dependency) cannot be reached. */
#define DOCQ_EINVAL -4     /* The input is malformed. */
#define DOCQ_ECONFLICT -5  /* The record moved on; the write was refused. */
#define DOCQ_EHELP -6      /* --help was asked for (config only). */
#define DOCQ_ELIMITED -7   /* Refused by a rate limit; the result says when to retry. */
#define DOCQ_EUNAUTHENTICATED -8 /* The caller could not be identified: no, unknown or unusable credentials. */
#define DOCQ_EEXISTS -9    /* The name is taken by something else (a request id by another document). */

typedef struct docq_error {
    int code;       /* One of the DOCQ_E* values above, DOCQ_OK when unset. */
    char msg[256];  /* Human-readable reason, always NUL-terminated. */
} docq_error;

/* Fill err (if not NULL) with code and a printf-style message. Returns code,
 * so that callers can write `return docq_error_set(err, DOCQ_EINVAL, ...)`. */
int docq_error_set(docq_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
