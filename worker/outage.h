/* outage.h -- what the worker does when a Redis command works or fails.
 *
 * Every part of the worker (loop.c, tasks.c, recovery.c) reports each Redis
 * command's fate here. A failure marks Redis unusable (both connections
 * dropped, the read in flight forgotten) and schedules the reconnect, which
 * the loop makes (loop.h, step 1), after a backoff of OUTAGE_BACKOFF_MIN_MS
 * doubling up to OUTAGE_BACKOFF_MAX_MS; a success resets the backoff. The
 * outage is logged once, when it starts. In a Redis Cluster an outage is
 * that of one shard's primary, and stops only the shards it serves
 * (outage_shard_failed). */
#ifndef DOCQ_WORKER_OUTAGE_H
#define DOCQ_WORKER_OUTAGE_H

#include "error.h"
#include "worker.h"

#define OUTAGE_BACKOFF_MIN_MS 100   /* First wait before reconnecting to Redis... */
#define OUTAGE_BACKOFF_MAX_MS 2000  /* ...doubling up to this. */

/* A Redis command worked: the next outage starts with a short backoff. */
void outage_redis_worked(worker_loop *w);

/* A Redis command failed (unreachable or refused): stop using Redis until it
 * is reconnected. Whatever was pending stays in Redis; slots keep their
 * state. */
void outage_redis_failed(worker_loop *w, const docq_error *why);

/* A command of shard failed. With a standalone Redis: outage_redis_failed.
 * In a Redis Cluster, where each shard lives on the primary serving its
 * slot: only that shard stops, for a backoff of OUTAGE_BACKOFF_MIN_MS
 * doubling up to OUTAGE_BACKOFF_MAX_MS (a read in flight on it is
 * forgotten), while the shards of the other primaries go on; its outage is
 * logged once. */
void outage_shard_failed(worker_loop *w, int shard, const docq_error *why);

/* A read of shard worked: its next outage starts with a short backoff (and
 * the end of a logged one is logged). */
void outage_shard_worked(worker_loop *w, int shard);

/* 1 while shard is paused by outage_shard_failed, else 0. */
int outage_shard_down(const worker_loop *w, int shard);

#endif
