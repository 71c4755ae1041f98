/* subscriber.h -- the server's one Redis subscription, feeding the watch hub.
 *
 * One thread per server process, with two Redis connections of its own:
 * `sub`, subscribed to every shard's events channel (P:{sN}:events), and
 * `cmd` for reads. It
 *
 *   - parses each published change of a watched task (events about tasks
 *     nobody here watches are dropped after reading their id) and hands it
 *     to the hub, which sends it to the task's watches;
 *   - every DOCQ_POSITION_REFRESH_MS, reads the consumer group's progress
 *     of each shard that has PENDING watched tasks (one round trip per such
 *     shard, however many watchers) and hands it to the hub, which sends
 *     the positions that changed;
 *   - when the subscription is (re)established (at start, after Redis
 *     restarted or the connection broke; it retries by itself with a
 *     backoff of 100 ms doubling to 2 s), re-reads every watched task before
 *     going on, so that a change published while it was not subscribed is
 *     not lost.
 *
 * It touches watches only through the hub's functions (watch.h). */
#ifndef DOCQ_SUBSCRIBER_H
#define DOCQ_SUBSCRIBER_H

#include "config.h"
#include "error.h"

typedef struct watch_hub watch_hub;
typedef struct subscriber subscriber;

/* Start the subscriber thread for cfg and hub (both borrowed; they must
 * outlive it). Returns it, or NULL with err set. */
subscriber *subscriber_start(const docq_config *cfg, watch_hub *hub, docq_error *err);

/* Stop the thread, close its connections and free s. NULL is fine. */
void subscriber_stop(subscriber *s);

#endif
