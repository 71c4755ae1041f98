/* server_parts.c -- metrics, health, reflection and the HTTP endpoint of
 * docq-server. See server_parts.h. */
#include <stdlib.h>
#include <string.h>

#include "server_parts.h"
#include "log.h"
#include "watch.h"

server_parts *server_parts_create(const docq_config *cfg, const char *const *paths, const int *unary, int n,
                                  docq_error *err) {
    server_parts *x = calloc(1, sizeof(*x));
    if (!x) return docq_error_set(err, DOCQ_ERR, "out of memory"), NULL;
    x->cfg = cfg;
    x->metrics = server_metrics_create(paths, unary, n);
    if (!x->metrics) {
        docq_error_set(err, DOCQ_ERR, "out of memory");
        server_parts_free(x);
        return NULL;
    }
    x->health = docq_health_create(cfg, err);
    if (x->health && cfg->reflection) x->reflection = reflection_service_create(err);
    if (!x->health || (cfg->reflection && !x->reflection)) {
        server_parts_free(x);
        return NULL;
    }
    return x;
}

/* GET handler of the HTTP endpoint (its own thread): /metrics, /healthz
 * (the process runs) and /readyz (SERVING). */
static void serve_http(const char *path, docq_http_response *out, void *ud) {
    server_parts *x = ud;
    if (strcmp(path, "/metrics") == 0) {
        server_gauges g = {(long)watch_hub_open_count(x->watch), docq_health_serving(x->health),
                           (long)watch_hub_held_bytes(x->watch)};
        out->content_type = "text/plain; version=0.0.4; charset=utf-8";
        server_metrics_write(x->metrics, &g, &out->body);
    } else if (strcmp(path, "/healthz") == 0) {
        docq_buf_printf(&out->body, "ok\n");
    } else if (strcmp(path, "/readyz") == 0) {
        int serving = docq_health_serving(x->health);
        out->status = serving ? 200 : 503;
        docq_buf_printf(&out->body, "%s\n", serving ? "SERVING" : "NOT_SERVING");
    } else {
        out->status = 404;
        docq_buf_printf(&out->body, "not found: try /metrics, /healthz or /readyz\n");
    }
}

int server_parts_start(server_parts *x, struct watch_hub *watch, docq_error *err) {
    x->watch = watch;
    if (docq_health_start(x->health, err) != DOCQ_OK) return DOCQ_ERR;
    if (docq_metrics_listen_off(x->cfg->metrics_listen)) return DOCQ_OK;
    docq_error why = {0};
    x->http = docq_http_start(x->cfg->metrics_listen, serve_http, x, &why);
    if (!x->http)
        return docq_error_set(err, DOCQ_ERR, "metrics endpoint (DOCQ_METRICS_LISTEN): %s", why.msg);
    return DOCQ_OK;
}

int server_parts_http_port(const server_parts *x) { return x->http ? docq_http_port(x->http) : 0; }

void server_parts_stop_serving(server_parts *x) { docq_health_stop_serving(x->health); }

void server_parts_end_streams(server_parts *x) {
    docq_health_end_watches(x->health);
    reflection_service_end_streams(x->reflection);
}

void server_parts_free(server_parts *x) {
    if (!x) return;
    docq_http_stop(x->http);
    docq_health_free(x->health);
    reflection_service_free(x->reflection);
    server_metrics_free(x->metrics);
    free(x);
}
