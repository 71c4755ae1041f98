/* buf.h -- a growing text buffer, written with printf-style appends. */
#ifndef DOCQ_BUF_H
#define DOCQ_BUF_H

#include <stddef.h>

/* A growing text buffer. Initialize to all zeros. On out-of-memory it stops
 * growing and sets oom; the text written so far stays valid. */
typedef struct docq_buf {
    char *data; /* NUL-terminated; NULL until something is written. Owned. */
    size_t len, cap;
    int oom;
} docq_buf;

/* Append the printf-style text to b, growing it as needed (doubling, from
 * 4 KiB). When memory runs out nothing more is appended and b->oom is set. */
void docq_buf_printf(docq_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Free b's text and reset it to all zeros (ready to be written again). */
void docq_buf_free(docq_buf *b);

#endif
