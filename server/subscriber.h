/* subscriber.h -- the server's one Redis subscription, feeding the watch hub.
 *
 * One thread per server process, with two Redis connections of its own:
 * `sub`, subscribed to every shard's events channel (P:{sN}:events), and
 * `cmd` for reads. In a Redis Cluster the scripts publish with SPUBLISH
 * (sharded pub/sub: an event travels only to the primary serving its
 * shard's slot and its replicas), and `sub` holds one connection per
 * primary, SSUBSCRIBEd to the channels of the shards it serves; when the
 * cluster moves a slot away (Redis then ends that subscription with
 * "sunsubscribe") or a node fails, every subscription is made again where
 * the slots are now, followed by the re-read below. It
 *
 *   - parses each published change of a watched task (events about tasks
 *     nobody here watches are dropped after reading their id) and hands it
 *     to the hub, which sends it to the task's watches;
 *   - every DOCQ_POSITION_REFRESH_MS, reads the consumer group's progress
 *     of each shard that has PENDING watched tasks (one round trip per such
 *     shard, however many watchers) and hands it to the hub, which sends
 *     the positions that changed;
 *   - when a followed PENDING task's queue deadline (SubmitDoc's
 *     queue_timeout) passes by the wall clock (which Redis's TIME
 *     shares), reads it at once (the thread never sleeps more than 500 ms,
 *     so a deadline a new watch brought is seen by then), then at most
 *     every 250 ms while it stays PENDING (clocks apart): the read script
 *     ends it FAILURE and publishes that, so its watchers see it end
 *     without any GetStatus and with no worker running;
 *   - when the subscription is (re)established (at start, after Redis
 *     restarted or the connection broke; it retries by itself with a
 *     backoff of 100 ms doubling to 2 s), re-reads every watched task before
 *     going on, so that a change published while it was not subscribed is
 *     not lost.
 *
 * It touches watches only through the hooks server.c gives it (the watch
 * hub's functions, watch.h): it knows nothing else of watches. */
#ifndef DOCQ_SUBSCRIBER_H
#define DOCQ_SUBSCRIBER_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "error.h"
#include "task.h"

typedef struct subscriber subscriber;

typedef char subscriber_task_id[DOCQ_TASK_ID_MAX];

/* Where the subscriber's news goes, and what it asks: each function is
 * called on the subscriber thread with ctx (server.c wires them to the watch
 * hub: watch.h says what each does, by the same name). */
typedef struct subscriber_hooks {
    void *ctx;
    /* 1 when a task whose id is the len bytes at id is followed, else 0. */
    int (*watching)(void *ctx, const char *id, size_t len);
    /* A record read from an event or from Redis (moved out when taken). */
    void (*update)(void *ctx, docq_task *t);
    /* The task is gone from Redis. */
    void (*gone)(void *ctx, const char *task_id);
    /* The ids of every followed task, a malloc'd array of *n (NULL: none). */
    subscriber_task_id *(*ids)(void *ctx, size_t *n);
    /* need[s] = 1 for each shard s with a followed PENDING task; returns how many. */
    int (*pending_shards)(void *ctx, unsigned char *need, int nshards);
    /* Fresh group progress per shard (-1 unknown, below -1: leave alone). */
    void (*positions)(void *ctx, const int64_t *read, int nshards);
    /* 1 when enough watches ended since the peak to give memory back. */
    int (*trim_due)(void *ctx, size_t min_closed, size_t *peak, size_t *open);
    /* The earliest queue deadline (Unix ms) of a followed PENDING task, or earlier; 0: none. */
    int64_t (*next_deadline)(void *ctx);
    /* The ids of followed PENDING tasks past their deadline at now_ms, malloc'd, *n of them. */
    subscriber_task_id *(*expired)(void *ctx, int64_t now_ms, size_t *n);
} subscriber_hooks;

/* Start the subscriber thread for cfg (borrowed; it must outlive it),
 * feeding hooks (copied; their ctx must outlive it). Returns it, or NULL
 * with err set. */
subscriber *subscriber_start(const docq_config *cfg, const subscriber_hooks *hooks, docq_error *err);

/* Stop the thread, close its connections and free s. NULL is fine. */
void subscriber_stop(subscriber *s);

#endif
