/* text.c -- control characters kept off the CLI's output. See text.h. */
#include "text.h"

void cli_put_text(FILE *out, const char *text, int keep_lines) {
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
        if (*p == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f) {
            fputc(' ', out); /* A C1 control: both of its bytes. */
            p++;
        } else if (keep_lines && (*p == '\n' || *p == '\t')) {
            fputc(*p, out);
        } else {
            fputc(*p < 0x20 || *p == 0x7f ? ' ' : *p, out);
        }
    }
}
