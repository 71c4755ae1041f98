/* observe.h -- how docq-worker is watched from outside: the HTTP endpoint on
 * DOCQ_METRICS_LISTEN (GET /metrics, /healthz, /readyz) and a thread that
 * refreshes the queue gauges (XLEN and the consumer group's lag, summed over
 * the shards) every DOCQ_METRICS_REFRESH_MS on a Redis connection of its own,
 * so that neither a scrape nor a slow Redis ever stalls the task loop or
 * another probe.
 *
 *   /healthz  200 while the process runs (liveness);
 *   /readyz   200 while the loop has Redis usable and its consumer group
 *             joined, else 503 (readiness);
 *   /metrics  worker_metrics_write. */
#ifndef DOCQ_WORKER_OBSERVE_H
#define DOCQ_WORKER_OBSERVE_H

#include "config.h"
#include "error.h"
#include "worker_metrics.h"

typedef struct worker_observer worker_observer;

/* Start serving m (borrowed: it must outlive the observer) as cfg says.
 * With DOCQ_METRICS_LISTEN off, nothing runs (the observer is still
 * returned). Returns NULL with err set when the address cannot be bound or
 * a thread cannot start. */
worker_observer *worker_observer_start(const docq_config *cfg, worker_metrics *m, docq_error *err);

/* The port of the HTTP endpoint, or 0 when it is off. */
int worker_observer_port(const worker_observer *o);

/* Stop both threads and free o. NULL is fine. */
void worker_observer_stop(worker_observer *o);

#endif
