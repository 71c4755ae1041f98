/* json.c -- writing JSON text. See json.h. */
#include <stdio.h>
#include <string.h>

#include "json.h"

void docq_json_escape(char *buf, size_t cap, size_t *len, const char *s, size_t n) {
    size_t l = *len;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[8];
        size_t elen;
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            elen = 2;
        } else if (c == '\n') {
            memcpy(esc, "\\n", 2);
            elen = 2;
        } else if (c < 0x20 || c == 0x7f) {
            elen = (size_t)snprintf(esc, sizeof(esc), "\\u%04x", c);
        } else {
            esc[0] = (char)c;
            elen = 1;
        }
        if (l + elen + 1 > cap) break;
        memcpy(buf + l, esc, elen);
        l += elen;
    }
    if (cap > 0) buf[l < cap ? l : cap - 1] = '\0';
    *len = l;
}
