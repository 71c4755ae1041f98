/* worker.h -- the worker's private state, shared by its parts:
 *
 *   loop.c      the event loop: Redis connections, reading the streams,
 *               stopping, waiting (see loop.h for one turn);
 *   outage.c    Redis outages: what a failed or working command changes;
 *   tasks.c     a task's life in a slot: start, AI call, retries with
 *               backoff, outcome;
 *   recovery.c  the heartbeat on this worker's entries and the reclaiming of
 *               dead workers' entries;
 *   cancels.c   reading the cancels streams: a task cancelled while it runs
 *               here is stopped (its AI call aborted) within a second.
 *
 * Each part declares its functions in its own header (loop.h, outage.h,
 * tasks.h, recovery.h, cancels.h); this one holds only the state they share.
 * Everything here belongs to the one thread that runs worker_loop_run. */
#ifndef DOCQ_WORKER_WORKER_H
#define DOCQ_WORKER_WORKER_H

#include <stdint.h>

#include "ai_client.h"
#include "config.h"
#include "redis.h"
#include "store.h"
#include "task.h"
#include "worker_metrics.h"

/* The loop: loop.h. */
typedef struct worker_loop worker_loop;

#define ENTRY_ID_MAX 48  /* A stream id: two 64-bit numbers and a dash. */
#define KEY_MAX 96
#define ERROR_MAX 512

typedef enum slot_state {
    SLOT_FREE = 0,
    SLOT_CALLING,  /* The AI call is in flight. */
    SLOT_WRITING,  /* An outcome, or a transient failure to record, waits to be written to Redis. */
    SLOT_WAITING   /* A transient failure was recorded; the retry starts at retry_at_ms. */
} slot_state;

/* One task this worker has received and not yet finished. Its entry stays
 * pending under this worker's name, kept alive by the heartbeat, until the
 * outcome is written (or the worker stops and leaves it to another). */
typedef struct slot {
    slot_state state;
    int shard;                        /* The shard whose stream holds the entry. */
    char task_id[DOCQ_TASK_ID_MAX];
    char entry_id[ENTRY_ID_MAX];      /* The task's stream entry, pending under our name. */
    char doc_id[DOCQ_DOC_ID_MAX + 1]; /* Kept for the retries. */
    size_t doc_len;
    uint32_t attempt;                 /* Fencing token from docq_store_start or _restart. */
    uint32_t failures;                /* Transient AI failures recorded for the task so far. */
    int lost;                         /* The heartbeat found the entry owned by another worker. */
    int64_t started_ms;               /* Monotonic time of the current attempt's start. */
    int64_t retry_at_ms;              /* WAITING: monotonic time to start the retry. */
    long retry_after_ms;              /* WRITING a retry: what the answer's Retry-After asked, or 0. */
    int retry;                        /* WRITING: 1 records a transient failure, 0 writes the outcome. */
    docq_task_state outcome;          /* WRITING an outcome: SUCCESS or FAILURE. */
    char *result;                     /* WRITING a SUCCESS: the AI's answer (owned) or NULL if empty. */
    size_t result_len;                /* Bytes in result. */
    char error[ERROR_MAX];            /* WRITING a FAILURE or a retry: the reason. */
} slot;

/* The XREADGROUP side of the loop, on the rd connection. */
typedef struct reader {
    int in_flight;                   /* A read was sent on rd; its reply is awaited. */
    redisContext *ctx;               /* The connection it was sent on (rd's, or in a
                                      * cluster that of the node serving its shard). */
    int blocking;                    /* That read BLOCKs (until entries come or READ_BLOCK_MS). */
    int unblocked;                   /* CLIENT UNBLOCK was sent for it. */
    int64_t deadline_ms;             /* When to give up waiting for that reply. */
    int scanning;                    /* Re-reading our own pending entries, not new ones. */
    int *sent;                       /* Shards of the read in flight, in key order. */
    int nsent;
    int next_shard;                  /* First shard of the next partial read. */
    int empty_reads;                 /* Partial reads in a row that got nothing. */
    int64_t next_read_ms;            /* No partial read before this time. */
    unsigned char *scan_done;        /* Scanning, per shard: no pending entry left there. */
    char (*scan_from)[ENTRY_ID_MAX]; /* Scanning, per shard: the last id re-read ("0" at first). */
    long long client_id;             /* CLIENT ID of rd, for CLIENT UNBLOCK. */
    char count_arg[24];              /* Argument strings of the read in flight. */
    char block_arg[24];
} reader;

/* In a Redis Cluster, one shard's primary being unreachable stops only that
 * shard (outage.h): its state. */
typedef struct shard_outage {
    int64_t down_until_ms;    /* No command of the shard before this time (0: up). */
    long backoff_ms;          /* The next such pause. */
    int logged;               /* Its outage was logged; log when it ends. */
} shard_outage;

/* Heartbeat and reclaim timers (recovery.c). */
typedef struct recovery_state {
    int64_t next_heartbeat_ms;          /* Monotonic time of the next heartbeat. */
    int64_t next_reclaim_ms;            /* Monotonic time of the next reclaim round. */
    int next_shard;                     /* First shard of the next reclaim round. */
    int next_prune;                     /* Shard whose idle consumers the next heartbeat deletes. */
    char (*cursor)[ENTRY_ID_MAX];       /* Per shard: where XAUTOCLAIM goes on ("0-0": start). */
    const char **ids;                   /* Heartbeat scratch: entry ids of one shard... */
    slot **owners;                      /* ...their slots... */
    int *lost;                          /* ...and what the heartbeat found. */
} recovery_state;

/* Reading the cancels streams (cancels.c). */
typedef struct cancels_state {
    int marked;                  /* Every shard's starting point is known (cancels_mark). */
    int64_t next_poll_ms;        /* Monotonic time of the next read. */
    char (*after)[ENTRY_ID_MAX]; /* Per shard: the last entry of its cancels stream seen. */
    int *shards;                 /* Scratch: the shards of one read... */
    int *cmds;                   /* ...and their commands in pl. */
    unsigned char *busy;         /* Scratch, per shard: a slot holds one of its tasks. */
    docq_pipeline *pl;           /* The reads, run on the cmd connection. */
} cancels_state;

struct worker_loop {
    const docq_config *cfg;   /* Borrowed from main. */
    docq_queue queue;         /* The queue settings, pointing into cfg. */
    char consumer[320];       /* "<hostname>-<pid>-<random hex>" (docq_consumer_name). */
    int stop_fd;              /* Polled until readable; owned by main. */
    docq_redis *cmd;          /* Synchronous scripts and commands: start, finish, heartbeat... */
    docq_redis *rd;           /* The XREADGROUP, sent without waiting for its reply. */
    ai_client *ai;
    slot *slots;
    int nslots;
    int *free_list;           /* Indexes of the free slots (a stack). */
    int nfree;
    int nwriting;             /* Slots in SLOT_WRITING. */
    int nwaiting;             /* Slots in SLOT_WAITING. */
    int nshards;
    char (*keys)[KEY_MAX];    /* Stream key of each shard. */
    const char **argv;        /* XREADGROUP arguments, with room for every shard. */
    size_t *argvlen;
    reader rs;
    recovery_state recovery;  /* Heartbeat and reclaim timers (recovery.c). */
    cancels_state cancels;    /* Where each shard's cancels stream was read up to (cancels.c). */
    uint64_t rng;             /* State of the jitter's random sequence. */
    int redis_ok;             /* Both connections up and the groups exist. */
    int down_logged;          /* An outage was logged; log when it ends. */
    int joined;               /* The start-up line was logged. */
    int shape_seen;           /* The deployment's shape matched ours once (shape.h). */
    int shape_wait_logged;    /* "waiting for a server to record the shape" was logged. */
    int64_t shape_check_at_ms;/* Until shape_seen: no new check before this time. */
    docq_error refused;       /* Our settings conflict with the recorded shape: stop, exit 2. */
    shard_outage *shard_out;  /* Per shard, in a Redis Cluster: its primary's outage (outage.h). */
    long backoff_ms;          /* The next wait before reconnecting. */
    int64_t retry_at_ms;      /* No reconnect before this time. */
    int stopping;             /* Stop asked: no new reads, no new attempts. */
    int64_t stop_at_ms;       /* With stopping: when the grace is over. */
    worker_metrics metrics;   /* Updated by this thread, read by the observer's (observe.h). */
};

/* How a stream entry reached the worker. */
typedef enum entry_source {
    ENTRY_NEW,        /* XREADGROUP '>': never delivered before. */
    ENTRY_OWN,        /* XREADGROUP from an id: our own pending entry, re-read. */
    ENTRY_RECLAIMED   /* XAUTOCLAIM: another worker's (or an earlier us) idle entry. */
} entry_source;

#endif
