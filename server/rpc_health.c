/* rpc_health.c -- grpc.health.v1.Health: Check and Watch (health.h). No API
 * key and no rate limit: the kubelet and load balancers send neither. A
 * Watch counts against its caller's open streams all the same. */
#include "grpc/health/v1/health.pb-c.h"
#include "health.h"
#include "server_parts.h"
#include "rpc.h"

/* Check: SERVING or NOT_SERVING for "" and "docq.v1.DocQueue", NOT_FOUND
 * for any other service. */
void rpc_health_check(server_thread *t, const rpc_call *call, const ProtobufCMessage *req, rpc_reply *out) {
    const Grpc__Health__V1__HealthCheckRequest *r = (const Grpc__Health__V1__HealthCheckRequest *)req;
    int serving;
    (void)call;
    if (docq_health_check(docq_server_parts(t->srv)->health, r->service, &serving) != DOCQ_OK) {
        rpc_reply_error(out, GRPC_STATUS_NOT_FOUND, "unknown service '%.200s'", r->service);
        return;
    }
    out->code = GRPC_STATUS_OK;
    out->message = docq_health_pack(serving ? GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING
                                            : GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING);
    if (!out->message) rpc_reply_error(out, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
}

/* Watch: the status now, then each change (health.h), counted against the
 * caller's open streams (its address when it sends no key). */
int rpc_health_watch(server_thread *t, const rpc_call *call, const ProtobufCMessage *req, rpc_reply *out) {
    const Grpc__Health__V1__HealthCheckRequest *r = (const Grpc__Health__V1__HealthCheckRequest *)req;
    stream_hold hold;
    if (rpc_stream_hold(t, call, &hold, out) != DOCQ_OK) return DOCQ_ERR;
    int rc = docq_health_watch(docq_server_parts(t->srv)->health, call->call, r->service, &hold, call->metrics, out);
    if (rc != DOCQ_OK) stream_hold_release(&hold);
    return rc;
}
