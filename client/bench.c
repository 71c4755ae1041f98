/* bench.c -- docq bench, the load generator. See bench.h.
 *
 * Threads and ownership: the main thread starts --threads generator threads
 * and then only reads their statistics (atomics) for the progress line. Each
 * generator thread owns its completion queue, its users, its calls and its
 * timer heap; nothing of one thread is touched by another, except the
 * shared channels (thread-safe in gRPC) and the run-wide atomics in
 * bench_run.
 *
 * A call in flight is a bench_call; its completion-queue tags are the
 * call_tag structs inside it, one per kind of batch, so that a watch stream
 * can have its status batch and a message batch in flight at once:
 *
 *   unary call (SubmitDoc, GetStatus): one batch of six ops, tag `main`.
 *   WatchStatus: `main` = send request + receive initial metadata, then
 *     repeated RECV_MESSAGE batches (a NULL message = end of stream);
 *     `status` = RECV_STATUS_ON_CLIENT, posted at once. The call ends when
 *     both are done (pending == 0).
 *
 * A closed-loop user moves IDLE -> SUBMIT -> (POLL_WAIT <-> POLL | WATCH)
 * -> IDLE, one call at a time. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>

#include "clock.h"
#include "bench.h"
#include "client.h"
#include "codec.h"
#include "credentials.h"
#include "histogram.h"

enum { RPC_SUBMIT, RPC_STATUS, RPC_WATCH, NRPC };
static const char *const rpc_names[NRPC] = {"SubmitDoc", "GetStatus", "WatchStatus"};
static const char *const rpc_paths[NRPC] = {"/docq.v1.DocQueue/SubmitDoc", "/docq.v1.DocQueue/GetStatus",
                                            "/docq.v1.DocQueue/WatchStatus"};
#define NCODES 17

typedef enum follow_mode { FOLLOW_POLL, FOLLOW_WATCH, FOLLOW_NONE } follow_mode;

/* Statistics of one generator thread. Written by that thread, read by the
 * main thread while it runs: hence atomics. */
typedef struct bench_stats {
    docq_hist lat[NRPC];                   /* Call latency per RPC. */
    docq_hist e2e;                         /* Submit to terminal state seen. */
    docq_hist retry_delay;                 /* Refused SubmitDocs: the delay the server told. */
    atomic_uint_fast64_t codes[NRPC][NCODES];
    atomic_uint_fast64_t succeeded, failed; /* Tasks that ended SUCCESS / FAILURE. */
} bench_stats;

typedef struct bench_run bench_run;
typedef struct bench_thread bench_thread;
typedef struct bench_user bench_user;
typedef struct bench_call bench_call;

typedef enum tag_kind { TAG_MAIN, TAG_STATUS } tag_kind;

typedef struct call_tag {
    bench_call *call;
    tag_kind kind;
} call_tag;

struct bench_call {
    bench_thread *t;
    bench_user *user;        /* NULL for an open-loop SubmitDoc. */
    int rpc;                 /* RPC_*. */
    grpc_call *call;
    call_tag main, status;
    int pending;             /* Batches in flight. */
    int cancelled;           /* We cancelled it (run over): not counted. */
    int got_terminal;        /* Watch: a terminal state arrived. */
    int messages;            /* Watch: messages received. */
    int reading;             /* Watch: RECV_MESSAGE batches have begun. */
    grpc_metadata_array initial_md, trailing_md;
    grpc_byte_buffer *send, *recv;
    grpc_status_code code;
    grpc_slice details;
    int64_t start_ns;        /* When the call was due (open loop) or started. */
    grpc_metadata *auth;     /* API key metadata to send, or NULL (the run's). */
};

typedef enum user_state { USER_IDLE, USER_SUBMIT, USER_POLL_WAIT, USER_POLL, USER_WATCH, USER_DONE } user_state;

struct bench_user {
    bench_thread *t;
    int index;               /* Run-wide user number. */
    grpc_channel *channel;
    user_state state;
    char task_id[DOCQ_TASK_ID_MAX];
    int64_t submit_ns;       /* Start of the current task, for end-to-end time. */
    int64_t wake_ns;         /* When a POLL_WAIT (or retry) ends. */
    int heap_pos;            /* Index in the timer heap, -1 when not in it. */
    long seq;                /* Documents this user submitted. */
    bench_call *active;      /* Its call in flight, or NULL. */
    grpc_metadata *auth;     /* Its API key as metadata (the run's), or NULL. */
};

struct bench_thread {
    bench_run *run;
    int index;
    pthread_t tid;
    grpc_completion_queue *cq;
    bench_user *users;
    int nusers;
    bench_user **heap;       /* Min-heap of waiting users by wake_ns. */
    int nheap;
    long in_flight;          /* Calls in flight on this thread. */
    double rate;             /* Open loop: this thread's SubmitDocs per second. */
    int64_t next_due_ns;     /* Open loop: when the next SubmitDoc is due. */
    long open_seq;
    bench_stats stats;
};

struct bench_run {
    const docq_config *cfg;
    follow_mode follow;
    grpc_channel **channels;
    void **methods;          /* Registered call handles: [channel * NRPC + rpc]. */
    int nchannels;
    bench_thread *threads;
    int nthreads;
    int64_t start_ns, end_ns;        /* end_ns: stop starting new work (duration runs). */
    atomic_long tasks_started;       /* --tasks budget taken so far. */
    atomic_int stopping;             /* Set when no new work may start. */
    grpc_metadata *keys;     /* "authorization: Bearer <key>" per key; owned. */
    int nkeys;
};

/* A monotonic gpr deadline at absolute time ns (our clock and gRPC's
 * GPR_CLOCK_MONOTONIC differ in origin, so convert through "now"). */
static gpr_timespec deadline_at(int64_t ns) {
    int64_t delta = ns - docq_now_ns();
    if (delta < 0) delta = 0;
    return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_nanos(delta, GPR_TIMESPAN));
}

/* ---- timer heap --------------------------------------------------------- */

static void heap_swap(bench_thread *t, int a, int b) {
    bench_user *x = t->heap[a];
    t->heap[a] = t->heap[b];
    t->heap[b] = x;
    t->heap[a]->heap_pos = a;
    t->heap[b]->heap_pos = b;
}

static void heap_up(bench_thread *t, int i) {
    while (i > 0 && t->heap[(i - 1) / 2]->wake_ns > t->heap[i]->wake_ns) {
        heap_swap(t, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
}

static void heap_down(bench_thread *t, int i) {
    for (;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        if (l < t->nheap && t->heap[l]->wake_ns < t->heap[m]->wake_ns) m = l;
        if (r < t->nheap && t->heap[r]->wake_ns < t->heap[m]->wake_ns) m = r;
        if (m == i) return;
        heap_swap(t, i, m);
        i = m;
    }
}

/* Put u to sleep until wake_ns (the heap has room for every user). */
static void heap_push(bench_thread *t, bench_user *u, int64_t wake_ns) {
    u->wake_ns = wake_ns;
    u->heap_pos = t->nheap;
    t->heap[t->nheap++] = u;
    heap_up(t, u->heap_pos);
}

static bench_user *heap_pop(bench_thread *t) {
    bench_user *u = t->heap[0];
    heap_swap(t, 0, --t->nheap);
    heap_down(t, 0);
    u->heap_pos = -1;
    return u;
}

/* ---- calls -------------------------------------------------------------- */

/* Create a call of kind rpc on channel ch (index chi) for t's queue. The
 * request message is packed into the call. Returns NULL when out of memory
 * or when gRPC refuses (counted as INTERNAL by the caller). */
static bench_call *call_new(bench_thread *t, bench_user *u, int rpc, int chi, const ProtobufCMessage *req,
                            int64_t start_ns) {
    bench_run *run = t->run;
    bench_call *c = calloc(1, sizeof(*c));
    if (!c) return NULL;
    c->t = t;
    c->user = u;
    c->rpc = rpc;
    c->main.call = c->status.call = c;
    c->main.kind = TAG_MAIN;
    c->status.kind = TAG_STATUS;
    c->start_ns = start_ns;
    c->details = grpc_empty_slice();
    grpc_metadata_array_init(&c->initial_md);
    grpc_metadata_array_init(&c->trailing_md);
    gpr_timespec deadline = rpc == RPC_WATCH ? gpr_inf_future(GPR_CLOCK_MONOTONIC)
                                             : deadline_at(docq_now_ns() + run->cfg->deadline_ms * 1000000L);
    c->call = grpc_channel_create_registered_call(run->channels[chi], NULL, GRPC_PROPAGATE_DEFAULTS, t->cq,
                                                  run->methods[chi * NRPC + rpc], deadline, NULL);
    c->send = docq_codec_pack(req);
    if (!c->call || !c->send) {
        if (c->call) grpc_call_unref(c->call);
        if (c->send) grpc_byte_buffer_destroy(c->send);
        grpc_metadata_array_destroy(&c->initial_md);
        grpc_metadata_array_destroy(&c->trailing_md);
        free(c);
        return NULL;
    }
    return c;
}

static void call_free(bench_call *c) {
    grpc_call_unref(c->call);
    if (c->send) grpc_byte_buffer_destroy(c->send);
    if (c->recv) grpc_byte_buffer_destroy(c->recv);
    grpc_metadata_array_destroy(&c->initial_md);
    grpc_metadata_array_destroy(&c->trailing_md);
    grpc_slice_unref(c->details);
    free(c);
}

/* Start a batch; returns DOCQ_OK or DOCQ_ERR (then it will never complete). */
static int call_batch(bench_call *c, const grpc_op *ops, size_t n, call_tag *tag) {
    if (grpc_call_start_batch(c->call, ops, n, tag, NULL) != GRPC_CALL_OK) return DOCQ_ERR;
    c->pending++;
    return DOCQ_OK;
}

/* Fill ops[0..3] (zeroed by the caller) with the request half of a call:
 * initial metadata (the API key, if any), the message, the half-close, and
 * the receipt of the server's initial metadata. Returns 4. */
static size_t request_ops(bench_call *c, grpc_op *ops) {
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[0].data.send_initial_metadata.count = c->auth ? 1 : 0;
    ops[0].data.send_initial_metadata.metadata = c->auth;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = c->send;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &c->initial_md;
    return 4;
}

/* Start the whole unary exchange in one batch. */
static int start_unary(bench_call *c) {
    grpc_op ops[6];
    memset(ops, 0, sizeof(ops));
    request_ops(c, ops);
    ops[4].op = GRPC_OP_RECV_MESSAGE;
    ops[4].data.recv_message.recv_message = &c->recv;
    ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[5].data.recv_status_on_client.trailing_metadata = &c->trailing_md;
    ops[5].data.recv_status_on_client.status = &c->code;
    ops[5].data.recv_status_on_client.status_details = &c->details;
    return call_batch(c, ops, 6, &c->main);
}

/* Start a watch: the request and initial metadata on `main`, the status on
 * `status`; messages are read once `main` completes. */
static int start_watch(bench_call *c) {
    grpc_op ops[4];
    memset(ops, 0, sizeof(ops));
    if (call_batch(c, ops, request_ops(c, ops), &c->main) != DOCQ_OK) return DOCQ_ERR;
    grpc_op st;
    memset(&st, 0, sizeof(st));
    st.op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    st.data.recv_status_on_client.trailing_metadata = &c->trailing_md;
    st.data.recv_status_on_client.status = &c->code;
    st.data.recv_status_on_client.status_details = &c->details;
    if (call_batch(c, &st, 1, &c->status) != DOCQ_OK) {
        grpc_call_cancel(c->call, NULL);
        return DOCQ_OK; /* `main` completes (cancelled) and ends the call. */
    }
    return DOCQ_OK;
}

static int read_message(bench_call *c) {
    grpc_op op;
    memset(&op, 0, sizeof(op));
    op.op = GRPC_OP_RECV_MESSAGE;
    op.data.recv_message.recv_message = &c->recv;
    return call_batch(c, &op, 1, &c->main);
}

/* ---- users ---------------------------------------------------------------- */

static void user_next_task(bench_user *u);

/* Take one unit of the --tasks budget; 0 when the run must not start more. */
static int take_task(bench_run *run) {
    if (atomic_load(&run->stopping)) return 0;
    if (run->cfg->bench_tasks > 0 && atomic_fetch_add(&run->tasks_started, 1) >= run->cfg->bench_tasks) {
        atomic_fetch_sub(&run->tasks_started, 1);
        return 0;
    }
    return 1;
}

/* Start a call for u (or an open-loop call when u is NULL); a call that
 * cannot be created counts as INTERNAL. Returns the call or NULL. */
static bench_call *launch(bench_thread *t, bench_user *u, int rpc, const ProtobufCMessage *req, int64_t start_ns) {
    bench_run *run = t->run;
    int chi = u ? u->index % run->nchannels : (int)(t->open_seq % run->nchannels);
    bench_call *c = call_new(t, u, rpc, chi, req, start_ns);
    if (c && run->nkeys) c->auth = u ? u->auth : &run->keys[t->open_seq % run->nkeys];
    int ok = c && (rpc == RPC_WATCH ? start_watch(c) : start_unary(c)) == DOCQ_OK;
    if (!ok) {
        atomic_fetch_add(&t->stats.codes[rpc][GRPC_STATUS_INTERNAL], 1);
        if (c) call_free(c);
        return NULL;
    }
    t->in_flight++;
    if (u) u->active = c;
    return c;
}

static void user_sleep(bench_user *u, user_state state, long ms) {
    u->state = state;
    heap_push(u->t, u, docq_now_ns() + ms * 1000000L);
}

static void user_submit(bench_user *u) {
    char doc[96];
    snprintf(doc, sizeof(doc), "bench-u%d-%ld", u->index, u->seq++);
    Docq__V1__SubmitDocRequest req = DOCQ__V1__SUBMIT_DOC_REQUEST__INIT;
    req.doc_id = doc;
    u->state = USER_SUBMIT;
    u->submit_ns = docq_now_ns();
    if (!launch(u->t, u, RPC_SUBMIT, &req.base, u->submit_ns)) user_sleep(u, USER_IDLE, 100);
}

static void user_poll(bench_user *u) {
    Docq__V1__GetStatusRequest req = DOCQ__V1__GET_STATUS_REQUEST__INIT;
    req.task_id = u->task_id;
    u->state = USER_POLL;
    if (!launch(u->t, u, RPC_STATUS, &req.base, docq_now_ns())) user_next_task(u);
}

static void user_watch(bench_user *u) {
    Docq__V1__WatchStatusRequest req = DOCQ__V1__WATCH_STATUS_REQUEST__INIT;
    req.task_id = u->task_id;
    u->state = USER_WATCH;
    if (!launch(u->t, u, RPC_WATCH, &req.base, docq_now_ns())) user_next_task(u);
}

/* The user's task ended (or was given up): start the next one, if any. */
static void user_next_task(bench_user *u) {
    if (take_task(u->t->run))
        user_submit(u);
    else
        u->state = USER_DONE;
}

/* A task reached a terminal state: count it and its end-to-end time. */
static void task_finished(bench_user *u, int state) {
    bench_stats *s = &u->t->stats;
    docq_hist_record(&s->e2e, (uint64_t)(docq_now_ns() - u->submit_ns) / 1000);
    atomic_fetch_add(state == DOCQ__V1__TASK__STATE__SUCCESS ? &s->succeeded : &s->failed, 1);
}

static int terminal(int state) {
    return state == DOCQ__V1__TASK__STATE__SUCCESS || state == DOCQ__V1__TASK__STATE__FAILURE;
}

/* A SubmitDoc of u ended. */
static void on_submitted(bench_user *u, bench_call *c) {
    bench_run *run = u->t->run;
    Docq__V1__SubmitDocResponse *r = c->code == GRPC_STATUS_OK
        ? (Docq__V1__SubmitDocResponse *)docq_codec_unpack(&docq__v1__submit_doc_response__descriptor, c->recv)
        : NULL;
    if (!r) {
        /* Refused or failed: try a new document after a pause. The --tasks
         * budget unit is given back so that the run still does N tasks. */
        if (run->cfg->bench_tasks > 0) atomic_fetch_sub(&run->tasks_started, 1);
        user_sleep(u, USER_IDLE, run->cfg->bench_poll_ms > 10 ? run->cfg->bench_poll_ms : 10);
        return;
    }
    snprintf(u->task_id, sizeof(u->task_id), "%s", r->task_id);
    protobuf_c_message_free_unpacked(&r->base, NULL);
    if (run->follow == FOLLOW_NONE)
        user_next_task(u);
    else if (run->follow == FOLLOW_WATCH)
        user_watch(u);
    else
        user_sleep(u, USER_POLL_WAIT, run->cfg->bench_poll_ms);
}

/* A GetStatus of u ended. */
static void on_polled(bench_user *u, bench_call *c) {
    Docq__V1__Task *task = c->code == GRPC_STATUS_OK
        ? (Docq__V1__Task *)docq_codec_unpack(&docq__v1__task__descriptor, c->recv)
        : NULL;
    if (!task) {
        user_next_task(u); /* The task cannot be followed: give it up. */
        return;
    }
    int state = task->state;
    protobuf_c_message_free_unpacked(&task->base, NULL);
    if (terminal(state)) {
        task_finished(u, state);
        user_next_task(u);
    } else {
        user_sleep(u, USER_POLL_WAIT, u->t->run->cfg->bench_poll_ms);
    }
}

/* ---- completions ------------------------------------------------------- */

/* Record a finished call's latency and status, unless we cancelled it. */
static void record_call(bench_call *c) {
    bench_stats *s = &c->t->stats;
    if (c->cancelled) return;
    int code = c->code >= 0 && c->code < NCODES ? (int)c->code : GRPC_STATUS_UNKNOWN;
    atomic_fetch_add(&s->codes[c->rpc][code], 1);
    if (code == GRPC_STATUS_RESOURCE_EXHAUSTED) {
        long delay = docq_client_retry_delay(&c->trailing_md);
        if (delay >= 0) docq_hist_record(&s->retry_delay, (uint64_t)delay * 1000);
    }
    if (c->rpc != RPC_WATCH) docq_hist_record(&s->lat[c->rpc], (uint64_t)(docq_now_ns() - c->start_ns) / 1000);
}

/* A watch's `main` batch completed: the request went out (then read the
 * first message), or a message arrived (take it and read the next). */
static void on_watch_message(bench_call *c, int success) {
    if (success && !c->reading) {
        c->reading = 1; /* The request is sent: read the first message. */
        if (read_message(c) != DOCQ_OK) grpc_call_cancel(c->call, NULL);
        return;
    }
    if (!success || !c->recv) return; /* Stream over: the status batch ends the call. */
    Docq__V1__Task *task = (Docq__V1__Task *)docq_codec_unpack(&docq__v1__task__descriptor, c->recv);
    grpc_byte_buffer_destroy(c->recv);
    c->recv = NULL;
    if (task) {
        if (c->messages++ == 0)
            docq_hist_record(&c->t->stats.lat[RPC_WATCH], (uint64_t)(docq_now_ns() - c->start_ns) / 1000);
        if (terminal(task->state) && !c->got_terminal) {
            c->got_terminal = 1;
            if (c->user) task_finished(c->user, task->state);
        }
        protobuf_c_message_free_unpacked(&task->base, NULL);
    }
    if (read_message(c) != DOCQ_OK) grpc_call_cancel(c->call, NULL);
}

/* Every batch of c has completed: account for it and move its user on. */
static void call_done(bench_call *c) {
    bench_thread *t = c->t;
    bench_user *u = c->user;
    record_call(c);
    t->in_flight--;
    if (u) {
        u->active = NULL;
        if (atomic_load(&t->run->stopping) && t->run->cfg->bench_tasks == 0)
            u->state = USER_DONE;
        else if (c->rpc == RPC_SUBMIT)
            on_submitted(u, c);
        else if (c->rpc == RPC_STATUS)
            on_polled(u, c);
        else
            user_next_task(u);
    }
    call_free(c);
}

static void on_event(call_tag *tag, int success) {
    bench_call *c = tag->call;
    c->pending--;
    if (c->rpc == RPC_WATCH && tag->kind == TAG_MAIN) on_watch_message(c, success);
    if (c->pending == 0) call_done(c);
}

/* ---- the generator thread -------------------------------------------- */

/* Open loop: start every SubmitDoc that is due. */
static void open_loop_due(bench_thread *t, int64_t now) {
    while (t->rate > 0 && t->next_due_ns <= now && take_task(t->run)) {
        char doc[96];
        snprintf(doc, sizeof(doc), "bench-t%d-%ld", t->index, t->open_seq);
        Docq__V1__SubmitDocRequest req = DOCQ__V1__SUBMIT_DOC_REQUEST__INIT;
        req.doc_id = doc;
        launch(t, NULL, RPC_SUBMIT, &req.base, t->next_due_ns);
        t->open_seq++;
        t->next_due_ns += (int64_t)(1e9 / t->rate);
    }
}

/* Wake the users whose pause is over. */
static void timers_due(bench_thread *t, int64_t now) {
    while (t->nheap > 0 && t->heap[0]->wake_ns <= now) {
        bench_user *u = heap_pop(t);
        if (atomic_load(&t->run->stopping) && t->run->cfg->bench_tasks == 0)
            u->state = USER_DONE;
        else if (u->state == USER_POLL_WAIT)
            user_poll(u);
        else
            user_next_task(u);
    }
}

/* Cancel the watches still open when a timed run ends: they may wait for
 * tasks that take minutes. */
static void cancel_watches(bench_thread *t) {
    for (int i = 0; i < t->nusers; i++) {
        bench_call *c = t->users[i].active;
        if (c && c->rpc == RPC_WATCH && !c->cancelled) {
            c->cancelled = 1;
            grpc_call_cancel(c->call, NULL);
        }
    }
}

static int thread_idle(const bench_thread *t) {
    if (t->in_flight > 0) return 0;
    if (t->rate > 0) return atomic_load(&t->run->stopping);
    for (int i = 0; i < t->nusers; i++)
        if (t->users[i].state != USER_DONE) return 0;
    return 1;
}

static void *thread_main(void *arg) {
    bench_thread *t = arg;
    bench_run *run = t->run;
    int cancelled = 0;
    for (int i = 0; i < t->nusers; i++) user_next_task(&t->users[i]);
    while (!thread_idle(t)) {
        int64_t now = docq_now_ns();
        if (run->end_ns && now >= run->end_ns && !atomic_load(&run->stopping)) atomic_store(&run->stopping, 1);
        if (atomic_load(&run->stopping) && run->cfg->bench_tasks == 0) {
            while (t->nheap > 0) heap_pop(t)->state = USER_DONE;
            if (!cancelled) cancel_watches(t);
            cancelled = 1;
        }
        open_loop_due(t, now);
        timers_due(t, now);
        int64_t wake = now + 100000000L;
        if (t->nheap > 0 && t->heap[0]->wake_ns < wake) wake = t->heap[0]->wake_ns;
        if (t->rate > 0 && t->next_due_ns < wake) wake = t->next_due_ns;
        if (run->end_ns && !atomic_load(&run->stopping) && run->end_ns < wake) wake = run->end_ns;
        grpc_event ev = grpc_completion_queue_next(t->cq, deadline_at(wake), NULL);
        if (ev.type == GRPC_OP_COMPLETE) on_event(ev.tag, ev.success);
    }
    return NULL;
}

/* ---- set-up and results -------------------------------------------------- */

/* Add "authorization: Bearer <key>" for key (n bytes) to the run's keys. */
static int add_key(bench_run *run, const char *key, size_t n) {
    grpc_metadata *grown = realloc(run->keys, (size_t)(run->nkeys + 1) * sizeof(*grown));
    char *value = malloc(n + 8);
    if (!grown || !value) {
        free(value);
        if (grown) run->keys = grown;
        return DOCQ_ERR;
    }
    run->keys = grown;
    memcpy(value, "Bearer ", 7);
    memcpy(value + 7, key, n);
    memset(&run->keys[run->nkeys], 0, sizeof(grpc_metadata));
    run->keys[run->nkeys].key = grpc_slice_from_static_string("authorization");
    run->keys[run->nkeys].value = grpc_slice_from_copied_buffer(value, n + 7);
    run->nkeys++;
    free(value);
    return DOCQ_OK;
}

/* The keys the users send: the lines of --api-keys-file (blank lines and
 * lines starting with # skipped), else DOCQ_API_KEY, else none. Returns
 * DOCQ_OK or DOCQ_ERR with err set (never quoting a key). */
static int load_keys(bench_run *run, const docq_config *cfg, docq_error *err) {
    if (!cfg->bench_api_keys_file[0]) {
        if (!cfg->api_key[0] || add_key(run, cfg->api_key, strlen(cfg->api_key)) == DOCQ_OK) return DOCQ_OK;
        return docq_error_set(err, DOCQ_ERR, "out of memory");
    }
    FILE *f = fopen(cfg->bench_api_keys_file, "r");
    if (!f) return docq_error_set(err, DOCQ_ERR, "cannot read %s: %s", cfg->bench_api_keys_file, strerror(errno));
    char line[1024];
    int rc = DOCQ_OK;
    while (rc == DOCQ_OK && fgets(line, sizeof(line), f)) {
        size_t n = strcspn(line, " \t\r\n");
        if (n > 0 && line[0] != '#') rc = add_key(run, line, n);
    }
    explicit_bzero(line, sizeof(line));
    fclose(f);
    if (rc != DOCQ_OK) return docq_error_set(err, DOCQ_ERR, "out of memory");
    if (run->nkeys == 0) return docq_error_set(err, DOCQ_ERR, "%s holds no key", cfg->bench_api_keys_file);
    return DOCQ_OK;
}

/* Open the run's channels (plaintext or TLS, as cfg says), each its own
 * connection, and register the methods on each. Returns DOCQ_OK, or DOCQ_ERR
 * with err set (an unreadable certificate file, say). */
static int open_channels(bench_run *run, const docq_config *cfg, docq_error *err) {
    docq_client_tls tls;
    docq_client_tls_from_config(cfg, &tls);
    grpc_channel_credentials *creds = docq_client_credentials(&tls, err);
    if (!creds) return DOCQ_ERR;
    /* Channels with equal args would share one connection. */
    grpc_arg args[2] = {{GRPC_ARG_INTEGER, GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, {.integer = 1}}};
    grpc_channel_args chargs = {1 + (size_t)docq_client_server_name_arg(&tls, &args[1]), args};
    for (int i = 0; i < run->nchannels; i++) {
        run->channels[i] = grpc_channel_create(cfg->server, creds, &chargs);
        for (int r = 0; r < NRPC; r++)
            run->methods[i * NRPC + r] = grpc_channel_register_call(run->channels[i], rpc_paths[r], NULL, NULL);
    }
    grpc_channel_credentials_release(creds);
    return DOCQ_OK;
}

static int run_setup(bench_run *run, const docq_config *cfg, docq_error *err) {
    memset(run, 0, sizeof(*run));
    run->cfg = cfg;
    run->follow = !strcmp(cfg->bench_follow, "watch") ? FOLLOW_WATCH
                  : !strcmp(cfg->bench_follow, "none") ? FOLLOW_NONE : FOLLOW_POLL;
    run->nchannels = (int)cfg->bench_connections;
    run->nthreads = (int)cfg->bench_threads;
    run->channels = calloc((size_t)run->nchannels, sizeof(*run->channels));
    run->methods = calloc((size_t)run->nchannels * NRPC, sizeof(*run->methods));
    run->threads = calloc((size_t)run->nthreads, sizeof(*run->threads));
    if (!run->channels || !run->methods || !run->threads)
        return docq_error_set(err, DOCQ_ERR, "out of memory");
    if (open_channels(run, cfg, err) != DOCQ_OK) return DOCQ_ERR;
    if (load_keys(run, cfg, err) != DOCQ_OK) return DOCQ_ERR;
    long users = cfg->bench_rate > 0 ? 0 : cfg->bench_users;
    for (int i = 0; i < run->nthreads; i++) {
        bench_thread *t = &run->threads[i];
        t->run = run;
        t->index = i;
        t->cq = grpc_completion_queue_create_for_next(NULL);
        t->nusers = (int)(users / run->nthreads + (i < users % run->nthreads));
        t->users = calloc((size_t)t->nusers + 1, sizeof(bench_user));
        t->heap = calloc((size_t)t->nusers + 1, sizeof(bench_user *));
        if (!t->users || !t->heap) return docq_error_set(err, DOCQ_ERR, "out of memory");
        t->rate = cfg->bench_rate > 0 ? (double)cfg->bench_rate / run->nthreads : 0;
        for (int k = 0; k < t->nusers; k++) {
            bench_user *u = &t->users[k];
            u->t = t;
            u->index = k * run->nthreads + i;
            u->heap_pos = -1;
            u->auth = run->nkeys ? &run->keys[u->index % run->nkeys] : NULL;
        }
    }
    return DOCQ_OK;
}

static void run_free(bench_run *run) {
    for (int i = 0; run->threads && i < run->nthreads; i++) {
        bench_thread *t = &run->threads[i];
        if (t->cq) {
            grpc_completion_queue_shutdown(t->cq);
            while (grpc_completion_queue_next(t->cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL).type !=
                   GRPC_QUEUE_SHUTDOWN) {
            }
            grpc_completion_queue_destroy(t->cq);
        }
        free(t->users);
        free(t->heap);
    }
    for (int i = 0; run->channels && i < run->nchannels; i++)
        if (run->channels[i]) grpc_channel_destroy(run->channels[i]);
    free(run->channels);
    free(run->methods);
    free(run->threads);
    for (int i = 0; i < run->nkeys; i++) grpc_slice_unref(run->keys[i].value);
    free(run->keys);
}

/* Sum every thread's statistics into total (zeroed first). */
static void stats_total(const bench_run *run, bench_stats *total) {
    memset(total, 0, sizeof(*total));
    for (int i = 0; i < run->nthreads; i++) {
        const bench_stats *s = &run->threads[i].stats;
        for (int r = 0; r < NRPC; r++) {
            docq_hist_merge(&total->lat[r], &s->lat[r]);
            for (int k = 0; k < NCODES; k++) atomic_fetch_add(&total->codes[r][k], atomic_load(&s->codes[r][k]));
        }
        docq_hist_merge(&total->e2e, &s->e2e);
        docq_hist_merge(&total->retry_delay, &s->retry_delay);
        atomic_fetch_add(&total->succeeded, atomic_load(&s->succeeded));
        atomic_fetch_add(&total->failed, atomic_load(&s->failed));
    }
}

static uint64_t calls_of(const bench_stats *s, int rpc) {
    uint64_t n = 0;
    for (int k = 0; k < NCODES; k++) n += atomic_load(&s->codes[rpc][k]);
    return n;
}

/* Calls that ended with a status other than OK and RESOURCE_EXHAUSTED. */
static uint64_t errors_of(const bench_stats *s) {
    uint64_t n = 0;
    for (int r = 0; r < NRPC; r++)
        for (int k = 0; k < NCODES; k++)
            if (k != GRPC_STATUS_OK && k != GRPC_STATUS_RESOURCE_EXHAUSTED) n += atomic_load(&s->codes[r][k]);
    return n;
}

static double ms(uint64_t us) { return (double)us / 1000.0; }

static void progress_line(const bench_run *run) {
    static bench_stats s; /* Main thread only. */
    stats_total(run, &s);
    uint64_t calls = 0;
    for (int r = 0; r < NRPC; r++) calls += calls_of(&s, r);
    double elapsed = (double)(docq_now_ns() - run->start_ns) / 1e9;
    fprintf(stderr, "\r%6.1f s  %10llu calls  %9.0f calls/s  %6llu errors  SubmitDoc p99 %.2f ms   ", elapsed,
            (unsigned long long)calls, elapsed > 0 ? (double)calls / elapsed : 0.0,
            (unsigned long long)errors_of(&s), ms(docq_hist_quantile(&s.lat[RPC_SUBMIT], 0.99)));
    fflush(stderr);
}

static const double quantiles[] = {0.5, 0.9, 0.99, 0.999, 1.0};
static const char *const quantile_names[] = {"p50", "p90", "p99", "p99_9", "max"};
#define NQ 5

static void print_table(const bench_run *run, const bench_stats *s, double secs) {
    const docq_config *cfg = run->cfg;
    if (cfg->bench_rate > 0)
        printf("docq bench: open loop at %ld SubmitDoc/s, %.1f s, server %s\n\n", cfg->bench_rate, secs, cfg->server);
    else
        printf("docq bench: %ld users, follow %s, %.1f s, server %s\n\n", cfg->bench_users, cfg->bench_follow,
               secs, cfg->server);
    printf("%-12s %10s %10s %9s %9s %9s %9s %9s\n", "rpc", "calls", "calls/s", "p50 ms", "p90 ms", "p99 ms",
           "p99.9 ms", "max ms");
    for (int r = 0; r < NRPC; r++) {
        uint64_t n = calls_of(s, r);
        if (!n) continue;
        printf("%-12s %10llu %10.0f", rpc_names[r], (unsigned long long)n, (double)n / secs);
        for (int q = 0; q < NQ; q++) printf(" %9.2f", ms(docq_hist_quantile(&s->lat[r], quantiles[q])));
        printf("\n");
    }
    uint64_t tasks = atomic_load(&s->succeeded) + atomic_load(&s->failed);
    if (tasks) {
        printf("%-12s %10llu %10.0f", "end-to-end", (unsigned long long)tasks, (double)tasks / secs);
        for (int q = 0; q < NQ; q++) printf(" %9.2f", ms(docq_hist_quantile(&s->e2e, quantiles[q])));
        printf("   (submit to terminal state; %llu SUCCESS, %llu FAILURE)\n",
               (unsigned long long)atomic_load(&s->succeeded), (unsigned long long)atomic_load(&s->failed));
    }
    uint64_t refused = atomic_load(&s->retry_delay.total);
    if (refused)
        printf("%-12s %10llu %10s %9.0f %9.0f %9.0f %9.0f %9.0f   (retry delays told, ms)\n", "refusals",
               (unsigned long long)refused, "", ms(docq_hist_quantile(&s->retry_delay, 0.5)),
               ms(docq_hist_quantile(&s->retry_delay, 0.9)), ms(docq_hist_quantile(&s->retry_delay, 0.99)),
               ms(docq_hist_quantile(&s->retry_delay, 0.999)), ms(docq_hist_quantile(&s->retry_delay, 1.0)));
    printf("\nstatus codes:\n");
    for (int r = 0; r < NRPC; r++) {
        if (!calls_of(s, r)) continue;
        printf("  %-12s", rpc_names[r]);
        for (int k = 0; k < NCODES; k++)
            if (atomic_load(&s->codes[r][k]))
                printf(" %s %llu", docq_grpc_status_name(k), (unsigned long long)atomic_load(&s->codes[r][k]));
        printf("\n");
    }
    if (run->follow == FOLLOW_WATCH && calls_of(s, RPC_WATCH))
        printf("\n(WatchStatus latency: time to the first message.)\n");
}

static void print_hist_json(const char *name, const docq_hist *h, uint64_t n, double secs, int comma) {
    printf("    \"%s\": {\"count\": %llu, \"per_s\": %.1f", name, (unsigned long long)n, (double)n / secs);
    for (int q = 0; q < NQ; q++) printf(", \"%s_ms\": %.3f", quantile_names[q], ms(docq_hist_quantile(h, quantiles[q])));
    printf("}%s\n", comma ? "," : "");
}

static void print_json(const bench_run *run, const bench_stats *s, double secs) {
    const docq_config *cfg = run->cfg;
    printf("{\n  \"server\": \"%s\", \"users\": %ld, \"rate\": %ld, \"follow\": \"%s\", \"seconds\": %.3f,\n",
           cfg->server, cfg->bench_rate > 0 ? 0 : cfg->bench_users, cfg->bench_rate, cfg->bench_follow, secs);
    printf("  \"latency\": {\n");
    for (int r = 0; r < NRPC; r++) print_hist_json(rpc_names[r], &s->lat[r], calls_of(s, r), secs, 1);
    print_hist_json("end_to_end", &s->e2e, atomic_load(&s->succeeded) + atomic_load(&s->failed), secs, 1);
    print_hist_json("retry_delay_told", &s->retry_delay, atomic_load(&s->retry_delay.total), secs, 0);
    printf("  },\n  \"codes\": {");
    for (int r = 0; r < NRPC; r++) {
        printf("%s\n    \"%s\": {", r ? "," : "", rpc_names[r]);
        int first = 1;
        for (int k = 0; k < NCODES; k++) {
            if (!atomic_load(&s->codes[r][k])) continue;
            printf("%s\"%s\": %llu", first ? "" : ", ", docq_grpc_status_name(k),
                   (unsigned long long)atomic_load(&s->codes[r][k]));
            first = 0;
        }
        printf("}");
    }
    printf("\n  },\n  \"tasks\": {\"success\": %llu, \"failure\": %llu},\n  \"errors\": %llu\n}\n",
           (unsigned long long)atomic_load(&s->succeeded), (unsigned long long)atomic_load(&s->failed),
           (unsigned long long)errors_of(s));
}

int docq_bench_run(const docq_config *cfg) {
    static bench_run run; /* Large (histograms): kept off the stack. */
    static bench_stats total;
    int rc = 0;
    docq_error err = {0};
    if (run_setup(&run, cfg, &err) != DOCQ_OK) {
        fprintf(stderr, "docq: bench: %s\n", err.msg);
        run_free(&run);
        return 2;
    }
    run.start_ns = docq_now_ns();
    for (int i = 0; i < run.nthreads; i++) run.threads[i].next_due_ns = run.start_ns;
    if (cfg->bench_tasks == 0) run.end_ns = run.start_ns + cfg->bench_duration_ms * 1000000L;
    int started = 0;
    for (; started < run.nthreads; started++)
        if (pthread_create(&run.threads[started].tid, NULL, thread_main, &run.threads[started]) != 0) break;
    if (started < run.nthreads) {
        fprintf(stderr, "docq: bench: cannot start thread %d: %s\n", started, strerror(errno));
        atomic_store(&run.stopping, 1);
        rc = 2;
    }
    int tty = isatty(STDERR_FILENO);
    for (int i = 0; i < started; i++) {
        while (tty && pthread_tryjoin_np(run.threads[i].tid, NULL) == EBUSY) {
            progress_line(&run);
            struct timespec second = {1, 0};
            nanosleep(&second, NULL);
        }
        if (!tty) pthread_join(run.threads[i].tid, NULL);
    }
    double secs = (double)(docq_now_ns() - run.start_ns) / 1e9;
    if (tty) fprintf(stderr, "\n");
    stats_total(&run, &total);
    if (rc == 0) {
        if (cfg->bench_json)
            print_json(&run, &total, secs);
        else
            print_table(&run, &total, secs);
        if (errors_of(&total)) rc = 1;
    }
    run_free(&run);
    return rc;
}
