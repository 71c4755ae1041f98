/* main.c -- docq-server: settings, signals, start and graceful stop. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <grpc/grpc.h>

#include "config.h"
#include "server_parts.h"
#include "log.h"
#include "server.h"
#include "watch.h"

/* Load settings; returns -1 to go on, or the exit code. */
static int load_config(docq_config *cfg, int argc, char **argv) {
    docq_error err = {0};
    int rc = docq_config_load(cfg, DOCQ_BIN_SERVER, argc, argv, &err);
    if (rc == DOCQ_EHELP) {
        static char help[8192];
        docq_config_help(DOCQ_BIN_SERVER, help, sizeof(help));
        printf("usage: docq-server [options]\n\nThe docq gRPC service (docq.v1.DocQueue).\n"
               "Every option can also be set through its environment variable.\n\n%s", help);
        return 0;
    }
    if (rc != DOCQ_OK) {
        fprintf(stderr, "docq-server: %s\n", err.msg);
        return 2;
    }
    if (cfg->nargs) {
        fprintf(stderr, "docq-server: unexpected argument '%s' (see --help)\n", cfg->args[0]);
        return 2;
    }
    return -1;
}

/* SIGHUP: re-read the API keys file; a file that does not parse leaves the
 * keys in force unchanged. */
static void reload_keys(docq_server *srv, const docq_config *cfg) {
    docq_error err = {0};
    size_t count;
    if (!cfg->api_keys_file[0]) {
        docq_log_info("received SIGHUP: no DOCQ_API_KEYS_FILE, nothing to reload");
    } else if (docq_auth_reload(docq_server_auth(srv), &count, &err) != DOCQ_OK) {
        docq_log_error("received SIGHUP: keys not reloaded, the previous keys stay in force: %s", err.msg);
    } else {
        docq_log_info("received SIGHUP: reloaded %zu API keys from %s", count, cfg->api_keys_file);
        size_t ended = watch_hub_revoke(docq_server_watch_hub(srv), docq_server_auth(srv));
        if (ended) docq_log_info("ended %zu open watches whose API key was revoked", ended);
    }
}

/* What names callers (caller.h), for the start-up log. */
static const char *callers_kind(const docq_config *cfg) {
    if (cfg->tls_client_ca[0])
        return cfg->api_keys_file[0] ? "API keys, else client certificates" : "client certificates";
    if (cfg->api_keys_file[0]) return "API keys";
    return cfg->proxies.count ? "IP, x-forwarded-for from trusted proxies" : "IP";
}

/* Say how clients must connect: TLS or not, client certificates, and the
 * plaintext port for health probes. */
static void log_transport(const docq_server *srv, const docq_config *cfg) {
    if (!cfg->tls_cert[0]) {
        docq_log_info("transport: plaintext (no DOCQ_TLS_CERT)");
        return;
    }
    docq_log_info("transport: TLS (certificate %s)%s", cfg->tls_cert,
                  cfg->tls_client_ca[0] ? ", client certificates required (mutual TLS)" : "");
    if (docq_server_plaintext_port(srv))
        docq_log_info("plaintext health port on %s (port %d): only grpc.health.v1.Health is served there",
                      cfg->plaintext_listen, docq_server_plaintext_port(srv));
}

/* Open files the server wants: a socket per client connection (10,000
 * clients) and some for Redis, the listeners and the logs. */
#define OPEN_FILES_WANTED (10000 + 256)

/* Raise the soft limit on open files to the hard limit, so that a low
 * default (1024) does not refuse clients past it (accept fails with
 * EMFILE); warn when even the hard limit leaves room for fewer than
 * OPEN_FILES_WANTED. */
static void raise_open_files(void) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
    if (rl.rlim_cur < rl.rlim_max) {
        rlim_t was = rl.rlim_cur;
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0) rl.rlim_cur = was;
    }
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < OPEN_FILES_WANTED)
        docq_log_warn("open files limited to %llu (hard limit): fewer than %d client connections fit; "
                      "raise the hard RLIMIT_NOFILE (ulimit -Hn, the container runtime's nofile)",
                      (unsigned long long)rl.rlim_cur, OPEN_FILES_WANTED - 256);
    else
        docq_log_info("open files limit %llu", (unsigned long long)rl.rlim_cur);
}

/* Wait (bounded) until gRPC's background cleanup after grpc_shutdown is
 * done, so that it does not race the process exit. */
static void wait_grpc_cleanup(void) {
    for (int i = 0; i < 5000 && grpc_is_initialized(); i++) usleep(1000);
}

int main(int argc, char **argv) {
    docq_config cfg;
    int rc = load_config(&cfg, argc, argv);
    if (rc >= 0) return rc;

    /* Block the stop and reload signals in every thread (gRPC's included)
     * before any exists; main takes them with sigwait. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);
    raise_open_files();

    grpc_init();
    docq_error err = {0};
    docq_server *srv = docq_server_create(&cfg, &err);
    if (!srv || docq_server_start(srv, &err) != DOCQ_OK) {
        docq_log_error("%s", err.msg);
        if (srv) docq_server_shutdown_and_free(srv, 0);
        grpc_shutdown();
        wait_grpc_cleanup();
        return err.code == DOCQ_ECONFLICT ? 2 : 1;
    }
    docq_log_info("docq-server listening on %s (port %d), %ld threads, redis %s:%d, %ld shards",
                  cfg.listen, docq_server_port(srv), cfg.threads, cfg.redis.host, cfg.redis.port,
                  cfg.shards);
    if (docq_server_metrics_port(srv))
        docq_log_info("metrics on %s (port %d): GET /metrics, /healthz, /readyz", cfg.metrics_listen,
                      docq_server_metrics_port(srv));
    log_transport(srv, &cfg);
    docq_log_info("callers: %s; SubmitDoc limit %ld per %ld s, reads %ld per %ld s (0: no limit)",
                  callers_kind(&cfg),
                  cfg.rate_limit, cfg.rate_window_s, cfg.read_rate_limit, cfg.read_rate_window_s);
    int sig = 0;
    while (sigwait(&stop, &sig) == 0 && sig == SIGHUP) reload_keys(srv, &cfg);
    docq_log_info("received %s: stopping (grace %ld ms)", sig == SIGINT ? "SIGINT" : "SIGTERM",
                  cfg.shutdown_grace_ms);
    int refused = docq_health_refused(docq_server_parts(srv)->health, &err);
    if (refused) docq_log_error("refusing to run: %s", err.msg);
    docq_server_stop_serving(srv, refused ? 0 : cfg.shutdown_delay_ms);
    docq_server_shutdown_and_free(srv, refused ? 0 : cfg.shutdown_grace_ms);
    docq_log_debug("shutdown: server freed");
    grpc_shutdown();
    wait_grpc_cleanup();
    docq_log_info("docq-server stopped");
    return refused ? 2 : 0;
}
