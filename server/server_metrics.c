/* server_metrics.c -- docq-server's counters and /metrics page. See
 * server_metrics.h. */
#include <stdio.h>
#include <stdlib.h>

#include "codec.h"
#include "server_metrics.h"

server_metrics *server_metrics_create(const char *const *paths, const int *unary, int n) {
    server_metrics *m = calloc(1, sizeof(*m));
    if (!m) return NULL;
    m->rpcs = calloc((size_t)n + 1, sizeof(*m->rpcs));
    if (!m->rpcs) {
        free(m);
        return NULL;
    }
    m->nrpcs = n;
    for (int i = 0; i <= n; i++) {
        rpc_metrics *r = &m->rpcs[i];
        r->method = i < n ? paths[i] + (paths[i][0] == '/') : "unknown";
        r->unary = i < n && unary[i];
        docq_histogram_init(&r->latency, docq_rpc_latency_bounds, docq_rpc_latency_nbounds);
    }
    return m;
}

void server_metrics_free(server_metrics *m) {
    if (!m) return;
    free(m->rpcs);
    free(m);
}

rpc_metrics *server_metrics_rpc(server_metrics *m, int i) { return &m->rpcs[i >= 0 && i < m->nrpcs ? i : m->nrpcs]; }

void rpc_metrics_count(rpc_metrics *m, grpc_status_code code) {
    if (!m) return;
    docq_counter_add(&m->codes[code >= 0 && code < RPC_NCODES ? code : GRPC_STATUS_UNKNOWN], 1);
}

void rpc_metrics_observe(rpc_metrics *m, grpc_status_code code, uint64_t ns) {
    rpc_metrics_count(m, code);
    if (m->unary) docq_histogram_observe_ns(&m->latency, ns);
}

/* docq_grpc_requests_total: code OK for every known method (so that rates
 * start from 0), other codes once they happened. */
static void write_requests(const server_metrics *m, docq_buf *out) {
    char labels[256];
    docq_metrics_family(out, "docq_grpc_requests_total", "counter",
                        "gRPC calls ended, by method and status code (a stream counts when it ends; "
                        "CANCELLED when the client went away first).");
    for (int i = 0; i <= m->nrpcs; i++) {
        const rpc_metrics *r = &m->rpcs[i];
        for (int code = 0; code < RPC_NCODES; code++) {
            uint64_t v = docq_counter_get(&r->codes[code]);
            if (v == 0 && (code != GRPC_STATUS_OK || i == m->nrpcs)) continue;
            snprintf(labels, sizeof(labels), "method=\"%s\",code=\"%s\"", r->method, docq_grpc_status_name(code));
            docq_metrics_sample(out, "docq_grpc_requests_total", labels, (double)v);
        }
    }
}

static void write_latency(const server_metrics *m, docq_buf *out) {
    char labels[200];
    docq_metrics_family(out, "docq_grpc_request_duration_seconds", "histogram",
                        "Time from a unary call's arrival to its answer, by method.");
    for (int i = 0; i < m->nrpcs; i++) {
        if (!m->rpcs[i].unary) continue;
        snprintf(labels, sizeof(labels), "method=\"%s\"", m->rpcs[i].method);
        docq_metrics_histogram(out, "docq_grpc_request_duration_seconds", labels, &m->rpcs[i].latency);
    }
}

static void write_streams(const server_metrics *m, docq_buf *out) {
    char labels[200];
    docq_metrics_family(out, "docq_grpc_streams_open", "gauge", "Streaming calls open now, by method.");
    for (int i = 0; i < m->nrpcs; i++) {
        if (m->rpcs[i].unary) continue;
        snprintf(labels, sizeof(labels), "method=\"%s\"", m->rpcs[i].method);
        docq_metrics_sample(out, "docq_grpc_streams_open", labels,
                            (double)docq_gauge_get(&m->rpcs[i].streams_open));
    }
}

void server_metrics_write(const server_metrics *m, const server_gauges *g, docq_buf *out) {
    static const char *kinds[RATE_NKINDS] = {"submit", "read"};
    char labels[64];
    write_requests(m, out);
    write_latency(m, out);
    write_streams(m, out);
    docq_metrics_family(out, "docq_rate_limited_total", "counter",
                        "Calls refused with RESOURCE_EXHAUSTED by a caller's rate limit, by kind "
                        "(submit: SubmitDoc; read: GetStatus and WatchStatus).");
    for (int k = 0; k < RATE_NKINDS; k++) {
        snprintf(labels, sizeof(labels), "kind=\"%s\"", kinds[k]);
        docq_metrics_sample(out, "docq_rate_limited_total", labels, (double)docq_counter_get(&m->rate_limited[k]));
    }
    docq_metrics_family(out, "docq_tasks_submitted_total", "counter", "Tasks queued by SubmitDoc.");
    docq_metrics_sample(out, "docq_tasks_submitted_total", NULL, (double)docq_counter_get(&m->tasks_submitted));
    docq_metrics_family(out, "docq_submit_unreplicated_total", "counter",
                        "SubmitDocs answered UNAVAILABLE although their task was queued: WAIT confirmed it on "
                        "fewer than DOCQ_REDIS_MIN_REPLICAS replicas.");
    docq_metrics_sample(out, "docq_submit_unreplicated_total", NULL,
                        (double)docq_counter_get(&m->submit_unreplicated));
    docq_metrics_family(out, "docq_watches_open", "gauge", "WatchStatus streams open now.");
    docq_metrics_sample(out, "docq_watches_open", NULL, (double)g->watches_open);
    docq_metrics_family(out, "docq_watch_held_bytes", "gauge",
                        "Bytes of Task messages (results included) held for open watches; results are "
                        "bounded by DOCQ_WATCH_RESULT_BYTES.");
    docq_metrics_sample(out, "docq_watch_held_bytes", NULL, (double)g->watch_held_bytes);
    docq_metrics_family(out, "docq_serving", "gauge",
                        "1 while the gRPC health status is SERVING (Redis answers its PING), else 0.");
    docq_metrics_sample(out, "docq_serving", NULL, g->serving);
    docq_metrics_process(out);
}
