/* config.h -- settings of every docq binary, from the environment and flags.
 *
 * Each setting has one environment variable (DOCQ_SHARDS) and one flag
 * (--shards VALUE or --shards=VALUE); a flag overrides the environment, which
 * overrides the default. docq_config_load validates every value the binary
 * uses and names the first bad one. The table of settings in config.c is the
 * single place that lists names, defaults, limits and help texts. */
#ifndef DOCQ_CONFIG_H
#define DOCQ_CONFIG_H

#include <stddef.h>

#include "error.h"
#include "proxies.h"

/* Which binary is loading: a setting is accepted only by the binaries that
 * use it, and --help lists only those. */
#define DOCQ_BIN_SERVER 1u
#define DOCQ_BIN_WORKER 2u
#define DOCQ_BIN_CLI 4u

#define DOCQ_MAX_ARGS 16

/* A parsed redis://[[user]:password@]host:port[/db] URL. */
/* DOCQ_REDIS_URL may list up to this many nodes, comma-separated: seeds of
 * a Redis Cluster, tried in turn until one answers. */
#define DOCQ_REDIS_MAX_SEEDS 8

typedef struct docq_redis_addr {
    char host[256];     /* Host name or IP address, without brackets. */
    char user[128];     /* Redis 6+ ACL user (AUTH user password); empty: the default user. */
    int port;           /* TCP port, 1..65535 (default 6379). */
    char password[256]; /* Empty when no password was given. */
    int db;             /* Database number (default 0). */
    int nseeds;         /* How many further nodes the URL list named (a cluster's seeds). */
    struct {
        char host[256];
        int port;
    } seeds[DOCQ_REDIS_MAX_SEEDS - 1]; /* Those nodes, after the first (host, port above). */
} docq_redis_addr;

typedef struct docq_config {
    char listen[256];          /* DOCQ_LISTEN: server's gRPC address, host:port. */
    char redis_url[512];       /* DOCQ_REDIS_URL, as given. */
    docq_redis_addr redis;     /* DOCQ_REDIS_URL, parsed. */
    long redis_timeout_ms;     /* DOCQ_REDIS_TIMEOUT_MS: connect and command timeout. */
    long redis_min_replicas;   /* DOCQ_REDIS_MIN_REPLICAS: replicas WAITed for per submit burst (0: none). */
    long redis_wait_ms;        /* DOCQ_REDIS_WAIT_MS: that WAIT's timeout, ms. */
    char ai_url[1024];         /* DOCQ_AI_URL: where the worker POSTs documents. */
    long ai_timeout_ms;        /* DOCQ_AI_TIMEOUT_MS: whole AI call, ms. */
    long ai_connect_timeout_ms;/* DOCQ_AI_CONNECT_TIMEOUT_MS: TCP connect to the AI, ms. */
    char key_prefix[64];       /* DOCQ_KEY_PREFIX: first part of every Redis key. */
    long shards;               /* DOCQ_SHARDS: number of queue streams. */
    char group[64];            /* DOCQ_GROUP: the workers' consumer group. */
    long result_ttl_s;         /* DOCQ_RESULT_TTL_S: life of a finished task record. */
    long request_id_ttl_s;     /* DOCQ_REQUEST_ID_TTL_S: least life of a SubmitDoc request_id. */
    long max_queue_timeout_s;  /* DOCQ_MAX_QUEUE_TIMEOUT_S: longest SubmitDoc queue_timeout. */
    long threads;              /* DOCQ_THREADS: server completion-queue threads. */
    long rate_limit;           /* DOCQ_RATE_LIMIT: SubmitDocs per caller per window (0: none). */
    long rate_window_s;        /* DOCQ_RATE_WINDOW_S: its rolling window, seconds. */
    long read_rate_limit;      /* DOCQ_READ_RATE_LIMIT: GetStatus/WatchStatus per caller per window. */
    long read_rate_window_s;   /* DOCQ_READ_RATE_WINDOW_S: its rolling window, seconds. */
    char api_keys_file[1024];  /* DOCQ_API_KEYS_FILE: caller keys; empty: callers are IPs. */
    char trusted_proxies[1024];/* DOCQ_TRUSTED_PROXIES, as given. */
    docq_proxies proxies;      /* DOCQ_TRUSTED_PROXIES, parsed. */
    long position_refresh_ms;  /* DOCQ_POSITION_REFRESH_MS: queue position refresh for watchers. */
    long keepalive_ms;         /* DOCQ_KEEPALIVE_MS: HTTP/2 keepalive ping interval. */
    long max_connection_age_ms;/* DOCQ_MAX_CONNECTION_AGE_MS: 0 = connections never age out. */
    long max_connection_idle_ms;/* DOCQ_MAX_CONNECTION_IDLE_MS: close connections idle this long (0: never). */
    long concurrency;          /* DOCQ_WORKER_CONCURRENCY: AI calls in flight per worker. */
    long heartbeat_ms;         /* DOCQ_HEARTBEAT_MS: how often a worker refreshes its claims. */
    long visibility_timeout_ms;/* DOCQ_VISIBILITY_TIMEOUT_MS: idle time after which an entry is reclaimed. */
    long max_attempts;         /* DOCQ_MAX_ATTEMPTS: AI calls per task before a transient failure is final. */
    long retry_base_ms;        /* DOCQ_RETRY_BASE_MS: first backoff before a retry. */
    long retry_max_ms;         /* DOCQ_RETRY_MAX_MS: longest backoff (and cap on Retry-After). */
    long max_deliveries;       /* DOCQ_MAX_DELIVERIES: deliveries before an entry is dead-lettered. */
    char dead_stream[64];      /* DOCQ_DEAD_STREAM: last key part of each shard's dead-letter stream. */
    long dead_maxlen;          /* DOCQ_DEAD_MAXLEN: about how many entries a dead-letter stream keeps. */
    long consumer_idle_ms;     /* DOCQ_CONSUMER_IDLE_MS: idle consumers with nothing pending are deleted. */
    long shutdown_grace_ms;    /* DOCQ_SHUTDOWN_GRACE_MS: drain time on SIGTERM. */
    long shutdown_delay_ms;    /* DOCQ_SHUTDOWN_DELAY_MS: NOT_SERVING but still serving, before the drain. */
    char metrics_listen[256];  /* DOCQ_METRICS_LISTEN: /metrics and probes, host:port; "" or "off": none. */
    long reflection;           /* DOCQ_REFLECTION: 1 = serve gRPC server reflection. */
    long health_interval_ms;   /* DOCQ_HEALTH_INTERVAL_MS: Redis PING behind the gRPC health status. */
    long metrics_refresh_ms;   /* DOCQ_METRICS_REFRESH_MS: worker's queue length and lag refresh. */
    char server[256];          /* DOCQ_SERVER: the CLI's server address. */
    long deadline_ms;          /* DOCQ_DEADLINE_MS: the CLI's per-call deadline. */
    char api_key[512];         /* DOCQ_API_KEY: the key the CLI sends; empty: none. */
    long retry;                /* DOCQ_RETRY: 1 to wait out rate-limit refusals (CLI). */
    long wait;                 /* DOCQ_WAIT (--wait): 1 = submit, then watch until the end. */
    char request_id[80];       /* DOCQ_REQUEST_ID (--request-id): submit's request_id; empty: none. */
    char queue_timeout[32];    /* DOCQ_QUEUE_TIMEOUT (--queue-timeout), as given; parsed into: */
    long queue_timeout_ms;     /* submit's queue_timeout, ms; 0: none. */
    char log_level[16];        /* DOCQ_LOG_LEVEL: debug, info, warn or error. */

    /* Security and bounded inputs (README "Security"). */
    char redis_password_file[1024]; /* DOCQ_REDIS_PASSWORD_FILE: read into redis.password. */
    char tls_cert[1024];       /* DOCQ_TLS_CERT: server certificate chain (PEM); empty: no TLS. */
    char tls_key[1024];        /* DOCQ_TLS_KEY: its private key (PEM). */
    char tls_client_ca[1024];  /* DOCQ_TLS_CLIENT_CA: CAs of required client certificates (mTLS). */
    char plaintext_listen[256];/* DOCQ_PLAINTEXT_LISTEN: with TLS, a plaintext port for health probes. */
    long max_message_bytes;    /* DOCQ_MAX_MESSAGE_BYTES: largest request message received. */
    long max_metadata_bytes;   /* DOCQ_MAX_METADATA_BYTES: largest request metadata received. */
    long max_concurrent_streams;/* DOCQ_MAX_CONCURRENT_STREAMS: open calls per connection. */
    long ipv6_prefix;           /* DOCQ_IPV6_PREFIX: IPv6 callers grouped by this many leading bits. */
    long max_watches_per_caller;/* DOCQ_MAX_WATCHES_PER_CALLER: open watches per caller (0: no limit). */
    long watch_result_bytes;   /* DOCQ_WATCH_RESULT_BYTES: results held for open watches, bytes. */
    long max_result_bytes;     /* DOCQ_MAX_RESULT_BYTES: largest AI answer the worker stores. */
    long tls;                  /* DOCQ_TLS (--tls): the CLI connects with TLS. */
    char tls_cacert[1024];     /* DOCQ_TLS_CACERT (--cacert): CAs the CLI trusts; empty: system roots. */
    char tls_client_cert[1024];/* DOCQ_TLS_CLIENT_CERT (--cert): the CLI's certificate (mTLS). */
    char tls_client_key[1024]; /* DOCQ_TLS_CLIENT_KEY (--key): its private key. */
    char tls_server_name[256]; /* DOCQ_TLS_SERVER_NAME: name to check the server's certificate for. */

    /* docq list; see its --help. */
    char list_states[128];     /* DOCQ_LIST_STATE (--state): state names, comma-separated; "": all. */
    long list_page_size;       /* DOCQ_LIST_PAGE_SIZE (--page-size): tasks per ListTasks call. */
    long list_all;             /* DOCQ_LIST_ALL (--all): 1 = follow every page. */

    /* docq bench (the CLI's load generator); see its --help. */
    long bench_users;          /* Concurrent users of the closed loop. */
    char bench_duration[32];   /* As given; parsed into bench_duration_ms. */
    long bench_duration_ms;
    long bench_tasks;          /* Tasks to run, 0 = run for the duration. */
    char bench_rate_text[32];  /* As given; parsed into bench_rate. */
    long bench_rate;           /* Open-loop SubmitDocs per second, 0 = closed loop. */
    char bench_follow[16];     /* poll, watch or none. */
    long bench_poll_ms;        /* Pause between GetStatus polls. */
    long bench_connections;    /* Channels (HTTP/2 connections). */
    long bench_threads;        /* Generator threads. */
    long bench_json;           /* 1: JSON output. */
    char bench_api_keys_file[1024]; /* Keys the simulated users send, one per line. */

    /* Positional arguments (not settings), in order; they point into argv. */
    int nargs;
    char *args[DOCQ_MAX_ARGS];
} docq_config;

/* Fill cfg with defaults, then the environment, then the flags in argv[1..]
 * for the binary `bin` (a DOCQ_BIN_* value). Arguments that are not flags
 * are collected in cfg->args; "--" ends flag parsing.
 * For the worker, DOCQ_HEARTBEAT_MS must also be below
 * DOCQ_VISIBILITY_TIMEOUT_MS, or live workers would lose their entries.
 *
 * Returns DOCQ_OK; DOCQ_EHELP when --help or -h was given; DOCQ_EINVAL with a
 * one-line message naming the setting and the bad value (or the unknown
 * flag). cfg points into argv afterwards, so argv must outlive it. */
int docq_config_load(docq_config *cfg, unsigned bin, int argc, char **argv, docq_error *err);

/* Write the list of the binary's settings with their flags, defaults and
 * help texts into buf (capacity cap, NUL-terminated, truncated if needed).
 * Returns the length written. */
size_t docq_config_help(unsigned bin, char *buf, size_t cap);

/* Parse redis://[[user]:password@]host[:port][/db] (also [v6addr]; user@
 * alone when the password comes from a file), or a comma-separated list of
 * up to DOCQ_REDIS_MAX_SEEDS such URLs naming nodes of one Redis Cluster:
 * the first gives the credentials and database, the others only
 * redis://host[:port]. Returns DOCQ_OK
 * and fills out, or DOCQ_EINVAL with the reason (the password is never
 * copied into the message). */
int docq_redis_url_parse(const char *url, docq_redis_addr *out, docq_error *err);

/* Check that s is host:port with a port from 0 to 65535 (0 only when
 * allow_zero). Returns DOCQ_OK or DOCQ_EINVAL with the reason. */
int docq_hostport_check(const char *s, int allow_zero, docq_error *err);

/* 1 when a DOCQ_METRICS_LISTEN value turns the endpoint off ("" or "off"),
 * else 0. */
int docq_metrics_listen_off(const char *value);

#endif
