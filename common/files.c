/* files.c -- bounded reads of secret and certificate files. See files.h. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "files.h"

#define SECRET_FILE_MAX 65536

/* Read up to max + 1 bytes of fd into a new buffer (one more than allowed,
 * so that a file that grew past max is caught). */
static int read_all(int fd, const char *path, size_t max, char **out, size_t *len, docq_error *err) {
    size_t cap = max + 2, n = 0;
    char *buf = malloc(cap);
    if (!buf) return docq_error_set(err, DOCQ_ERR, "%s: out of memory", path);
    for (;;) {
        ssize_t got = read(fd, buf + n, cap - 1 - n);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) {
            int e = errno;
            free(buf);
            return docq_error_set(err, DOCQ_ERR, "cannot read %s: %s", path, strerror(e));
        }
        if (got == 0) break;
        n += (size_t)got;
        if (n > max) {
            free(buf);
            return docq_error_set(err, DOCQ_EINVAL, "%s is larger than %zu bytes", path, max);
        }
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return DOCQ_OK;
}

int docq_file_read(const char *path, size_t max, char **out, size_t *len, docq_error *err) {
    struct stat st;
    *out = NULL;
    *len = 0;
    /* O_NONBLOCK: opening a FIFO must not wait for a writer. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) {
        int e = errno;
        return docq_error_set(err, e == ENOENT ? DOCQ_ENOTFOUND : DOCQ_ERR, "cannot open %s: %s", path,
                              strerror(e));
    }
    int rc;
    if (fstat(fd, &st) != 0)
        rc = docq_error_set(err, DOCQ_ERR, "cannot stat %s: %s", path, strerror(errno));
    else if (!S_ISREG(st.st_mode))
        rc = docq_error_set(err, DOCQ_EINVAL, "%s is not a regular file", path);
    else if ((unsigned long long)st.st_size > max)
        rc = docq_error_set(err, DOCQ_EINVAL, "%s is larger than %zu bytes", path, max);
    else
        rc = read_all(fd, path, max, out, len, err);
    close(fd);
    return rc;
}

int docq_secret_read(const char *path, char *buf, size_t cap, docq_error *err) {
    char *data;
    size_t len;
    memset(buf, 0, cap);
    /* Read more than a secret may hold, so that a file with more in it is
     * refused for what it holds rather than for its size. */
    int rc = docq_file_read(path, SECRET_FILE_MAX, &data, &len, err);
    if (rc != DOCQ_OK) return rc;
    size_t total = len;
    if (len > 0 && data[len - 1] == '\n') len--;
    if (len > 0 && data[len - 1] == '\r') len--;
    if (len == 0)
        rc = docq_error_set(err, DOCQ_EINVAL, "%s is empty", path);
    else if (memchr(data, '\0', len) || memchr(data, '\n', len) || memchr(data, '\r', len))
        rc = docq_error_set(err, DOCQ_EINVAL, "the secret in %s must be one line without NUL bytes", path);
    else if (len >= cap)
        rc = docq_error_set(err, DOCQ_EINVAL, "the secret in %s is longer than %zu bytes", path, cap - 1);
    else
        memcpy(buf, data, len);
    /* The copy held a secret: wipe it before giving the memory back. */
    explicit_bzero(data, total);
    free(data);
    return rc;
}
