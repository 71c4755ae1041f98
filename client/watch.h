/* watch.h -- the CLI's watch: follow a task until it ends (`docq watch ID`,
 * `docq submit --wait`). */
#ifndef DOCQ_CLI_WATCH_H
#define DOCQ_CLI_WATCH_H

#include <stdio.h>

#include "client.h"
#include "config.h"

/* Follow task_id with WatchStatus, printing each change to out as it
 * arrives: on a terminal (tty non-zero) as one live status line rewritten in
 * place (state, queue position, attempts, elapsed time), then the result or
 * error; otherwise one plain line per change:
 *
 *   2026-11-29T05:23:22.553Z s5-3f1c... PENDING version=1 attempts=0 position=3
 *   2026-11-29T05:23:23.680Z s5-3f1c... SUCCESS version=3 attempts=1 position=0 result={...}
 *
 * (the time is when the change arrived, UTC; control characters in the
 * result or error, C1 ones included, are shown as spaces (cli_put_text) so
 * that each change stays one line and drives no terminal).
 * When the stream breaks with UNAVAILABLE (the server restarts or shuts
 * down, a connection ages out) the watch is reopened after the last version
 * seen, so nothing is missed or repeated: up to 5 times in a row with a
 * growing pause, the count starting again after a stream that brought a
 * change or lasted 5 s.
 *
 * Returns 0 when the task ended SUCCESS, 1 when it ended FAILURE, and -1
 * when the watch failed (st holds the status to report). */
int cli_watch(docq_client *c, const docq_config *cfg, const char *task_id, FILE *out, int tty,
              docq_rpc_status *st);

#endif
