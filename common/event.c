/* event.c -- parsing task change events. See event.h. */
#include <string.h>

#include "event.h"

#define NETSTRING_LEN_DIGITS 10 /* Lengths up to 9,999,999,999 bytes: Redis strings stop at 512 MB. */

/* Read the netstring at buf[*pos..len): on DOCQ_OK *s and *n are its bytes
 * and *pos is past its comma. DOCQ_EINVAL when it is malformed or cut. */
static int netstring(const char *buf, size_t len, size_t *pos, const char **s, size_t *n) {
    size_t i = *pos, v = 0, digits = 0;
    for (; i < len && buf[i] >= '0' && buf[i] <= '9'; i++, digits++) {
        if (digits == NETSTRING_LEN_DIGITS) return DOCQ_EINVAL;
        v = v * 10 + (size_t)(buf[i] - '0');
    }
    if (digits == 0 || (digits > 1 && buf[*pos] == '0')) return DOCQ_EINVAL;
    if (i >= len || buf[i] != ':') return DOCQ_EINVAL;
    i++;
    if (v > len - i || len - i - v < 1 || buf[i + v] != ',') return DOCQ_EINVAL;
    *s = buf + i;
    *n = v;
    *pos = i + v + 1;
    return DOCQ_OK;
}

int docq_event_task_id(const char *buf, size_t len, const char **id, size_t *idlen) {
    size_t pos = 0;
    return netstring(buf, len, &pos, id, idlen);
}

int docq_event_parse(const char *buf, size_t len, docq_task *out, docq_error *err) {
    size_t pos = 0, idlen, nlen, vlen;
    const char *id, *name, *val;
    int shard, rc, have_version = 0;
    docq_task_clear(out);
    if (netstring(buf, len, &pos, &id, &idlen) != DOCQ_OK)
        return docq_error_set(err, DOCQ_EINVAL, "event does not start with a netstring");
    if (docq_task_id_parse(id, idlen, &shard, NULL) != DOCQ_OK)
        return docq_error_set(err, DOCQ_EINVAL, "event names a malformed task id");
    memcpy(out->task_id, id, idlen);
    out->task_id[idlen] = '\0';
    while (pos < len) {
        if (netstring(buf, len, &pos, &name, &nlen) != DOCQ_OK) {
            rc = docq_error_set(err, DOCQ_EINVAL, "malformed field name at byte %zu", pos);
            goto fail;
        }
        if (netstring(buf, len, &pos, &val, &vlen) != DOCQ_OK) {
            rc = docq_error_set(err, DOCQ_EINVAL, "field '%.*s' has no well-formed value",
                                (int)(nlen > 64 ? 64 : nlen), name);
            goto fail;
        }
        rc = docq_task_set_field(out, name, nlen, val, vlen);
        if (rc != DOCQ_OK) {
            rc = rc == DOCQ_ERR ? docq_error_set(err, DOCQ_ERR, "out of memory")
                                : docq_error_set(err, DOCQ_EINVAL, "field '%.*s' has a bad value",
                                                 (int)(nlen > 64 ? 64 : nlen), name);
            goto fail;
        }
        if (nlen == 7 && memcmp(name, "version", 7) == 0) have_version = 1;
    }
    if (!have_version) {
        rc = docq_error_set(err, DOCQ_EINVAL, "event has no version");
        goto fail;
    }
    return DOCQ_OK;
fail:
    docq_task_clear(out);
    return rc;
}
