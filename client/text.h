/* text.h -- showing text from the server (AI results, errors) on the CLI's
 * output without letting it drive the terminal. */
#ifndef DOCQ_CLI_TEXT_H
#define DOCQ_CLI_TEXT_H

#include <stdio.h>

/* Write the C string text to out with every control character shown as a
 * space: C0 controls (bytes below 0x20, ESC among them), DEL (0x7f) and C1
 * controls (U+0080 to U+009F, UTF-8 C2 80 to C2 9F, CSI among them), so that
 * no escape sequence in a result reaches a terminal. With keep_lines,
 * newlines and tabs are kept (multi-line output); without, they become
 * spaces too (one line per change). The same on a terminal or not. */
void cli_put_text(FILE *out, const char *text, int keep_lines);

#endif
