/* rpc_health.c -- grpc.health.v1.Health: Check and Watch (health.h). No API
 * key and no rate limit: the kubelet and load balancers send neither. A
 * Watch counts against its caller's open streams all the same. */
#include "grpc/health/v1/health.pb-c.h"
#include "health.h"
#include "rpc.h"

/* Check: SERVING or NOT_SERVING for "" and "docq.v1.DocQueue", NOT_FOUND
 * for any other service. */
void rpc_health_check(const rpc_call *call, const ProtobufCMessage *req, rpc_reply *out) {
    const Grpc__Health__V1__HealthCheckRequest *r = (const Grpc__Health__V1__HealthCheckRequest *)req;
    int serving;
    if (docq_health_check(call->env->health, r->service, &serving) != DOCQ_OK) {
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
rpc_step rpc_health_watch(const rpc_call *call, const ProtobufCMessage *req, rpc_reply *out) {
    const Grpc__Health__V1__HealthCheckRequest *r = (const Grpc__Health__V1__HealthCheckRequest *)req;
    stream_hold hold;
    if (rpc_stream_hold(call, &hold, out) != DOCQ_OK) return RPC_ANSWERED;
    if (docq_health_watch(call->env->health, call->call, r->service, &hold, call->metrics, out) == DOCQ_OK)
        return RPC_TAKEN;
    stream_hold_release(&hold);
    return RPC_ANSWERED;
}
