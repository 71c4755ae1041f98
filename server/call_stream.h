/* call_stream.h -- the batches of one streaming call that server.c handed over:
 * the plumbing WatchStatus, Health.Watch and ServerReflectionInfo share.
 *
 * A call_stream is embedded in its owner's object (a watch, a health
 * watcher, a reflection stream) and moves through these states:
 *
 *   CALL_STREAM_IDLE    initialized; the call is still server.c's (an error is
 *                  answered by server.c, the owner just frees itself).
 *   CALL_STREAM_OPEN    call_stream_start posted RECV_CLOSE_ON_SERVER and took its own
 *                  reference to the call. The owner sends (at most one
 *                  SEND_MESSAGE in flight) and reads (at most one
 *                  RECV_MESSAGE in flight).
 *   CALL_STREAM_ENDING  a status is decided while a send is in flight: when the
 *                  send completes the owner may still send (ops->sent, e.g.
 *                  a last NOT_SERVING); once it sends nothing more, the
 *                  status goes.
 *   CALL_STREAM_ENDED   the status is sent, or the client cancelled (deadline,
 *                  broken connection): no batch is started any more.
 *                  ops->ended has run; the owner is released (ops->release)
 *                  by the thread that sees the last batch complete.
 *
 * Locking: every stream function is called with the owner's lock held (the
 * one given to call_stream_init), and every ops callback except release runs
 * with it held, so batches on one call are never started concurrently even
 * when another thread (the watch subscriber, the health pinger, the main
 * thread at shutdown) pushes messages. Completions arrive on the queue of
 * the server thread that received the call; their tags (server_tag) are
 * embedded here.
 *
 * Each stream may belong to one call_stream_group (the open streams of one
 * service, ended together at shutdown) and to one rpc_metrics (its final
 * status is counted there, and the open-streams gauge). */
#ifndef DOCQ_CALL_STREAM_H
#define DOCQ_CALL_STREAM_H

#include <pthread.h>
#include <stddef.h>

#include <grpc/grpc.h>

#include "error.h"
#include "server_metrics.h"
#include "server_tag.h"

typedef struct call_stream call_stream;
typedef struct call_stream_group call_stream_group;

/* What the owner does at each step. Every callback is optional but release. */
typedef struct call_stream_ops {
    /* A send completed and the stream is OPEN or ENDING: offer the next
     * message, if any (call_stream_sendable is then true). */
    void (*sent)(call_stream *s);
    /* A message arrived on an OPEN stream (msg is the callee's to destroy),
     * or the client half-closed (msg NULL). */
    void (*received)(call_stream *s, grpc_byte_buffer *msg);
    /* The stream reached CALL_STREAM_ENDED: forget it (it is already out of its
     * group). Called once. */
    void (*ended)(call_stream *s);
    /* Free the owner's object: every batch has completed and the stream's
     * call reference is released. Called without the lock. */
    void (*release)(call_stream *s);
} call_stream_ops;

typedef enum call_stream_state { CALL_STREAM_IDLE, CALL_STREAM_OPEN, CALL_STREAM_ENDING, CALL_STREAM_ENDED } call_stream_state;

struct call_stream {
    server_tag send_tag;         /* SEND_MESSAGE (with the initial metadata the first time). */
    server_tag recv_tag;         /* RECV_MESSAGE. */
    server_tag close_tag;        /* RECV_CLOSE_ON_SERVER, posted by call_stream_start. */
    server_tag status_tag;       /* SEND_STATUS_FROM_SERVER. */
    pthread_mutex_t *lock;       /* The owner's; held by every caller (see above). */
    const call_stream_ops *ops;
    rpc_metrics *metrics;        /* Where the final status is counted, or NULL. */
    grpc_call *call;             /* Our own reference once started; released at the end. */
    grpc_byte_buffer *sending;   /* The message in flight, or NULL. */
    grpc_byte_buffer *received;  /* RECV_MESSAGE's target. */
    call_stream_group *group;         /* The group it belongs to, or NULL. */
    call_stream *gprev, *gnext;/* Siblings in the group. */
    int cancelled;               /* Written by RECV_CLOSE_ON_SERVER. */
    int batches;                 /* Batches started and not yet completed. */
    call_stream_state state;
    grpc_status_code end_code;   /* CALL_STREAM_ENDING: the status to send... */
    const char *end_details;     /* ...and its text (static storage). */
    unsigned md_sent : 1;        /* The initial metadata went with a batch. */
    unsigned broken : 1;         /* A send failed: the call is cancelled or dead. */
    unsigned receiving : 1;      /* A RECV_MESSAGE is in flight. */
};

/* Set s up (zeroed, CALL_STREAM_IDLE) with the owner's lock, ops and metrics
 * (may be NULL), which must outlive it. */
void call_stream_init(call_stream *s, pthread_mutex_t *lock, const call_stream_ops *ops, rpc_metrics *metrics);

/* Take call over: post RECV_CLOSE_ON_SERVER and take a reference. Returns
 * DOCQ_OK (CALL_STREAM_OPEN), or DOCQ_ERR when gRPC refuses the batch (the call is
 * left untouched to the caller, the stream stays IDLE). */
int call_stream_start(call_stream *s, grpc_call *call);

/* 1 when a message may be sent now: OPEN or ENDING, nothing in flight and
 * the call not broken; else 0. */
int call_stream_sendable(const call_stream *s);

/* Send msg (taken over: destroyed after its batch completes). s must be
 * sendable. Returns DOCQ_OK, or DOCQ_ERR when the batch cannot start (msg is
 * destroyed and the stream ends with INTERNAL). */
int call_stream_send(call_stream *s, grpc_byte_buffer *msg);

/* Read the next message (ops->received gets it). s must be OPEN with no read
 * in flight. Returns DOCQ_OK, or DOCQ_ERR when the batch cannot start (the
 * stream ends with INTERNAL). */
int call_stream_recv(call_stream *s);

/* End s with code and details (static storage): now, or after the send in
 * flight (see CALL_STREAM_ENDING). The first status decided wins; an IDLE or
 * ended stream is left alone. */
void call_stream_end(call_stream *s, grpc_status_code code, const char *details);

/* The open streams of one service, ended together at shutdown. Its lock is
 * the lock of its streams. */
struct call_stream_group {
    pthread_mutex_t lock;
    call_stream *head;        /* Members: started and not yet ended. */
    size_t count;
    int closed;                 /* call_stream_group_close ran: no new member. */
};

void call_stream_group_init(call_stream_group *g);

/* Destroy the lock; the group must be empty. */
void call_stream_group_destroy(call_stream_group *g);

/* Add a started stream (lock held). Returns DOCQ_OK, or DOCQ_EUNAVAIL when
 * the group is closed (the server is shutting down). */
int call_stream_group_add(call_stream_group *g, call_stream *s);

/* Refuse new members and end every member with code and details (static
 * storage). Takes the lock. */
void call_stream_group_close(call_stream_group *g, grpc_status_code code, const char *details);

/* The number of members (takes the lock). */
size_t call_stream_group_count(call_stream_group *g);

#endif
