/* test_apikeys.c -- the API keys file parser and key lookup (common/apikeys.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "apikeys.h"
#include "check.h"

/* sha256("abc") and sha256("key-b"). */
#define H_ABC "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
#define H_EMPTY "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

static docq_apikeys *parse(const char *text, docq_error *err) {
    memset(err, 0, sizeof(*err));
    return docq_apikeys_parse(text, strlen(text), err);
}

static void sha256_known_vectors(void) {
    unsigned char d[32];
    char hex[65];
    CHECK_INT_EQ(docq_sha256("abc", 3, d), DOCQ_OK);
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", d[i]);
    CHECK_STR_EQ(hex, H_ABC);
    CHECK_INT_EQ(docq_sha256("", 0, d), DOCQ_OK);
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", d[i]);
    CHECK_STR_EQ(hex, H_EMPTY);
}

static void parse_fields_and_defaults(void) {
    docq_error err;
    docq_apikeys *t = parse("# keys\n"
                            "\n"
                            "acme " H_ABC " 100 30   # own limit and window\n"
                            "\t beta\t" H_EMPTY "\r\n",
                            &err);
    CHECK(t != NULL);
    if (!t) return;
    CHECK_INT_EQ(docq_apikeys_count(t), 2);
    const docq_apikey *a = docq_apikeys_find(t, "abc", 3);
    CHECK(a != NULL);
    if (a) {
        CHECK_STR_EQ(a->caller, "acme");
        CHECK_INT_EQ(a->limit, 100);
        CHECK_INT_EQ(a->window_s, 30);
        CHECK_INT_EQ(a->line, 3);
    }
    const docq_apikey *b = docq_apikeys_find(t, "", 0);
    CHECK(b != NULL);
    if (b) {
        CHECK_STR_EQ(b->caller, "beta");
        CHECK_INT_EQ(b->limit, -1);
        CHECK_INT_EQ(b->window_s, -1);
    }
    docq_apikeys_free(t);
}

static void limit_without_window(void) {
    docq_error err;
    docq_apikeys *t = parse("acme " H_ABC " 0", &err);
    CHECK(t != NULL);
    if (!t) return;
    const docq_apikey *a = docq_apikeys_find(t, "abc", 3);
    CHECK(a && a->limit == 0 && a->window_s == -1);
    docq_apikeys_free(t);
}

static void unknown_key_not_found(void) {
    docq_error err;
    docq_apikeys *t = parse("acme " H_ABC "\n", &err);
    CHECK(t != NULL);
    if (!t) return;
    CHECK(docq_apikeys_find(t, "abd", 3) == NULL);
    CHECK(docq_apikeys_find(t, "ab", 2) == NULL);
    CHECK(docq_apikeys_find(t, H_ABC, 64) == NULL); /* The hash itself is not a key. */
    docq_apikeys_free(t);
}

static void empty_file_is_empty_table(void) {
    docq_error err;
    docq_apikeys *t = parse("", &err);
    CHECK(t != NULL);
    if (!t) return;
    CHECK_INT_EQ(docq_apikeys_count(t), 0);
    CHECK(docq_apikeys_find(t, "abc", 3) == NULL);
    docq_apikeys_free(t);
    t = parse("# only a comment\n\n   \n", &err);
    CHECK(t && docq_apikeys_count(t) == 0);
    docq_apikeys_free(t);
}

static void bad_lines_name_the_line(void) {
    static const struct {
        const char *text, *want;
    } cases[] = {
        {"acme\n", "line 1: expected"},
        {"# c\nacme " H_ABC " 1 2 3\n", "line 2: expected"},
        {"acme " H_ABC " x\n", "line 1: the limit"},
        {"acme " H_ABC " -1\n", "line 1: the limit"},
        {"acme " H_ABC " 1000000001\n", "line 1: the limit"},
        {"acme " H_ABC " 5 0\n", "line 1: the window"},
        {"acme " H_ABC " 5 86401\n", "line 1: the window"},
        {"acme BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD\n", "lowercase hex"},
        {"acme ba7816bf\n", "64 hex digits"},
        {"acme " H_ABC "0\n", "64 hex digits"},
        {"\n\nacme " H_ABC "\nbeta " H_ABC "\n", "line 4: the same key hash as line 3"},
        {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa " H_ABC, "longer than 64"},
        {"ac\x01me " H_ABC, "printable ASCII"},
        {"ac\xc3\xa9me " H_ABC, "printable ASCII"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        docq_error err;
        docq_apikeys *t = parse(cases[i].text, &err);
        CHECK_MSG(t == NULL, "case %zu", i);
        docq_apikeys_free(t);
        CHECK_INT_EQ(err.code, DOCQ_EINVAL);
        CHECK_STR_CONTAINS(err.msg, cases[i].want);
    }
}

static void nul_bytes_and_unterminated_buffers(void) {
    docq_error err = {0};
    static const char with_nul[] = "acme " H_ABC "\0 5\n";
    docq_apikeys *t = docq_apikeys_parse(with_nul, sizeof(with_nul) - 1, &err);
    CHECK(t == NULL);
    CHECK_STR_CONTAINS(err.msg, "line 1: holds a NUL byte");
    /* A buffer cut right after the hash (no newline, no NUL): the parser
     * must read exactly len bytes. */
    char *buf = malloc(69);
    memcpy(buf, "acme " H_ABC, 69);
    t = docq_apikeys_parse(buf, 69, &err);
    CHECK(t && docq_apikeys_count(t) == 1);
    docq_apikeys_free(t);
    t = docq_apikeys_parse(buf, 68, &err); /* One hex digit short. */
    CHECK(t == NULL);
    free(buf);
}

static void a_comment_may_follow_any_field(void) {
    docq_error err;
    docq_apikeys *t = parse("acme " H_ABC "#no space before it\nbeta " H_EMPTY " 7#x\n", &err);
    CHECK(t != NULL);
    if (!t) return;
    CHECK_INT_EQ(docq_apikeys_count(t), 2);
    const docq_apikey *b = docq_apikeys_find(t, "", 0);
    CHECK(b && b->limit == 7);
    docq_apikeys_free(t);
}

static void load_reads_a_file_and_names_it(void) {
    char path[] = "/tmp/docq-keys-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    if (fd < 0) return;
    const char *text = "acme " H_ABC " 3\n";
    CHECK(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
    close(fd);
    docq_error err = {0};
    docq_apikeys *t = docq_apikeys_load(path, &err);
    CHECK(t && docq_apikeys_count(t) == 1);
    docq_apikeys_free(t);
    FILE *f = fopen(path, "w");
    fputs("broken\n", f);
    fclose(f);
    t = docq_apikeys_load(path, &err);
    CHECK(t == NULL);
    CHECK_STR_CONTAINS(err.msg, path);
    CHECK_STR_CONTAINS(err.msg, "line 1");
    unlink(path);
    t = docq_apikeys_load(path, &err);
    CHECK(t == NULL);
    CHECK_INT_EQ(err.code, DOCQ_ENOTFOUND);
}

CHECK_MAIN(
    CHECK_CASE(sha256_known_vectors,
               "SHA-256 of abc and of the empty string match the standard vectors"),
    CHECK_CASE(parse_fields_and_defaults,
               "a keys file gives each key its caller id, its own limit and window or the "
               "server's, and its line"),
    CHECK_CASE(limit_without_window, "a key may set its own limit and keep the server's window"),
    CHECK_CASE(unknown_key_not_found,
               "an unknown key, and the hash itself sent as a key, are not found"),
    CHECK_CASE(empty_file_is_empty_table, "an empty or comment-only keys file knows no key"),
    CHECK_CASE(bad_lines_name_the_line,
               "a bad keys file is refused naming the line and the fault: fields, limit, window, "
               "hash, duplicates, caller id"),
    CHECK_CASE(nul_bytes_and_unterminated_buffers,
               "the keys parser reads exactly the bytes given and refuses NUL bytes"),
    CHECK_CASE(a_comment_may_follow_any_field, "a # comment may follow any field without a space"),
    CHECK_CASE(load_reads_a_file_and_names_it,
               "loading a keys file reads it, and its errors name the file and line, or say it is "
               "missing"))
