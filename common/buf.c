/* buf.c -- the growing text buffer. See buf.h. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

void docq_buf_printf(docq_buf *b, const char *fmt, ...) {
    for (;;) {
        va_list ap;
        size_t room = b->cap - b->len;
        va_start(ap, fmt);
        int n = b->data && !b->oom ? vsnprintf(b->data + b->len, room, fmt, ap) : -1;
        va_end(ap);
        if (b->oom) return;
        if (n >= 0 && (size_t)n < room) {
            b->len += (size_t)n;
            return;
        }
        size_t need = b->len + (n > 0 ? (size_t)n : 0) + 1;
        size_t cap = b->cap ? b->cap * 2 : 4096;
        while (cap < need) cap *= 2;
        char *grown = realloc(b->data, cap);
        if (!grown) {
            b->oom = 1;
            if (b->data) b->data[b->len] = '\0';
            return;
        }
        b->data = grown;
        b->cap = cap;
        if (b->len == 0) b->data[0] = '\0';
    }
}

void docq_buf_free(docq_buf *b) {
    free(b->data);
    memset(b, 0, sizeof(*b));
}
