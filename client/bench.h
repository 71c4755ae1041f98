/* bench.h -- docq bench: a gRPC load generator for a docq server.
 *
 * Closed loop (default): --users simulated users, each submitting a document,
 * following its task (GetStatus polls every --poll-ms, or one WatchStatus
 * stream) until it ends, then submitting again, for --duration or until
 * --tasks tasks have finished. Open loop (--rate R/s): SubmitDocs are started
 * on a fixed schedule whatever the server's speed, and each latency is
 * measured from the moment its call was due, so a slow server shows up as
 * latency instead of as a lower offered load (no coordinated omission).
 *
 * Built on the gRPC core async API: each generator thread drives many calls
 * at once through its own completion queue, over --connections channels. */
#ifndef DOCQ_BENCH_H
#define DOCQ_BENCH_H

#include "config.h"

/* Run the benchmark cfg describes against cfg->server and print the results
 * (a table, or JSON with --json) on stdout; a progress line on stderr once a
 * second when stderr is a terminal. grpc_init must have been called.
 * Returns the process exit status: 0, or 1 when calls failed with a status
 * other than OK and RESOURCE_EXHAUSTED (rate-limit refusals are expected
 * under load and only counted), or 2 when the generator could not start. */
int docq_bench_run(const docq_config *cfg);

#endif
