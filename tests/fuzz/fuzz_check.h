/* fuzz_check.h -- invariants the fuzz targets assert on what a parser made
 * of its input: a violation aborts, which libFuzzer reports as a crash with
 * the input that caused it. Unlike assert() it is never compiled out. */
#ifndef DOCQ_FUZZ_CHECK_H
#define DOCQ_FUZZ_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#define FUZZ_CHECK(cond)                                                                   \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            fprintf(stderr, "%s:%d: invariant broken: %s\n", __FILE__, __LINE__, #cond);   \
            abort();                                                                       \
        }                                                                                  \
    } while (0)

#endif
