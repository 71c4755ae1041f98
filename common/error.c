/* error.c -- filling a docq_error. See error.h. */
#include <stdarg.h>
#include <stdio.h>

#include "error.h"

int docq_error_set(docq_error *err, int code, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return code;
}
