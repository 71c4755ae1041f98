/* apikeys.h -- the API keys file: who a key belongs to and its own limit.
 *
 * One line per key, fields separated by white space:
 *
 *   <caller id> <sha256 hex of the key> [<limit> [<window seconds>]]
 *
 * e.g. "acme 2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae 100 60".
 * The hash is 64 lowercase hex digits; keys themselves are never stored. A
 * caller id is 1 to DOCQ_CALLER_ID_MAX printable ASCII characters; one caller
 * may have several keys (to rotate them). The limit (0: none) and the window
 * replace the server's DOCQ_RATE_LIMIT and DOCQ_RATE_WINDOW_S for that key's
 * SubmitDocs. `#` starts a comment; blank lines are ignored.
 *
 * docq_apikeys_parse is a pure function over a buffer (it is fuzzed): any
 * bytes in, a table or an error naming the line out. */
#ifndef DOCQ_APIKEYS_H
#define DOCQ_APIKEYS_H

#include <stddef.h>

#include "error.h"

#define DOCQ_CALLER_ID_MAX 64
#define DOCQ_RATE_LIMIT_MAX 1000000000L
#define DOCQ_RATE_WINDOW_MAX_S 86400L

typedef struct docq_apikey {
    char caller[DOCQ_CALLER_ID_MAX + 1]; /* Caller id, NUL-terminated. */
    unsigned char digest[32];            /* SHA-256 of the key. */
    long limit;                          /* Own SubmitDoc limit (0: none), or -1: the server's. */
    long window_s;                       /* Own window, or -1: the server's. */
    int line;                            /* Line of the file that defined it. */
} docq_apikey;

typedef struct docq_apikeys docq_apikeys;

/* Parse a keys file held in buf (len bytes; any bytes, NUL-terminated or
 * not). Returns a new table (free with docq_apikeys_free), or NULL with err:
 * DOCQ_EINVAL and "line N: reason" for bad content (the same key twice
 * included), DOCQ_ERR when out of memory. An empty file gives an empty table
 * (every key is then unknown). */
docq_apikeys *docq_apikeys_parse(const char *buf, size_t len, docq_error *err);

/* Read and parse the file at path. Returns as docq_apikeys_parse, with
 * DOCQ_ENOTFOUND / DOCQ_ERR and the reason when the file cannot be read. */
docq_apikeys *docq_apikeys_load(const char *path, docq_error *err);

void docq_apikeys_free(docq_apikeys *t);

/* Number of keys in t. */
size_t docq_apikeys_count(const docq_apikeys *t);

/* The entry of key (len bytes, as the client sent it), or NULL when unknown.
 * The pointer is valid while t is. */
const docq_apikey *docq_apikeys_find(const docq_apikeys *t, const char *key, size_t len);

/* SHA-256 of data into out (libcrypto). Returns DOCQ_OK or DOCQ_ERR. */
int docq_sha256(const void *data, size_t len, unsigned char out[32]);

#endif
