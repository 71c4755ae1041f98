/* config.c -- settings table, environment and flag parsing. See config.h. */
#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "files.h"
#include "log.h"
#include "task.h"

/* KIND_OPTSTRING may be empty (its default often is); KIND_BOOL is 0 or 1 and
 * its flag may stand alone (--retry means --retry=1). */
typedef enum { KIND_STRING, KIND_INT, KIND_OPTSTRING, KIND_BOOL } setting_kind;

/* Extra validation for string settings beyond "fits and is not empty". */
typedef int (*string_check)(docq_config *cfg, const char *value, docq_error *err);

typedef struct setting {
    const char *env;     /* Environment variable; the flag is derived from it. */
    unsigned bins;       /* DOCQ_BIN_* mask of the binaries that read it. */
    setting_kind kind;
    size_t offset;       /* Where the value lives in docq_config. */
    size_t size;         /* Capacity of a string field. */
    long min, max;       /* Inclusive range of an integer. */
    const char *def;     /* Default, as text. */
    string_check check;  /* Optional, for strings. */
    const char *help;
} setting;

static int check_listen(docq_config *cfg, const char *v, docq_error *err) {
    (void)cfg;
    return docq_hostport_check(v, 1, err);
}

/* DOCQ_METRICS_LISTEN: host:port (port 0 picks one), or "" / "off". */
static int check_metrics_listen(docq_config *cfg, const char *v, docq_error *err) {
    (void)cfg;
    return docq_metrics_listen_off(v) ? DOCQ_OK : docq_hostport_check(v, 1, err);
}

static int check_server(docq_config *cfg, const char *v, docq_error *err) {
    (void)cfg;
    return docq_hostport_check(v, 0, err);
}

static int check_redis_url(docq_config *cfg, const char *v, docq_error *err) {
    return docq_redis_url_parse(v, &cfg->redis, err);
}

static int check_http_url(docq_config *cfg, const char *v, docq_error *err) {
    (void)cfg;
    if (strncmp(v, "http://", 7) != 0 && strncmp(v, "https://", 8) != 0)
        return docq_error_set(err, DOCQ_EINVAL, "expected an http:// or https:// URL");
    return DOCQ_OK;
}

/* Key parts become parts of Redis keys: keep them free of the characters that
 * separate key parts or form hash tags. */
static int check_key_part(docq_config *cfg, const char *v, docq_error *err) {
    (void)cfg;
    for (const char *p = v; *p; p++) {
        if (!isalnum((unsigned char)*p) && *p != '_' && *p != '-' && *p != '.')
            return docq_error_set(err, DOCQ_EINVAL, "use only letters, digits, '_', '-' and '.'");
    }
    return DOCQ_OK;
}

/* An optional second listen address: empty, or host:port. */
static int check_optional_listen(docq_config *cfg, const char *v, docq_error *err) {
    (void)cfg;
    return v[0] ? docq_hostport_check(v, 1, err) : DOCQ_OK;
}

static int check_proxies(docq_config *cfg, const char *v, docq_error *err) {
    return docq_proxies_parse(v, &cfg->proxies, err);
}

static int check_log_level(docq_config *cfg, const char *v, docq_error *err) {
    (void)cfg;
    docq_log_level level;
    if (docq_log_level_parse(v, &level) != DOCQ_OK)
        return docq_error_set(err, DOCQ_EINVAL, "expected debug, info, warn or error");
    return DOCQ_OK;
}

/* "500ms", "30s", "2m", "1h" or a plain number of seconds, into *ms. */
static int parse_duration(const char *v, long *ms) {
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    double unit = 1000;
    if (strcmp(end, "ms") == 0)
        unit = 1;
    else if (strcmp(end, "m") == 0)
        unit = 60000;
    else if (strcmp(end, "h") == 0)
        unit = 3600000;
    else if (strcmp(end, "s") != 0 && *end)
        return DOCQ_EINVAL;
    if (errno || end == v || x < 0 || x * unit > 1e12) return DOCQ_EINVAL;
    *ms = (long)(x * unit);
    return DOCQ_OK;
}

static int check_bench_duration(docq_config *cfg, const char *v, docq_error *err) {
    if (parse_duration(v, &cfg->bench_duration_ms) != DOCQ_OK || cfg->bench_duration_ms == 0)
        return docq_error_set(err, DOCQ_EINVAL, "expected a duration such as 30s, 500ms or 2m");
    return DOCQ_OK;
}

static int check_queue_timeout(docq_config *cfg, const char *v, docq_error *err) {
    if (parse_duration(v, &cfg->queue_timeout_ms) != DOCQ_OK)
        return docq_error_set(err, DOCQ_EINVAL, "expected a duration such as 30s, 500ms, 2m or 1h");
    return DOCQ_OK;
}

static int check_request_id(docq_config *cfg, const char *v, docq_error *err) {
    (void)cfg;
    if (*v && docq_request_id_validate(v, strlen(v), err) != DOCQ_OK) return DOCQ_EINVAL;
    return DOCQ_OK;
}

/* "R" or "R/s": calls per second, 0 for a closed loop. */
static int check_bench_rate(docq_config *cfg, const char *v, docq_error *err) {
    char *end;
    errno = 0;
    long r = strtol(v, &end, 10);
    if (errno || end == v || (*end && strcmp(end, "/s") != 0) || r < 0 || r > 10000000)
        return docq_error_set(err, DOCQ_EINVAL, "expected calls per second, such as 1000/s (0: closed loop)");
    cfg->bench_rate = r;
    return DOCQ_OK;
}

/* DOCQ_LIST_STATE: state names (any case), comma-separated. */
static int check_list_states(docq_config *cfg, const char *v, docq_error *err) {
    (void)cfg;
    while (*v) {
        size_t len = strcspn(v, ",");
        char name[16];
        docq_task_state st;
        size_t i = 0;
        for (; i < len && i + 1 < sizeof(name); i++) name[i] = (char)toupper((unsigned char)v[i]);
        if (len == 0 || len >= sizeof(name) || docq_task_state_parse(name, i, &st) != DOCQ_OK)
            return docq_error_set(err, DOCQ_EINVAL, "expected PENDING, STARTED, SUCCESS, FAILURE or CANCELLED");
        v += len;
        if (*v == ',' && *++v == '\0') return docq_error_set(err, DOCQ_EINVAL, "a state name after ','");
    }
    return DOCQ_OK;
}

static int check_bench_follow(docq_config *cfg, const char *v, docq_error *err) {
    (void)cfg;
    if (strcmp(v, "poll") && strcmp(v, "watch") && strcmp(v, "none"))
        return docq_error_set(err, DOCQ_EINVAL, "expected poll, watch or none");
    return DOCQ_OK;
}

#define S DOCQ_BIN_SERVER
#define W DOCQ_BIN_WORKER
#define C DOCQ_BIN_CLI
#define STR(field) KIND_STRING, offsetof(docq_config, field), \
    sizeof(((docq_config *)0)->field), 0, 0
#define INT(field, lo, hi) KIND_INT, offsetof(docq_config, field), 0, lo, hi
#define OPTSTR(field) KIND_OPTSTRING, offsetof(docq_config, field), \
    sizeof(((docq_config *)0)->field), 0, 0
/* A switch: its flag alone (--wait) means true; --wait=false, or the
 * variable set to 0/false/no/off, means false. */
#define BOOL(field) KIND_BOOL, offsetof(docq_config, field), 0, 0, 1

static const setting settings[] = {
    {"DOCQ_LISTEN", S, STR(listen), "0.0.0.0:50051", check_listen,
     "address the gRPC server listens on (host:port; port 0 picks one)"},
    {"DOCQ_REDIS_URL", S | W, STR(redis_url), "redis://127.0.0.1:6379", check_redis_url,
     "Redis holding queues and tasks: redis://[[user]:password@]host:port[/db]; for a Redis Cluster, "
     "any node's URL, or several comma-separated (seeds, tried in turn)"},
    {"DOCQ_REDIS_TIMEOUT_MS", S | W, INT(redis_timeout_ms, 10, 600000), "2000", NULL,
     "Redis connect and command timeout, milliseconds"},
    {"DOCQ_REDIS_MIN_REPLICAS", S, INT(redis_min_replicas, 0, 16), "0", NULL,
     "replicas that must confirm a new task (Redis WAIT) before SubmitDoc answers OK; 0: no WAIT"},
    {"DOCQ_REDIS_WAIT_MS", S, INT(redis_wait_ms, 1, 60000), "1000", NULL,
     "how long SubmitDoc waits for DOCQ_REDIS_MIN_REPLICAS replicas to confirm, ms"},
    {"DOCQ_AI_URL", W, STR(ai_url), "http://127.0.0.1:8080/process", check_http_url,
     "AI service endpoint the worker POSTs each document to"},
    {"DOCQ_AI_TIMEOUT_MS", W, INT(ai_timeout_ms, 1, 86400000), "300000", NULL,
     "limit on one whole AI call, milliseconds (AI calls can take minutes)"},
    {"DOCQ_AI_CONNECT_TIMEOUT_MS", W, INT(ai_connect_timeout_ms, 1, 600000), "5000", NULL,
     "limit on connecting to the AI service, milliseconds"},
    {"DOCQ_KEY_PREFIX", S | W, STR(key_prefix), "docq", check_key_part,
     "first part of every Redis key docq uses"},
    {"DOCQ_SHARDS", S | W, INT(shards, 1, 1024), "16", NULL,
     "number of queue streams; a caller's tasks go to one of them"},
    {"DOCQ_GROUP", S | W, STR(group), "workers", check_key_part,
     "consumer group the workers share (the server reads its progress for queue positions)"},
    {"DOCQ_RESULT_TTL_S", S | W, INT(result_ttl_s, 1, 315360000), "86400", NULL,
     "seconds a finished task's record is kept (the server ends tasks too: cancelled, expired in the queue)"},
    {"DOCQ_REQUEST_ID_TTL_S", S, INT(request_id_ttl_s, 1, 315360000), "86400", NULL,
     "seconds a SubmitDoc request_id keeps naming its task (at least as long as the task's record)"},
    {"DOCQ_MAX_QUEUE_TIMEOUT_S", S, INT(max_queue_timeout_s, 1, 315360000), "604800", NULL,
     "longest queue_timeout a SubmitDoc may ask for, seconds"},
    {"DOCQ_THREADS", S, INT(threads, 1, 256), "2", NULL,
     "server threads, each polling its own completion queue"},
    {"DOCQ_RATE_LIMIT", S, INT(rate_limit, 0, 1000000000), "5", NULL,
     "SubmitDocs one caller may make in any rolling window of DOCQ_RATE_WINDOW_S; 0: no limit"},
    {"DOCQ_RATE_WINDOW_S", S, INT(rate_window_s, 1, 86400), "60", NULL,
     "the rolling window of DOCQ_RATE_LIMIT, seconds"},
    {"DOCQ_READ_RATE_LIMIT", S, INT(read_rate_limit, 0, 1000000000), "600", NULL,
     "GetStatus and WatchStatus calls one caller may make per DOCQ_READ_RATE_WINDOW_S; 0: no limit"},
    {"DOCQ_READ_RATE_WINDOW_S", S, INT(read_rate_window_s, 1, 86400), "60", NULL,
     "the rolling window of DOCQ_READ_RATE_LIMIT, seconds"},
    {"DOCQ_API_KEYS_FILE", S, OPTSTR(api_keys_file), "", NULL,
     "file of API keys (caller id, SHA-256 of the key, optional limit and window); "
     "when set, callers must send a key; re-read on SIGHUP"},
    {"DOCQ_TRUSTED_PROXIES", S, OPTSTR(trusted_proxies), "", check_proxies,
     "proxies (IPs or CIDR ranges, comma-separated) whose x-forwarded-for names the caller"},
    {"DOCQ_IPV6_PREFIX", S, INT(ipv6_prefix, 32, 128), "64", NULL,
     "IPv6 callers without a key are grouped by this prefix length (caller \"2001:db8:1:2::/64\"); "
     "128: each address"},
    {"DOCQ_POSITION_REFRESH_MS", S, INT(position_refresh_ms, 50, 3600000), "2000", NULL,
     "how often watchers of PENDING tasks get their queue position refreshed, ms"},
    {"DOCQ_KEEPALIVE_MS", S | C, INT(keepalive_ms, 1000, 86400000), "30000", NULL,
     "HTTP/2 keepalive ping interval on idle connections (long watches), ms"},
    {"DOCQ_MAX_CONNECTION_AGE_MS", S, INT(max_connection_age_ms, 0, 2147483647), "0", NULL,
     "close client connections after this age so they rebalance, ms (0: never)"},
    {"DOCQ_MAX_CONNECTION_IDLE_MS", S, INT(max_connection_idle_ms, 0, 2147483647), "300000", NULL,
     "close client connections with no call open for this long, ms (0: never); an open watch is a call"},
    {"DOCQ_WORKER_CONCURRENCY", W, INT(concurrency, 1, 10000), "64", NULL,
     "AI calls one worker keeps in flight at once"},
    {"DOCQ_HEARTBEAT_MS", W, INT(heartbeat_ms, 10, 3600000), "5000", NULL,
     "how often a worker refreshes its claim on its tasks and looks for abandoned ones, ms "
     "(at most a third of DOCQ_VISIBILITY_TIMEOUT_MS)"},
    {"DOCQ_VISIBILITY_TIMEOUT_MS", W, INT(visibility_timeout_ms, 100, 86400000), "30000", NULL,
     "a task whose claim is not refreshed for this long is taken over by another worker, ms"},
    {"DOCQ_MAX_ATTEMPTS", W, INT(max_attempts, 1, 1000), "5", NULL,
     "AI calls per task before a transient failure (no answer, 429, 5xx) is final"},
    {"DOCQ_RETRY_BASE_MS", W, INT(retry_base_ms, 1, 3600000), "1000", NULL,
     "backoff before the first retry, ms; doubles for each retry, with jitter"},
    {"DOCQ_RETRY_MAX_MS", W, INT(retry_max_ms, 1, 86400000), "60000", NULL,
     "longest backoff before a retry, ms; also caps the AI's Retry-After"},
    {"DOCQ_MAX_DELIVERIES", W, INT(max_deliveries, 1, 1000000), "10", NULL,
     "a task delivered more often than this (its workers kept dying) is dead-lettered and fails"},
    {"DOCQ_DEAD_STREAM", W, STR(dead_stream), "dead", check_key_part,
     "dead-letter stream of shard N: <DOCQ_KEY_PREFIX>:{sN}:<this>"},
    {"DOCQ_DEAD_MAXLEN", W, INT(dead_maxlen, 1, 1000000000), "100000", NULL,
     "about how many entries each dead-letter stream keeps (older ones are trimmed)"},
    {"DOCQ_CONSUMER_IDLE_MS", W, INT(consumer_idle_ms, 100, 2147483647), "3600000", NULL,
     "a group consumer idle this long with nothing pending (a stopped worker's) is deleted, ms"},
    {"DOCQ_SHUTDOWN_GRACE_MS", S | W, INT(shutdown_grace_ms, 0, 3600000), "30000", NULL,
     "on SIGTERM, how long calls in flight may finish before they are cut off, ms"},
    {"DOCQ_SHUTDOWN_DELAY_MS", S, INT(shutdown_delay_ms, 0, 3600000), "0", NULL,
     "on SIGTERM, answer health checks NOT_SERVING but keep serving for this long before the drain, ms"},
    {"DOCQ_METRICS_LISTEN", S | W, OPTSTR(metrics_listen), "0.0.0.0:9090", check_metrics_listen,
     "HTTP address of /metrics (Prometheus), /healthz and /readyz (host:port; port 0 picks one; "
     "off: none)"},
    {"DOCQ_REFLECTION", S, BOOL(reflection), "true", NULL,
     "serve gRPC server reflection (v1 and v1alpha), so that grpcurl needs no .proto file"},
    {"DOCQ_HEALTH_INTERVAL_MS", S, INT(health_interval_ms, 50, 600000), "1000", NULL,
     "how often the server PINGs Redis for its grpc.health.v1 status, ms"},
    {"DOCQ_METRICS_REFRESH_MS", W, INT(metrics_refresh_ms, 100, 3600000), "5000", NULL,
     "how often the worker reads the queue length and consumer-group lag for /metrics, ms"},
    {"DOCQ_SERVER", C, STR(server), "127.0.0.1:50051", check_server,
     "docq server address (host:port)"},
    {"DOCQ_DEADLINE_MS", C, INT(deadline_ms, 1, 86400000), "10000", NULL,
     "deadline of each call the CLI makes, milliseconds"},
    {"DOCQ_API_KEY", C, OPTSTR(api_key), "", NULL,
     "API key sent as 'authorization: Bearer <key>' (servers with DOCQ_API_KEYS_FILE)"},
    {"DOCQ_RETRY", C, BOOL(retry), "0", NULL,
     "submit: when the rate limit refuses a document, wait the delay the server gives and retry"},
    {"DOCQ_WAIT", C, BOOL(wait), "false", NULL,
     "submit: then watch each task until it ends (exit 1 if one fails)"},
    {"DOCQ_LIST_STATE", C, OPTSTR(list_states), "", check_list_states,
     "list: only tasks in this state (PENDING, STARTED, SUCCESS, FAILURE, CANCELLED); repeat the flag, "
     "or separate states with ',', for several"},
    {"DOCQ_LIST_PAGE_SIZE", C, INT(list_page_size, 1, 1000), "50", NULL,
     "list: tasks per page"},
    {"DOCQ_LIST_ALL", C, BOOL(list_all), "false", NULL,
     "list: follow the pages to the last one (else print one page)"},
    {"DOCQ_REQUEST_ID", C, OPTSTR(request_id), "", check_request_id,
     "submit: request_id of the one document (1-64 printable ASCII bytes): sending it again gets the "
     "same task"},
    {"DOCQ_QUEUE_TIMEOUT", C, STR(queue_timeout), "0", check_queue_timeout,
     "submit: a task still PENDING after this long fails (e.g. 30s, 10m, 1h; 0: no limit)"},
    {"DOCQ_BENCH_USERS", C, INT(bench_users, 1, 1000000), "30", NULL,
     "bench: concurrent simulated users (closed loop)"},
    {"DOCQ_BENCH_DURATION", C, STR(bench_duration), "30s", check_bench_duration,
     "bench: how long to run (e.g. 30s, 500ms, 2m)"},
    {"DOCQ_BENCH_TASKS", C, INT(bench_tasks, 0, 1000000000), "0", NULL,
     "bench: stop after this many tasks instead (0: run for --duration)"},
    {"DOCQ_BENCH_RATE", C, STR(bench_rate_text), "0", check_bench_rate,
     "bench: open loop at this many SubmitDocs per second (0: closed loop of --users)"},
    {"DOCQ_BENCH_FOLLOW", C, STR(bench_follow), "poll", check_bench_follow,
     "bench: how a user follows its task: poll (GetStatus), watch (WatchStatus) or none"},
    {"DOCQ_BENCH_POLL_MS", C, INT(bench_poll_ms, 0, 600000), "100", NULL,
     "bench: pause between a user's GetStatus polls, ms"},
    {"DOCQ_BENCH_CONNECTIONS", C, INT(bench_connections, 1, 1024), "4", NULL,
     "bench: HTTP/2 connections to the server"},
    {"DOCQ_BENCH_THREADS", C, INT(bench_threads, 1, 256), "2", NULL,
     "bench: load-generator threads, each with its own completion queue"},
    {"DOCQ_BENCH_JSON", C, BOOL(bench_json), "0", NULL,
     "bench: print the results as JSON instead of a table"},
    {"DOCQ_BENCH_API_KEYS_FILE", C, OPTSTR(bench_api_keys_file), "", NULL,
     "bench: file of API keys, one per line; user i sends key i mod their number "
     "(else every user sends DOCQ_API_KEY, if set)"},
    {"DOCQ_LOG_LEVEL", S | W | C, STR(log_level), "info", check_log_level,
     "lowest log level written: debug, info, warn or error"},
    {"DOCQ_REDIS_PASSWORD_FILE", S | W, OPTSTR(redis_password_file), "", NULL,
     "file holding the Redis password (one line), instead of putting it in DOCQ_REDIS_URL"},
    {"DOCQ_TLS_CERT", S, OPTSTR(tls_cert), "", NULL,
     "server certificate chain (PEM file): serve gRPC over TLS (with DOCQ_TLS_KEY)"},
    {"DOCQ_TLS_KEY", S, OPTSTR(tls_key), "", NULL,
     "private key of DOCQ_TLS_CERT (PEM file)"},
    {"DOCQ_TLS_CLIENT_CA", S, OPTSTR(tls_client_ca), "", NULL,
     "CA certificates (PEM file): require client certificates signed by them (mutual TLS); "
     "a client certificate's CN then names its caller"},
    {"DOCQ_PLAINTEXT_LISTEN", S, OPTSTR(plaintext_listen), "", check_optional_listen,
     "with TLS: also listen here without TLS, for health probes only (grpc.health.v1.Health)"},
    {"DOCQ_MAX_MESSAGE_BYTES", S, INT(max_message_bytes, 1024, 67108864), "65536", NULL,
     "largest request message the server accepts, bytes (larger: RESOURCE_EXHAUSTED)"},
    {"DOCQ_MAX_METADATA_BYTES", S, INT(max_metadata_bytes, 1024, 1048576), "8192", NULL,
     "largest request metadata (headers) the server accepts, bytes"},
    {"DOCQ_MAX_CONCURRENT_STREAMS", S, INT(max_concurrent_streams, 1, 1000000), "1000", NULL,
     "calls one client connection may have open at once (HTTP/2 streams)"},
    {"DOCQ_MAX_WATCHES_PER_CALLER", S, INT(max_watches_per_caller, 0, 100000000), "1000", NULL,
     "long-lived streams one caller (its address without a key) may have open at once: WatchStatus, "
     "health Watch and reflection together (more: RESOURCE_EXHAUSTED); 0: no limit"},
    {"DOCQ_WATCH_RESULT_BYTES", S, INT(watch_result_bytes, 65536, 1099511627776L), "268435456", NULL,
     "bytes of task results the server holds for its open watches (one copy per watched task); past it a "
     "watch ends with RESOURCE_EXHAUSTED, to read the task with GetStatus"},
    {"DOCQ_MAX_RESULT_BYTES", W, INT(max_result_bytes, 1, 268435456), "1048576", NULL,
     "largest AI answer stored as a result, bytes; a larger one fails the task"},
    {"DOCQ_TLS", C, BOOL(tls), "false", NULL,
     "connect with TLS (implied by --cacert and --cert)"},
    {"DOCQ_TLS_CACERT", C, OPTSTR(tls_cacert), "", NULL,
     "CA certificates (PEM file) to verify the server with; unset: the system's roots"},
    {"DOCQ_TLS_CLIENT_CERT", C, OPTSTR(tls_client_cert), "", NULL,
     "client certificate chain (PEM file) for servers that require one (mutual TLS)"},
    {"DOCQ_TLS_CLIENT_KEY", C, OPTSTR(tls_client_key), "", NULL,
     "private key of the client certificate (PEM file)"},
    {"DOCQ_TLS_SERVER_NAME", C, OPTSTR(tls_server_name), "", NULL,
     "name the server's certificate must hold, when not the host of --server"},
};
#define NSETTINGS (sizeof(settings) / sizeof(settings[0]))

/* Settings whose default differs for one binary: the worker's metrics port
 * is not the server's, so that both may run on one host. */
static const struct {
    const char *env;
    unsigned bin;
    const char *def;
} bin_defaults[] = {
    {"DOCQ_METRICS_LISTEN", W, "0.0.0.0:9091"},
};

#undef S
#undef W
#undef C

/* The default of setting s for binary bin. */
static const char *default_of(const setting *s, unsigned bin) {
    for (size_t i = 0; i < sizeof(bin_defaults) / sizeof(bin_defaults[0]); i++)
        if ((bin_defaults[i].bin & bin) && strcmp(bin_defaults[i].env, s->env) == 0) return bin_defaults[i].def;
    return s->def;
}
/* Flags not derived from their variable: the CLI's TLS files take the
 * names curl and grpcurl give them. */
static const struct {
    const char *env, *flag;
} short_flags[] = {
    {"DOCQ_TLS_CACERT", "--cacert"},
    {"DOCQ_TLS_CLIENT_CERT", "--cert"},
    {"DOCQ_TLS_CLIENT_KEY", "--key"},
};

/* The flag of a setting: DOCQ_REDIS_URL -> --redis-url. */
static void flag_name(const setting *s, char *buf, size_t cap) {
    size_t n = 0;
    for (size_t i = 0; i < sizeof(short_flags) / sizeof(short_flags[0]); i++) {
        if (strcmp(s->env, short_flags[i].env) == 0) {
            snprintf(buf, cap, "%s", short_flags[i].flag);
            return;
        }
    }
    const char *p = s->env + 5;
    /* The load generator's and the list command's settings are their
     * command's own options: DOCQ_BENCH_USERS -> --users, DOCQ_LIST_STATE
     * -> --state. */
    if (strncmp(p, "BENCH_", 6) == 0) p += 6;
    if (strncmp(p, "LIST_", 5) == 0) p += 5;
    buf[n++] = '-';
    buf[n++] = '-';
    for (; *p && n + 1 < cap; p++) buf[n++] = (*p == '_') ? '-' : (char)tolower((unsigned char)*p);
    buf[n] = '\0';
}

/* Store value into the setting's field after validating it. Returns DOCQ_OK
 * or DOCQ_EINVAL with a message naming the setting and the value. */
static int apply(docq_config *cfg, const setting *s, const char *value, docq_error *err) {
    char *field = (char *)cfg + s->offset;
    char flag[64];
    docq_error why = {0};
    flag_name(s, flag, sizeof(flag));
    /* Never echo a value that may hold a password or a key. */
    const char *shown = strstr(s->env, "URL") && strchr(value, '@') ? "(hidden: it holds a password)" : value;
    if (strcmp(s->env, "DOCQ_API_KEY") == 0) shown = "(hidden: it is a key)";

    if (s->kind == KIND_BOOL) {
        static const char *yes[] = {"1", "true", "yes", "on"}, *no[] = {"0", "false", "no", "off"};
        for (int i = 0; i < 4; i++) {
            if (strcmp(value, yes[i]) == 0 || strcmp(value, no[i]) == 0) {
                *(long *)field = strcmp(value, yes[i]) == 0;
                return DOCQ_OK;
            }
        }
        return docq_error_set(err, DOCQ_EINVAL, "invalid %s (%s) '%s': expected true or false",
                              s->env, flag, value);
    }
    if (s->kind == KIND_INT) {
        char *end;
        errno = 0;
        long v = strtol(value, &end, 10);
        if (errno || end == value || *end || v < s->min || v > s->max)
            return docq_error_set(err, DOCQ_EINVAL,
                                  "invalid %s (%s) '%s': expected an integer from %ld to %ld",
                                  s->env, flag, value, s->min, s->max);
        *(long *)field = v;
        return DOCQ_OK;
    }
    if ((value[0] == '\0' && s->kind == KIND_STRING) || strlen(value) >= s->size)
        return docq_error_set(err, DOCQ_EINVAL, "invalid %s (%s) '%s': must be %d to %zu characters",
                              s->env, flag, shown, s->kind == KIND_STRING, s->size - 1);
    if (s->check && s->check(cfg, value, &why) != DOCQ_OK)
        return docq_error_set(err, DOCQ_EINVAL, "invalid %s (%s) '%s': %s", s->env, flag, shown,
                              why.msg);
    memcpy(field, value, strlen(value) + 1);
    return DOCQ_OK;
}

/* Find the index of the setting whose flag is the text before any '=' in
 * arg, or -1. */
static int find_flag(unsigned bin, const char *arg) {
    size_t len = strcspn(arg, "=");
    for (size_t i = 0; i < NSETTINGS; i++) {
        char flag[64];
        if (!(settings[i].bins & bin)) continue;
        flag_name(&settings[i], flag, sizeof(flag));
        if (strlen(flag) == len && strncmp(flag, arg, len) == 0) return (int)i;
    }
    return -1;
}

/* Record the flags in argv[1..] into vals (by setting index), collecting
 * positional arguments. Values are validated later, once each. A repeated
 * --state adds its value to the earlier ones (joined with ',' in states,
 * states_cap bytes); any other repeated flag replaces the earlier value. */
static int read_flags(docq_config *cfg, unsigned bin, int argc, char **argv, const char **vals,
                      char *states, size_t states_cap, docq_error *err) {
    int only_args = 0;
    for (int i = 1; i < argc; i++) {
        char *a = argv[i];
        if (only_args || a[0] != '-' || a[1] == '\0') {
            if (cfg->nargs == DOCQ_MAX_ARGS)
                return docq_error_set(err, DOCQ_EINVAL, "too many arguments");
            cfg->args[cfg->nargs++] = a;
            continue;
        }
        if (strcmp(a, "--") == 0) {
            only_args = 1;
            continue;
        }
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) return DOCQ_EHELP;
        int s = find_flag(bin, a);
        /* Name the flag, not its value: the value may hold a password. */
        if (s < 0)
            return docq_error_set(err, DOCQ_EINVAL, "unknown option '%.*s' (see --help)",
                                  (int)strcspn(a, "="), a);
        const char *eq = strchr(a, '=');
        if (!eq && settings[s].kind == KIND_BOOL) {
            vals[s] = "true";
            continue;
        }
        const char *v = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
        if (!v) return docq_error_set(err, DOCQ_EINVAL, "option '%s' needs a value", a);
        if (strcmp(settings[s].env, "DOCQ_LIST_STATE") == 0) {
            size_t len = strlen(states);
            int n = snprintf(states + len, states_cap - len, "%s%s", len ? "," : "", v);
            if (n < 0 || (size_t)n >= states_cap - len)
                return docq_error_set(err, DOCQ_EINVAL, "too many --state options");
            v = states;
        }
        vals[s] = v;
    }
    return DOCQ_OK;
}

/* The security settings that go together, and the Redis password file
 * (read here, into cfg->redis.password). Returns DOCQ_OK or DOCQ_EINVAL
 * with a message that never quotes a secret. */
static int check_security(docq_config *cfg, unsigned bin, docq_error *err) {
    docq_error why = {0};
    if ((bin & DOCQ_BIN_SERVER) && !cfg->tls_cert[0] != !cfg->tls_key[0])
        return docq_error_set(err, DOCQ_EINVAL, "DOCQ_TLS_CERT (--tls-cert) and DOCQ_TLS_KEY (--tls-key) "
                              "go together: set both or neither");
    if ((bin & DOCQ_BIN_SERVER) && !cfg->tls_cert[0] && cfg->tls_client_ca[0])
        return docq_error_set(err, DOCQ_EINVAL, "DOCQ_TLS_CLIENT_CA (--tls-client-ca) needs TLS: "
                              "set DOCQ_TLS_CERT and DOCQ_TLS_KEY too");
    if ((bin & DOCQ_BIN_SERVER) && !cfg->tls_cert[0] && cfg->plaintext_listen[0])
        return docq_error_set(err, DOCQ_EINVAL, "DOCQ_PLAINTEXT_LISTEN (--plaintext-listen) is for "
                              "health probes beside a TLS port: set DOCQ_TLS_CERT and DOCQ_TLS_KEY too");
    if ((bin & DOCQ_BIN_CLI) && !cfg->tls_client_cert[0] != !cfg->tls_client_key[0])
        return docq_error_set(err, DOCQ_EINVAL, "DOCQ_TLS_CLIENT_CERT (--cert) and DOCQ_TLS_CLIENT_KEY "
                              "(--key) go together: set both or neither");
    if (!(bin & (DOCQ_BIN_SERVER | DOCQ_BIN_WORKER))) return DOCQ_OK;
    /* The user is not quoted: a password written without its ':' lands there. */
    if (cfg->redis.user[0] && !cfg->redis.password[0] && !cfg->redis_password_file[0])
        return docq_error_set(err, DOCQ_EINVAL, "DOCQ_REDIS_URL (--redis-url) names a Redis user but no password: write "
                              "redis://user:password@host, or give the password by DOCQ_REDIS_PASSWORD_FILE");
    if (!cfg->redis_password_file[0]) return DOCQ_OK;
    if (cfg->redis.password[0])
        return docq_error_set(err, DOCQ_EINVAL, "the Redis password is given twice: in DOCQ_REDIS_URL "
                              "and by DOCQ_REDIS_PASSWORD_FILE; keep one");
    if (docq_secret_read(cfg->redis_password_file, cfg->redis.password, sizeof(cfg->redis.password),
                         &why) != DOCQ_OK)
        return docq_error_set(err, DOCQ_EINVAL, "invalid DOCQ_REDIS_PASSWORD_FILE (--redis-password-file): %s",
                              why.msg);
    return DOCQ_OK;
}

int docq_config_load(docq_config *cfg, unsigned bin, int argc, char **argv, docq_error *err) {
    const char *vals[NSETTINGS];
    char states[sizeof(cfg->list_states)] = "";
    memset(cfg, 0, sizeof(*cfg));
    /* Every setting gets a value, so that the struct is complete even for
     * settings only other binaries read; the last source wins: default,
     * environment, flag. Only the winning value is validated. */
    for (size_t i = 0; i < NSETTINGS; i++) {
        const char *env = (settings[i].bins & bin) ? getenv(settings[i].env) : NULL;
        vals[i] = env ? env : default_of(&settings[i], bin);
    }
    int rc = read_flags(cfg, bin, argc, argv, vals, states, sizeof(states), err);
    if (rc != DOCQ_OK) return rc;
    for (size_t i = 0; i < NSETTINGS; i++)
        if (apply(cfg, &settings[i], vals[i], err) != DOCQ_OK) return DOCQ_EINVAL;
    /* Three heartbeats per visibility timeout: one late or lost refresh does
     * not let another worker take a task that is still running. */
    if ((bin & DOCQ_BIN_WORKER) && cfg->heartbeat_ms * 3 > cfg->visibility_timeout_ms)
        return docq_error_set(err, DOCQ_EINVAL,
                              "invalid DOCQ_HEARTBEAT_MS (--heartbeat-ms) '%ld': must be at most a third of "
                              "DOCQ_VISIBILITY_TIMEOUT_MS (%ld), so at most %ld",
                              cfg->heartbeat_ms, cfg->visibility_timeout_ms, cfg->visibility_timeout_ms / 3);
    if (check_security(cfg, bin, err) != DOCQ_OK) return DOCQ_EINVAL;
    docq_log_level level;
    docq_log_level_parse(cfg->log_level, &level);
    docq_log_set_level(level);
    return DOCQ_OK;
}

size_t docq_config_help(unsigned bin, char *buf, size_t cap) {
    size_t len = 0;
    if (cap == 0) return 0;
    buf[0] = '\0';
    for (size_t i = 0; i < NSETTINGS && len + 1 < cap; i++) {
        char flag[64];
        if (!(settings[i].bins & bin)) continue;
        flag_name(&settings[i], flag, sizeof(flag));
        const char *def = default_of(&settings[i], bin);
        int n = snprintf(buf + len, cap - len, "  %-28s %s\n  %-28s %s (default %s)\n", flag,
                         settings[i].env, "", settings[i].help, def[0] ? def : "unset");
        if (n < 0) break;
        len += (size_t)n;
    }
    if (len >= cap) len = cap - 1;
    return len;
}

/* Parse a decimal port from p (up to end). Returns the port or -1. */
static long parse_port(const char *p, const char *end) {
    if (p == end || end - p > 5) return -1;
    long port = 0;
    for (; p < end; p++) {
        if (!isdigit((unsigned char)*p)) return -1;
        port = port * 10 + (*p - '0');
    }
    return port <= 65535 ? port : -1;
}

/* Split "host:port" or "[v6]:port" at s..end into host and port. */
static int split_hostport(const char *s, const char *end, char *host, size_t hcap, long *port,
                          docq_error *err) {
    const char *colon, *hs = s, *he;
    if (*s == '[') {
        he = memchr(s, ']', (size_t)(end - s));
        if (!he) return docq_error_set(err, DOCQ_EINVAL, "unclosed '[' in address");
        hs = s + 1;
        colon = he + 1 < end && he[1] == ':' ? he + 1 : NULL;
        if (!colon && he + 1 != end) return docq_error_set(err, DOCQ_EINVAL, "expected ':' after ']'");
    } else {
        colon = memrchr(s, ':', (size_t)(end - s));
        he = colon ? colon : end;
    }
    if (he == hs) return docq_error_set(err, DOCQ_EINVAL, "missing host");
    if ((size_t)(he - hs) >= hcap) return docq_error_set(err, DOCQ_EINVAL, "host too long");
    memcpy(host, hs, (size_t)(he - hs));
    host[he - hs] = '\0';
    *port = colon ? parse_port(colon + 1, end) : -2;
    if (*port == -1) return docq_error_set(err, DOCQ_EINVAL, "bad port");
    return DOCQ_OK;
}

int docq_hostport_check(const char *s, int allow_zero, docq_error *err) {
    char host[256];
    long port;
    if (split_hostport(s, s + strlen(s), host, sizeof(host), &port, err) != DOCQ_OK) return DOCQ_EINVAL;
    if (port == -2) return docq_error_set(err, DOCQ_EINVAL, "expected host:port");
    if (port == 0 && !allow_zero) return docq_error_set(err, DOCQ_EINVAL, "port 0 is not allowed");
    return DOCQ_OK;
}

int docq_metrics_listen_off(const char *value) { return value[0] == '\0' || strcmp(value, "off") == 0; }

/* Parse one URL of docq_redis_url_parse's list: url up to its first comma. */
static int redis_url_parse_one(const char *url, docq_redis_addr *out, docq_error *err) {
    const char *p = url, *end, *comma = strchr(url, ',');
    char one[512];
    if (comma) {
        if ((size_t)(comma - url) >= sizeof(one)) return docq_error_set(err, DOCQ_EINVAL, "URL too long");
        memcpy(one, url, (size_t)(comma - url));
        one[comma - url] = '\0';
        p = one;
    }
    memset(out, 0, sizeof(*out));
    out->port = 6379;
    if (strncmp(p, "redis://", 8) != 0) return docq_error_set(err, DOCQ_EINVAL, "expected redis://");
    p += 8;
    const char *slash = strchr(p, '/');
    end = slash ? slash : p + strlen(p);
    const char *at = memrchr(p, '@', (size_t)(end - p));
    if (at) {
        /* user:password@, :password@ or user@ (its password from a file). */
        const char *colon = memchr(p, ':', (size_t)(at - p));
        const char *user_end = colon ? colon : at, *pw = colon ? colon + 1 : at;
        if ((size_t)(user_end - p) >= sizeof(out->user)) return docq_error_set(err, DOCQ_EINVAL, "user too long");
        if ((size_t)(at - pw) >= sizeof(out->password))
            return docq_error_set(err, DOCQ_EINVAL, "password too long");
        memcpy(out->user, p, (size_t)(user_end - p));
        out->user[user_end - p] = '\0';
        memcpy(out->password, pw, (size_t)(at - pw));
        out->password[at - pw] = '\0';
        p = at + 1;
    }
    long port;
    if (split_hostport(p, end, out->host, sizeof(out->host), &port, err) != DOCQ_OK) return DOCQ_EINVAL;
    if (port == 0) return docq_error_set(err, DOCQ_EINVAL, "port 0 is not allowed");
    if (port > 0) out->port = (int)port;
    if (slash && slash[1]) {
        char *dend;
        errno = 0;
        long db = strtol(slash + 1, &dend, 10);
        if (errno || *dend || db < 0 || db > 1000000 || !isdigit((unsigned char)slash[1]))
            return docq_error_set(err, DOCQ_EINVAL, "bad database number");
        out->db = (int)db;
    }
    return DOCQ_OK;
}

int docq_redis_url_parse(const char *url, docq_redis_addr *out, docq_error *err) {
    if (redis_url_parse_one(url, out, err) != DOCQ_OK) return DOCQ_EINVAL;
    for (const char *next = strchr(url, ','); next; next = strchr(next + 1, ',')) {
        docq_redis_addr seed;
        docq_error why = {0};
        if (out->nseeds + 1 >= DOCQ_REDIS_MAX_SEEDS)
            return docq_error_set(err, DOCQ_EINVAL, "more than %d URLs", DOCQ_REDIS_MAX_SEEDS);
        if (redis_url_parse_one(next + 1, &seed, &why) != DOCQ_OK)
            return docq_error_set(err, DOCQ_EINVAL, "URL %d: %s", out->nseeds + 2, why.msg);
        if (seed.user[0] || seed.password[0] || seed.db)
            return docq_error_set(err, DOCQ_EINVAL, "URL %d: give the credentials and database once, in "
                                  "the first URL", out->nseeds + 2);
        snprintf(out->seeds[out->nseeds].host, sizeof(out->seeds[0].host), "%s", seed.host);
        out->seeds[out->nseeds++].port = seed.port;
    }
    return DOCQ_OK;
}
