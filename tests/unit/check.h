/* check.h -- the unit tests' check macros and case runner.
 *
 * Checks are macros, not assert(): they run with NDEBUG defined too, report
 * file:line and the failing expression (and the values, for the _EQ forms),
 * count the failure and let the case go on, so one run shows every failed
 * check of a case.
 *
 * Each test file ends with CHECK_MAIN(CHECK_CASE(fn, "sentence"), ...): the
 * sentence, saying what the case checks, is its ctest test's name. The
 * executable then runs:
 *   <exe> <case>   that case; exit 1 if a check failed, 2 if no case has that
 *                  name;
 *   <exe>          every case (handy under valgrind);
 *   <exe> --list   one line per case: its name, a tab, its sentence. After
 *                  each build tests/discover.py registers a ctest test per
 *                  line, so every case listed here is run.
 * One case per process: ctest runs each case as its own test, so a case may
 * change the environment or crash without affecting the others. */
#ifndef DOCQ_TEST_CHECK_H
#define DOCQ_TEST_CHECK_H

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

/* Failed checks so far; the tests are single-threaded. */
static int check_failures;

/* Print one failure as "file:line: <what>" and count it. */
static inline void __attribute__((format(printf, 3, 4)))
check_fail(const char *file, int line, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "%s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    check_failures++;
}

/* Print n bytes as a C string literal, escaping what is not printable;
 * long strings are cut after their first 400 bytes. */
static inline void check_print_bytes(const char *s, size_t n) {
    size_t shown = n > 400 ? 400 : n;
    fputc('"', stderr);
    for (size_t i = 0; i < shown; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') fprintf(stderr, "\\%c", c);
        else if (c >= 0x20 && c < 0x7f) fputc(c, stderr);
        else fprintf(stderr, "\\x%02x", c);
    }
    fputc('"', stderr);
    if (shown < n) fprintf(stderr, "... (%zu bytes)", n);
}

#define CHECK(cond)                                                              \
    do {                                                                         \
        if (!(cond)) check_fail(__FILE__, __LINE__, "CHECK(%s) failed", #cond);  \
    } while (0)

/* CHECK with a printf-style note, for table-driven cases: say which input. */
#define CHECK_MSG(cond, ...)                                                     \
    do {                                                                         \
        if (!(cond)) {                                                           \
            check_fail(__FILE__, __LINE__, "CHECK(%s) failed", #cond);           \
            fprintf(stderr, "    note: ");                                       \
            fprintf(stderr, __VA_ARGS__);                                        \
            fputc('\n', stderr);                                                 \
        }                                                                        \
    } while (0)

#define CHECK_INT_EQ(a, b)                                                       \
    do {                                                                         \
        long long check_a_ = (long long)(a), check_b_ = (long long)(b);          \
        if (check_a_ != check_b_)                                                \
            check_fail(__FILE__, __LINE__, "CHECK_INT_EQ(%s, %s) failed: %lld != %lld", \
                       #a, #b, check_a_, check_b_);                              \
    } while (0)

static inline void check_str_eq(const char *file, int line, const char *ea, const char *eb,
                                const char *a, const char *b) {
    if (a && b && strcmp(a, b) == 0) return;
    if (!a && !b) return;
    check_fail(file, line, "CHECK_STR_EQ(%s, %s) failed:", ea, eb);
    fprintf(stderr, "    left:  ");
    if (a) check_print_bytes(a, strlen(a)); else fprintf(stderr, "NULL");
    fprintf(stderr, "\n    right: ");
    if (b) check_print_bytes(b, strlen(b)); else fprintf(stderr, "NULL");
    fputc('\n', stderr);
}

/* Equal strings, or both NULL. */
#define CHECK_STR_EQ(a, b) check_str_eq(__FILE__, __LINE__, #a, #b, (a), (b))

static inline void check_str_contains(const char *file, int line, const char *eh, const char *en,
                                      const char *h, const char *n, int want) {
    int has = h && n && strstr(h, n) != NULL;
    if (has == want) return;
    check_fail(file, line, "%s(%s, %s) failed:",
               want ? "CHECK_STR_CONTAINS" : "CHECK_STR_NOT_CONTAINS", eh, en);
    fprintf(stderr, "    string: ");
    if (h) check_print_bytes(h, strlen(h)); else fprintf(stderr, "NULL");
    fprintf(stderr, "\n    %s: ", want ? "lacks" : "has");
    if (n) check_print_bytes(n, strlen(n)); else fprintf(stderr, "NULL");
    fputc('\n', stderr);
}

#define CHECK_STR_CONTAINS(h, n) check_str_contains(__FILE__, __LINE__, #h, #n, (h), (n), 1)
#define CHECK_STR_NOT_CONTAINS(h, n) check_str_contains(__FILE__, __LINE__, #h, #n, (h), (n), 0)

static inline void check_mem_eq(const char *file, int line, const char *ea, const char *eb,
                                const void *a, size_t alen, const void *b, size_t blen) {
    const unsigned char *pa = a, *pb = b;
    size_t i = 0;
    if (alen == blen && (alen == 0 || memcmp(a, b, alen) == 0)) return;
    while (i < alen && i < blen && pa[i] == pb[i]) i++;
    check_fail(file, line, "CHECK_MEM_EQ(%s, %s) failed: %zu bytes vs %zu, first difference at byte %zu",
               ea, eb, alen, blen, i);
    fprintf(stderr, "    left:  ");
    for (size_t j = 0; j < alen; j++) fprintf(stderr, "%02x%s", pa[j], j + 1 == i ? "|" : " ");
    fprintf(stderr, "\n    right: ");
    for (size_t j = 0; j < blen; j++) fprintf(stderr, "%02x%s", pb[j], j + 1 == i ? "|" : " ");
    fputc('\n', stderr);
}

/* The alen bytes at a equal the blen bytes at b. */
#define CHECK_MEM_EQ(a, alen, b, blen) \
    check_mem_eq(__FILE__, __LINE__, #a, #b, (a), (alen), (b), (blen))

typedef struct check_case {
    const char *name;
    const char *sentence; /* the ctest test's name */
    void (*run)(void);
} check_case;

#define CHECK_CASE(fn, sentence) {#fn, sentence, fn}

static inline int check_run_one(const check_case *c) {
    int before = check_failures;
    c->run();
    int failed = check_failures - before;
    fprintf(stderr, "%s: %s", c->name, failed ? "FAILED" : "ok");
    if (failed) fprintf(stderr, " (%d check%s)", failed, failed == 1 ? "" : "s");
    fputc('\n', stderr);
    return failed;
}

static inline int check_run(const check_case *cases, size_t n, int argc, char **argv) {
    if (argc < 2) {
        for (size_t i = 0; i < n; i++) check_run_one(&cases[i]);
        return check_failures ? 1 : 0;
    }
    if (strcmp(argv[1], "--list") == 0) {
        for (size_t i = 0; i < n; i++) printf("%s\t%s\n", cases[i].name, cases[i].sentence);
        return 0;
    }
    for (size_t i = 0; i < n; i++)
        if (strcmp(argv[1], cases[i].name) == 0) return check_run_one(&cases[i]) ? 1 : 0;
    fprintf(stderr, "no case named '%s' (try --list)\n", argv[1]);
    return 2;
}

#define CHECK_MAIN(...)                                                          \
    int main(int argc, char **argv) {                                            \
        static const check_case cases[] = {__VA_ARGS__};                         \
        return check_run(cases, sizeof(cases) / sizeof(cases[0]), argc, argv);   \
    }

#endif
