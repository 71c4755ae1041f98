/* recovery.h -- the heartbeat on this worker's entries and the reclaiming
 * of dead workers' entries (recovery.c). */
#ifndef DOCQ_WORKER_RECOVERY_H
#define DOCQ_WORKER_RECOVERY_H

#include <stdint.h>

#include "worker.h"

/* Allocate the recovery tables and schedule the first heartbeat and reclaim.
 * Returns DOCQ_OK or DOCQ_ERR when memory runs out. */
int recovery_init(worker_loop *w);

/* Free the recovery tables. */
void recovery_free(worker_loop *w);

/* Send the heartbeat for every slot's entry when it is due, and delete the
 * idle consumers without pending entries of one shard. */
void recovery_heartbeat(worker_loop *w);

/* 1 when a reclaim round is due and the worker can take entries, else 0. */
int recovery_reclaim_due(const worker_loop *w);

/* Run a reclaim round: XAUTOCLAIM, shard after shard, entries idle beyond
 * DOCQ_VISIBILITY_TIMEOUT_MS, as many as there are free slots, and start
 * their tasks. The rd connection must have no read in flight (the read and
 * the reclaim share the free slots). */
void recovery_reclaim(worker_loop *w);

/* The earliest time a heartbeat or reclaim round is due. */
int64_t recovery_next_ms(const worker_loop *w);

#endif
