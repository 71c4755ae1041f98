/* auth.h -- the server's API keys, replaceable while it serves.
 *
 * The table is read by every server thread (one lookup per call) and
 * replaced by the main thread when SIGHUP asks for a reload. A read-write
 * lock guards the pointer: a lookup copies the entry it finds out under the
 * read lock, so no thread ever holds a pointer into a table that a reload
 * frees; a reload parses the new file first, without the lock, and only
 * swaps the pointer under the write lock. */
#ifndef DOCQ_AUTH_H
#define DOCQ_AUTH_H

#include <stddef.h>

#include "apikeys.h"
#include "error.h"

typedef struct docq_auth docq_auth;

/* Create the holder for the keys file at path (copied) and load it. An empty
 * path means no keys file: callers are then not asked for keys. Returns NULL
 * with err when the file cannot be read or parsed, or out of memory. */
docq_auth *docq_auth_create(const char *path, docq_error *err);

/* Free a; no thread may use it any more. NULL is fine. */
void docq_auth_free(docq_auth *a);

/* 1 when a keys file is in use (callers must send a key). */
int docq_auth_enabled(const docq_auth *a);

/* Re-read the keys file and, when it parses, replace the table (calls in
 * flight finish with the old one). Returns DOCQ_OK with *count the number of
 * keys now in force, or the error of docq_apikeys_load, in which case the
 * old table stays. DOCQ_OK with nothing done when no file is in use. */
int docq_auth_reload(docq_auth *a, size_t *count, docq_error *err);

/* Look up key (len bytes, as sent) and copy its entry into out. Returns
 * DOCQ_OK, or DOCQ_ENOTFOUND for an unknown key. Thread-safe. */
int docq_auth_lookup(docq_auth *a, const char *key, size_t len, docq_apikey *out);

#endif
