/* main.c -- docq, the command-line client of a docq server.
 *
 *   docq [options] submit DOC_ID [DOC_ID...]   one task id per line on stdout
 *   docq [options] status TASK_ID              the task as a readable block
 *   docq [options] watch TASK_ID               each change as it happens, until the end
 *   docq [options] cancel TASK_ID              cancel the task; print it as status does
 *   docq [options] submit --wait DOC_ID...     submit, then watch each task in turn
 *   docq [options] list [--state S]... [--page-size N] [--all]
 *                                              the caller's tasks, newest first, as a table
 *   docq [options] delete TASK_ID              delete an ended task now
 *   docq [options] submit --request-id R DOC_ID  idempotent: R again gets the same task
 *
 * A rate-limit refusal prints the delay the server asks for; with --retry,
 * submit waits that long and sends the document again.
 *
 * Exit status: 0 when every call succeeded, 1 when a call failed (one line
 * "docq: STATUS_NAME: details" on stderr) or a watched task ended FAILURE
 * (or CANCELLED), 2 for a usage error or a bad setting. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <grpc/grpc.h>
#include <grpc/support/time.h>

#include "bench.h"
#include "client.h"
#include "codec.h"
#include "config.h"
#include "google/protobuf/empty.pb-c.h"
#include "log.h"
#include "text.h"
#include "watch.h"

#define EXIT_RPC 1   /* A call failed, or the output could not be written. */
#define EXIT_USAGE 2 /* Bad command line or setting. */

/* One command: its name, how many arguments it takes after the name, and
 * the function that runs it. run returns the exit status. */
typedef struct command {
    const char *name;
    int min_args, max_args;
    int (*run)(docq_client *c, const docq_config *cfg, char **args, int nargs);
} command;

static int cmd_submit(docq_client *c, const docq_config *cfg, char **args, int nargs);
static int cmd_status(docq_client *c, const docq_config *cfg, char **args, int nargs);
static int cmd_watch(docq_client *c, const docq_config *cfg, char **args, int nargs);
static int cmd_cancel(docq_client *c, const docq_config *cfg, char **args, int nargs);
static int watch_tasks(docq_client *c, const docq_config *cfg, const char **ids, int n);
static int cmd_bench(docq_client *c, const docq_config *cfg, char **args, int nargs);
static int cmd_list(docq_client *c, const docq_config *cfg, char **args, int nargs);
static int cmd_delete(docq_client *c, const docq_config *cfg, char **args, int nargs);

static const command commands[] = {
    {"submit", 1, DOCQ_MAX_ARGS - 1, cmd_submit},
    {"status", 1, 1, cmd_status},
    {"watch", 1, 1, cmd_watch},
    {"cancel", 1, 1, cmd_cancel},
    {"list", 0, 0, cmd_list},
    {"delete", 1, 1, cmd_delete},
    {"bench", 0, 0, cmd_bench},
};
#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static void usage(FILE *out) {
    char help[8192];
    docq_config_help(DOCQ_BIN_CLI, help, sizeof(help));
    fprintf(out,
            "usage: docq [options] <command> [args]\n"
            "\n"
            "commands:\n"
            "  submit DOC_ID [DOC_ID...]    queue each document; print each new task id on\n"
            "                               its own line, in order (--retry: wait out\n"
            "                               rate-limit refusals)\n"
            "  status TASK_ID               print the task: state, attempts, times (UTC),\n"
            "                               and its result or error\n"
            "  watch TASK_ID                print each change of the task as it happens\n"
            "                               until it ends: a live line on a terminal, else\n"
            "                               one line per change; exit 1 if it fails\n"
            "                               or is cancelled\n"
            "  cancel TASK_ID               cancel the task (a running AI call is\n"
            "                               stopped) and print it as status does; a\n"
            "                               task that has ended is printed as it is\n"
            "  submit --wait DOC_ID...      submit, then watch each task until it ends\n"
            "  list                         print the caller's tasks, newest first, one\n"
            "                               line each: task id, state, doc id, created\n"
            "                               (UTC); one page (--page-size) unless --all;\n"
            "                               --state S (repeatable) keeps only those states\n"
            "  delete TASK_ID               delete an ended task (SUCCESS, FAILURE,\n"
            "                               CANCELLED) now, its record and its result\n"
            "  submit --request-id R DOC_ID submit idempotently: sending R again (a retry)\n"
            "                               prints the same task id, never a second task\n"
            "  submit --queue-timeout 30s DOC_ID...  the tasks fail if still PENDING then\n"
            "  bench                        load-test the server with simulated users\n"
            "                               (the --users ... --json options below)\n"
            "\n"
            "options (a flag overrides its environment variable):\n"
            "  -h, --help                   print this help\n"
            "%s"
            "\n"
            "exit status: 0 on success, 1 when a call fails or a watched task ends\n"
            "FAILURE or CANCELLED, 2 for a usage error.\n",
            help);
}

/* Print a failed call as one line on stderr. The details are the server's
 * text: control characters are replaced so that the line stays one line. */
static int rpc_failed(const docq_rpc_status *st) {
    char details[sizeof(st->details)];
    size_t n = strlen(st->details);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)st->details[i];
        details[i] = (ch < 0x20 || ch == 0x7f) ? ' ' : (char)ch;
    }
    details[n] = '\0';
    fprintf(stderr, "docq: %s: %s\n", docq_grpc_status_name(st->code),
            n ? details : "(no details)");
    if (st->retry_ms >= 0)
        fprintf(stderr, "docq: the server asks to wait %ld ms before retrying (submit --retry waits)\n",
                st->retry_ms);
    return EXIT_RPC;
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

/* docq_client_call with a debug log line giving the outcome and the time
 * taken. */
static int call(docq_client *c, const docq_config *cfg, const char *method,
                const ProtobufCMessage *req, const ProtobufCMessageDescriptor *resp_desc,
                ProtobufCMessage **resp, docq_rpc_status *st) {
    gpr_timespec t0 = gpr_now(GPR_CLOCK_MONOTONIC);
    int rc = docq_client_call(c, method, req, resp_desc, cfg->deadline_ms, resp, st);
    gpr_timespec dt = gpr_time_sub(gpr_now(GPR_CLOCK_MONOTONIC), t0);
    docq_log_debug("%s to %s: %s in %lld ms", method, cfg->server, docq_grpc_status_name(st->code),
                   (long long)gpr_time_to_millis(dt));
    return rc;
}

/* SubmitDoc for each argument in order, printing each task id as soon as it
 * is known. Every doc_id is checked before the first call, so a typo queues
 * nothing; the first failed call stops the run, so the ids printed are those
 * of the first documents, one line each. With --retry, a document refused by
 * the rate limit is sent again after the delay the server gave, as often as
 * it takes. --request-id (one DOC_ID only) and --queue-timeout go into the
 * request. With --wait, every task is then watched in turn until it ends. */
static int cmd_submit(docq_client *c, const docq_config *cfg, char **args, int nargs) {
    char ids[DOCQ_MAX_ARGS][DOCQ_TASK_ID_MAX]; /* For --wait. */
    const char *idp[DOCQ_MAX_ARGS];
    for (int i = 0; i < nargs; i++) {
        docq_error err = {0};
        if (docq_doc_id_validate(args[i], strlen(args[i]), &err) != DOCQ_OK) {
            fprintf(stderr, "docq: invalid DOC_ID %d: %s\n", i + 1, err.msg);
            return EXIT_USAGE;
        }
    }
    if (cfg->request_id[0] && nargs > 1) {
        fprintf(stderr, "docq: --request-id names one task: give one DOC_ID\n");
        return EXIT_USAGE;
    }
    Google__Protobuf__Duration timeout = GOOGLE__PROTOBUF__DURATION__INIT;
    timeout.seconds = cfg->queue_timeout_ms / 1000;
    timeout.nanos = (int32_t)(cfg->queue_timeout_ms % 1000) * 1000000;
    for (int i = 0; i < nargs; i++) {
        Docq__V1__SubmitDocRequest req = DOCQ__V1__SUBMIT_DOC_REQUEST__INIT;
        ProtobufCMessage *m;
        docq_rpc_status st;
        req.doc_id = args[i];
        if (cfg->request_id[0]) req.request_id = (char *)cfg->request_id;
        if (cfg->queue_timeout_ms > 0) req.queue_timeout = &timeout;
        int rc;
        while ((rc = call(c, cfg, DOCQ_METHOD_SUBMIT_DOC, &req.base,
                          &docq__v1__submit_doc_response__descriptor, &m, &st)) == DOCQ_ELIMITED &&
               cfg->retry && st.retry_ms >= 0) {
            fprintf(stderr, "docq: %s: rate limit exceeded; retrying in %ld ms\n", args[i], st.retry_ms);
            sleep_ms(st.retry_ms);
        }
        if (rc != DOCQ_OK) {
            fflush(stdout);
            return rpc_failed(&st);
        }
        printf("%s\n", ((Docq__V1__SubmitDocResponse *)m)->task_id);
        fflush(stdout);
        snprintf(ids[i], sizeof(ids[i]), "%s", ((Docq__V1__SubmitDocResponse *)m)->task_id);
        idp[i] = ids[i];
        protobuf_c_message_free_unpacked(m, NULL);
    }
    return cfg->wait ? watch_tasks(c, cfg, idp, nargs) : 0;
}

/* Watch each task in turn until it ends (client/watch.c). Returns 0 when
 * every one ended SUCCESS, 1 when one failed or a watch could not be kept. */
static int watch_tasks(docq_client *c, const docq_config *cfg, const char **ids, int n) {
    int rc = 0, tty = isatty(STDOUT_FILENO);
    for (int i = 0; i < n; i++) {
        docq_rpc_status st;
        int r = cli_watch(c, cfg, ids[i], stdout, tty, &st);
        if (r < 0) return rpc_failed(&st);
        if (r) rc = EXIT_RPC;
    }
    return rc;
}

static int cmd_watch(docq_client *c, const docq_config *cfg, char **args, int nargs) {
    (void)nargs;
    return watch_tasks(c, cfg, (const char **)args, 1);
}

/* Format ts as UTC ISO 8601 with milliseconds, 2024-05-01T12:00:00.123Z. */
static void format_time(const Google__Protobuf__Timestamp *ts, char *buf, size_t cap) {
    struct tm tm;
    time_t secs = (time_t)ts->seconds;
    int ms = ts->nanos >= 0 && ts->nanos < 1000000000 ? ts->nanos / 1000000 : 0;
    if (!gmtime_r(&secs, &tm) || strftime(buf, cap, "%Y-%m-%dT%H:%M:%S", &tm) == 0) {
        snprintf(buf, cap, "(%lld seconds since 1970)", (long long)ts->seconds);
        return;
    }
    size_t len = strlen(buf);
    snprintf(buf + len, cap - len, ".%03dZ", ms);
}

static void print_time(const char *label, const Google__Protobuf__Timestamp *ts) {
    char when[64];
    if (!ts) return;
    format_time(ts, when, sizeof(when));
    printf("%-9s %s\n", label, when);
}

/* Print a text field, its control characters but newlines and tabs shown as
 * spaces (cli_put_text), so that a result holding escape codes cannot drive
 * the terminal; text that does not end its last line gets a newline. */
static void print_text(const char *label, const char *text) {
    size_t n = strlen(text);
    printf("%-9s ", label);
    cli_put_text(stdout, text, 1);
    if (!n || text[n - 1] != '\n') putchar('\n');
}

static void print_task(const Docq__V1__Task *t) {
    docq_task_state state = (docq_task_state)t->state;
    printf("%-9s %s\n", "task_id:", t->task_id);
    printf("%-9s %s\n", "doc_id:", t->doc_id);
    if (state >= DOCQ_STATE_UNSPECIFIED && state <= DOCQ_STATE_CANCELLED)
        printf("%-9s %s\n", "state:", docq_task_state_name(state));
    else
        printf("%-9s UNKNOWN (%d)\n", "state:", (int)t->state);
    printf("%-9s %u\n", "attempts:", (unsigned)t->attempts);
    printf("%-9s %llu\n", "version:", (unsigned long long)t->version);
    if (state == DOCQ_STATE_PENDING && t->queue_position)
        printf("%-9s %u (1 = next)\n", "position:", (unsigned)t->queue_position);
    print_time("created:", t->created_at);
    print_time("started:", t->started_at);
    print_time("finished:", t->finished_at);
    if (state == DOCQ_STATE_SUCCESS || t->result[0]) print_text("result:", t->result);
    if (state == DOCQ_STATE_FAILURE || state == DOCQ_STATE_CANCELLED || t->error[0])
        print_text("error:", t->error);
}

/* Call method with req, whose answer is a Task, and print the task. */
static int call_and_print_task(docq_client *c, const docq_config *cfg, const char *method,
                               const ProtobufCMessage *req) {
    ProtobufCMessage *m;
    docq_rpc_status st;
    if (call(c, cfg, method, req, &docq__v1__task__descriptor, &m, &st) != DOCQ_OK) return rpc_failed(&st);
    print_task((Docq__V1__Task *)m);
    protobuf_c_message_free_unpacked(m, NULL);
    return 0;
}

static int cmd_status(docq_client *c, const docq_config *cfg, char **args, int nargs) {
    Docq__V1__GetStatusRequest req = DOCQ__V1__GET_STATUS_REQUEST__INIT;
    (void)nargs;
    req.task_id = args[0];
    return call_and_print_task(c, cfg, DOCQ_METHOD_GET_STATUS, &req.base);
}

/* CancelTask: the task as the cancel left it (CANCELLED, or the state it had
 * already ended in), printed as status prints it. */
static int cmd_cancel(docq_client *c, const docq_config *cfg, char **args, int nargs) {
    Docq__V1__CancelTaskRequest req = DOCQ__V1__CANCEL_TASK_REQUEST__INIT;
    (void)nargs;
    req.task_id = args[0];
    return call_and_print_task(c, cfg, DOCQ_METHOD_CANCEL_TASK, &req.base);
}

/* Print one task as a line of the list table: task id, state, doc id (its
 * control characters as spaces), created. */
static void print_task_line(const Docq__V1__Task *t) {
    char when[64] = "-";
    docq_task_state state = (docq_task_state)t->state;
    if (t->created_at) format_time(t->created_at, when, sizeof(when));
    printf("%-38s %-9s ", t->task_id,
           state >= DOCQ_STATE_PENDING && state <= DOCQ_STATE_CANCELLED ? docq_task_state_name(state) : "UNKNOWN");
    size_t n = strlen(t->doc_id);
    cli_put_text(stdout, t->doc_id, 0);
    printf("%*s %s\n", n < 24 ? (int)(24 - n) : 0, "", when);
}

/* ListTasks, a page at a time: one page of cfg->list_page_size tasks, or
 * with --all every page until the last, filtered by --state. Prints a
 * header and one line per task; a note on stderr when more pages follow
 * unprinted. */
static int cmd_list(docq_client *c, const docq_config *cfg, char **args, int nargs) {
    (void)args, (void)nargs;
    Docq__V1__Task__State states[8];
    size_t nstates = 0;
    char token[256] = "";
    for (const char *v = cfg->list_states; *v && nstates < 8;) {
        size_t len = strcspn(v, ","), i = 0;
        char name[16];
        docq_task_state st;
        for (; i < len && i + 1 < sizeof(name); i++) name[i] = (char)toupper((unsigned char)v[i]);
        if (docq_task_state_parse(name, i, &st) == DOCQ_OK) states[nstates++] = (Docq__V1__Task__State)st;
        v += len + (v[len] == ',');
    }
    printf("%-38s %-9s %-24s %s\n", "TASK ID", "STATE", "DOC ID", "CREATED");
    do {
        Docq__V1__ListTasksRequest req = DOCQ__V1__LIST_TASKS_REQUEST__INIT;
        ProtobufCMessage *m;
        docq_rpc_status st;
        req.page_size = (int32_t)cfg->list_page_size;
        req.page_token = token;
        req.n_states = nstates;
        req.states = states;
        if (call(c, cfg, DOCQ_METHOD_LIST_TASKS, &req.base, &docq__v1__list_tasks_response__descriptor, &m, &st) !=
            DOCQ_OK) {
            fflush(stdout);
            return rpc_failed(&st);
        }
        const Docq__V1__ListTasksResponse *r = (const Docq__V1__ListTasksResponse *)m;
        for (size_t i = 0; i < r->n_tasks; i++) print_task_line(r->tasks[i]);
        int fits = strlen(r->next_page_token) < sizeof(token);
        snprintf(token, sizeof(token), "%s", fits ? r->next_page_token : "");
        protobuf_c_message_free_unpacked(m, NULL);
        if (!fits) {
            fprintf(stderr, "docq: the server sent a page token too long to follow\n");
            return EXIT_RPC;
        }
    } while (token[0] && cfg->list_all);
    if (token[0]) fprintf(stderr, "docq: more tasks follow: --all lists them all\n");
    return 0;
}

/* DeleteTask: print "deleted TASK_ID" once it is gone. */
static int cmd_delete(docq_client *c, const docq_config *cfg, char **args, int nargs) {
    Docq__V1__DeleteTaskRequest req = DOCQ__V1__DELETE_TASK_REQUEST__INIT;
    ProtobufCMessage *m;
    docq_rpc_status st;
    (void)nargs;
    req.task_id = args[0];
    if (call(c, cfg, DOCQ_METHOD_DELETE_TASK, &req.base, &google__protobuf__empty__descriptor, &m, &st) != DOCQ_OK)
        return rpc_failed(&st);
    protobuf_c_message_free_unpacked(m, NULL);
    printf("deleted %s\n", args[0]);
    return 0;
}

/* The load generator makes its own channels; see bench.h. */
static int cmd_bench(docq_client *c, const docq_config *cfg, char **args, int nargs) {
    (void)c, (void)args, (void)nargs;
    return docq_bench_run(cfg);
}

static const command *find_command(const char *name) {
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0) return &commands[i];
    return NULL;
}

/* grpc_shutdown finishes its cleanup on another thread, and only once no
 * connection attempt is left (each is bounded by the client's connect
 * timeout): wait for it so that the process does not exit under it, but give
 * up after limit_ms rather than hang. */
static void grpc_shutdown_and_wait(long limit_ms) {
    gpr_timespec end = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                                    gpr_time_from_millis(limit_ms, GPR_TIMESPAN));
    grpc_shutdown();
    while (grpc_is_initialized() && gpr_time_cmp(gpr_now(GPR_CLOCK_MONOTONIC), end) < 0) {
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
    }
}

int main(int argc, char **argv) {
    docq_config cfg;
    docq_error err = {0};
    int rc = docq_config_load(&cfg, DOCQ_BIN_CLI, argc, argv, &err);
    if (rc == DOCQ_EHELP) {
        usage(stdout);
        return fflush(stdout) == 0 ? 0 : EXIT_RPC;
    }
    if (rc != DOCQ_OK) {
        fprintf(stderr, "docq: %s\n", err.msg);
        return EXIT_USAGE;
    }
    if (cfg.nargs == 0) {
        usage(stderr);
        return EXIT_USAGE;
    }
    const command *cmd = find_command(cfg.args[0]);
    if (!cmd) {
        fprintf(stderr, "docq: unknown command '%s'\n\n", cfg.args[0]);
        usage(stderr);
        return EXIT_USAGE;
    }
    int nargs = cfg.nargs - 1;
    if (nargs < cmd->min_args || nargs > cmd->max_args) {
        fprintf(stderr, "docq: wrong number of arguments for '%s'\n\n", cmd->name);
        usage(stderr);
        return EXIT_USAGE;
    }

    grpc_init();
    /* A connection attempt cannot serve a call after its deadline, and an
     * unfinished one would hold up grpc_shutdown: give it the same limit. */
    docq_client_tls tls;
    docq_client_tls_from_config(&cfg, &tls);
    docq_client *c = docq_client_create(cfg.server, &tls, cfg.deadline_ms, cfg.keepalive_ms, &err);
    if (cfg.api_key[0] && !tls.enabled && !docq_client_target_is_loopback(cfg.server))
        fprintf(stderr, "docq: warning: sending the API key without TLS to %s; use --tls\n", cfg.server);
    if (!c || docq_client_set_api_key(c, cfg.api_key) != DOCQ_OK) {
        fprintf(stderr, "docq: %s\n", c ? "out of memory" : err.msg);
        docq_client_free(c);
        rc = EXIT_RPC;
    } else {
        rc = cmd->run(c, &cfg, cfg.args + 1, nargs);
        docq_client_free(c);
    }
    grpc_shutdown_and_wait(cfg.deadline_ms + 5000);

    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "docq: cannot write the output\n");
        if (rc == 0) rc = EXIT_RPC;
    }
    return rc;
}
