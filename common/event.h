/* event.h -- task change events: the messages the state-changing scripts
 * publish and the server's subscriber reads.
 *
 * Every script in store.c that changes a task record adds 1 to its version
 * and, in the same atomic step, publishes the whole record on its shard's
 * channel P:{sN}:events (store.h). The payload is a run of netstrings, each
 * "<decimal length>:<bytes>,": first the task id, then the record's fields
 * and values in pairs, as HGETALL returns them. Netstrings carry any bytes
 * (an AI answer may hold colons, commas and NULs) and need no escaping.
 *
 *   "35:s3-00112233445566778899aabbccddeeff,6:doc_id,5:doc_1,5:state,7:PENDING,..."
 *
 * The functions here are pure: they read only the bytes given and write only
 * their out-parameters, so they can be fuzzed on their own. */
#ifndef DOCQ_EVENT_H
#define DOCQ_EVENT_H

#include <stddef.h>

#include "error.h"
#include "task.h"

/* Read the first netstring of an event payload: the task id. *id points
 * into buf (not NUL-terminated), *idlen is its length. Returns DOCQ_OK or
 * DOCQ_EINVAL when the payload does not start with a well-formed netstring.
 * Cheap: lets a reader drop events about tasks nobody watches before
 * parsing the rest. */
int docq_event_task_id(const char *buf, size_t len, const char **id, size_t *idlen);

/* Parse a whole event payload into out (cleared first; free with
 * docq_task_clear): task_id from the first netstring, every other field
 * through docq_task_set_field. Returns DOCQ_OK; DOCQ_EINVAL with the reason
 * for a malformed payload (a bad netstring, bytes after the last one, a
 * field without its value, a task id docq could not have issued, a value
 * docq_task_set_field refuses, no version); DOCQ_ERR when out of memory. On
 * failure out is left cleared. */
int docq_event_parse(const char *buf, size_t len, docq_task *out, docq_error *err);

#endif
