/* watch.c -- `docq watch` and `docq submit --wait`. See watch.h. */
#include <inttypes.h>
#include <string.h>
#include <time.h>

#include <grpc/support/time.h>

#include "codec.h"
#include "text.h"
#include "watch.h"

#define REOPEN_TRIES 5       /* Reopens in a row after UNAVAILABLE before giving up. */
#define FIRST_PAUSE_MS 250   /* Pause before the first reopen; doubles each time. */
#define TICK_MS 1000         /* How often the live line's elapsed time moves. */
#define REOPEN_CONNECT_MS 2000 /* Connect timeout (and reconnect backoff) of a reopen's channel. */
#define STABLE_MS 5000       /* A stream that lasted this long was established: a failed
                              * connect ends sooner (REOPEN_CONNECT_MS), so it never counts. */

/* What the watch has shown so far. */
typedef struct view {
    FILE *out;
    int tty;
    const char *task_id;
    gpr_timespec start;      /* When the watch began (monotonic), for the elapsed time. */
    int seen;                /* At least one message arrived. */
    int line_open;           /* The live line is on screen without its newline. */
    docq_task_state state;
    uint64_t version;
    uint32_t attempts;
    uint32_t position;
} view;

static const char *state_name(docq_task_state s) {
    return s >= DOCQ_STATE_PENDING && s <= DOCQ_STATE_CANCELLED ? docq_task_state_name(s) : "UNKNOWN";
}

/* One plain line for a change: arrival time (UTC), task id, state,
 * version, attempts, position, and the result or error at the end. */
static void print_plain(view *v, const Docq__V1__Task *t) {
    struct timespec now;
    struct tm tm;
    char when[32] = "?";
    clock_gettime(CLOCK_REALTIME, &now);
    if (gmtime_r(&now.tv_sec, &tm)) strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
    fprintf(v->out, "%s.%03ldZ %s %s version=%" PRIu64 " attempts=%u position=%u", when,
            now.tv_nsec / 1000000, v->task_id, state_name(v->state), (uint64_t)t->version, (unsigned)t->attempts,
            (unsigned)t->queue_position);
    if (docq_task_state_terminal(v->state)) {
        fputs(v->state == DOCQ_STATE_SUCCESS ? " result=" : " error=", v->out);
        cli_put_text(v->out, v->state == DOCQ_STATE_SUCCESS ? t->result : t->error, 0);
    }
    fputc('\n', v->out);
    fflush(v->out);
}

/* Rewrite the live status line: task, state, position or attempt, elapsed. */
static void print_live(view *v) {
    long secs = (long)gpr_time_to_millis(gpr_time_sub(gpr_now(GPR_CLOCK_MONOTONIC), v->start)) / 1000;
    fprintf(v->out, "\r\033[K%s  %s", v->task_id, state_name(v->state));
    if (v->state == DOCQ_STATE_PENDING && v->position)
        fprintf(v->out, "  position %u in queue", (unsigned)v->position);
    else if (v->state == DOCQ_STATE_PENDING)
        fputs("  waiting for a worker", v->out);
    else if (v->attempts)
        fprintf(v->out, "  attempt %u", (unsigned)v->attempts);
    fprintf(v->out, "  %ld:%02ld:%02ld elapsed", secs / 3600, secs / 60 % 60, secs % 60);
    fflush(v->out);
    v->line_open = 1;
}

/* End the live line, so that what follows starts on a line of its own. */
static void close_line(view *v) {
    if (!v->line_open) return;
    fputc('\n', v->out);
    fflush(v->out);
    v->line_open = 0;
}

static void show(view *v, const Docq__V1__Task *t) {
    v->seen = 1;
    v->state = (docq_task_state)t->state;
    v->version = t->version;
    v->attempts = t->attempts;
    v->position = t->queue_position;
    if (!v->tty) {
        print_plain(v, t);
        return;
    }
    print_live(v);
    if (docq_task_state_terminal(v->state)) {
        close_line(v);
        const char *text = v->state == DOCQ_STATE_SUCCESS ? t->result : t->error;
        fprintf(v->out, "%s ", v->state == DOCQ_STATE_SUCCESS ? "result:" : "error:");
        cli_put_text(v->out, text, 0);
        fputc('\n', v->out);
        fflush(v->out);
    }
}

static void pause_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

/* Read one opened stream to its end, showing each message. Returns what
 * docq_stream_next returned at the end (st filled); *after is the last
 * version seen, *got whether any message came. */
static int read_stream(docq_stream *s, view *v, uint64_t *after, int *got, docq_rpc_status *st) {
    for (;;) {
        ProtobufCMessage *m;
        int ended;
        int rc = docq_stream_next(s, &docq__v1__task__descriptor, v->tty ? TICK_MS : -1, &m, &ended, st);
        if (ended) return rc;
        if (!m) {
            if (v->seen && !docq_task_state_terminal(v->state)) print_live(v);
            continue;
        }
        const Docq__V1__Task *t = (const Docq__V1__Task *)m;
        if (t->version > *after) *after = t->version;
        *got = 1;
        show(v, t);
        protobuf_c_message_free_unpacked(m, NULL);
    }
}

int cli_watch(docq_client *c, const docq_config *cfg, const char *task_id, FILE *out, int tty,
              docq_rpc_status *st) {
    view v = {out, tty, task_id, gpr_now(GPR_CLOCK_MONOTONIC), 0, 0, DOCQ_STATE_UNSPECIFIED, 0, 0, 0};
    uint64_t after = 0;
    long pause = FIRST_PAUSE_MS;
    docq_client *fresh = NULL; /* The channel of the last reopen, if any. */
    int rc;
    for (int tries = 0;;) {
        Docq__V1__WatchStatusRequest req = DOCQ__V1__WATCH_STATUS_REQUEST__INIT;
        docq_stream *s;
        int got = 0;
        req.task_id = (char *)task_id;
        req.after_version = after;
        /* No deadline: a watch lasts as long as the task (AI calls may take
         * minutes); keepalive pings notice a dead connection. */
        gpr_timespec opened = gpr_now(GPR_CLOCK_MONOTONIC);
        if (docq_stream_open(fresh ? fresh : c, DOCQ_METHOD_WATCH_STATUS, &req.base, 0, &s, st) != DOCQ_OK) {
            rc = -1;
            break;
        }
        rc = read_stream(s, &v, &after, &got, st);
        docq_stream_close(s);
        if (rc == DOCQ_OK) {
            rc = v.state == DOCQ_STATE_SUCCESS ? 0 : 1;
            break;
        }
        /* A stream that worked for a while (it brought a change, or lasted:
         * a connection aged out, a proxy's idle timeout) used up no tries. */
        if (got || gpr_time_to_millis(gpr_time_sub(gpr_now(GPR_CLOCK_MONOTONIC), opened)) >= STABLE_MS) {
            tries = 0;
            pause = FIRST_PAUSE_MS;
        }
        if (rc != DOCQ_EUNAVAIL || tries == REOPEN_TRIES) {
            rc = -1;
            break;
        }
        tries++;
        close_line(&v);
        fprintf(stderr, "docq: %s: ", docq_grpc_status_name(st->code));
        cli_put_text(stderr, st->details[0] ? st->details : "(no details)", 0);
        fprintf(stderr, "; reopening the watch after version %" PRIu64 " (%d of %d)\n", after, tries,
                REOPEN_TRIES);
        pause_ms(pause);
        pause *= 2;
        /* A new channel: the old one, having failed to connect, would wait
         * out its reconnect backoff (as long as a call's deadline) before
         * trying again, failing each call at once meanwhile. Its own backoff
         * is short, because grpc_shutdown waits for a pending one at exit. */
        docq_error err = {0};
        long connect_ms = cfg->deadline_ms < REOPEN_CONNECT_MS ? cfg->deadline_ms : REOPEN_CONNECT_MS;
        docq_client_free(fresh);
        docq_client_tls tls;
        docq_client_tls_from_config(cfg, &tls);
        fresh = docq_client_create(cfg->server, &tls, connect_ms, cfg->keepalive_ms, &err);
        /* The reopened watch is the same caller's: its key goes along. */
        if (fresh && docq_client_set_api_key(fresh, cfg->api_key) != DOCQ_OK) {
            docq_client_free(fresh);
            fresh = NULL;
        }
    }
    close_line(&v);
    docq_client_free(fresh);
    return rc;
}
