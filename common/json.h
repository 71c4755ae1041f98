/* json.h -- writing JSON text. */
#ifndef DOCQ_JSON_H
#define DOCQ_JSON_H

#include <stddef.h>

/* Append s to buf (capacity cap, currently holding *len bytes) as the inside
 * of a JSON string: quotes, backslashes and control characters escaped,
 * truncated (never mid-escape) when buf is full. Always NUL-terminates. */
void docq_json_escape(char *buf, size_t cap, size_t *len, const char *s, size_t n);

#endif
