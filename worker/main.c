/* main.c -- docq-worker: runs queued tasks against the AI service.
 *
 * Reads its settings (config.h), turns SIGTERM and SIGINT into a readable
 * signalfd so that no signal handler ever runs, and hands both to the event
 * loop (loop.h), which returns once the calls in flight have finished or the
 * shutdown grace is over. Exit status: 0 after a stop, 1 when the worker
 * cannot be set up or its HTTP client fails, 2 for bad settings. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <curl/curl.h>

#include "config.h"
#include "log.h"
#include "loop.h"
#include "observe.h"

/* Print the usage and the worker's settings to stdout. */
static void print_usage(void) {
    static char help[8192]; /* Only main's thread exists; too large for comfort on the stack. */
    docq_config_help(DOCQ_BIN_WORKER, help, sizeof(help));
    fputs("usage: docq-worker [options]\n", stdout);
    fputs(help, stdout);
}

/* Block SIGTERM and SIGINT (in every thread created later too) and return a
 * signalfd that becomes readable when one arrives, or -1. Also ignore
 * SIGPIPE: hiredis writes to a socket Redis may have closed. */
static int stop_signals_fd(void) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    if (sigprocmask(SIG_BLOCK, &set, NULL) != 0) return -1;
    signal(SIGPIPE, SIG_IGN);
    return signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
}

/* Raise the soft limit on open files to what `concurrency` connections to
 * the AI service need, plus room for Redis and libcurl, as far as the hard
 * limit allows; otherwise calls beyond the limit would fail with EMFILE. */
static void raise_fd_limit(long concurrency) {
    struct rlimit rl;
    rlim_t want = (rlim_t)concurrency + 64;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= want) return;
    rl.rlim_cur = (rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= want) ? want : rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur < want)
        docq_log_warn("the open-file limit allows fewer than the %llu descriptors that "
                      "concurrency %ld needs; some AI calls may fail",
                      (unsigned long long)want, concurrency);
}

#define CLIENT_RECEIVE_DEFAULT (4 * 1024 * 1024) /* gRPC clients' default max receive message size. */
#define TASK_OVERHEAD 1024                        /* A Task message's bytes besides its result, at most. */

/* Warn when a result as large as DOCQ_MAX_RESULT_BYTES allows would make a
 * Task message that gRPC clients refuse with their default receive limit
 * (RESOURCE_EXHAUSTED on GetStatus and WatchStatus). */
static void warn_result_limit(long max_result_bytes) {
    if (max_result_bytes > CLIENT_RECEIVE_DEFAULT - TASK_OVERHEAD)
        docq_log_warn("DOCQ_MAX_RESULT_BYTES=%ld lets a Task message pass the 4 MiB (4194304 bytes) that "
                      "gRPC clients receive by default: clients must raise their max receive message size "
                      "to read such results",
                      max_result_bytes);
}

/* Set up, run the loop and tear down. Returns the exit status. */
static int run(const docq_config *cfg, int sig_fd) {
    docq_error err = {0};
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        docq_log_error("cannot initialise libcurl");
        return 1;
    }
    int status = 1;
    worker_observer *obs = NULL;
    worker_loop *w = worker_loop_create(cfg, sig_fd, &err);
    if (w) obs = worker_observer_start(cfg, worker_loop_metrics(w), &err);
    if (!w || !obs) {
        docq_log_error("%s", err.msg);
    } else {
        if (worker_observer_port(obs))
            docq_log_info("metrics on %s (port %d): GET /metrics, /healthz, /readyz", cfg->metrics_listen,
                          worker_observer_port(obs));
        int rc = worker_loop_run(w, &err);
        if (rc == DOCQ_ECONFLICT) {
            docq_log_error("refusing to run: %s", err.msg);
            status = 2;
        } else if (rc != DOCQ_OK) {
            docq_log_error("worker failed: %s", err.msg);
        } else {
            status = 0;
        }
    }
    worker_observer_stop(obs);
    worker_loop_free(w);
    curl_global_cleanup();
    return status;
}

int main(int argc, char **argv) {
    docq_config cfg;
    docq_error err = {0};
    int rc = docq_config_load(&cfg, DOCQ_BIN_WORKER, argc, argv, &err);
    if (rc == DOCQ_EHELP) {
        print_usage();
        return 0;
    }
    if (rc != DOCQ_OK) {
        fprintf(stderr, "docq-worker: %s\n", err.msg);
        return 2;
    }
    if (cfg.nargs > 0) {
        fprintf(stderr, "docq-worker: unexpected argument '%s' (see --help)\n", cfg.args[0]);
        return 2;
    }
    raise_fd_limit(cfg.concurrency);
    warn_result_limit(cfg.max_result_bytes);
    int sig_fd = stop_signals_fd();
    if (sig_fd < 0) {
        docq_log_error("cannot set up signal handling");
        return 1;
    }
    int status = run(&cfg, sig_fd);
    close(sig_fd);
    return status;
}
