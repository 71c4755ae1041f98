/* fake_ai.c -- docq-fake-ai: a small HTTP/1.1 server standing in for the slow AI service in
 * tests, demos and benchmarks. Plain C11 + POSIX + pthreads; it links against nothing of docq.
 *
 * Endpoints
 *   POST <any path>  body {"task_id":"...","doc_id":"..."} (conventionally POST /process).
 *                    After --latency-ms (plus a random 0 to --latency-jitter-ms) it answers 200
 *                    {"doc_id":"<doc_id>","summary":"processed <doc_id>"} (or exactly the bytes of
 *                    --answer-hex, NULs included); a request chosen to fail
 *                    answers --fail-status with {"error":"injected failure"} (and Retry-After when
 *                    --retry-after > 0); a doc_id starting with --reject-prefix always answers
 *                    --reject-status with {"error":"rejected document"} (a permanent failure); a
 *                    body without a string doc_id answers 400 {"error":"missing doc_id"}. A doc_id
 *                    starting with --hold-prefix waits an hour instead of the latency: a call
 *                    that stays in flight until its client gives up (tests of cancelling).
 *   POST /reset      clears the counters and the set of seen task ids: 200 {"ok":true}.
 *   GET /stats       200 {"requests":R,"ok":O,"failed":F,"distinct_tasks":D,"duplicate_tasks":U,
 *                    "in_flight":I,"max_in_flight":M,"connections":C,"client_closed":K} (C:
 *                    connections accepted since the start, never reset; K: requests whose client
 *                    closed the connection while it waited for the latency).
 *   GET /healthz     200 ok. Any other GET is 404; any other method is 405.
 *
 * Counters
 *   Every POST other than /reset is a request. It takes the next sequence number and, when it
 *   carries a task_id, the count of requests for that task so far, which decide whether it fails
 *   with --fail-status: the first N requests of each task for --fail-first N; else each with a
 *   probability of P% for --fail-percent P; else numbers N, 2N, ... for --fail-every N, all of
 *   them for --fail-every 0. With --log-requests 1 each answer is logged with its task_id, its
 *   status and that count. It is in flight from the moment its body has been read until its answer is
 *   decided, and then counts as ok (answered 200) or failed (anything else: injected failures and
 *   bodies without a doc_id). While it waits for its latency the server watches the connection: a
 *   client that closes it (or shuts down its sending side, or resets it) ends the wait at once,
 *   and the request counts as client_closed, neither ok nor failed, and gets no answer (with
 *   --log-requests 1 a line says so, with the time it had waited). A request whose body carries
 *   a task_id adds it to the seen set; if the id was there already, the request counts as a
 *   duplicate. A test that sends every task to
 *   the AI exactly once therefore expects duplicate_tasks == 0 and distinct_tasks == #tasks.
 *   POST /reset starts a new generation: sequence numbers restart at 1, and requests still in
 *   flight stay in in_flight but are counted neither ok nor failed when they finish.
 *
 * HTTP
 *   Keep-alive as HTTP/1.1 says (HTTP/1.0 only with Connection: keep-alive). Bodies are framed by
 *   Content-Length only; a Transfer-Encoding header gets 411. The request line plus headers may
 *   take 16 KiB (431 beyond), the body 1 MiB (413 beyond). A request that cannot be parsed gets
 *   400, and the connection is closed after any such error answer. Every answer has a
 *   Content-Length.
 *
 * Threads, and who touches what
 *   main thread         parses the options, binds the listener, writes the port file, runs the
 *                       accept loop and returns when the stop pipe becomes readable;
 *   signal thread       SIGTERM and SIGINT are blocked in every thread, so no handler ever runs:
 *                       this thread takes them with sigwait() and writes the signal number to the
 *                       stop pipe;
 *   connection threads  one detached thread per accepted socket (64 KiB stack) serves that
 *                       socket's requests in order and owns its struct conn.
 *   The only state they share is struct fake_server: its config is written by main before the
 *   first connection thread starts and only read afterwards, and its stats are guarded by a
 *   mutex. The server is never freed, because connection threads may still be running when main
 *   returns; in-flight connections are simply dropped at exit. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

/* Same values as common/error.h; this program is built on its own. */
#define DOCQ_OK 0
#define DOCQ_ERR -1

#define PROGRAM_NAME "docq-fake-ai"
#define MAX_HEAD_BYTES (16 * 1024)        /* Request line plus headers, blank line included. */
#define MAX_BODY_BYTES (1024 * 1024)
#define CONN_BUFFER_BYTES MAX_HEAD_BYTES  /* A connection's read buffer between large requests. */
#define THREAD_STACK_BYTES (64 * 1024)
#define LISTEN_BACKLOG 4096               /* The kernel caps it at net.core.somaxconn. */
#define ACCEPT_BATCH 64                   /* Accepts per poll round, so a stop is seen promptly. */
#define LINGER_MS 1000                    /* How long a closing connection drains its input. */
#define HOLD_MS (3600L * 1000)            /* --hold-prefix: how long such POSTs wait. */
#define LINGER_MAX_BYTES (2 * 1024 * 1024)

/* ---------------------------------------------------------------------------------------------
 * Growable byte buffer. */

struct strbuf {
    char *data;  /* NUL-terminated contents, or NULL while nothing was appended. */
    size_t len;  /* Bytes used, terminator excluded. */
    size_t cap;  /* Bytes allocated. */
    int failed;  /* Set once an allocation failed; every later append is then ignored. */
};

/* Makes room for extra more bytes plus the terminator. Returns DOCQ_OK, or DOCQ_ERR (and sets
 * failed) when memory runs out. */
static int sb_reserve(struct strbuf *sb, size_t extra) {
    if (sb->failed) return DOCQ_ERR;
    if (extra >= SIZE_MAX / 4 - sb->len) {
        sb->failed = 1;
        return DOCQ_ERR;
    }
    size_t need = sb->len + extra + 1;
    if (need <= sb->cap) return DOCQ_OK;
    size_t cap = sb->cap ? sb->cap : 64;
    while (cap < need) cap *= 2;
    char *grown = realloc(sb->data, cap);
    if (grown == NULL) {
        sb->failed = 1;
        return DOCQ_ERR;
    }
    sb->data = grown;
    sb->cap = cap;
    return DOCQ_OK;
}

static void sb_append(struct strbuf *sb, const char *data, size_t len) {
    if (sb_reserve(sb, len) != DOCQ_OK) return;
    memcpy(sb->data + sb->len, data, len);
    sb->len += len;
    sb->data[sb->len] = '\0';
}

static void sb_appends(struct strbuf *sb, const char *s) { sb_append(sb, s, strlen(s)); }

static void sb_vappendf(struct strbuf *sb, const char *fmt, va_list ap) {
    va_list copy;
    va_copy(copy, ap);
    int n = vsnprintf(NULL, 0, fmt, copy);
    va_end(copy);
    if (n < 0) {
        sb->failed = 1;
        return;
    }
    if (sb_reserve(sb, (size_t)n) != DOCQ_OK) return;
    vsnprintf(sb->data + sb->len, (size_t)n + 1, fmt, ap);
    sb->len += (size_t)n;
}

__attribute__((format(printf, 2, 3))) static void sb_appendf(struct strbuf *sb, const char *fmt,
                                                             ...) {
    va_list ap;
    va_start(ap, fmt);
    sb_vappendf(sb, fmt, ap);
    va_end(ap);
}

/* Empties the buffer but keeps its memory (and its failed flag). */
static void sb_clear(struct strbuf *sb) {
    sb->len = 0;
    if (sb->data) sb->data[0] = '\0';
}

static void sb_free(struct strbuf *sb) {
    free(sb->data);
    *sb = (struct strbuf){0};
}

/* ---------------------------------------------------------------------------------------------
 * JSON: escaping for output, and a tolerant string-field extractor for request bodies. */

/* Appends len bytes of s to sb as the inside of a JSON string: quotes, backslashes and control
 * characters are escaped, every other byte is copied as it is. */
static void json_append_escaped(struct strbuf *sb, const char *s, size_t len) {
    size_t run = 0; /* Start of the bytes not yet copied. */
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\' && c != 0x7f) continue;
        sb_append(sb, s + run, i - run);
        run = i + 1;
        switch (c) {
        case '"': sb_append(sb, "\\\"", 2); break;
        case '\\': sb_append(sb, "\\\\", 2); break;
        case '\n': sb_append(sb, "\\n", 2); break;
        case '\r': sb_append(sb, "\\r", 2); break;
        case '\t': sb_append(sb, "\\t", 2); break;
        default: sb_appendf(sb, "\\u%04x", c); break;
        }
    }
    sb_append(sb, s + run, len - run);
}

static int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Reads the four hex digits at text[pos..pos+3] into *code. Returns DOCQ_OK, or DOCQ_ERR when
 * they run past len or are not hex. */
static int read_hex4(const char *text, size_t len, size_t pos, unsigned *code) {
    if (pos > len || len - pos < 4) return DOCQ_ERR;
    unsigned value = 0;
    for (size_t i = pos; i < pos + 4; i++) {
        int d = hex_digit(text[i]);
        if (d < 0) return DOCQ_ERR;
        value = value * 16 + (unsigned)d;
    }
    *code = value;
    return DOCQ_OK;
}

static void append_utf8(struct strbuf *out, unsigned cp) {
    char b[4];
    size_t n;
    if (cp < 0x80) {
        b[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        b[0] = (char)(0xC0 | (cp >> 6));
        b[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        b[0] = (char)(0xE0 | (cp >> 12));
        b[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        b[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        b[0] = (char)(0xF0 | (cp >> 18));
        b[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        b[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        b[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    sb_append(out, b, n);
}

/* Decodes the \u escape whose 'u' is at text[*pos] and appends it to out as UTF-8, joining a
 * surrogate pair; a lone surrogate becomes U+FFFD and malformed hex is kept as a plain "u".
 * Leaves *pos just past what was consumed. */
static void json_decode_unicode(const char *text, size_t len, size_t *pos, struct strbuf *out) {
    unsigned cp, low;
    size_t i = *pos;
    if (read_hex4(text, len, i + 1, &cp) != DOCQ_OK) {
        sb_append(out, "u", 1);
        *pos = i + 1;
        return;
    }
    i += 5;
    if (cp >= 0xD800 && cp <= 0xDBFF) {
        if (i + 1 < len && text[i] == '\\' && text[i + 1] == 'u' &&
            read_hex4(text, len, i + 2, &low) == DOCQ_OK && low >= 0xDC00 && low <= 0xDFFF) {
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
            i += 6;
        } else {
            cp = 0xFFFD;
        }
    } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
        cp = 0xFFFD;
    }
    append_utf8(out, cp);
    *pos = i;
}

/* Decodes the JSON string whose opening quote is at text[*pos], appending its bytes to out.
 * Returns DOCQ_OK with *pos just past the closing quote, or DOCQ_ERR when the string is not
 * terminated within len. Tolerant: an unknown escape yields the escaped character itself. */
static int json_read_string(const char *text, size_t len, size_t *pos, struct strbuf *out) {
    size_t i = *pos + 1;
    while (i < len) {
        size_t run = i;
        while (i < len && text[i] != '"' && text[i] != '\\') i++;
        sb_append(out, text + run, i - run);
        if (i >= len) break;
        if (text[i] == '"') {
            *pos = i + 1;
            return DOCQ_OK;
        }
        if (++i >= len) break; /* Past the backslash; nothing follows it. */
        switch (text[i]) {
        case 'b': sb_append(out, "\b", 1); i++; break;
        case 'f': sb_append(out, "\f", 1); i++; break;
        case 'n': sb_append(out, "\n", 1); i++; break;
        case 'r': sb_append(out, "\r", 1); i++; break;
        case 't': sb_append(out, "\t", 1); i++; break;
        case 'u': json_decode_unicode(text, len, &i, out); break;
        default: sb_append(out, text + i, 1); i++; break; /* \" \\ \/ and unknown ones. */
        }
    }
    return DOCQ_ERR;
}

static size_t skip_json_space(const char *text, size_t len, size_t pos) {
    while (pos < len && (text[pos] == ' ' || text[pos] == '\t' || text[pos] == '\n' ||
                         text[pos] == '\r'))
        pos++;
    return pos;
}

/* Looks for "key": "<string>" anywhere in the len bytes of text (which need not be valid JSON
 * nor NUL-terminated) and decodes the first such string value into value, which the caller owns
 * and frees. Strings are skipped whole, so a key-like text inside a value never matches; a key
 * whose value is not a string is passed over. Returns 1 when found, 0 otherwise (also when memory
 * ran out). */
static int json_find_string_field(const char *text, size_t len, const char *key,
                                  struct strbuf *value) {
    size_t key_len = strlen(key), pos = 0;
    struct strbuf name = {0};
    int found = 0;
    while (!found && pos < len) {
        if (text[pos] != '"') {
            pos++;
            continue;
        }
        sb_clear(&name);
        if (json_read_string(text, len, &pos, &name) != DOCQ_OK || name.failed) break;
        size_t after = skip_json_space(text, len, pos);
        if (after >= len || text[after] != ':') continue; /* A value, not a key. */
        if (name.len != key_len || memcmp(name.data, key, key_len) != 0) continue;
        after = skip_json_space(text, len, after + 1);
        if (after >= len || text[after] != '"') continue;
        sb_clear(value);
        found = json_read_string(text, len, &after, value) == DOCQ_OK && !value->failed;
        pos = after;
    }
    sb_free(&name);
    return found;
}

/* ---------------------------------------------------------------------------------------------
 * Logging: one JSON line per event on stderr, like common/log.c. */

static void format_timestamp(char *out, size_t size) {
    struct timespec now;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    size_t n = strftime(out, size, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, size - n, ".%03ldZ", now.tv_nsec / 1000000);
}

/* Writes {"ts":...,"level":level,"msg":<formatted message>} and a newline to stderr in a single
 * write, so lines from different threads never interleave. */
__attribute__((format(printf, 2, 3))) static void log_line(const char *level, const char *fmt,
                                                           ...) {
    struct strbuf msg = {0}, line = {0};
    char ts[40];
    va_list ap;
    va_start(ap, fmt);
    sb_vappendf(&msg, fmt, ap);
    va_end(ap);
    format_timestamp(ts, sizeof ts);
    sb_appendf(&line, "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":\"", ts, level);
    json_append_escaped(&line, msg.data ? msg.data : "", msg.len);
    sb_append(&line, "\"}\n", 3);
    if (!line.failed) {
        ssize_t ignored = write(STDERR_FILENO, line.data, line.len);
        (void)ignored;
    }
    sb_free(&msg);
    sb_free(&line);
}

/* ---------------------------------------------------------------------------------------------
 * The set of task ids seen: open addressing with linear probing, grown at 3/4 load. */

struct task_slot {
    char *key;      /* Owned, NUL-terminated copy of the task id; NULL marks a free slot. */
    size_t len;     /* Length of key (a \u0000 escape may put a NUL inside it). */
    uint64_t hash;  /* FNV-1a hash of key, kept so that growing needs no rehashing. */
    uint64_t seen;  /* Requests that carried this task id. */
};

struct task_set {
    struct task_slot *slots;  /* cap slots, or NULL before the first add. */
    size_t cap;               /* A power of two, or 0. */
    size_t count;             /* Slots in use: the number of distinct task ids. */
};

static uint64_t fnv1a(const char *data, size_t len) {
    uint64_t h = 14695981039346656037ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)data[i];
        h *= 1099511628211ULL;
    }
    return h;
}

/* Returns the slot holding key, or the free slot where it belongs. The set must have a free
 * slot. */
static struct task_slot *task_set_probe(struct task_set *set, const char *key, size_t len,
                                        uint64_t hash) {
    size_t mask = set->cap - 1;
    for (size_t i = (size_t)hash & mask;; i = (i + 1) & mask) {
        struct task_slot *slot = &set->slots[i];
        if (slot->key == NULL) return slot;
        if (slot->hash == hash && slot->len == len && memcmp(slot->key, key, len) == 0) return slot;
    }
}

/* Doubles the table (or creates it with 64 slots), moving every key. Returns DOCQ_OK, or
 * DOCQ_ERR when memory runs out, leaving the set as it was. */
static int task_set_grow(struct task_set *set) {
    struct task_set bigger = {0};
    bigger.cap = set->cap ? set->cap * 2 : 64;
    bigger.slots = calloc(bigger.cap, sizeof *bigger.slots);
    if (bigger.slots == NULL) return DOCQ_ERR;
    for (size_t i = 0; i < set->cap; i++) {
        struct task_slot *old = &set->slots[i];
        if (old->key != NULL) *task_set_probe(&bigger, old->key, old->len, old->hash) = *old;
    }
    bigger.count = set->count;
    free(set->slots);
    *set = bigger;
    return DOCQ_OK;
}

/* Adds a copy of the len bytes of key to the set, or counts one more request for it. Sets *seen
 * to the number of requests for key so far, this one included (1 when the key is new). Returns
 * DOCQ_OK, or DOCQ_ERR when memory runs out (the set is unchanged). */
static int task_set_add(struct task_set *set, const char *key, size_t len, uint64_t *seen) {
    if ((set->count + 1) * 4 > set->cap * 3 && task_set_grow(set) != DOCQ_OK) return DOCQ_ERR;
    uint64_t hash = fnv1a(key, len);
    struct task_slot *slot = task_set_probe(set, key, len, hash);
    if (slot->key != NULL) {
        *seen = ++slot->seen;
        return DOCQ_OK;
    }
    char *copy = malloc(len + 1);
    if (copy == NULL) return DOCQ_ERR;
    memcpy(copy, key, len);
    copy[len] = '\0';
    *slot = (struct task_slot){copy, len, hash, 1};
    set->count++;
    *seen = 1;
    return DOCQ_OK;
}

/* Frees every key and the table; the set is then empty and may be reused. */
static void task_set_clear(struct task_set *set) {
    for (size_t i = 0; i < set->cap; i++) free(set->slots[i].key);
    free(set->slots);
    *set = (struct task_set){0};
}

/* ---------------------------------------------------------------------------------------------
 * Counters behind GET /stats. See the essay at the top for what each one means. */

struct fake_stats {
    pthread_mutex_t lock;      /* Guards every field below; taken by the connection threads. */
    uint64_t generation;       /* Bumped by POST /reset. */
    uint64_t requests;         /* POSTs (other than /reset) begun in this generation. */
    uint64_t ok;               /* Of those, finished with 200. */
    uint64_t failed;           /* Of those, finished with any other status. */
    uint64_t duplicate_tasks;  /* Of those, carrying a task_id seen before in this generation. */
    uint64_t in_flight;        /* POSTs begun and not yet finished, whatever their generation. */
    uint64_t max_in_flight;    /* Highest in_flight since the last reset. */
    uint64_t connections;      /* Connections accepted since the start; never reset. */
    uint64_t client_closed;    /* Of the POSTs, those whose client left during the latency. */
    uint64_t rng;              /* State of the random sequence behind jitter and --fail-percent. */
    struct task_set tasks;     /* Task ids seen in this generation. */
};

/* What a request got from stats_begin, to be handed back to stats_finish. */
struct stats_ticket {
    uint64_t generation;  /* Generation the request began in. */
    uint64_t seq;         /* 1-based position of the request among its generation's POSTs. */
    uint64_t task_seen;   /* Requests for its task_id so far, this one included; 0 without one. */
    uint64_t random;      /* A random number drawn for this request. */
};

/* A copy of the counters, taken under the lock. */
struct stats_snapshot {
    uint64_t requests, ok, failed, distinct_tasks, duplicate_tasks, in_flight, max_in_flight;
    uint64_t connections, client_closed;
};

/* The next number of the splitmix64 sequence in *state. Call with the stats lock held. */
static uint64_t next_random(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Counts a POST as begun and in flight, and records its task id (task may be NULL when the body
 * has none). Fills *ticket. Returns DOCQ_OK, or DOCQ_ERR when memory runs out, in which case
 * nothing was counted and stats_finish must not be called. */
static int stats_begin(struct fake_stats *stats, const struct strbuf *task,
                       struct stats_ticket *ticket) {
    uint64_t seen = 0;
    int rc = DOCQ_OK;
    pthread_mutex_lock(&stats->lock);
    if (task != NULL) rc = task_set_add(&stats->tasks, task->data, task->len, &seen);
    if (rc == DOCQ_OK) {
        stats->requests++;
        if (seen > 1) stats->duplicate_tasks++;
        ticket->task_seen = seen;
        ticket->random = next_random(&stats->rng);
        stats->in_flight++;
        if (stats->in_flight > stats->max_in_flight) stats->max_in_flight = stats->in_flight;
        ticket->generation = stats->generation;
        ticket->seq = stats->requests;
    }
    pthread_mutex_unlock(&stats->lock);
    return rc;
}

/* Counts a POST begun with stats_begin as finished, ok or failed (unless a reset came since). */
static void stats_finish(struct fake_stats *stats, const struct stats_ticket *ticket, int ok) {
    pthread_mutex_lock(&stats->lock);
    stats->in_flight--;
    if (ticket->generation == stats->generation) {
        if (ok)
            stats->ok++;
        else
            stats->failed++;
    }
    pthread_mutex_unlock(&stats->lock);
}

/* Counts a POST begun with stats_begin as given up: its client closed the connection before the
 * answer (unless a reset came since). */
static void stats_closed(struct fake_stats *stats, const struct stats_ticket *ticket) {
    pthread_mutex_lock(&stats->lock);
    stats->in_flight--;
    if (ticket->generation == stats->generation) stats->client_closed++;
    pthread_mutex_unlock(&stats->lock);
}

/* Starts a new generation: zero counters and an empty task set. in_flight is kept, because
 * the requests it counts will still finish. */
static void stats_reset(struct fake_stats *stats) {
    pthread_mutex_lock(&stats->lock);
    stats->generation++;
    stats->requests = stats->ok = stats->failed = stats->duplicate_tasks = stats->client_closed = 0;
    stats->max_in_flight = stats->in_flight;
    task_set_clear(&stats->tasks);
    pthread_mutex_unlock(&stats->lock);
}

static void stats_read(struct fake_stats *stats, struct stats_snapshot *out) {
    pthread_mutex_lock(&stats->lock);
    out->requests = stats->requests;
    out->ok = stats->ok;
    out->failed = stats->failed;
    out->distinct_tasks = stats->tasks.count;
    out->duplicate_tasks = stats->duplicate_tasks;
    out->in_flight = stats->in_flight;
    out->max_in_flight = stats->max_in_flight;
    out->connections = stats->connections;
    out->client_closed = stats->client_closed;
    pthread_mutex_unlock(&stats->lock);
}

/* ---------------------------------------------------------------------------------------------
 * Configuration and the shared server. */

struct fake_config {
    char listen_host[256];  /* Host part of --listen; empty means every local address. */
    unsigned listen_port;   /* 0 lets the kernel pick a free port. */
    long latency_ms;        /* Delay before each POST answer. */
    int fail_status;        /* Status of injected failures; 0 turns injection off. */
    long fail_every;        /* With fail_status: POSTs N, 2N, ... fail; 0 means all of them. */
    long retry_after;       /* Retry-After seconds on injected failures; 0 sends no header. */
    long latency_jitter_ms; /* Up to this much more delay, drawn at random for each POST. */
    long fail_percent;      /* With fail_status: the chance, in %, that a POST fails (over fail_every). */
    long fail_first;        /* With fail_status: the first N POSTs of each task fail (over the others). */
    const char *reject_prefix; /* doc_ids starting with it get reject_status, or NULL; borrowed. */
    const char *hold_prefix;   /* doc_ids starting with it wait HOLD_MS, or NULL; borrowed. */
    int reject_status;      /* Status of rejected documents (a permanent failure). */
    long log_requests;      /* 1: log one line per POST answer. */
    const char *port_file;  /* Where to write the bound port, or NULL; borrowed from argv/environ. */
    long pad_bytes;         /* Success answers carry a "padding" string of this many bytes. */
    const char *pad_prefix; /* ...only for doc_ids starting with it, or NULL for all; borrowed. */
    char *answer;           /* --answer-hex decoded: every success answer's exact body, or NULL. */
    size_t answer_len;      /* Bytes in answer (it may hold NULs). */
};

struct fake_server {
    struct fake_config config;  /* Written by main before any connection thread; read-only after. */
    struct fake_stats stats;    /* Shared by every connection thread; see its lock. */
};

/* ---------------------------------------------------------------------------------------------
 * Command line and environment. */

static int parse_count(const char *text, long max, long *out) {
    long value = 0;
    if (*text == '\0') return DOCQ_ERR;
    for (const char *p = text; *p != '\0'; p++) {
        if (*p < '0' || *p > '9') return DOCQ_ERR;
        int digit = *p - '0';
        if (value > (max - digit) / 10) return DOCQ_ERR;
        value = value * 10 + digit;
    }
    *out = value;
    return DOCQ_OK;
}

/* Parses HOST:PORT, [IPV6]:PORT, :PORT or *:PORT (the last two mean every address). */
static int parse_listen(const char *text, struct fake_config *cfg) {
    const char *colon = strrchr(text, ':');
    long port;
    if (colon == NULL || parse_count(colon + 1, 65535, &port) != DOCQ_OK) return DOCQ_ERR;
    const char *host = text;
    size_t host_len = (size_t)(colon - text);
    if (host_len > 0 && host[0] == '[') {
        if (host_len < 3 || host[host_len - 1] != ']') return DOCQ_ERR;
        host++;
        host_len -= 2;
    } else if (memchr(host, ':', host_len) != NULL) {
        return DOCQ_ERR; /* An IPv6 address needs brackets. */
    }
    if (host_len == 1 && host[0] == '*') host_len = 0;
    if (host_len >= sizeof cfg->listen_host) return DOCQ_ERR;
    memcpy(cfg->listen_host, host, host_len);
    cfg->listen_host[host_len] = '\0';
    cfg->listen_port = (unsigned)port;
    return DOCQ_OK;
}

static int parse_latency(const char *text, struct fake_config *cfg) {
    return parse_count(text, 24L * 3600 * 1000, &cfg->latency_ms);
}

static int parse_fail_status(const char *text, struct fake_config *cfg) {
    long status;
    if (parse_count(text, 599, &status) != DOCQ_OK) return DOCQ_ERR;
    if (status != 0 && status < 200) return DOCQ_ERR;
    cfg->fail_status = (int)status;
    return DOCQ_OK;
}

static int parse_fail_every(const char *text, struct fake_config *cfg) {
    return parse_count(text, 1000000000L, &cfg->fail_every);
}

static int parse_retry_after(const char *text, struct fake_config *cfg) {
    return parse_count(text, 1000000000L, &cfg->retry_after);
}

static int parse_latency_jitter(const char *text, struct fake_config *cfg) {
    return parse_count(text, 24L * 3600 * 1000, &cfg->latency_jitter_ms);
}

static int parse_fail_percent(const char *text, struct fake_config *cfg) {
    return parse_count(text, 100, &cfg->fail_percent);
}

static int parse_fail_first(const char *text, struct fake_config *cfg) {
    return parse_count(text, 1000000000L, &cfg->fail_first);
}

static int parse_reject_prefix(const char *text, struct fake_config *cfg) {
    cfg->reject_prefix = *text ? text : NULL;
    return DOCQ_OK;
}

static int parse_hold_prefix(const char *text, struct fake_config *cfg) {
    cfg->hold_prefix = *text ? text : NULL;
    return DOCQ_OK;
}

static int parse_reject_status(const char *text, struct fake_config *cfg) {
    long status;
    if (parse_count(text, 599, &status) != DOCQ_OK || status < 200) return DOCQ_ERR;
    cfg->reject_status = (int)status;
    return DOCQ_OK;
}

static int parse_pad_bytes(const char *text, struct fake_config *cfg) {
    return parse_count(text, 64L * 1024 * 1024, &cfg->pad_bytes);
}

static int parse_pad_prefix(const char *text, struct fake_config *cfg) {
    cfg->pad_prefix = *text ? text : NULL;
    return DOCQ_OK;
}

/* --answer-hex: an even number of hex digits, decoded into a buffer that lives as long as the
 * program (the config is never freed). */
static int parse_answer_hex(const char *text, struct fake_config *cfg) {
    size_t n = strlen(text);
    if (n % 2 != 0 || n > 2 * MAX_BODY_BYTES) return DOCQ_ERR;
    free(cfg->answer);
    cfg->answer = NULL;
    cfg->answer_len = 0;
    if (n == 0) return DOCQ_OK;
    char *out = malloc(n / 2);
    if (out == NULL) return DOCQ_ERR;
    for (size_t i = 0; i < n / 2; i++) {
        unsigned v;
        if (!isxdigit((unsigned char)text[2 * i]) || !isxdigit((unsigned char)text[2 * i + 1]) ||
            sscanf(text + 2 * i, "%2x", &v) != 1) {
            free(out);
            return DOCQ_ERR;
        }
        out[i] = (char)v;
    }
    cfg->answer = out;
    cfg->answer_len = n / 2;
    return DOCQ_OK;
}

static int parse_log_requests(const char *text, struct fake_config *cfg) {
    return parse_count(text, 1, &cfg->log_requests);
}

static int parse_port_file(const char *text, struct fake_config *cfg) {
    if (*text == '\0') return DOCQ_ERR;
    cfg->port_file = text;
    return DOCQ_OK;
}

struct option_spec {
    const char *name;        /* Long option, without the dashes. */
    const char *env;         /* Environment variable read when the flag is absent. */
    const char *metavar;     /* Placeholder for the value in --help. */
    const char *fallback;    /* Default value, parsed like a user's (NULL: none). */
    const char *help;        /* One line for --help. */
    int (*parse)(const char *text, struct fake_config *cfg);
};

/* Read-only table; only main uses it. */
static const struct option_spec option_specs[] = {
    {"listen", "FAKEAI_LISTEN", "HOST:PORT", "127.0.0.1:8080",
     "address to listen on; port 0 picks a free port", parse_listen},
    {"latency-ms", "FAKEAI_LATENCY_MS", "N", "0", "delay each POST answer by N milliseconds",
     parse_latency},
    {"fail-status", "FAKEAI_FAIL_STATUS", "CODE", "0",
     "HTTP status (200-599) of injected failures; 0 turns injection off", parse_fail_status},
    {"fail-every", "FAKEAI_FAIL_EVERY", "N", "0",
     "with --fail-status, POSTs N, 2N, ... fail; 0 means every POST fails", parse_fail_every},
    {"retry-after", "FAKEAI_RETRY_AFTER", "S", "0",
     "when > 0, injected failures carry Retry-After: S", parse_retry_after},
    {"latency-jitter-ms", "FAKEAI_LATENCY_JITTER_MS", "N", "0",
     "add a random 0 to N milliseconds to each POST's latency", parse_latency_jitter},
    {"fail-percent", "FAKEAI_FAIL_PERCENT", "P", "0",
     "with --fail-status, each POST fails with a chance of P% (over --fail-every)",
     parse_fail_percent},
    {"fail-first", "FAKEAI_FAIL_FIRST", "N", "0",
     "with --fail-status, the first N POSTs of each task_id fail (over the two above)",
     parse_fail_first},
    {"reject-prefix", "FAKEAI_REJECT_PREFIX", "TEXT", "",
     "POSTs whose doc_id starts with TEXT always answer --reject-status (permanent)",
     parse_reject_prefix},
    {"hold-prefix", "FAKEAI_HOLD_PREFIX", "TEXT", "",
     "POSTs whose doc_id starts with TEXT wait an hour instead of the latency (until the client leaves)",
     parse_hold_prefix},
    {"reject-status", "FAKEAI_REJECT_STATUS", "CODE", "422",
     "HTTP status (200-599) of rejected documents", parse_reject_status},
    {"log-requests", "FAKEAI_LOG_REQUESTS", "0|1", "0",
     "1 logs each POST answer: task_id, status, the task's request count", parse_log_requests},
    {"pad-bytes", "FAKEAI_PAD_BYTES", "N", "0",
     "success answers carry a \"padding\" string of N bytes (large answers)", parse_pad_bytes},
    {"pad-prefix", "FAKEAI_PAD_PREFIX", "TEXT", "",
     "with --pad-bytes, pad only the answers of doc_ids starting with TEXT", parse_pad_prefix},
    {"answer-hex", "FAKEAI_ANSWER_HEX", "HEX", "",
     "success answers are exactly these bytes (hex, e.g. 6f6b00 for o k NUL) instead of JSON",
     parse_answer_hex},
    {"port-file", "FAKEAI_PORT_FILE", "PATH", NULL,
     "after binding, write the bound port and a newline to PATH (atomically)", parse_port_file},
};

#define OPTION_COUNT (sizeof option_specs / sizeof option_specs[0])
#define OPTION_VALUE_BASE 1000 /* getopt_long value of option_specs[i] is this plus i. */

static void print_help(FILE *out) {
    fprintf(out,
            "Usage: %s [OPTION]...\n"
            "A stand-in for docq's slow AI service, for tests, demos and benchmarks.\n\n"
            "Options (each may also be set by the environment variable in brackets; a flag "
            "wins):\n",
            PROGRAM_NAME);
    for (size_t i = 0; i < OPTION_COUNT; i++) {
        const struct option_spec *spec = &option_specs[i];
        char flag[64];
        snprintf(flag, sizeof flag, "--%s %s", spec->name, spec->metavar);
        fprintf(out, "  %-24s [%s] default: %s\n  %-24s %s\n", flag, spec->env,
                spec->fallback ? spec->fallback : "(none)", "", spec->help);
    }
    fprintf(out,
            "  %-24s print this help and exit\n\n"
            "Endpoints:\n"
            "  POST <any path>  {\"task_id\":\"...\",\"doc_id\":\"...\"} -> after the latency, 200\n"
            "                   {\"doc_id\":\"...\",\"summary\":\"processed ...\"}, or the injected\n"
            "                   failure, or 400 {\"error\":\"missing doc_id\"}; nothing when the\n"
            "                   client closes the connection during the latency (client_closed)\n"
            "  POST /reset      clear the counters and the seen task ids -> 200 {\"ok\":true}\n"
            "  GET /stats       {\"requests\":R,\"ok\":O,\"failed\":F,\"distinct_tasks\":D,\n"
            "                   \"duplicate_tasks\":U,\"in_flight\":I,\"max_in_flight\":M,\n"
            "                   \"connections\":C,\"client_closed\":K}\n"
            "  GET /healthz     200 ok\n"
            "SIGTERM or SIGINT stops the server (exit 0).\n",
            "-h, --help");
}

enum options_outcome { OPTIONS_RUN, OPTIONS_EXIT_OK, OPTIONS_EXIT_USAGE };

/* Applies, for every option, its flag if given, else its environment variable if set and not
 * empty, else its default. A bad value prints one line to stderr naming where it came from. */
static enum options_outcome apply_option_values(const char *const *flag_values,
                                                struct fake_config *cfg) {
    for (size_t i = 0; i < OPTION_COUNT; i++) {
        const struct option_spec *spec = &option_specs[i];
        const char *env = getenv(spec->env);
        const char *value = spec->fallback, *source = "default";
        char flag_name[64];
        snprintf(flag_name, sizeof flag_name, "--%s", spec->name);
        if (flag_values[i] != NULL) {
            value = flag_values[i];
            source = flag_name;
        } else if (env != NULL && *env != '\0') {
            value = env;
            source = spec->env;
        }
        if (value == NULL) continue;
        if (spec->parse(value, cfg) != DOCQ_OK) {
            fprintf(stderr, "%s: bad value for %s: '%s'\n", PROGRAM_NAME, source, value);
            return OPTIONS_EXIT_USAGE;
        }
    }
    return OPTIONS_RUN;
}

/* Fills cfg from argv and the environment. Returns OPTIONS_RUN, OPTIONS_EXIT_OK after printing
 * --help, or OPTIONS_EXIT_USAGE after printing one line about a bad command line. */
static enum options_outcome parse_options(int argc, char **argv, struct fake_config *cfg) {
    const char *flag_values[OPTION_COUNT] = {0};
    struct option long_opts[OPTION_COUNT + 2];
    size_t n = 0;
    for (; n < OPTION_COUNT; n++)
        long_opts[n] = (struct option){option_specs[n].name, required_argument, NULL,
                                       OPTION_VALUE_BASE + (int)n};
    long_opts[n++] = (struct option){"help", no_argument, NULL, 'h'};
    long_opts[n] = (struct option){NULL, 0, NULL, 0};

    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":h", long_opts, NULL)) != -1) {
        if (c == 'h') {
            print_help(stdout);
            return OPTIONS_EXIT_OK;
        }
        if (c >= OPTION_VALUE_BASE && c < OPTION_VALUE_BASE + (int)OPTION_COUNT) {
            flag_values[c - OPTION_VALUE_BASE] = optarg;
            continue;
        }
        const char *what = argv[optind - 1];
        char short_opt[3] = {'-', (char)optopt, '\0'};
        if (optopt > 0 && optopt < OPTION_VALUE_BASE) what = short_opt;
        if (c == ':')
            fprintf(stderr, "%s: option '%s' needs a value (try --help)\n", PROGRAM_NAME, what);
        else
            fprintf(stderr, "%s: unknown option '%s' (try --help)\n", PROGRAM_NAME, what);
        return OPTIONS_EXIT_USAGE;
    }
    if (optind < argc) {
        fprintf(stderr, "%s: unexpected argument '%s' (try --help)\n", PROGRAM_NAME, argv[optind]);
        return OPTIONS_EXIT_USAGE;
    }
    return apply_option_values(flag_values, cfg);
}

/* ---------------------------------------------------------------------------------------------
 * HTTP requests and responses. */

struct http_request {
    char method[16];        /* NUL-terminated method token. */
    size_t path_off;        /* Offset of the path in the connection buffer. */
    size_t path_len;        /* Length of the path, query string excluded. */
    const char *path;       /* Set once the whole request is in the buffer (it may move before). */
    int minor_version;      /* 0 for HTTP/1.0, 1 for HTTP/1.1 (and later 1.x). */
    size_t head_len;        /* Bytes of request line and headers, blank line included. */
    size_t content_length;  /* Body bytes announced by Content-Length, 0 without one. */
    int keep_alive;         /* Whether the connection may carry another request after this one. */
    const char *body;       /* content_length bytes in the connection buffer, not NUL-terminated. */
    int error_status;       /* For a request that cannot be served: the status to answer. */
};

/* What the headers said, gathered while parsing them. */
struct head_flags {
    int saw_length;       /* A Content-Length header was present. */
    int transfer_coding;  /* A Transfer-Encoding header was present. */
    int conn_close;       /* Connection: close. */
    int conn_keep_alive;  /* Connection: keep-alive. */
};

struct http_response {
    int status;
    const char *content_type;
    struct strbuf body;  /* Owned; freed by response_free. */
    long retry_after;    /* Seconds for a Retry-After header, or 0 for none. */
    const char *allow;   /* Value of an Allow header, or NULL. */
    int client_gone;     /* The client closed the connection: close it without answering. */
};

static const char *reason_phrase(int status) {
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: break;
    }
    if (status < 300) return "OK";
    if (status < 400) return "Redirection";
    return status < 500 ? "Client Error" : "Server Error";
}

/* Case-insensitive comparison of a counted string with a C string. */
static int counted_equals(const char *s, size_t len, const char *word) {
    return strlen(word) == len && strncasecmp(s, word, len) == 0;
}

/* Sets the two Connection flags from a comma-separated header value. */
static void scan_connection_tokens(const char *value, size_t len, struct head_flags *flags) {
    size_t i = 0;
    while (i < len) {
        while (i < len && (value[i] == ' ' || value[i] == '\t' || value[i] == ',')) i++;
        size_t start = i;
        while (i < len && value[i] != ',' && value[i] != ' ' && value[i] != '\t') i++;
        if (counted_equals(value + start, i - start, "close")) flags->conn_close = 1;
        if (counted_equals(value + start, i - start, "keep-alive")) flags->conn_keep_alive = 1;
    }
}

/* Parses a Content-Length value. Returns 0, 400 (not a number, or a second header disagreeing
 * with the first) or 413 (more than MAX_BODY_BYTES). */
static int parse_content_length(const char *value, size_t len, struct http_request *req,
                                struct head_flags *flags) {
    size_t length = 0;
    if (len == 0) return 400;
    for (size_t i = 0; i < len; i++) {
        if (value[i] < '0' || value[i] > '9') return 400;
        if (length <= MAX_BODY_BYTES) length = length * 10 + (size_t)(value[i] - '0');
    }
    if (flags->saw_length && length != req->content_length) return 400;
    if (length > MAX_BODY_BYTES) return 413;
    flags->saw_length = 1;
    req->content_length = length;
    return 0;
}

/* Parses one header line (len bytes, line ending removed). Returns 0 or an error status. */
static int parse_header_line(const char *line, size_t len, struct http_request *req,
                             struct head_flags *flags) {
    const char *colon = memchr(line, ':', len);
    if (colon == NULL || colon == line) return 400;
    size_t name_len = (size_t)(colon - line);
    for (size_t i = 0; i < name_len; i++) {
        unsigned char c = (unsigned char)line[i];
        if (c <= ' ' || c >= 0x7f) return 400; /* Also rejects obsolete line folding. */
    }
    const char *value = colon + 1, *end = line + len;
    while (value < end && (*value == ' ' || *value == '\t')) value++;
    while (end > value && (end[-1] == ' ' || end[-1] == '\t')) end--;
    size_t value_len = (size_t)(end - value);

    if (counted_equals(line, name_len, "Content-Length"))
        return parse_content_length(value, value_len, req, flags);
    if (counted_equals(line, name_len, "Transfer-Encoding")) flags->transfer_coding = 1;
    if (counted_equals(line, name_len, "Connection"))
        scan_connection_tokens(value, value_len, flags);
    return 0;
}

/* Parses "METHOD /path[?query] HTTP/1.x" (len bytes at the start of the connection buffer, line
 * ending removed). Returns 0, 400, or 505 for a major version other than 1. */
static int parse_request_line(const char *line, size_t len, struct http_request *req) {
    const char *end = line + len;
    const char *sp1 = memchr(line, ' ', len);
    if (sp1 == NULL || sp1 == line || (size_t)(sp1 - line) >= sizeof req->method) return 400;
    for (const char *p = line; p < sp1; p++)
        if (!isupper((unsigned char)*p)) return 400;
    memcpy(req->method, line, (size_t)(sp1 - line));
    req->method[sp1 - line] = '\0';

    const char *target = sp1 + 1;
    const char *sp2 = memchr(target, ' ', (size_t)(end - target));
    if (sp2 == NULL || sp2 == target || *target != '/') return 400;
    const char *query = memchr(target, '?', (size_t)(sp2 - target));
    req->path_off = (size_t)(target - line);
    req->path_len = (size_t)((query ? query : sp2) - target);

    const char *v = sp2 + 1;
    if (end - v != 8 || memcmp(v, "HTTP/", 5) != 0 || !isdigit((unsigned char)v[5]) ||
        v[6] != '.' || !isdigit((unsigned char)v[7]))
        return 400;
    if (v[5] != '1') return 505;
    req->minor_version = v[7] - '0';
    return 0;
}

/* Parses the head_len bytes of request head at the start of buf (it ends with a blank line) into
 * req. Returns 0, or the status to answer: 400 malformed, 411 Transfer-Encoding, 413 body too
 * large, 505 unsupported version. */
static int parse_request_head(const char *buf, size_t head_len, struct http_request *req) {
    const char *end = buf + head_len, *line = buf;
    struct head_flags flags = {0};
    int status = 0;
    int first = 1;
    while (status == 0 && line < end) {
        const char *eol = memchr(line, '\n', (size_t)(end - line));
        if (eol == NULL) return 400; /* Cannot happen: the head ends with a newline. */
        size_t len = (size_t)(eol - line);
        if (len > 0 && line[len - 1] == '\r') len--;
        if (len == 0 && !first) break; /* The blank line ending the head. */
        status = first ? parse_request_line(line, len, req)
                       : parse_header_line(line, len, req, &flags);
        first = 0;
        line = eol + 1;
    }
    if (status != 0) return status;
    if (flags.transfer_coding) return 411;
    if (req->minor_version >= 1)
        req->keep_alive = !flags.conn_close;
    else
        req->keep_alive = flags.conn_keep_alive && !flags.conn_close;
    return 0;
}

static void response_init(struct http_response *resp) {
    *resp = (struct http_response){0};
    resp->status = 200;
    resp->content_type = "application/json";
}

static void response_free(struct http_response *resp) { sb_free(&resp->body); }

/* Makes resp a JSON error answer {"error":message}. */
static void respond_error(struct http_response *resp, int status, const char *message) {
    resp->status = status;
    resp->content_type = "application/json";
    sb_clear(&resp->body);
    sb_appends(&resp->body, "{\"error\":\"");
    json_append_escaped(&resp->body, message, strlen(message));
    sb_appends(&resp->body, "\"}");
}

/* The message of the error answer to a request that could not be read. */
static const char *read_error_message(int status) {
    switch (status) {
    case 411: return "request bodies must have a Content-Length";
    case 413: return "body too large";
    case 431: return "request headers too large";
    case 500: return "out of memory";
    case 505: return "HTTP version not supported";
    default: return "bad request";
    }
}

/* ---------------------------------------------------------------------------------------------
 * Endpoints. */

static void sleep_ms(long ms) {
    struct timespec left = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&left, &left) != 0 && errno == EINTR) {
    }
}

static long ms_since(const struct timespec *start);

/* Waits ms milliseconds, or until the client at fd closes the connection, shuts down its sending
 * side or resets it, whichever comes first. Bytes it sends meanwhile (a pipelined request) are
 * left unread. Returns 1 when the client went away, else 0; *waited_ms gets the time waited. */
static int wait_or_client_gone(int fd, long ms, long *waited_ms) {
    struct timespec start;
    int gone = 0;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        long left = ms - ms_since(&start);
        if (left <= 0) break;
        struct pollfd pfd = {fd, POLLRDHUP, 0};
        int ready = poll(&pfd, 1, left > INT_MAX ? INT_MAX : (int)left);
        if (ready < 0 && errno == EINTR) continue;
        if (ready < 0 || (ready > 0 && (pfd.revents & POLLNVAL))) {
            sleep_ms(left);
            break;
        }
        if (ready > 0 && (pfd.revents & (POLLRDHUP | POLLHUP | POLLERR))) {
            gone = 1;
            break;
        }
    }
    *waited_ms = ms_since(&start);
    return gone;
}

/* Whether the request holding ticket gets the injected failure (see the essay at the top). */
static int should_fail(const struct fake_config *cfg, const struct stats_ticket *ticket) {
    if (cfg->fail_status == 0) return 0;
    if (cfg->fail_first > 0) return ticket->task_seen > 0 && ticket->task_seen <= (uint64_t)cfg->fail_first;
    if (cfg->fail_percent > 0) return ticket->random % 100 < (uint64_t)cfg->fail_percent;
    if (cfg->fail_every == 0) return 1;
    return ticket->seq % (uint64_t)cfg->fail_every == 0;
}

/* Whether doc_id starts with prefix (a NULL or empty prefix matches nothing). */
static int has_prefix(const char *prefix, const struct strbuf *doc_id) {
    size_t n = prefix ? strlen(prefix) : 0;
    return n > 0 && doc_id->len >= n && memcmp(doc_id->data, prefix, n) == 0;
}

/* Whether doc_id is one the server rejects for good (--reject-prefix). */
static int is_rejected(const struct fake_config *cfg, const struct strbuf *doc_id) {
    return has_prefix(cfg->reject_prefix, doc_id);
}

/* With --pad-bytes, close the summary and add ,"padding":"xxx...(N bytes) to body, for the
 * documents --pad-prefix selects; the caller closes the string and the object. */
static void append_padding(const struct fake_config *cfg, const struct strbuf *doc_id,
                           struct strbuf *body) {
    size_t n = cfg->pad_prefix ? strlen(cfg->pad_prefix) : 0;
    if (cfg->pad_bytes == 0 || doc_id->len < n || (n && memcmp(doc_id->data, cfg->pad_prefix, n) != 0))
        return;
    sb_appends(body, "\",\"padding\":\"");
    if (sb_reserve(body, (size_t)cfg->pad_bytes) != DOCQ_OK) return;
    memset(body->data + body->len, 'x', (size_t)cfg->pad_bytes);
    body->len += (size_t)cfg->pad_bytes;
    body->data[body->len] = '\0';
}

/* POST <any path> on the connection fd: counts the request, waits for the latency, then answers
 * 200 with a summary, the injected failure, or 400 when the body has no doc_id; or, when the
 * client closes the connection during the wait, counts that and answers nothing. */
static void handle_process(struct fake_server *srv, int fd, const struct http_request *req,
                           struct http_response *resp) {
    const struct fake_config *cfg = &srv->config;
    struct strbuf task_id = {0}, doc_id = {0};
    struct stats_ticket ticket;
    int has_task = json_find_string_field(req->body, req->content_length, "task_id", &task_id);
    int has_doc = json_find_string_field(req->body, req->content_length, "doc_id", &doc_id);

    if (stats_begin(&srv->stats, has_task ? &task_id : NULL, &ticket) != DOCQ_OK) {
        respond_error(resp, 500, "out of memory");
    } else {
        uint64_t jitter = (ticket.random >> 32) % ((uint64_t)cfg->latency_jitter_ms + 1);
        long latency = has_doc && has_prefix(cfg->hold_prefix, &doc_id) ? HOLD_MS : cfg->latency_ms + (long)jitter;
        long waited;
        int ok = 0;
        if (wait_or_client_gone(fd, latency, &waited)) {
            resp->client_gone = 1;
            stats_closed(&srv->stats, &ticket);
            if (cfg->log_requests)
                log_line("info", "client closed the connection before the answer: POST task_id=%s "
                         "after %ld ms task_requests=%" PRIu64, has_task ? task_id.data : "", waited,
                         ticket.task_seen);
        } else if (!has_doc) {
            respond_error(resp, 400, "missing doc_id");
        } else if (is_rejected(cfg, &doc_id)) {
            respond_error(resp, cfg->reject_status, "rejected document");
        } else if (should_fail(cfg, &ticket)) {
            respond_error(resp, cfg->fail_status, "injected failure");
            resp->retry_after = cfg->retry_after;
        } else if (cfg->answer) {
            ok = 1;
            sb_append(&resp->body, cfg->answer, cfg->answer_len);
        } else {
            ok = 1;
            sb_appends(&resp->body, "{\"doc_id\":\"");
            json_append_escaped(&resp->body, doc_id.data, doc_id.len);
            sb_appends(&resp->body, "\",\"summary\":\"processed ");
            json_append_escaped(&resp->body, doc_id.data, doc_id.len);
            append_padding(cfg, &doc_id, &resp->body);
            sb_appends(&resp->body, "\"}");
        }
        if (!resp->client_gone) {
            stats_finish(&srv->stats, &ticket, ok);
            if (cfg->log_requests)
                log_line("info", "answered POST task_id=%s status=%d task_requests=%" PRIu64,
                         has_task ? task_id.data : "", ok ? 200 : resp->status, ticket.task_seen);
        }
    }
    sb_free(&task_id);
    sb_free(&doc_id);
}

static void handle_stats(struct fake_server *srv, struct http_response *resp) {
    struct stats_snapshot s;
    stats_read(&srv->stats, &s);
    sb_appendf(&resp->body,
               "{\"requests\":%" PRIu64 ",\"ok\":%" PRIu64 ",\"failed\":%" PRIu64
               ",\"distinct_tasks\":%" PRIu64 ",\"duplicate_tasks\":%" PRIu64
               ",\"in_flight\":%" PRIu64 ",\"max_in_flight\":%" PRIu64
               ",\"connections\":%" PRIu64 ",\"client_closed\":%" PRIu64 "}",
               s.requests, s.ok, s.failed, s.distinct_tasks, s.duplicate_tasks, s.in_flight,
               s.max_in_flight, s.connections, s.client_closed);
}

static int path_is(const struct http_request *req, const char *path) {
    return strlen(path) == req->path_len && memcmp(req->path, path, req->path_len) == 0;
}

/* Routes a fully read request of the connection fd to its endpoint and fills resp. */
static void handle_request(struct fake_server *srv, int fd, const struct http_request *req,
                           struct http_response *resp) {
    if (strcmp(req->method, "POST") == 0) {
        if (path_is(req, "/reset")) {
            stats_reset(&srv->stats);
            sb_appends(&resp->body, "{\"ok\":true}");
        } else {
            handle_process(srv, fd, req, resp);
        }
    } else if (strcmp(req->method, "GET") == 0) {
        if (path_is(req, "/stats")) {
            handle_stats(srv, resp);
        } else if (path_is(req, "/healthz")) {
            resp->content_type = "text/plain";
            sb_appends(&resp->body, "ok");
        } else {
            respond_error(resp, 404, "not found");
        }
    } else {
        respond_error(resp, 405, "method not allowed");
        resp->allow = "GET, POST";
    }
}

/* ---------------------------------------------------------------------------------------------
 * Connections: one thread each. */

struct conn {
    int fd;                   /* The accepted socket; closed by conn_main. */
    struct fake_server *srv;  /* Shared; see struct fake_server. */
    char *buf;                /* Bytes received and not yet consumed, starting with a request. */
    size_t len;               /* Bytes in buf. */
    size_t cap;               /* Bytes allocated for buf; always more than len while reading. */
};

enum read_result {
    READ_OK,     /* A whole request is in the buffer. */
    READ_CLOSED, /* The peer closed or the socket failed: close without answering. */
    READ_BAD     /* Answer req->error_status, then close. */
};

/* Takes ownership of fd. Returns NULL (fd left open) when memory runs out. */
static struct conn *conn_new(int fd, struct fake_server *srv) {
    struct conn *c = calloc(1, sizeof *c);
    if (c == NULL) return NULL;
    c->buf = malloc(CONN_BUFFER_BYTES);
    if (c->buf == NULL) {
        free(c);
        return NULL;
    }
    c->fd = fd;
    c->srv = srv;
    c->cap = CONN_BUFFER_BYTES;
    return c;
}

/* Frees c; its socket must already be closed. */
static void conn_free(struct conn *c) {
    free(c->buf);
    free(c);
}

/* Receives more bytes into the free part of the buffer. Returns the count, 0 at end of stream, or
 * -1 on a socket error. */
static ssize_t conn_fill(struct conn *c) {
    for (;;) {
        ssize_t n = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
        if (n >= 0 || errno != EINTR) {
            if (n > 0) c->len += (size_t)n;
            return n;
        }
    }
}

/* Drops line endings ahead of a request line (RFC 9112 asks servers to ignore them). Returns
 * whether anything was dropped. */
static int drop_leading_blank_lines(struct conn *c) {
    size_t n = 0;
    while (n < c->len && (c->buf[n] == '\r' || c->buf[n] == '\n')) n++;
    if (n == 0) return 0;
    memmove(c->buf, c->buf + n, c->len - n);
    c->len -= n;
    return 1;
}

/* Finds the blank line ending a request head in buf[0..len), searching from *scanned on and
 * moving *scanned past what need not be searched again. Returns the head length, blank line
 * included, or 0 when it is not all there yet. Accepts CRLF and bare LF line endings. */
static size_t find_head_end(const char *buf, size_t len, size_t *scanned) {
    for (size_t i = *scanned; i < len; i++) {
        if (buf[i] != '\n') continue;
        if (i + 1 < len && buf[i + 1] == '\n') return i + 2;
        if (i + 2 < len && buf[i + 1] == '\r' && buf[i + 2] == '\n') return i + 3;
    }
    *scanned = len > 2 ? len - 2 : 0;
    return 0;
}

/* Reads until the buffer holds a whole request head and stores its length in *head_len. */
static enum read_result conn_read_head(struct conn *c, size_t *head_len, int *error_status) {
    size_t scanned = 0;
    for (;;) {
        if (drop_leading_blank_lines(c)) scanned = 0;
        *head_len = find_head_end(c->buf, c->len, &scanned);
        if (*head_len > MAX_HEAD_BYTES || (*head_len == 0 && c->len >= MAX_HEAD_BYTES)) {
            *error_status = 431;
            return READ_BAD;
        }
        if (*head_len > 0) return READ_OK;
        if (conn_fill(c) <= 0) return READ_CLOSED;
    }
}

/* Reads until the buffer holds at least need bytes, growing it first if it is too small. */
static enum read_result conn_read_until(struct conn *c, size_t need, int *error_status) {
    if (need > c->cap) {
        char *grown = realloc(c->buf, need);
        if (grown == NULL) {
            *error_status = 500;
            return READ_BAD;
        }
        c->buf = grown;
        c->cap = need;
    }
    while (c->len < need)
        if (conn_fill(c) <= 0) return READ_CLOSED;
    return READ_OK;
}

/* Reads the next request (head and body) from the connection into req, whose pointers then point
 * into the connection buffer until conn_consume. */
static enum read_result conn_read_request(struct conn *c, struct http_request *req) {
    *req = (struct http_request){0};
    req->minor_version = 1;
    enum read_result r = conn_read_head(c, &req->head_len, &req->error_status);
    if (r != READ_OK) return r;
    req->error_status = parse_request_head(c->buf, req->head_len, req);
    if (req->error_status != 0) return READ_BAD;
    r = conn_read_until(c, req->head_len + req->content_length, &req->error_status);
    if (r != READ_OK) return r;
    req->path = c->buf + req->path_off;
    req->body = c->buf + req->head_len;
    return READ_OK;
}

/* Drops the request just served from the buffer, keeping any pipelined bytes after it, and gives
 * back the memory a large body took. */
static void conn_consume(struct conn *c, const struct http_request *req) {
    size_t used = req->head_len + req->content_length;
    memmove(c->buf, c->buf + used, c->len - used);
    c->len -= used;
    if (c->cap > CONN_BUFFER_BYTES && c->len < CONN_BUFFER_BYTES) {
        char *smaller = realloc(c->buf, CONN_BUFFER_BYTES);
        if (smaller != NULL) {
            c->buf = smaller;
            c->cap = CONN_BUFFER_BYTES;
        }
    }
}

static int send_all(int fd, const char *data, size_t len) {
    while (len > 0) {
        ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return DOCQ_ERR;
        data += n;
        len -= (size_t)n;
    }
    return DOCQ_OK;
}

/* Sends a fixed 500 answer that needs no allocation, for when building the real one failed. */
static int send_out_of_memory(int fd) {
    static const char body[] = "{\"error\":\"out of memory\"}";
    char head[256];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                     sizeof body - 1);
    if (n < 0 || send_all(fd, head, (size_t)n) != DOCQ_OK) return DOCQ_ERR;
    return send_all(fd, body, sizeof body - 1);
}

/* Sends resp as one buffer. keep_alive and minor_version (of the request) decide the Connection
 * header. Returns DOCQ_OK, or DOCQ_ERR when the answer could not be built or sent. */
static int send_response(int fd, const struct http_response *resp, int keep_alive,
                         int minor_version) {
    if (resp->body.failed) {
        send_out_of_memory(fd);
        return DOCQ_ERR;
    }
    struct strbuf out = {0};
    sb_appendf(&out, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n",
               resp->status, reason_phrase(resp->status), resp->content_type, resp->body.len);
    if (resp->retry_after > 0) sb_appendf(&out, "Retry-After: %ld\r\n", resp->retry_after);
    if (resp->allow != NULL) sb_appendf(&out, "Allow: %s\r\n", resp->allow);
    if (!keep_alive)
        sb_appends(&out, "Connection: close\r\n");
    else if (minor_version == 0)
        sb_appends(&out, "Connection: keep-alive\r\n");
    sb_appends(&out, "\r\n");
    if (resp->body.len > 0) sb_append(&out, resp->body.data, resp->body.len);
    int rc = out.failed ? send_out_of_memory(fd) : send_all(fd, out.data, out.len);
    if (out.failed) rc = DOCQ_ERR;
    sb_free(&out);
    return rc;
}

static long ms_since(const struct timespec *start) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (long)(now.tv_sec - start->tv_sec) * 1000 + (now.tv_nsec - start->tv_nsec) / 1000000;
}

/* Closes a connection the server chose to end after answering: half-closes it so the client
 * reads the answer and then end of stream, and drops whatever the client still sends for up to
 * LINGER_MS, so that unread input does not make the kernel reset the connection and destroy the
 * answer on its way. */
static void close_lingering(struct conn *c) {
    struct timespec start;
    size_t dropped = 0;
    clock_gettime(CLOCK_MONOTONIC, &start);
    shutdown(c->fd, SHUT_WR);
    while (dropped < LINGER_MAX_BYTES) {
        long left = LINGER_MS - ms_since(&start);
        struct pollfd pfd = {c->fd, POLLIN, 0};
        if (left <= 0) break;
        int ready = poll(&pfd, 1, (int)left);
        if (ready < 0 && errno == EINTR) continue;
        if (ready <= 0) break;
        ssize_t n = recv(c->fd, c->buf, c->cap, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        dropped += (size_t)n;
    }
    close(c->fd);
}

/* Thread body: serves the connection's requests in order until the client closes it, asks to
 * close it, or sends something unservable. Owns and frees c. */
static void *conn_main(void *arg) {
    struct conn *c = arg;
    int lingering = 0;
    for (;;) {
        struct http_request req;
        struct http_response resp;
        enum read_result r = conn_read_request(c, &req);
        if (r == READ_CLOSED) break;
        response_init(&resp);
        int keep_alive = 0;
        if (r == READ_BAD) {
            respond_error(&resp, req.error_status, read_error_message(req.error_status));
        } else {
            handle_request(c->srv, c->fd, &req, &resp);
            keep_alive = req.keep_alive;
        }
        if (resp.client_gone) {
            response_free(&resp);
            break;
        }
        int sent = send_response(c->fd, &resp, keep_alive, req.minor_version);
        response_free(&resp);
        if (sent != DOCQ_OK) break;
        if (!keep_alive) {
            lingering = 1;
            break;
        }
        conn_consume(c, &req);
    }
    if (lingering)
        close_lingering(c);
    else
        close(c->fd);
    conn_free(c);
    return NULL;
}

/* ---------------------------------------------------------------------------------------------
 * Listening, the port file and the accept loop (main thread). */

static int set_fd_flag(int fd, int get_cmd, int set_cmd, int flag, int on) {
    int flags = fcntl(fd, get_cmd);
    if (flags < 0) return DOCQ_ERR;
    flags = on ? (flags | flag) : (flags & ~flag);
    return fcntl(fd, set_cmd, flags) < 0 ? DOCQ_ERR : DOCQ_OK;
}

/* Creates a socket bound to ai and listening, non-blocking and close-on-exec. Returns the socket,
 * or -1 with errno set. */
static int listen_on(const struct addrinfo *ai) {
    int one = 1;
    int fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
    if (fd < 0) return -1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, LISTEN_BACKLOG) != 0 ||
        set_fd_flag(fd, F_GETFD, F_SETFD, FD_CLOEXEC, 1) != DOCQ_OK ||
        set_fd_flag(fd, F_GETFL, F_SETFL, O_NONBLOCK, 1) != DOCQ_OK) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

/* Binds and listens on host:port (host "" means every address), trying each address the host
 * resolves to. Returns the listening socket, or -1 with a reason in err. */
static int open_listener(const char *host, unsigned port, char *err, size_t err_size) {
    struct addrinfo hints = {0}, *res;
    char port_text[16];
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    snprintf(port_text, sizeof port_text, "%u", port);
    int rc = getaddrinfo(host[0] ? host : NULL, port_text, &hints, &res);
    if (rc != 0) {
        snprintf(err, err_size, "cannot resolve '%s': %s", host, gai_strerror(rc));
        return -1;
    }
    int fd = -1, saved = 0;
    for (const struct addrinfo *ai = res; ai != NULL && fd < 0; ai = ai->ai_next) {
        fd = listen_on(ai);
        if (fd < 0) saved = errno;
    }
    freeaddrinfo(res);
    if (fd < 0)
        snprintf(err, err_size, "cannot listen on %s:%u: %s", host[0] ? host : "*", port,
                 strerror(saved));
    return fd;
}

/* Writes the bound address of fd as "host:port" ("[host]:port" for IPv6) into out, and the port
 * into *port. Returns DOCQ_OK or DOCQ_ERR. */
static int describe_bound_address(int fd, char *out, size_t size, unsigned *port) {
    struct sockaddr_storage ss;
    socklen_t ss_len = sizeof ss;
    char host[NI_MAXHOST], serv[NI_MAXSERV];
    if (getsockname(fd, (struct sockaddr *)&ss, &ss_len) != 0) return DOCQ_ERR;
    if (getnameinfo((struct sockaddr *)&ss, ss_len, host, sizeof host, serv, sizeof serv,
                    NI_NUMERICHOST | NI_NUMERICSERV) != 0)
        return DOCQ_ERR;
    *port = (unsigned)strtoul(serv, NULL, 10);
    int v6 = ss.ss_family == AF_INET6;
    snprintf(out, size, "%s%s%s:%s", v6 ? "[" : "", host, v6 ? "]" : "", serv);
    return DOCQ_OK;
}

/* Writes port and a newline to path through a temporary file renamed over it, so that a reader
 * sees either no file or the whole line. Returns DOCQ_OK, or DOCQ_ERR with a reason in err. */
static int write_port_file(const char *path, unsigned port, char *err, size_t err_size) {
    struct strbuf tmp = {0};
    char line[16];
    int n = snprintf(line, sizeof line, "%u\n", port);
    sb_appendf(&tmp, "%s.tmp.%ld", path, (long)getpid());
    if (tmp.failed) {
        snprintf(err, err_size, "out of memory");
        return DOCQ_ERR;
    }
    int fd = open(tmp.data, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int ok = fd >= 0 && write(fd, line, (size_t)n) == n;
    int saved = errno;
    if (fd >= 0 && close(fd) != 0 && ok) {
        ok = 0;
        saved = errno;
    }
    if (ok && rename(tmp.data, path) != 0) {
        ok = 0;
        saved = errno;
    }
    if (!ok) {
        snprintf(err, err_size, "cannot write port file %s: %s", path, strerror(saved));
        unlink(tmp.data);
    }
    sb_free(&tmp);
    return ok ? DOCQ_OK : DOCQ_ERR;
}

/* What the signal thread needs. Allocated by main; the signal thread owns it and frees it when
 * it ends. */
struct signal_watch {
    sigset_t signals;  /* Blocked in every thread; only the signal thread waits for them. */
    int notify_fd;     /* Write end of the stop pipe; the accept loop polls the read end. */
};

/* Signal thread body: waits for SIGTERM or SIGINT and writes its number to the stop pipe. */
static void *signal_main(void *arg) {
    struct signal_watch *watch = arg;
    int sig = 0;
    if (sigwait(&watch->signals, &sig) != 0) {
        log_line("error", "sigwait failed; signals will not stop the server");
        free(watch);
        return NULL;
    }
    unsigned char byte = (unsigned char)sig;
    while (write(watch->notify_fd, &byte, 1) < 0 && errno == EINTR) {
    }
    free(watch);
    return NULL;
}

/* Ignores SIGPIPE, blocks SIGTERM and SIGINT in the calling thread (and so in every thread it
 * creates afterwards) and starts the signal thread. Returns the read end of the stop pipe, or -1
 * with errno set. */
static int start_signal_thread(void) {
    struct sigaction ignore = {0};
    ignore.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &ignore, NULL);

    struct signal_watch *watch = calloc(1, sizeof *watch);
    int fds[2];
    if (watch == NULL) return -1;
    sigemptyset(&watch->signals);
    sigaddset(&watch->signals, SIGTERM);
    sigaddset(&watch->signals, SIGINT);
    int err = pthread_sigmask(SIG_BLOCK, &watch->signals, NULL);
    if (err == 0 && pipe(fds) != 0) err = errno;
    if (err != 0) {
        free(watch);
        errno = err;
        return -1;
    }
    watch->notify_fd = fds[1];
    pthread_t tid;
    err = pthread_create(&tid, NULL, signal_main, watch);
    if (err != 0) {
        free(watch);
        errno = err;
        return -1;
    }
    pthread_detach(tid);
    return fds[0];
}

/* The accept loop's state; main thread only. */
struct accept_loop {
    int listen_fd;
    int stop_fd;              /* Read end of the stop pipe. */
    pthread_attr_t attr;      /* Detached, small stack: used for every connection thread. */
    struct fake_server *srv;
    time_t last_warning;      /* When an accept or spawn failure was last logged (one a second). */
};

static void warn_limited(struct accept_loop *loop, const char *what, int err) {
    time_t now = time(NULL);
    if (now == loop->last_warning) return;
    loop->last_warning = now;
    /* strerror is only called from the main thread. */
    log_line("warn", "%s: %s", what, strerror(err));
}

/* Starts a detached thread serving fd, or closes fd when that is impossible. */
static void spawn_connection(struct accept_loop *loop, int fd) {
    int one = 1;
    set_fd_flag(fd, F_GETFL, F_SETFL, O_NONBLOCK, 0); /* Some systems pass it on from listeners. */
    set_fd_flag(fd, F_GETFD, F_SETFD, FD_CLOEXEC, 1);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    pthread_mutex_lock(&loop->srv->stats.lock);
    loop->srv->stats.connections++;
    pthread_mutex_unlock(&loop->srv->stats.lock);
    struct conn *c = conn_new(fd, loop->srv);
    if (c == NULL) {
        close(fd);
        warn_limited(loop, "cannot serve a connection", ENOMEM);
        return;
    }
    pthread_t tid;
    int err = pthread_create(&tid, &loop->attr, conn_main, c);
    if (err != 0) {
        close(fd);
        conn_free(c);
        warn_limited(loop, "cannot start a connection thread", err);
    }
}

/* Accepts the connections waiting on the listener, up to ACCEPT_BATCH of them. */
static void accept_pending(struct accept_loop *loop) {
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        int fd = accept(loop->listen_fd, NULL, NULL);
        if (fd >= 0) {
            spawn_connection(loop, fd);
            continue;
        }
        int err = errno;
        if (err == EINTR || err == ECONNABORTED || err == EPROTO) continue;
        if (err == EAGAIN || err == EWOULDBLOCK) return;
        warn_limited(loop, "accept failed", err);
        if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) sleep_ms(50);
        return;
    }
}

/* Accepts connections until the stop pipe becomes readable. Returns the signal that stopped the
 * loop, or -1 when polling failed. */
static int run_accept_loop(struct accept_loop *loop) {
    for (;;) {
        struct pollfd fds[2] = {{loop->listen_fd, POLLIN, 0}, {loop->stop_fd, POLLIN, 0}};
        if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR) continue;
            log_line("error", "poll failed: %s", strerror(errno));
            return -1;
        }
        if (fds[1].revents != 0) {
            unsigned char sig = 0;
            ssize_t ignored = read(loop->stop_fd, &sig, 1);
            (void)ignored;
            return sig;
        }
        if (fds[0].revents != 0) accept_pending(loop);
    }
}

/* Lifts the soft limit on open files to the hard one, so that a thousand concurrent connections
 * fit; best effort. */
static void raise_fd_limit(void) {
    struct rlimit lim;
    if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
        lim.rlim_cur = lim.rlim_max;
        setrlimit(RLIMIT_NOFILE, &lim);
    }
}

/* Prepares the attributes of connection threads: detached, with a small stack. */
static int init_thread_attr(pthread_attr_t *attr) {
    size_t stack = THREAD_STACK_BYTES;
    if (stack < (size_t)PTHREAD_STACK_MIN) stack = (size_t)PTHREAD_STACK_MIN;
    if (pthread_attr_init(attr) != 0) return DOCQ_ERR;
    if (pthread_attr_setdetachstate(attr, PTHREAD_CREATE_DETACHED) != 0) return DOCQ_ERR;
    pthread_attr_setstacksize(attr, stack); /* On failure the default size is used. */
    return DOCQ_OK;
}

/* The server's state. Never freed: detached connection threads may still use it when main
 * returns; held here so that leak checkers see it as still reachable, which it is. */
static struct fake_server *volatile server_state; /* volatile: the store must stay. */

int main(int argc, char **argv) {
    struct fake_server *srv = server_state = calloc(1, sizeof *srv);
    struct accept_loop loop = {0};
    char err[512], address[NI_MAXHOST + NI_MAXSERV + 8];
    unsigned port = 0;

    if (srv == NULL) {
        fprintf(stderr, "%s: out of memory\n", PROGRAM_NAME);
        return 1;
    }
    switch (parse_options(argc, argv, &srv->config)) {
    case OPTIONS_EXIT_OK: return 0;
    case OPTIONS_EXIT_USAGE: return 2;
    case OPTIONS_RUN: break;
    }
    raise_fd_limit();
    loop.srv = srv;
    loop.stop_fd = start_signal_thread();
    if (loop.stop_fd < 0) {
        log_line("error", "cannot start the signal thread: %s", strerror(errno));
        return 1;
    }
    struct timespec seed;
    clock_gettime(CLOCK_REALTIME, &seed);
    srv->stats.rng = (uint64_t)seed.tv_nsec * 2654435761u ^ (uint64_t)getpid();
    if (pthread_mutex_init(&srv->stats.lock, NULL) != 0 || init_thread_attr(&loop.attr) != DOCQ_OK) {
        log_line("error", "cannot initialise the thread state");
        return 1;
    }
    loop.listen_fd = open_listener(srv->config.listen_host, srv->config.listen_port, err,
                                   sizeof err);
    if (loop.listen_fd < 0) {
        log_line("error", "%s", err);
        return 1;
    }
    if (describe_bound_address(loop.listen_fd, address, sizeof address, &port) != DOCQ_OK) {
        log_line("error", "cannot read the bound address: %s", strerror(errno));
        return 1;
    }
    log_line("info", "%s listening on %s", PROGRAM_NAME, address);
    if (srv->config.port_file != NULL &&
        write_port_file(srv->config.port_file, port, err, sizeof err) != DOCQ_OK) {
        log_line("error", "%s", err);
        return 1;
    }

    int sig = run_accept_loop(&loop);
    close(loop.listen_fd);
    if (sig < 0) return 1;
    log_line("info", "%s stopping on signal %d", PROGRAM_NAME, sig);
    return 0;
}
