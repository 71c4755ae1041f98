/* test_config.c -- defaults, environment, flags and value checks of every
 * binary's settings (common/config.c). Each case starts from an environment
 * without DOCQ_* variables and removes what it sets. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "config.h"

extern char **environ;

/* Unset every DOCQ_* variable, so that the caller's shell cannot change the
 * outcome. */
static void clean_env(void) {
    for (;;) {
        char name[128];
        const char *found = NULL;
        for (char **e = environ; *e; e++)
            if (strncmp(*e, "DOCQ_", 5) == 0) {
                found = *e;
                break;
            }
        if (!found) return;
        size_t n = strcspn(found, "=");
        if (n >= sizeof(name)) n = sizeof(name) - 1;
        memcpy(name, found, n);
        name[n] = '\0';
        unsetenv(name);
    }
}

/* Load for bin with argv = {"prog", args..., NULL}. */
#define LOAD(cfg, bin, err, ...)                                                 \
    load((cfg), (bin), (err), (const char *[]){"prog", __VA_ARGS__, NULL})
#define LOAD0(cfg, bin, err) load((cfg), (bin), (err), (const char *[]){"prog", NULL})

static int load(docq_config *cfg, unsigned bin, docq_error *err, const char **argv) {
    int argc = 0;
    while (argv[argc]) argc++;
    memset(err, 0, sizeof(*err));
    return docq_config_load(cfg, bin, argc, (char **)argv, err);
}

static void defaults_server(void) {
    docq_config cfg;
    docq_error err;
    clean_env();
    CHECK_INT_EQ(LOAD0(&cfg, DOCQ_BIN_SERVER, &err), DOCQ_OK);
    CHECK_STR_EQ(cfg.listen, "0.0.0.0:50051");
    CHECK_STR_EQ(cfg.redis_url, "redis://127.0.0.1:6379");
    CHECK_STR_EQ(cfg.redis.host, "127.0.0.1");
    CHECK_INT_EQ(cfg.redis.port, 6379);
    CHECK_STR_EQ(cfg.redis.password, "");
    CHECK_INT_EQ(cfg.redis.db, 0);
    CHECK_INT_EQ(cfg.redis_timeout_ms, 2000);
    CHECK_STR_EQ(cfg.key_prefix, "docq");
    CHECK_INT_EQ(cfg.shards, 16);
    CHECK_INT_EQ(cfg.threads, 2);
    CHECK_INT_EQ(cfg.shutdown_grace_ms, 30000);
    CHECK_STR_EQ(cfg.log_level, "info");
    CHECK_STR_EQ(cfg.group, "workers");
    CHECK_INT_EQ(cfg.position_refresh_ms, 2000);
    CHECK_INT_EQ(cfg.keepalive_ms, 30000);
    CHECK_INT_EQ(cfg.max_connection_age_ms, 0);
    CHECK_INT_EQ(cfg.nargs, 0);
}

static void defaults_worker(void) {
    docq_config cfg;
    docq_error err;
    clean_env();
    CHECK_INT_EQ(LOAD0(&cfg, DOCQ_BIN_WORKER, &err), DOCQ_OK);
    CHECK_STR_EQ(cfg.ai_url, "http://127.0.0.1:8080/process");
    CHECK_INT_EQ(cfg.ai_timeout_ms, 300000);
    CHECK_INT_EQ(cfg.ai_connect_timeout_ms, 5000);
    CHECK_INT_EQ(cfg.concurrency, 64);
    CHECK_STR_EQ(cfg.group, "workers");
    CHECK_INT_EQ(cfg.result_ttl_s, 86400);
    CHECK_INT_EQ(cfg.shards, 16);
    CHECK_STR_EQ(cfg.redis.host, "127.0.0.1");
    CHECK_STR_EQ(cfg.key_prefix, "docq");
    CHECK_INT_EQ(cfg.shutdown_grace_ms, 30000);
}

static void defaults_worker_reliability(void) {
    docq_config cfg;
    docq_error err;
    clean_env();
    CHECK_INT_EQ(LOAD0(&cfg, DOCQ_BIN_WORKER, &err), DOCQ_OK);
    CHECK_INT_EQ(cfg.heartbeat_ms, 5000);
    CHECK_INT_EQ(cfg.visibility_timeout_ms, 30000);
    CHECK_INT_EQ(cfg.max_attempts, 5);
    CHECK_INT_EQ(cfg.retry_base_ms, 1000);
    CHECK_INT_EQ(cfg.retry_max_ms, 60000);
    CHECK_INT_EQ(cfg.max_deliveries, 10);
    CHECK_STR_EQ(cfg.dead_stream, "dead");
}

/* Redis bounds: the dead-letter streams' length and idle consumers' life,
 * with a clear refusal of a value too small. */
static void defaults_worker_redis_bounds(void) {
    docq_config cfg;
    docq_error err;
    clean_env();
    CHECK_INT_EQ(LOAD0(&cfg, DOCQ_BIN_WORKER, &err), DOCQ_OK);
    CHECK_INT_EQ(cfg.dead_maxlen, 100000);
    CHECK_INT_EQ(cfg.consumer_idle_ms, 3600000);
    CHECK_INT_EQ(LOAD(&cfg, DOCQ_BIN_WORKER, &err, "--consumer-idle-ms", "500", "--dead-maxlen", "7"), DOCQ_OK);
    CHECK_INT_EQ(cfg.consumer_idle_ms, 500);
    CHECK_INT_EQ(cfg.dead_maxlen, 7);
    CHECK_INT_EQ(LOAD(&cfg, DOCQ_BIN_WORKER, &err, "--dead-maxlen", "0"), DOCQ_EINVAL);
    CHECK(strstr(err.msg, "DOCQ_DEAD_MAXLEN") != NULL);
}

static void defaults_redis_durability(void) {
    docq_config cfg;
    docq_error err;
    clean_env();
    CHECK_INT_EQ(LOAD0(&cfg, DOCQ_BIN_SERVER, &err), DOCQ_OK);
    CHECK_INT_EQ(cfg.redis_min_replicas, 0);
    CHECK_INT_EQ(cfg.redis_wait_ms, 1000);
    CHECK_INT_EQ(LOAD(&cfg, DOCQ_BIN_SERVER, &err, "--redis-min-replicas", "16", "--redis-wait-ms", "60000"),
                 DOCQ_OK);
    CHECK_INT_EQ(cfg.redis_min_replicas, 16);
    CHECK_INT_EQ(cfg.redis_wait_ms, 60000);
    CHECK_INT_EQ(LOAD(&cfg, DOCQ_BIN_SERVER, &err, "--redis-min-replicas", "17"), DOCQ_EINVAL);
    CHECK_STR_CONTAINS(err.msg, "DOCQ_REDIS_MIN_REPLICAS");
    CHECK_STR_CONTAINS(err.msg, "'17'");
    CHECK_STR_CONTAINS(err.msg, "integer from 0 to 16");
    setenv("DOCQ_REDIS_WAIT_MS", "0", 1);
    CHECK_INT_EQ(LOAD0(&cfg, DOCQ_BIN_SERVER, &err), DOCQ_EINVAL);
    CHECK_STR_CONTAINS(err.msg, "DOCQ_REDIS_WAIT_MS");
    CHECK_STR_CONTAINS(err.msg, "integer from 1 to 60000");
    clean_env();
    CHECK_INT_EQ(LOAD(&cfg, DOCQ_BIN_WORKER, &err, "--redis-min-replicas", "1"), DOCQ_EINVAL);
    CHECK_STR_CONTAINS(err.msg, "--redis-min-replicas");
}

static void heartbeat_below_visibility(void) {
    docq_config cfg;
    docq_error err = {0};
    clean_env();
    CHECK_INT_EQ(LOAD(&cfg, DOCQ_BIN_WORKER, &err, "--heartbeat-ms", "30000"), DOCQ_EINVAL);
    CHECK_STR_CONTAINS(err.msg, "DOCQ_HEARTBEAT_MS");
    CHECK_STR_CONTAINS(err.msg, "DOCQ_VISIBILITY_TIMEOUT_MS");
    CHECK_STR_CONTAINS(err.msg, "30000");
    setenv("DOCQ_VISIBILITY_TIMEOUT_MS", "1000", 1);
    CHECK_INT_EQ(LOAD(&cfg, DOCQ_BIN_WORKER, &err, "--heartbeat-ms=333"), DOCQ_OK);
    CHECK_INT_EQ(LOAD(&cfg, DOCQ_BIN_WORKER, &err, "--heartbeat-ms=334"), DOCQ_EINVAL);
    CHECK_STR_CONTAINS(err.msg, "a third");
    CHECK_STR_CONTAINS(err.msg, "'334'");
    CHECK_STR_CONTAINS(err.msg, "(1000)");
    /* Only the worker reads them. */
    setenv("DOCQ_HEARTBEAT_MS", "5000", 1);
    CHECK_INT_EQ(LOAD0(&cfg, DOCQ_BIN_SERVER, &err), DOCQ_OK);
    CHECK_INT_EQ(LOAD(&cfg, DOCQ_BIN_WORKER, &err, "--dead-stream", "a:b"), DOCQ_EINVAL);
    CHECK_STR_CONTAINS(err.msg, "DOCQ_DEAD_STREAM");
    unsetenv("DOCQ_VISIBILITY_TIMEOUT_MS");
    unsetenv("DOCQ_HEARTBEAT_MS");
}

static void defaults_cli(void) {
    docq_config cfg;
    docq_error err;
    clean_env();
    CHECK_INT_EQ(LOAD0(&cfg, DOCQ_BIN_CLI, &err), DOCQ_OK);
    CHECK_STR_EQ(cfg.server, "127.0.0.1:50051");
    CHECK_INT_EQ(cfg.deadline_ms, 10000);
    CHECK_INT_EQ(cfg.keepalive_ms, 30000);
    CHECK_INT_EQ(cfg.wait, 0);
    CHECK_STR_EQ(cfg.log_level, "info");
    /* Settings of other binaries still hold their defaults. */
    CHECK_STR_EQ(cfg.key_prefix, "docq");
    CHECK_INT_EQ(cfg.shards, 16);
}

static void env_overrides_default(void) {
    docq_config cfg;
    docq_error err;
    clean_env();
    setenv("DOCQ_SHARDS", "8", 1);
    setenv("DOCQ_LISTEN", "127.0.0.1:0", 1);
    setenv("DOCQ_REDIS_URL", "redis://:pw@cache.internal:6380/2", 1);
    setenv("DOCQ_KEY_PREFIX", "staging.docq-2", 1);
    setenv("DOCQ_LOG_LEVEL", "debug", 1);
    CHECK_INT_EQ(LOAD0(&cfg, DOCQ_BIN_SERVER, &err), DOCQ_OK);
    CHECK_INT_EQ(cfg.shards, 8);
    CHECK_STR_EQ(cfg.listen, "127.0.0.1:0");
    CHECK_STR_EQ(cfg.redis.host, "cache.internal");
    CHECK_INT_EQ(cfg.redis.port, 6380);
    CHECK_STR_EQ(cfg.redis.password, "pw");
    CHECK_INT_EQ(cfg.redis.db, 2);
    CHECK_STR_EQ(cfg.key_prefix, "staging.docq-2");
    CHECK_STR_EQ(cfg.log_level, "debug");

    setenv("DOCQ_AI_TIMEOUT_MS", "600000", 1);
    setenv("DOCQ_WORKER_CONCURRENCY", "1", 1);
    CHECK_INT_EQ(LOAD0(&cfg, DOCQ_BIN_WORKER, &err), DOCQ_OK);
    CHECK_INT_EQ(cfg.ai_timeout_ms, 600000);
    CHECK_INT_EQ(cfg.concurrency, 1);
    CHECK_INT_EQ(cfg.shards, 8);
    clean_env();
}

static void env_of_other_binary_ignored(void) {
    /* A variable the binary does not read cannot break it, even when bad. */
    docq_config cfg;
    docq_error err;
    clean_env();
    setenv("DOCQ_AI_URL", "ftp://nowhere", 1);
    setenv("DOCQ_SERVER", "nohost", 1);
    setenv("DOCQ_DEADLINE_MS", "soon", 1);
    CHECK_INT_EQ(LOAD0(&cfg, DOCQ_BIN_SERVER, &err), DOCQ_OK);
    CHECK_STR_EQ(cfg.ai_url, "http://127.0.0.1:8080/process");
    CHECK_STR_EQ(cfg.server, "127.0.0.1:50051");
    clean_env();
    setenv("DOCQ_SHARDS", "0", 1);
    setenv("DOCQ_REDIS_URL", "nonsense", 1);
    CHECK_INT_EQ(LOAD0(&cfg, DOCQ_BIN_CLI, &err), DOCQ_OK);
    CHECK_INT_EQ(cfg.shards, 16);
    clean_env();
}

static void flag_overrides_env(void) {
    docq_config cfg;
    docq_error err;
    clean_env();
    setenv("DOCQ_SHARDS", "4", 1);
    CHECK_INT_EQ(LOAD(&cfg, DOCQ_BIN_SERVER, &err, "--shards", "8"), DOCQ_OK);
    CHECK_INT_EQ(cfg.shards, 8);
    CHECK_INT_EQ(cfg.nargs, 0);
    CHECK_INT_EQ(LOAD(&cfg, DOCQ_BIN_SERVER, &err, "--shards=8"), DOCQ_OK);
    CHECK_INT_EQ(cfg.shards, 8);
    CHECK_INT_EQ(LOAD0(&cfg, DOCQ_BIN_SERVER, &err), DOCQ_OK);
    CHECK_INT_EQ(cfg.shards, 4);
    /* The last of repeated flags wins. */
    CHECK_INT_EQ(LOAD(&cfg, DOCQ_BIN_SERVER, &err, "--shards=2", "--shards", "3"), DOCQ_OK);
    CHECK_INT_EQ(cfg.shards, 3);
    /* A value after '=' may itself hold '='. */
    setenv("DOCQ_KEY_PREFIX", "envprefix", 1);
    CHECK_INT_EQ(LOAD(&cfg, DOCQ_BIN_WORKER, &err, "--ai-url=http://ai/run?a=1", "--key-prefix", "flagprefix"),
                 DOCQ_OK);
    CHECK_STR_EQ(cfg.ai_url, "http://ai/run?a=1");
    CHECK_STR_EQ(cfg.key_prefix, "flagprefix");
    /* The parsed Redis address follows the winning URL. */
    setenv("DOCQ_REDIS_URL", "redis://envhost:1111", 1);
    CHECK_INT_EQ(LOAD(&cfg, DOCQ_BIN_WORKER, &err, "--redis-url", "redis://flaghost:2222"), DOCQ_OK);
    CHECK_STR_EQ(cfg.redis.host, "flaghost");
    CHECK_INT_EQ(cfg.redis.port, 2222);
    clean_env();
}

static void flag_overrides_bad_env(void) {
    /* Only the value in force is checked: a flag rescues a bad variable. */
    docq_config cfg;
    docq_error err;
    clean_env();
    setenv("DOCQ_SHARDS", "abc", 1);
    CHECK_INT_EQ(LOAD(&cfg, DOCQ_BIN_SERVER, &err, "--shards", "8"), DOCQ_OK);
    CHECK_INT_EQ(cfg.shards, 8);
    CHECK_INT_EQ(LOAD0(&cfg, DOCQ_BIN_SERVER, &err), DOCQ_EINVAL);
    CHECK_STR_CONTAINS(err.msg, "DOCQ_SHARDS");
    clean_env();
}

static void positional_args_in_order(void) {
    docq_config cfg;
    docq_error err;
    clean_env();
    CHECK_INT_EQ(LOAD(&cfg, DOCQ_BIN_CLI, &err, "submit", "doc-1", "--deadline-ms", "50", "doc-2", "-"),
                 DOCQ_OK);
    CHECK_INT_EQ(cfg.deadline_ms, 50);
    CHECK_INT_EQ(cfg.nargs, 4);
    if (cfg.nargs == 4) {
        CHECK_STR_EQ(cfg.args[0], "submit");
        CHECK_STR_EQ(cfg.args[1], "doc-1");
        CHECK_STR_EQ(cfg.args[2], "doc-2");
        CHECK_STR_EQ(cfg.args[3], "-"); /* A lone dash is an argument. */
    }
}

static void double_dash_ends_flags(void) {
    docq_config cfg;
    docq_error err;
    clean_env();
    CHECK_INT_EQ(LOAD(&cfg, DOCQ_BIN_CLI, &err, "--deadline-ms=7", "submit", "--", "--deadline-ms", "9",
                      "-h", "--"),
                 DOCQ_OK);
    CHECK_INT_EQ(cfg.deadline_ms, 7);
    CHECK_INT_EQ(cfg.nargs, 5);
    if (cfg.nargs == 5) {
        CHECK_STR_EQ(cfg.args[0], "submit");
        CHECK_STR_EQ(cfg.args[1], "--deadline-ms");
        CHECK_STR_EQ(cfg.args[2], "9");
        CHECK_STR_EQ(cfg.args[3], "-h");
        CHECK_STR_EQ(cfg.args[4], "--");
    }
}

static void too_many_args(void) {
    docq_config cfg;
    docq_error err;
    clean_env();
    CHECK_INT_EQ(LOAD(&cfg, DOCQ_BIN_CLI, &err, "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11",
                      "12", "13", "14", "15", "16"),
                 DOCQ_OK);
    CHECK_INT_EQ(cfg.nargs, DOCQ_MAX_ARGS);
    CHECK_INT_EQ(LOAD(&cfg, DOCQ_BIN_CLI, &err, "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11",
                      "12", "13", "14", "15", "16", "17"),
                 DOCQ_EINVAL);
    CHECK_STR_CONTAINS(err.msg, "too many arguments");
}

static void help_flag(void) {
    docq_config cfg;
    docq_error err;
    clean_env();
    CHECK_INT_EQ(LOAD(&cfg, DOCQ_BIN_SERVER, &err, "--help"), DOCQ_EHELP);
    CHECK_INT_EQ(LOAD(&cfg, DOCQ_BIN_WORKER, &err, "-h"), DOCQ_EHELP);
    CHECK_INT_EQ(LOAD(&cfg, DOCQ_BIN_CLI, &err, "status", "--deadline-ms", "5", "--help"), DOCQ_EHELP);
    /* Help is given even when the environment holds a bad value. */
    setenv("DOCQ_SHARDS", "abc", 1);
    CHECK_INT_EQ(LOAD(&cfg, DOCQ_BIN_SERVER, &err, "--help"), DOCQ_EHELP);
    clean_env();
    /* But not after "--", and not for look-alikes. */
    CHECK_INT_EQ(LOAD(&cfg, DOCQ_BIN_CLI, &err, "--", "--help"), DOCQ_OK);
    CHECK_INT_EQ(LOAD(&cfg, DOCQ_BIN_CLI, &err, "--helpme"), DOCQ_EINVAL);
}

static void unknown_flag(void) {
    static const char *bad[] = {"--nope", "-x", "--SHARDS", "--shard", "--shards8", "---shards", "--docq-shards"};
    clean_env();
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        docq_config cfg;
        docq_error err;
        int rc = LOAD(&cfg, DOCQ_BIN_SERVER, &err, bad[i], "8");
        CHECK_MSG(rc == DOCQ_EINVAL, "'%s' gave %d", bad[i], rc);
        CHECK_STR_CONTAINS(err.msg, "unknown option");
        CHECK_STR_CONTAINS(err.msg, bad[i]);
    }
}

static void flag_of_other_binary(void) {
    static const struct {
        unsigned bin;
        const char *flag;
    } bad[] = {
        {DOCQ_BIN_SERVER, "--ai-url"},      {DOCQ_BIN_SERVER, "--group"},
        {DOCQ_BIN_SERVER, "--server"},      {DOCQ_BIN_WORKER, "--listen"},
        {DOCQ_BIN_WORKER, "--threads"},     {DOCQ_BIN_CLI, "--shards"},
        {DOCQ_BIN_CLI, "--redis-url"},
    };
    clean_env();
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        docq_config cfg;
        docq_error err;
        int rc = LOAD(&cfg, bad[i].bin, &err, bad[i].flag, "http://x");
        CHECK_MSG(rc == DOCQ_EINVAL, "%s for bin %u gave %d", bad[i].flag, bad[i].bin, rc);
        CHECK_STR_CONTAINS(err.msg, bad[i].flag);
    }
}

static void flag_needs_value(void) {
    docq_config cfg;
    docq_error err;
    clean_env();
    CHECK_INT_EQ(LOAD(&cfg, DOCQ_BIN_SERVER, &err, "--shards"), DOCQ_EINVAL);
    CHECK_STR_CONTAINS(err.msg, "'--shards' needs a value");
    /* An empty value after '=' is a value, and a bad one. */
    CHECK_INT_EQ(LOAD(&cfg, DOCQ_BIN_SERVER, &err, "--shards="), DOCQ_EINVAL);
    CHECK_STR_CONTAINS(err.msg, "DOCQ_SHARDS");
    CHECK_INT_EQ(LOAD(&cfg, DOCQ_BIN_SERVER, &err, "--listen="), DOCQ_EINVAL);
    CHECK_STR_CONTAINS(err.msg, "DOCQ_LISTEN");
}

static const char long_prefix[] = "p123456789012345678901234567890123456789012345678901234567890123";

static void bad_env_values(void) {
    static const struct {
        unsigned bin;
        const char *env, *value, *why;
    } bad[] = {
        {DOCQ_BIN_SERVER, "DOCQ_SHARDS", "abc", "integer from 1 to 1024"},
        {DOCQ_BIN_SERVER, "DOCQ_SHARDS", "0", "integer from 1 to 1024"},
        {DOCQ_BIN_SERVER, "DOCQ_SHARDS", "1025", "integer from 1 to 1024"},
        {DOCQ_BIN_SERVER, "DOCQ_SHARDS", "8x", "integer"},
        {DOCQ_BIN_SERVER, "DOCQ_SHARDS", "", "integer"},
        {DOCQ_BIN_SERVER, "DOCQ_SHARDS", "99999999999999999999", "integer"},
        {DOCQ_BIN_WORKER, "DOCQ_SHARDS", "-1", "integer"},
        {DOCQ_BIN_SERVER, "DOCQ_LISTEN", "nohost", "host:port"},
        {DOCQ_BIN_SERVER, "DOCQ_LISTEN", "host:99999", "port"},
        {DOCQ_BIN_SERVER, "DOCQ_LISTEN", ":50051", "host"},
        {DOCQ_BIN_SERVER, "DOCQ_LISTEN", "", "1 to"},
        {DOCQ_BIN_SERVER, "DOCQ_REDIS_URL", "http://x", "redis://"},
        {DOCQ_BIN_WORKER, "DOCQ_REDIS_URL", "redis://host:0", "port 0"},
        {DOCQ_BIN_SERVER, "DOCQ_LOG_LEVEL", "loud", "debug, info, warn or error"},
        {DOCQ_BIN_CLI, "DOCQ_LOG_LEVEL", "verbose", "debug"},
        {DOCQ_BIN_SERVER, "DOCQ_KEY_PREFIX", "docq{1}", "letters, digits"},
        {DOCQ_BIN_SERVER, "DOCQ_KEY_PREFIX", "docq:x", "letters, digits"},
        {DOCQ_BIN_WORKER, "DOCQ_KEY_PREFIX", "do cq", "letters, digits"},
        {DOCQ_BIN_SERVER, "DOCQ_KEY_PREFIX", long_prefix, "1 to 63 characters"},
        {DOCQ_BIN_WORKER, "DOCQ_GROUP", "w:1", "letters, digits"},
        {DOCQ_BIN_WORKER, "DOCQ_AI_URL", "ftp://ai/x", "http://"},
        {DOCQ_BIN_WORKER, "DOCQ_AI_TIMEOUT_MS", "0", "integer from 1"},
        {DOCQ_BIN_WORKER, "DOCQ_WORKER_CONCURRENCY", "10001", "integer"},
        {DOCQ_BIN_SERVER, "DOCQ_THREADS", "257", "integer"},
        {DOCQ_BIN_CLI, "DOCQ_SERVER", "localhost:0", "port 0"},
        {DOCQ_BIN_CLI, "DOCQ_SERVER", "localhost", "host:port"},
        {DOCQ_BIN_CLI, "DOCQ_DEADLINE_MS", "1s", "integer"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        docq_config cfg;
        docq_error err;
        char quoted[128];
        clean_env();
        setenv(bad[i].env, bad[i].value, 1);
        int rc = LOAD0(&cfg, bad[i].bin, &err);
        CHECK_MSG(rc == DOCQ_EINVAL, "%s='%s' gave %d", bad[i].env, bad[i].value, rc);
        snprintf(quoted, sizeof(quoted), "'%s'", bad[i].value);
        CHECK_MSG(strstr(err.msg, bad[i].env) != NULL, "%s='%s': '%s'", bad[i].env, bad[i].value, err.msg);
        CHECK_MSG(strstr(err.msg, quoted) != NULL, "%s='%s': '%s'", bad[i].env, bad[i].value, err.msg);
        CHECK_MSG(strstr(err.msg, bad[i].why) != NULL, "%s='%s': '%s' lacks '%s'", bad[i].env,
                  bad[i].value, err.msg, bad[i].why);
    }
    clean_env();
}

static void limit_values_accepted(void) {
    docq_config cfg;
    docq_error err;
    clean_env();
    setenv("DOCQ_SHARDS", "1024", 1);
    setenv("DOCQ_KEY_PREFIX", long_prefix + 1, 1); /* 63 characters. */
    setenv("DOCQ_SHUTDOWN_GRACE_MS", "0", 1);
    setenv("DOCQ_LISTEN", "[::]:65535", 1);
    CHECK_INT_EQ(LOAD0(&cfg, DOCQ_BIN_SERVER, &err), DOCQ_OK);
    CHECK_INT_EQ(cfg.shards, 1024);
    CHECK_INT_EQ(strlen(cfg.key_prefix), 63);
    CHECK_INT_EQ(cfg.shutdown_grace_ms, 0);
    CHECK_STR_EQ(cfg.listen, "[::]:65535");
    setenv("DOCQ_SHARDS", "1", 1);
    CHECK_INT_EQ(LOAD0(&cfg, DOCQ_BIN_SERVER, &err), DOCQ_OK);
    CHECK_INT_EQ(cfg.shards, 1);
    clean_env();
}

static void bad_flag_value(void) {
    docq_config cfg;
    docq_error err;
    clean_env();
    CHECK_INT_EQ(LOAD(&cfg, DOCQ_BIN_SERVER, &err, "--shards=0"), DOCQ_EINVAL);
    CHECK_STR_CONTAINS(err.msg, "--shards");
    CHECK_STR_CONTAINS(err.msg, "DOCQ_SHARDS");
    CHECK_STR_CONTAINS(err.msg, "'0'");
    CHECK_INT_EQ(LOAD(&cfg, DOCQ_BIN_WORKER, &err, "--log-level", "loud"), DOCQ_EINVAL);
    CHECK_STR_CONTAINS(err.msg, "--log-level");
    CHECK_STR_CONTAINS(err.msg, "'loud'");
}

static void redis_url_parse(void) {
    static const struct {
        const char *url, *host, *password;
        int port, db;
    } good[] = {
        {"redis://cache", "cache", "", 6379, 0},
        {"redis://cache:6380", "cache", "", 6380, 0},
        {"redis://:secret@cache:6380/3", "cache", "secret", 6380, 3},
        {"redis://:p@ss:w0rd@cache", "cache", "p@ss:w0rd", 6379, 0},
        {"redis://[::1]:6380", "::1", "", 6380, 0},
        {"redis://[::1]", "::1", "", 6379, 0},
        {"redis://10.0.0.5:65535/15", "10.0.0.5", "", 65535, 15},
        {"redis://cache/", "cache", "", 6379, 0},
        {"redis://cache:1/0", "cache", "", 1, 0},
    };
    static const struct {
        const char *url, *user, *password, *host;
    } users[] = {
        {"redis://app:s3cret@cache:6380/2", "app", "s3cret", "cache"},
        {"redis://app:p@ss:w0rd@[::1]", "app", "p@ss:w0rd", "::1"},
        {"redis://app@cache", "app", "", "cache"},
        {"redis://:only@cache", "", "only", "cache"},
        {"redis://cache", "", "", "cache"},
    };
    for (size_t i = 0; i < sizeof(users) / sizeof(users[0]); i++) {
        docq_redis_addr a;
        docq_error err = {0};
        CHECK_MSG(docq_redis_url_parse(users[i].url, &a, &err) == DOCQ_OK, "%s: %s", users[i].url, err.msg);
        CHECK_STR_EQ(a.user, users[i].user);
        CHECK_STR_EQ(a.password, users[i].password);
        CHECK_STR_EQ(a.host, users[i].host);
    }
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        docq_redis_addr a;
        docq_error err = {0};
        int rc = docq_redis_url_parse(good[i].url, &a, &err);
        CHECK_MSG(rc == DOCQ_OK, "%s: %s", good[i].url, err.msg);
        if (rc != DOCQ_OK) continue;
        CHECK_STR_EQ(a.host, good[i].host);
        CHECK_STR_EQ(a.password, good[i].password);
        CHECK_MSG(a.port == good[i].port, "%s: port %d", good[i].url, a.port);
        CHECK_MSG(a.db == good[i].db, "%s: db %d", good[i].url, a.db);
    }

    static const struct {
        const char *url, *why;
    } bad[] = {
        {"http://cache", "redis://"},
        {"rediss://cache", "redis://"},
        {"cache:6379", "redis://"},
        {"redis://cache:70000", "bad port"},
        {"redis://cache:0", "port 0"},
        {"redis://cache:", "bad port"},
        {"redis://cache:63a9", "bad port"},
        {"redis://cache:-1", "bad port"},
        {"redis://cache/x", "database"},
        {"redis://cache/-1", "database"},
        {"redis://cache/3x", "database"},
        {"redis://cache/ 3", "database"},
        {"redis://", "missing host"},
        {"redis://:6379", "missing host"},
        {"redis://:secret@:6379", "missing host"},
        {"redis:///3", "missing host"},
        {"redis://[::1", "unclosed"},
        {"redis://[::1]6379", "':' after ']'"},
        {"redis://[]:6379", "missing host"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        docq_redis_addr a;
        docq_error err = {0};
        int rc = docq_redis_url_parse(bad[i].url, &a, &err);
        CHECK_MSG(rc == DOCQ_EINVAL, "%s was accepted", bad[i].url);
        CHECK_MSG(strstr(err.msg, bad[i].why) != NULL, "%s: '%s' lacks '%s'", bad[i].url, err.msg,
                  bad[i].why);
        CHECK_MSG(strstr(err.msg, "secret") == NULL, "%s: '%s' shows the password", bad[i].url, err.msg);
    }
}

static void redis_url_seeds(void) {
    docq_redis_addr a;
    docq_error err = {0};
    CHECK_INT_EQ(docq_redis_url_parse("redis://u:pw@a:7000/0,redis://b,redis://[::1]:7002", &a, &err), DOCQ_OK);
    CHECK_STR_EQ(a.host, "a");
    CHECK_INT_EQ(a.port, 7000);
    CHECK_STR_EQ(a.user, "u");
    CHECK_STR_EQ(a.password, "pw");
    CHECK_INT_EQ(a.nseeds, 2);
    CHECK_STR_EQ(a.seeds[0].host, "b");
    CHECK_INT_EQ(a.seeds[0].port, 6379);
    CHECK_STR_EQ(a.seeds[1].host, "::1");
    CHECK_INT_EQ(a.seeds[1].port, 7002);
    static const struct {
        const char *url, *why;
    } bad[] = {
        {"redis://a,redis://:secret@b", "URL 2: give the credentials and database once"},
        {"redis://a,redis://b/2", "URL 2: give the credentials and database once"},
        {"redis://a,b:6379", "URL 2: expected redis://"},
        {"redis://a,", "URL 2: expected redis://"},
        {"redis://a,redis://b,redis://c:0", "URL 3: port 0"},
        {"redis://a,redis://b,redis://c,redis://d,redis://e,redis://f,redis://g,redis://h,redis://i",
         "more than 8 URLs"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = docq_redis_url_parse(bad[i].url, &a, &err);
        CHECK_MSG(rc == DOCQ_EINVAL, "%s was accepted", bad[i].url);
        CHECK_MSG(strstr(err.msg, bad[i].why) != NULL, "%s: '%s' lacks '%s'", bad[i].url, err.msg, bad[i].why);
        CHECK_MSG(strstr(err.msg, "secret") == NULL, "%s: '%s' shows the password", bad[i].url, err.msg);
    }
}

static void password_never_shown(void) {
    static const char *urls[] = {
        "redis://:s3cret@cache:70000",
        "redis://:s3cret@:6379",
        "redis://:s3cret@cache/db",
        "redis://s3cret@cache",
        "redis://:s3cret@cache:0",
    };
    clean_env();
    for (size_t i = 0; i < sizeof(urls) / sizeof(urls[0]); i++) {
        docq_config cfg;
        docq_error err;
        char flag[128];
        setenv("DOCQ_REDIS_URL", urls[i], 1);
        CHECK_INT_EQ(LOAD0(&cfg, DOCQ_BIN_WORKER, &err), DOCQ_EINVAL);
        CHECK_STR_CONTAINS(err.msg, "DOCQ_REDIS_URL");
        CHECK_STR_NOT_CONTAINS(err.msg, "s3cret");
        unsetenv("DOCQ_REDIS_URL");
        snprintf(flag, sizeof(flag), "--redis-url=%s", urls[i]);
        CHECK_INT_EQ(LOAD(&cfg, DOCQ_BIN_SERVER, &err, flag), DOCQ_EINVAL);
        CHECK_STR_CONTAINS(err.msg, "--redis-url");
        CHECK_STR_NOT_CONTAINS(err.msg, "s3cret");
        /* Nor when the flag itself is refused: misspelt, or given to the
         * CLI, which has no Redis. */
        snprintf(flag, sizeof(flag), "--redis=%s", urls[i]);
        CHECK_INT_EQ(LOAD(&cfg, DOCQ_BIN_SERVER, &err, flag), DOCQ_EINVAL);
        CHECK_STR_CONTAINS(err.msg, "--redis");
        CHECK_STR_NOT_CONTAINS(err.msg, "s3cret");
        snprintf(flag, sizeof(flag), "--redis-url=%s", urls[i]);
        CHECK_INT_EQ(LOAD(&cfg, DOCQ_BIN_CLI, &err, flag), DOCQ_EINVAL);
        CHECK_STR_CONTAINS(err.msg, "--redis-url");
        CHECK_STR_NOT_CONTAINS(err.msg, "s3cret");
    }
    /* A password of a URL that is too long is not shown either. */
    char url[600];
    snprintf(url, sizeof(url), "redis://:s3cret@%0500d", 0);
    setenv("DOCQ_REDIS_URL", url, 1);
    docq_config cfg;
    docq_error err;
    CHECK_INT_EQ(LOAD0(&cfg, DOCQ_BIN_SERVER, &err), DOCQ_EINVAL);
    CHECK_STR_NOT_CONTAINS(err.msg, "s3cret");
    clean_env();
}

static void help_lists_own_settings(void) {
    char buf[8192];
    size_t n = docq_config_help(DOCQ_BIN_WORKER, buf, sizeof(buf));
    CHECK_INT_EQ(n, strlen(buf));
    CHECK_STR_CONTAINS(buf, "DOCQ_AI_URL");
    CHECK_STR_CONTAINS(buf, "--ai-url");
    CHECK_STR_CONTAINS(buf, "(default 300000)");
    CHECK_STR_CONTAINS(buf, "DOCQ_REDIS_URL");
    CHECK_STR_NOT_CONTAINS(buf, "DOCQ_LISTEN");

    n = docq_config_help(DOCQ_BIN_SERVER, buf, sizeof(buf));
    CHECK_INT_EQ(n, strlen(buf));
    CHECK_STR_NOT_CONTAINS(buf, "DOCQ_AI_URL");
    CHECK_STR_NOT_CONTAINS(buf, "--ai-url");
    CHECK_STR_CONTAINS(buf, "DOCQ_LISTEN");
    CHECK_STR_CONTAINS(buf, "--listen");
    CHECK_STR_CONTAINS(buf, "(default 0.0.0.0:50051)");
    CHECK_STR_CONTAINS(buf, "--shards");
    CHECK_STR_CONTAINS(buf, "DOCQ_LOG_LEVEL");

    n = docq_config_help(DOCQ_BIN_CLI, buf, sizeof(buf));
    CHECK_STR_CONTAINS(buf, "DOCQ_SERVER");
    CHECK_STR_CONTAINS(buf, "DOCQ_DEADLINE_MS");
    CHECK_STR_NOT_CONTAINS(buf, "DOCQ_REDIS_URL");
    CHECK_STR_NOT_CONTAINS(buf, "DOCQ_SHARDS");
}

static void list_flags(void) {
    docq_config cfg;
    docq_error err;
    clean_env();
    CHECK_INT_EQ(LOAD(&cfg, DOCQ_BIN_CLI, &err, "list"), DOCQ_OK);
    CHECK_STR_EQ(cfg.list_states, "");
    CHECK_INT_EQ(cfg.list_page_size, 50);
    CHECK_INT_EQ(cfg.list_all, 0);
    /* --state repeats add up; other flags of list are its own words. */
    CHECK_INT_EQ(LOAD(&cfg, DOCQ_BIN_CLI, &err, "list", "--state", "success", "--state=FAILURE,cancelled",
                      "--page-size", "1000", "--all"), DOCQ_OK);
    CHECK_STR_EQ(cfg.list_states, "success,FAILURE,cancelled");
    CHECK_INT_EQ(cfg.list_page_size, 1000);
    CHECK_INT_EQ(cfg.list_all, 1);
    CHECK_INT_EQ(cfg.nargs, 1);
    setenv("DOCQ_LIST_STATE", "PENDING", 1);
    CHECK_INT_EQ(LOAD(&cfg, DOCQ_BIN_CLI, &err, "list"), DOCQ_OK);
    CHECK_STR_EQ(cfg.list_states, "PENDING");
    CHECK_INT_EQ(LOAD(&cfg, DOCQ_BIN_CLI, &err, "list", "--state", "STARTED"), DOCQ_OK);
    CHECK_STR_EQ(cfg.list_states, "STARTED");
    clean_env();
    static const char *bad[] = {"DONE", "SUCCESS,", ",SUCCESS", "SUCCESS,,FAILURE", "STATE_UNSPECIFIED"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CHECK_MSG(LOAD(&cfg, DOCQ_BIN_CLI, &err, "list", "--state", bad[i]) == DOCQ_EINVAL, "'%s' taken", bad[i]);
        CHECK_STR_CONTAINS(err.msg, "DOCQ_LIST_STATE");
    }
    CHECK_INT_EQ(LOAD(&cfg, DOCQ_BIN_CLI, &err, "list", "--page-size", "1001"), DOCQ_EINVAL);
    CHECK_INT_EQ(LOAD(&cfg, DOCQ_BIN_CLI, &err, "list", "--page-size", "0"), DOCQ_EINVAL);
    CHECK_INT_EQ(LOAD(&cfg, DOCQ_BIN_SERVER, &err, "--state", "PENDING"), DOCQ_EINVAL);
}

static void switch_flag(void) {
    docq_config cfg;
    docq_error err;
    clean_env();
    /* The flag alone is true and takes no value: what follows stays an argument. */
    CHECK_INT_EQ(LOAD(&cfg, DOCQ_BIN_CLI, &err, "submit", "--wait", "doc_1"), DOCQ_OK);
    CHECK_INT_EQ(cfg.wait, 1);
    CHECK_INT_EQ(cfg.nargs, 2);
    CHECK_STR_EQ(cfg.args[1], "doc_1");
    CHECK_INT_EQ(LOAD(&cfg, DOCQ_BIN_CLI, &err, "--wait=false", "submit"), DOCQ_OK);
    CHECK_INT_EQ(cfg.wait, 0);
    setenv("DOCQ_WAIT", "yes", 1);
    CHECK_INT_EQ(LOAD0(&cfg, DOCQ_BIN_CLI, &err), DOCQ_OK);
    CHECK_INT_EQ(cfg.wait, 1);
    CHECK_INT_EQ(LOAD(&cfg, DOCQ_BIN_CLI, &err, "--wait=0"), DOCQ_OK);
    CHECK_INT_EQ(cfg.wait, 0);
    setenv("DOCQ_WAIT", "maybe", 1);
    CHECK_INT_EQ(LOAD0(&cfg, DOCQ_BIN_CLI, &err), DOCQ_EINVAL);
    CHECK_STR_CONTAINS(err.msg, "DOCQ_WAIT");
    CHECK_STR_CONTAINS(err.msg, "--wait");
    CHECK_STR_CONTAINS(err.msg, "'maybe'");
    clean_env();
    /* Only the CLI has it. */
    CHECK_INT_EQ(LOAD(&cfg, DOCQ_BIN_SERVER, &err, "--wait"), DOCQ_EINVAL);
    char buf[8192];
    docq_config_help(DOCQ_BIN_CLI, buf, sizeof(buf));
    CHECK_STR_CONTAINS(buf, "--wait");
    CHECK_STR_CONTAINS(buf, "(default false)");
}

static void help_truncates(void) {
    char buf[64];
    memset(buf, '#', sizeof(buf));
    size_t n = docq_config_help(DOCQ_BIN_SERVER, buf, 20);
    CHECK(n <= 19);
    CHECK_INT_EQ(strlen(buf), n);
    for (size_t i = 20; i < sizeof(buf); i++) CHECK_MSG(buf[i] == '#', "byte %zu written", i);
    buf[0] = '#';
    CHECK_INT_EQ(docq_config_help(DOCQ_BIN_SERVER, buf, 0), 0);
    CHECK(buf[0] == '#');
    CHECK_INT_EQ(docq_config_help(DOCQ_BIN_SERVER, buf, 1), 0);
    CHECK(buf[0] == '\0');
}

static void hostport_check(void) {
    static const struct {
        const char *s;
        int allow_zero, ok;
    } cases[] = {
        {"localhost:50051", 0, 1},
        {"0.0.0.0:50051", 0, 1},
        {"[::1]:50051", 0, 1},
        {"[::]:0", 1, 1},
        {"host:0", 1, 1},
        {"host:65535", 0, 1},
        {"host:0", 0, 0},
        {"host:65536", 1, 0},
        {"host", 1, 0},
        {"host:", 1, 0},
        {":50051", 1, 0},
        {"", 1, 0},
        {"host:port", 1, 0},
        {"host:-1", 1, 0},
        {"host:123456", 1, 0},
        {"[::1]50051", 1, 0},
        {"[::1", 1, 0},
        {"[::1]", 1, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        docq_error err = {0};
        int rc = docq_hostport_check(cases[i].s, cases[i].allow_zero, &err);
        CHECK_MSG(rc == (cases[i].ok ? DOCQ_OK : DOCQ_EINVAL), "'%s' (allow_zero %d) gave %d: %s",
                  cases[i].s, cases[i].allow_zero, rc, err.msg);
        if (!cases[i].ok) CHECK_MSG(err.msg[0] != '\0', "'%s' refused without a reason", cases[i].s);
    }
    docq_error err = {0};
    docq_hostport_check("host:0", 0, &err);
    CHECK_STR_CONTAINS(err.msg, "port 0");
    docq_hostport_check("host", 0, &err);
    CHECK_STR_CONTAINS(err.msg, "host:port");
}

static void defaults_rate_limits(void) {
    docq_config cfg;
    docq_error err;
    clean_env();
    CHECK_INT_EQ(LOAD0(&cfg, DOCQ_BIN_SERVER, &err), DOCQ_OK);
    CHECK_INT_EQ(cfg.rate_limit, 5);
    CHECK_INT_EQ(cfg.rate_window_s, 60);
    CHECK_INT_EQ(cfg.read_rate_limit, 600);
    CHECK_INT_EQ(cfg.read_rate_window_s, 60);
    CHECK_STR_EQ(cfg.api_keys_file, "");
    CHECK_INT_EQ(cfg.proxies.count, 0);
    CHECK_INT_EQ(LOAD(&cfg, DOCQ_BIN_SERVER, &err, "--rate-limit", "0", "--trusted-proxies",
                      "10.0.0.0/8,::1", "--api-keys-file=/etc/docq/keys"), DOCQ_OK);
    CHECK_INT_EQ(cfg.rate_limit, 0);
    CHECK_INT_EQ(cfg.proxies.count, 2);
    CHECK_STR_EQ(cfg.api_keys_file, "/etc/docq/keys");
    CHECK_INT_EQ(LOAD(&cfg, DOCQ_BIN_SERVER, &err, "--rate-window-s", "0"), DOCQ_EINVAL);
    CHECK_STR_CONTAINS(err.msg, "DOCQ_RATE_WINDOW_S");
    CHECK_INT_EQ(LOAD(&cfg, DOCQ_BIN_SERVER, &err, "--trusted-proxies", "10.0.0.0/8,proxy.local"),
                 DOCQ_EINVAL);
    CHECK_STR_CONTAINS(err.msg, "DOCQ_TRUSTED_PROXIES");
    CHECK_STR_CONTAINS(err.msg, "'proxy.local' is not an IP address");
}

static void bool_flag_stands_alone(void) {
    docq_config cfg;
    docq_error err;
    clean_env();
    CHECK_INT_EQ(LOAD(&cfg, DOCQ_BIN_CLI, &err, "submit", "--retry", "doc_1"), DOCQ_OK);
    CHECK_INT_EQ(cfg.retry, 1);
    CHECK_INT_EQ(cfg.nargs, 2);
    if (cfg.nargs == 2) CHECK_STR_EQ(cfg.args[1], "doc_1");
    CHECK_INT_EQ(LOAD(&cfg, DOCQ_BIN_CLI, &err, "--retry=0", "submit", "d"), DOCQ_OK);
    CHECK_INT_EQ(cfg.retry, 0);
    setenv("DOCQ_RETRY", "1", 1);
    CHECK_INT_EQ(LOAD(&cfg, DOCQ_BIN_CLI, &err, "submit", "d"), DOCQ_OK);
    CHECK_INT_EQ(cfg.retry, 1);
    setenv("DOCQ_RETRY", "maybe", 1);
    CHECK_INT_EQ(LOAD(&cfg, DOCQ_BIN_CLI, &err, "submit", "d"), DOCQ_EINVAL);
    CHECK_STR_CONTAINS(err.msg, "DOCQ_RETRY");
    unsetenv("DOCQ_RETRY");
}

static void api_key_never_shown(void) {
    docq_config cfg;
    docq_error err;
    char key[600];
    clean_env();
    memset(key, 'k', sizeof(key) - 1);
    key[sizeof(key) - 1] = '\0';
    CHECK_INT_EQ(LOAD(&cfg, DOCQ_BIN_CLI, &err, "--api-key", key, "status", "x"), DOCQ_EINVAL);
    CHECK_STR_CONTAINS(err.msg, "DOCQ_API_KEY");
    CHECK_STR_NOT_CONTAINS(err.msg, "kkkk");
    CHECK_INT_EQ(LOAD(&cfg, DOCQ_BIN_CLI, &err, "--api-key", "s3cret", "status", "x"), DOCQ_OK);
    CHECK_STR_EQ(cfg.api_key, "s3cret");
}

static void metrics_listen(void) {
    docq_config cfg;
    docq_error err;
    char help[16384];
    clean_env();
    CHECK_INT_EQ(LOAD0(&cfg, DOCQ_BIN_SERVER, &err), DOCQ_OK);
    CHECK_STR_EQ(cfg.metrics_listen, "0.0.0.0:9090");
    CHECK_INT_EQ(cfg.reflection, 1);
    CHECK_INT_EQ(cfg.health_interval_ms, 1000);
    CHECK_INT_EQ(cfg.shutdown_delay_ms, 0);
    CHECK_INT_EQ(LOAD0(&cfg, DOCQ_BIN_WORKER, &err), DOCQ_OK);
    CHECK_STR_EQ(cfg.metrics_listen, "0.0.0.0:9091");
    CHECK_INT_EQ(cfg.metrics_refresh_ms, 5000);
    docq_config_help(DOCQ_BIN_SERVER, help, sizeof(help));
    CHECK_STR_CONTAINS(help, "(default 0.0.0.0:9090)");
    docq_config_help(DOCQ_BIN_WORKER, help, sizeof(help));
    CHECK_STR_CONTAINS(help, "(default 0.0.0.0:9091)");
    CHECK_STR_NOT_CONTAINS(help, "0.0.0.0:9090");
    setenv("DOCQ_METRICS_LISTEN", "127.0.0.1:0", 1);
    CHECK_INT_EQ(LOAD0(&cfg, DOCQ_BIN_WORKER, &err), DOCQ_OK);
    CHECK_STR_EQ(cfg.metrics_listen, "127.0.0.1:0");
    unsetenv("DOCQ_METRICS_LISTEN");
    CHECK_INT_EQ(LOAD(&cfg, DOCQ_BIN_SERVER, &err, "--metrics-listen", "off", "--reflection=0"), DOCQ_OK);
    CHECK(docq_metrics_listen_off(cfg.metrics_listen));
    CHECK_INT_EQ(cfg.reflection, 0);
    CHECK_INT_EQ(LOAD(&cfg, DOCQ_BIN_SERVER, &err, "--metrics-listen="), DOCQ_OK);
    CHECK(docq_metrics_listen_off(cfg.metrics_listen));
    CHECK(!docq_metrics_listen_off("[::]:9090"));
    CHECK_INT_EQ(LOAD(&cfg, DOCQ_BIN_SERVER, &err, "--metrics-listen", "9090"), DOCQ_EINVAL);
    CHECK_STR_CONTAINS(err.msg, "DOCQ_METRICS_LISTEN");
    CHECK_INT_EQ(LOAD(&cfg, DOCQ_BIN_SERVER, &err, "--health-interval-ms", "10"), DOCQ_EINVAL);
    CHECK_STR_CONTAINS(err.msg, "DOCQ_HEALTH_INTERVAL_MS");
}

/* A temporary file holding text; its path goes into path (capacity 64). */
static void temp_file(char *path, const char *text) {
    snprintf(path, 64, "/tmp/docq-test-config-XXXXXX");
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    if (fd < 0) return;
    CHECK_INT_EQ(write(fd, text, strlen(text)), (long long)strlen(text));
    close(fd);
}

static void security_defaults(void) {
    docq_config cfg;
    docq_error err;
    clean_env();
    CHECK_INT_EQ(LOAD0(&cfg, DOCQ_BIN_SERVER, &err), DOCQ_OK);
    CHECK_INT_EQ(cfg.max_message_bytes, 65536);
    CHECK_INT_EQ(cfg.max_metadata_bytes, 8192);
    CHECK_INT_EQ(cfg.max_concurrent_streams, 1000);
    CHECK_INT_EQ(cfg.max_watches_per_caller, 1000);
    CHECK_INT_EQ(cfg.ipv6_prefix, 64);
    CHECK_INT_EQ(cfg.max_connection_idle_ms, 300000);
    CHECK_STR_EQ(cfg.tls_cert, "");
    CHECK_STR_EQ(cfg.plaintext_listen, "");
    CHECK_INT_EQ(LOAD0(&cfg, DOCQ_BIN_WORKER, &err), DOCQ_OK);
    CHECK_INT_EQ(cfg.max_result_bytes, 1048576);
    CHECK_INT_EQ(LOAD(&cfg, DOCQ_BIN_CLI, &err, "status", "x"), DOCQ_OK);
    CHECK_INT_EQ(cfg.tls, 0);
    CHECK_STR_EQ(cfg.tls_cacert, "");
    setenv("DOCQ_MAX_MESSAGE_BYTES", "100", 1);
    CHECK_INT_EQ(LOAD0(&cfg, DOCQ_BIN_SERVER, &err), DOCQ_EINVAL);
    CHECK_STR_CONTAINS(err.msg, "DOCQ_MAX_MESSAGE_BYTES");
    unsetenv("DOCQ_MAX_MESSAGE_BYTES");
}

static void tls_settings_go_together(void) {
    docq_config cfg;
    docq_error err;
    clean_env();
    CHECK_INT_EQ(LOAD(&cfg, DOCQ_BIN_SERVER, &err, "--tls-cert", "s.crt"), DOCQ_EINVAL);
    CHECK_STR_CONTAINS(err.msg, "DOCQ_TLS_KEY");
    CHECK_INT_EQ(LOAD(&cfg, DOCQ_BIN_SERVER, &err, "--tls-key", "s.key"), DOCQ_EINVAL);
    CHECK_STR_CONTAINS(err.msg, "DOCQ_TLS_CERT");
    CHECK_INT_EQ(LOAD(&cfg, DOCQ_BIN_SERVER, &err, "--tls-client-ca", "ca.crt"), DOCQ_EINVAL);
    CHECK_STR_CONTAINS(err.msg, "DOCQ_TLS_CLIENT_CA");
    CHECK_INT_EQ(LOAD(&cfg, DOCQ_BIN_SERVER, &err, "--plaintext-listen", "0.0.0.0:8081"), DOCQ_EINVAL);
    CHECK_STR_CONTAINS(err.msg, "DOCQ_PLAINTEXT_LISTEN");
    CHECK_INT_EQ(LOAD(&cfg, DOCQ_BIN_SERVER, &err, "--tls-cert", "s.crt", "--tls-key", "s.key",
                      "--tls-client-ca", "ca.crt", "--plaintext-listen", "0.0.0.0:8081"), DOCQ_OK);
    CHECK_STR_EQ(cfg.tls_client_ca, "ca.crt");
    CHECK_STR_EQ(cfg.plaintext_listen, "0.0.0.0:8081");
    CHECK_INT_EQ(LOAD(&cfg, DOCQ_BIN_SERVER, &err, "--tls-cert", "s.crt", "--tls-key", "s.key",
                      "--plaintext-listen", "nohost"), DOCQ_EINVAL);
    CHECK_STR_CONTAINS(err.msg, "DOCQ_PLAINTEXT_LISTEN");
    CHECK_INT_EQ(LOAD(&cfg, DOCQ_BIN_CLI, &err, "--cert", "c.crt", "status", "x"), DOCQ_EINVAL);
    CHECK_STR_CONTAINS(err.msg, "--key");
}

static void cli_tls_flags(void) {
    docq_config cfg;
    docq_error err;
    clean_env();
    CHECK_INT_EQ(LOAD(&cfg, DOCQ_BIN_CLI, &err, "--tls", "--cacert", "ca.crt", "--cert=c.crt", "--key", "c.key",
                      "--tls-server-name", "docq.internal", "status", "x"), DOCQ_OK);
    CHECK_INT_EQ(cfg.tls, 1);
    CHECK_STR_EQ(cfg.tls_cacert, "ca.crt");
    CHECK_STR_EQ(cfg.tls_client_cert, "c.crt");
    CHECK_STR_EQ(cfg.tls_client_key, "c.key");
    CHECK_STR_EQ(cfg.tls_server_name, "docq.internal");
    setenv("DOCQ_TLS_CACERT", "env-ca.crt", 1);
    CHECK_INT_EQ(LOAD(&cfg, DOCQ_BIN_CLI, &err, "status", "x"), DOCQ_OK);
    CHECK_STR_EQ(cfg.tls_cacert, "env-ca.crt");
    unsetenv("DOCQ_TLS_CACERT");
    /* The server's certificate settings are not the CLI's, nor the reverse. */
    CHECK_INT_EQ(LOAD(&cfg, DOCQ_BIN_CLI, &err, "--tls-cert", "x", "status", "x"), DOCQ_EINVAL);
    CHECK_INT_EQ(LOAD(&cfg, DOCQ_BIN_SERVER, &err, "--cacert", "x"), DOCQ_EINVAL);
}

static void redis_password_file(void) {
    docq_config cfg;
    docq_error err;
    char path[64], flag[96];
    clean_env();
    /* A user with no password is refused, without quoting what may be one. */
    setenv("DOCQ_REDIS_URL", "redis://hunter2@127.0.0.1:6379", 1);
    CHECK_INT_EQ(LOAD0(&cfg, DOCQ_BIN_WORKER, &err), DOCQ_EINVAL);
    CHECK_STR_CONTAINS(err.msg, "DOCQ_REDIS_PASSWORD_FILE");
    CHECK_STR_NOT_CONTAINS(err.msg, "hunter2");
    temp_file(path, "pass word:@/#\n");
    /* An ACL user in the URL, its password in the file. */
    setenv("DOCQ_REDIS_PASSWORD_FILE", path, 1);
    setenv("DOCQ_REDIS_URL", "redis://app@127.0.0.1:6379", 1);
    CHECK_INT_EQ(LOAD0(&cfg, DOCQ_BIN_SERVER, &err), DOCQ_OK);
    CHECK_STR_EQ(cfg.redis.user, "app");
    CHECK_STR_EQ(cfg.redis.password, "pass word:@/#");
    unsetenv("DOCQ_REDIS_PASSWORD_FILE");
    unsetenv("DOCQ_REDIS_URL");
    snprintf(flag, sizeof(flag), "--redis-password-file=%s", path);
    CHECK_INT_EQ(LOAD(&cfg, DOCQ_BIN_WORKER, &err, flag), DOCQ_OK);
    CHECK_STR_EQ(cfg.redis.password, "pass word:@/#");
    setenv("DOCQ_REDIS_PASSWORD_FILE", path, 1);
    CHECK_INT_EQ(LOAD0(&cfg, DOCQ_BIN_SERVER, &err), DOCQ_OK);
    CHECK_STR_EQ(cfg.redis.password, "pass word:@/#");
    /* Not in the URL as well. */
    setenv("DOCQ_REDIS_URL", "redis://:other@127.0.0.1:6379", 1);
    CHECK_INT_EQ(LOAD0(&cfg, DOCQ_BIN_SERVER, &err), DOCQ_EINVAL);
    CHECK_STR_CONTAINS(err.msg, "DOCQ_REDIS_PASSWORD_FILE");
    CHECK_STR_NOT_CONTAINS(err.msg, "other");
    CHECK_STR_NOT_CONTAINS(err.msg, "pass word");
    unsetenv("DOCQ_REDIS_URL");
    unlink(path);
    /* A file that holds more than a password is refused without quoting it. */
    temp_file(path, "hunter2\nsecond line\n");
    setenv("DOCQ_REDIS_PASSWORD_FILE", path, 1);
    CHECK_INT_EQ(LOAD0(&cfg, DOCQ_BIN_WORKER, &err), DOCQ_EINVAL);
    CHECK_STR_CONTAINS(err.msg, path);
    CHECK_STR_NOT_CONTAINS(err.msg, "hunter2");
    CHECK_STR_EQ(cfg.redis.password, "");
    unlink(path);
    CHECK_INT_EQ(LOAD0(&cfg, DOCQ_BIN_WORKER, &err), DOCQ_EINVAL);
    CHECK_STR_CONTAINS(err.msg, "cannot open");
    /* The CLI has no Redis: the variable is not its. */
    CHECK_INT_EQ(LOAD(&cfg, DOCQ_BIN_CLI, &err, "status", "x"), DOCQ_OK);
    unsetenv("DOCQ_REDIS_PASSWORD_FILE");
}

CHECK_MAIN(
    CHECK_CASE(defaults_server,
               "the server's defaults are listen 0.0.0.0:50051, Redis 127.0.0.1:6379, 16 shards"),
    CHECK_CASE(defaults_worker,
               "the worker's defaults include an AI timeout of 300000 ms and 64 AI calls in "
               "flight"),
    CHECK_CASE(defaults_cli,
               "the CLI's defaults are server 127.0.0.1:50051 and a 10000 ms deadline"),
    CHECK_CASE(defaults_worker_reliability,
               "the worker's reliability defaults are a 5000 ms heartbeat, a 30000 ms visibility "
               "timeout, 5 attempts, 10 deliveries"),
    CHECK_CASE(defaults_redis_durability,
               "the server waits for no replica by default with a 1000 ms WAIT, and refuses more "
               "than 16 replicas or a 0 ms wait naming the setting and the range"),
    CHECK_CASE(heartbeat_below_visibility,
               "a heartbeat longer than a third of the visibility timeout is refused, naming both "
               "settings and values"),
    CHECK_CASE(env_overrides_default, "an environment variable overrides the default"),
    CHECK_CASE(env_of_other_binary_ignored,
               "a variable of another binary is ignored, even when its value is bad"),
    CHECK_CASE(flag_overrides_env,
               "a flag overrides the environment, as --shards 8 and as --shards=8"),
    CHECK_CASE(flag_overrides_bad_env,
               "a bad environment value overridden by a flag is not an error"),
    CHECK_CASE(positional_args_in_order,
               "positional arguments are collected in order between flags"),
    CHECK_CASE(double_dash_ends_flags, "-- ends the flags and what follows is arguments"),
    CHECK_CASE(too_many_args, "more than 16 positional arguments are refused"),
    CHECK_CASE(help_flag, "--help and -h ask for help, even with a bad environment"),
    CHECK_CASE(unknown_flag, "an unknown flag is refused, naming it"),
    CHECK_CASE(flag_of_other_binary,
               "a flag of another binary is refused, naming it, e.g. --ai-url for the server"),
    CHECK_CASE(flag_needs_value, "a flag without its value is refused"),
    CHECK_CASE(bad_env_values,
               "a bad value is refused with a message naming the variable, the value and what is "
               "expected"),
    CHECK_CASE(limit_values_accepted, "values at the limits of their ranges are accepted"),
    CHECK_CASE(bad_flag_value,
               "a bad flag value is refused naming the flag, the variable and the value"),
    CHECK_CASE(redis_url_seeds,
               "DOCQ_REDIS_URL takes up to 8 comma-separated cluster seeds, credentials and database in the first "
               "only"),
    CHECK_CASE(redis_url_parse,
               "Redis URLs parse with host, port, ACL user, password, IPv6 and db, and bad ones "
               "are refused with the reason"),
    CHECK_CASE(password_never_shown, "a Redis password never appears in an error message"),
    CHECK_CASE(help_lists_own_settings,
               "help lists a binary's own settings only: DOCQ_AI_URL for the worker, not the "
               "server"),
    CHECK_CASE(help_truncates, "help into a small buffer is cut and NUL-terminated"),
    CHECK_CASE(hostport_check, "host:port is checked, port 0 only where allowed"),
    CHECK_CASE(defaults_rate_limits,
               "the server limits each caller to 5 SubmitDocs and 600 reads per 60 s by default, "
               "with no keys or trusted proxies"),
    CHECK_CASE(bool_flag_stands_alone,
               "--retry alone turns retrying on without taking the next argument, and DOCQ_RETRY "
               "takes only true or false words"),
    CHECK_CASE(api_key_never_shown, "an API key never appears in an error message"),
    CHECK_CASE(list_flags,
               "docq list's --state adds up when repeated and takes only state names, and --page-size "
               "takes 1 to 1000"),
    CHECK_CASE(switch_flag,
               "a switch such as --wait is true by its flag alone, false by default, and refuses "
               "other words"),
    CHECK_CASE(metrics_listen,
               "the metrics endpoint defaults to port 9090 for the server and 9091 for the "
               "worker, and off or empty turns it off"),
    CHECK_CASE(security_defaults,
               "messages are capped at 64 KiB, metadata at 8 KiB, 1000 streams per connection and "
               "1000 watches per caller, results at 1 MiB, unless set"),
    CHECK_CASE(tls_settings_go_together,
               "a TLS certificate needs its key, and client CAs and the plaintext health port "
               "need TLS"),
    CHECK_CASE(cli_tls_flags, "the CLI takes --tls, --cacert, --cert, --key and --tls-server-name"),
    CHECK_CASE(redis_password_file,
               "DOCQ_REDIS_PASSWORD_FILE gives the Redis password (also of a URL's ACL user), not "
               "as well as the URL, and errors never quote it"),
    CHECK_CASE(defaults_worker_redis_bounds,
               "a dead-letter stream keeps about 100000 entries and idle consumers go after an "
               "hour by default"))
