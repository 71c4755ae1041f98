/* test_files.c -- bounded reads of secret and certificate files
 * (common/files.c): what is read, what is refused, and that a reason never
 * quotes the file. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "files.h"

/* Write n bytes of text into a new temporary file; its path goes into path
 * (capacity 64). */
static void temp_file(char *path, const char *text, size_t n) {
    snprintf(path, 64, "/tmp/docq-test-files-XXXXXX");
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    if (fd < 0) return;
    CHECK_INT_EQ(write(fd, text, n), (long long)n);
    close(fd);
}

static void secret_line_endings(void) {
    static const struct {
        const char *text;
        const char *want;
    } cases[] = {
        {"s3cret", "s3cret"},
        {"s3cret\n", "s3cret"},
        {"s3cret\r\n", "s3cret"},
        {"  spaces are kept  \n", "  spaces are kept  "},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char path[64], buf[64];
        docq_error err = {0};
        temp_file(path, cases[i].text, strlen(cases[i].text));
        CHECK_INT_EQ(docq_secret_read(path, buf, sizeof(buf), &err), DOCQ_OK);
        CHECK_STR_EQ(buf, cases[i].want);
        unlink(path);
    }
}

static void secret_refusals_never_quote(void) {
    static const struct {
        const char *text;
        size_t len;
        const char *why;
    } cases[] = {
        {"", 0, "empty"},
        {"\n", 1, "empty"},
        {"topsecret\nline two\n", 19, "one line"},
        {"topsecret\0tail", 14, "NUL"},
        {"topsecret-far-too-long-for-the-buffer", 37, "longer than"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char path[64], buf[16];
        docq_error err = {0};
        temp_file(path, cases[i].text, cases[i].len);
        CHECK_INT_EQ(docq_secret_read(path, buf, sizeof(buf), &err), DOCQ_EINVAL);
        CHECK_STR_CONTAINS(err.msg, cases[i].why);
        CHECK_STR_CONTAINS(err.msg, path);
        CHECK_STR_NOT_CONTAINS(err.msg, "topsecret");
        CHECK_STR_EQ(buf, "");
        unlink(path);
    }
}

static void not_regular_files_refused(void) {
    char dir[64], fifo[96], buf[32];
    docq_error err = {0};
    snprintf(dir, sizeof(dir), "/tmp/docq-test-files-XXXXXX");
    CHECK(mkdtemp(dir) != NULL);
    CHECK_INT_EQ(docq_secret_read(dir, buf, sizeof(buf), &err), DOCQ_EINVAL);
    CHECK_STR_CONTAINS(err.msg, "not a regular file");
    /* A FIFO with no writer: refused at once instead of blocking. */
    snprintf(fifo, sizeof(fifo), "%s/fifo", dir);
    CHECK_INT_EQ(mkfifo(fifo, 0600), 0);
    time_t t0 = time(NULL);
    CHECK_INT_EQ(docq_secret_read(fifo, buf, sizeof(buf), &err), DOCQ_EINVAL);
    CHECK_STR_CONTAINS(err.msg, "not a regular file");
    CHECK(time(NULL) - t0 < 2);
    unlink(fifo);
    rmdir(dir);
    CHECK_INT_EQ(docq_secret_read("/nonexistent/docq/secret", buf, sizeof(buf), &err), DOCQ_ENOTFOUND);
    CHECK_STR_CONTAINS(err.msg, "/nonexistent/docq/secret");
}

static void file_read_limit(void) {
    char path[64], text[100];
    char *out;
    size_t len;
    docq_error err = {0};
    memset(text, 'a', sizeof(text));
    text[50] = '\0';
    temp_file(path, text, sizeof(text));
    CHECK_INT_EQ(docq_file_read(path, 100, &out, &len, &err), DOCQ_OK);
    CHECK_INT_EQ(len, 100);
    CHECK(out && out[100] == '\0' && out[50] == '\0' && out[99] == 'a');
    free(out);
    CHECK_INT_EQ(docq_file_read(path, 99, &out, &len, &err), DOCQ_EINVAL);
    CHECK_STR_CONTAINS(err.msg, "larger than 99 bytes");
    CHECK(out == NULL && len == 0);
    unlink(path);
}

CHECK_MAIN(
    CHECK_CASE(secret_line_endings,
               "a secret file gives its one line without the line ending, spaces kept"),
    CHECK_CASE(secret_refusals_never_quote,
               "an empty, two-line, NUL-holding or overlong secret file is refused, naming the "
               "file and never its contents"),
    CHECK_CASE(not_regular_files_refused,
               "a directory, a FIFO (at once, without blocking) and a missing file are refused"),
    CHECK_CASE(file_read_limit,
               "a file larger than the limit is refused, and one at the limit is read whole"))
