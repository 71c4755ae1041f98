/* task.c -- task states, ids and record fields. See task.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "task.h"

static const char *state_names[] = {"STATE_UNSPECIFIED", "PENDING", "STARTED", "SUCCESS", "FAILURE",
                                     "CANCELLED"};

const char *docq_task_state_name(docq_task_state s) {
    return (s >= DOCQ_STATE_PENDING && s <= DOCQ_STATE_CANCELLED) ? state_names[s] : state_names[0];
}

int docq_task_state_parse(const char *name, size_t len, docq_task_state *out) {
    for (int i = DOCQ_STATE_PENDING; i <= DOCQ_STATE_CANCELLED; i++) {
        if (strlen(state_names[i]) == len && memcmp(state_names[i], name, len) == 0) {
            *out = (docq_task_state)i;
            return DOCQ_OK;
        }
    }
    return DOCQ_EINVAL;
}

int docq_task_state_terminal(docq_task_state s) {
    return s == DOCQ_STATE_SUCCESS || s == DOCQ_STATE_FAILURE || s == DOCQ_STATE_CANCELLED;
}

/* Decode one UTF-8 sequence at s (n bytes available). Returns its length and
 * sets *cp, or 0 for an invalid, overlong, surrogate or out-of-range one. */
static size_t utf8_decode(const unsigned char *s, size_t n, unsigned *cp) {
    size_t len;
    unsigned c = s[0], min;
    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if ((c & 0xe0) == 0xc0) {
        len = 2, c &= 0x1f, min = 0x80;
    } else if ((c & 0xf0) == 0xe0) {
        len = 3, c &= 0x0f, min = 0x800;
    } else if ((c & 0xf8) == 0xf0) {
        len = 4, c &= 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (len > n) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        c = (c << 6) | (s[i] & 0x3f);
    }
    if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) return 0;
    *cp = c;
    return len;
}

int docq_doc_id_validate(const char *s, size_t len, docq_error *err) {
    if (len == 0) return docq_error_set(err, DOCQ_EINVAL, "doc_id is empty");
    if (len > DOCQ_DOC_ID_MAX)
        return docq_error_set(err, DOCQ_EINVAL, "doc_id is %zu bytes long, the limit is %d", len,
                              DOCQ_DOC_ID_MAX);
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < len;) {
        unsigned cp;
        size_t n = utf8_decode(p + i, len - i, &cp);
        if (n == 0)
            return docq_error_set(err, DOCQ_EINVAL, "doc_id is not valid UTF-8 (at byte %zu)", i);
        if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f))
            return docq_error_set(err, DOCQ_EINVAL,
                                  "doc_id contains control character U+%04X at byte %zu", cp, i);
        i += n;
    }
    return DOCQ_OK;
}

int docq_request_id_validate(const char *s, size_t len, docq_error *err) {
    if (len == 0) return docq_error_set(err, DOCQ_EINVAL, "request_id is empty");
    if (len > DOCQ_REQUEST_ID_MAX)
        return docq_error_set(err, DOCQ_EINVAL, "request_id is %zu bytes long, the limit is %d", len,
                              DOCQ_REQUEST_ID_MAX);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c > 0x7e)
            return docq_error_set(err, DOCQ_EINVAL,
                                  "request_id holds byte 0x%02x at byte %zu: only printable ASCII is allowed", c, i);
    }
    return DOCQ_OK;
}

int docq_utf8_valid(const char *s, size_t len) {
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < len;) {
        unsigned cp;
        size_t n = p[i] < 0x80 ? 1 : utf8_decode(p + i, len - i, &cp);
        if (n == 0) return 0;
        i += n;
    }
    return 1;
}

/* Random bytes are drawn from getrandom RANDOM_POOL at a time into a pool
 * of the calling thread's own (no other thread ever touches it), so that a
 * busy server makes one system call per 16 task ids, not one per id. Bytes
 * are handed out once and wiped from the pool as they are. */
#define RANDOM_POOL 256
static _Thread_local unsigned char random_pool[RANDOM_POOL];
static _Thread_local size_t random_left;  /* Unused bytes at the pool's end. */

/* Refill the calling thread's pool. Returns DOCQ_OK or DOCQ_ERR. */
static int random_refill(docq_error *err) {
    size_t got = 0;
    while (got < RANDOM_POOL) {
        ssize_t n = getrandom(random_pool + got, RANDOM_POOL - got, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return docq_error_set(err, DOCQ_ERR, "getrandom: %s", strerror(errno));
        got += (size_t)n;
    }
    random_left = RANDOM_POOL;
    return DOCQ_OK;
}

int docq_random_hex(char *buf, size_t cap, size_t nbytes, docq_error *err) {
    static const char hex[] = "0123456789abcdef";
    if (nbytes > 64 || cap < 2 * nbytes + 1) return docq_error_set(err, DOCQ_ERR, "random hex buffer too small");
    for (size_t i = 0; i < nbytes; i++) {
        if (!random_left && random_refill(err) != DOCQ_OK) return DOCQ_ERR;
        unsigned char *b = &random_pool[RANDOM_POOL - random_left--];
        buf[2 * i] = hex[*b >> 4];
        buf[2 * i + 1] = hex[*b & 15];
        *b = 0;
    }
    buf[2 * nbytes] = '\0';
    return DOCQ_OK;
}

int docq_task_id_new(int shard, char *buf, size_t cap, docq_error *err) {
    int n = snprintf(buf, cap, "s%d-", shard);
    if (n < 0 || (size_t)n + 33 > cap) return docq_error_set(err, DOCQ_ERR, "task id buffer too small");
    return docq_random_hex(buf + n, cap - (size_t)n, 16, err);
}

int docq_task_id_parse(const char *s, size_t len, int *shard, docq_error *err) {
    size_t i = 1;
    int v = 0;
    if (len == 0) return docq_error_set(err, DOCQ_EINVAL, "task_id is empty");
    if (s[0] != 's') goto bad;
    for (; i < len && i < 6 && s[i] >= '0' && s[i] <= '9'; i++) v = v * 10 + (s[i] - '0');
    if (i == 1 || i >= len || s[i] != '-' || (s[1] == '0' && i > 2)) goto bad;
    if (len - i - 1 != 32) goto bad;
    for (i++; i < len; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) goto bad;
    *shard = v;
    return DOCQ_OK;
bad:
    return docq_error_set(err, DOCQ_EINVAL,
                          "task_id is malformed: expected s<shard>-<32 hex digits>, as SubmitDoc returns");
}

int docq_task_id_shard(const char *task_id) {
    int v = 0;
    if (!task_id[0]) return 0;
    for (int i = 1; i < 10 && task_id[i] >= '0' && task_id[i] <= '9'; i++) v = v * 10 + (task_id[i] - '0');
    return v;
}

int docq_shard_for(const char *caller, size_t len, int shards) {
    uint64_t h = 14695981039346656037ULL; /* FNV-1a, 64 bits. */
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)caller[i];
        h *= 1099511628211ULL;
    }
    return (int)(h % (uint64_t)shards);
}

/* Parse a non-negative decimal integer of exactly vlen bytes. */
static int parse_i64(const char *v, size_t vlen, int64_t *out) {
    int64_t x = 0;
    if (vlen == 0 || vlen > 18) return DOCQ_EINVAL;
    for (size_t i = 0; i < vlen; i++) {
        if (v[i] < '0' || v[i] > '9') return DOCQ_EINVAL;
        x = x * 10 + (v[i] - '0');
    }
    *out = x;
    return DOCQ_OK;
}

/* Replace *dst with an owned, NUL-terminated copy of v. */
static int set_owned(char **dst, size_t *dlen, const char *v, size_t vlen) {
    char *copy = malloc(vlen + 1);
    if (!copy) return DOCQ_ERR;
    memcpy(copy, v, vlen);
    copy[vlen] = '\0';
    free(*dst);
    *dst = copy;
    if (dlen) *dlen = vlen;
    return DOCQ_OK;
}

#define FIELD_IS(lit) (nlen == sizeof(lit) - 1 && memcmp(name, lit, nlen) == 0)

int docq_task_set_field(docq_task *t, const char *name, size_t nlen, const char *val, size_t vlen) {
    int64_t n;
    if (FIELD_IS("doc_id")) {
        if (vlen > DOCQ_DOC_ID_MAX) return DOCQ_EINVAL;
        memcpy(t->doc_id, val, vlen);
        t->doc_id[vlen] = '\0';
    } else if (FIELD_IS("state")) {
        return docq_task_state_parse(val, vlen, &t->state);
    } else if (FIELD_IS("result")) {
        return set_owned(&t->result, &t->result_len, val, vlen);
    } else if (FIELD_IS("error")) {
        return set_owned(&t->error, NULL, val, vlen);
    } else if (FIELD_IS("owner")) {
        if (vlen == 0 || vlen >= DOCQ_OWNER_MAX || memchr(val, '\0', vlen)) return DOCQ_EINVAL;
        return set_owned(&t->owner, NULL, val, vlen);
    } else if (FIELD_IS("attempts")) {
        if (parse_i64(val, vlen, &n) != DOCQ_OK || n > UINT32_MAX) return DOCQ_EINVAL;
        t->attempts = (uint32_t)n;
    } else if (FIELD_IS("deliveries")) {
        if (parse_i64(val, vlen, &n) != DOCQ_OK || n > UINT32_MAX) return DOCQ_EINVAL;
        t->deliveries = (uint32_t)n;
    } else if (FIELD_IS("created_at")) {
        return parse_i64(val, vlen, &t->created_at_ms);
    } else if (FIELD_IS("started_at")) {
        return parse_i64(val, vlen, &t->started_at_ms);
    } else if (FIELD_IS("finished_at")) {
        return parse_i64(val, vlen, &t->finished_at_ms);
    } else if (FIELD_IS("version")) {
        if (parse_i64(val, vlen, &n) != DOCQ_OK) return DOCQ_EINVAL;
        t->version = (uint64_t)n;
    } else if (FIELD_IS("seq")) {
        if (parse_i64(val, vlen, &n) != DOCQ_OK) return DOCQ_EINVAL;
        t->seq = (uint64_t)n;
    } else if (FIELD_IS("deadline")) {
        return parse_i64(val, vlen, &t->deadline_ms);
    }
    return DOCQ_OK;
}

void docq_task_clear(docq_task *t) {
    free(t->result);
    free(t->error);
    free(t->owner);
    memset(t, 0, sizeof(*t));
}
