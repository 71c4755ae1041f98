/* files.h -- reading small files that hold secrets or certificates.
 *
 * Settings name files (DOCQ_REDIS_PASSWORD_FILE, DOCQ_TLS_CERT...) whose
 * contents must never show up in a log line or an error message: the
 * functions here name the file and the reason, never a byte of it. Only
 * regular files are read (a FIFO or a device named by mistake would block or
 * never end), up to a size limit. */
#ifndef DOCQ_FILES_H
#define DOCQ_FILES_H

#include <stddef.h>

#include "error.h"

/* Read the whole regular file at path, at most max bytes. On DOCQ_OK *out
 * is a malloc'd copy (the caller frees it; NUL-terminated after *len bytes,
 * which may hold NULs). Returns DOCQ_ENOTFOUND (no such file), DOCQ_EINVAL
 * (not a regular file, or larger than max) or DOCQ_ERR (cannot be read, out
 * of memory), with a reason naming path and never quoting its contents. */
int docq_file_read(const char *path, size_t max, char **out, size_t *len, docq_error *err);

/* Read a one-line secret (a password) from the file at path into buf
 * (capacity cap, NUL-terminated): the file's bytes without one trailing
 * "\n" or "\r\n". Returns DOCQ_OK, or an error as docq_file_read's, or
 * DOCQ_EINVAL when the secret is empty, does not fit, holds a NUL or a line
 * break. buf is zeroed on failure. The reason never quotes the file. */
int docq_secret_read(const char *path, char *buf, size_t cap, docq_error *err);

#endif
