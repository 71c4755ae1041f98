/* richstatus.c -- google.rpc.Status with RetryInfo and QuotaFailure. See
 * richstatus.h. */
#include <stdlib.h>
#include <string.h>

#include "google/rpc/error_details.pb-c.h"
#include "google/rpc/status.pb-c.h"
#include "richstatus.h"

/* Pack m into a new buffer held by any (type url given). */
static int pack_any(const ProtobufCMessage *m, const char *type_url, Google__Protobuf__Any *any) {
    google__protobuf__any__init(any);
    any->type_url = (char *)type_url;
    any->value.len = protobuf_c_message_get_packed_size(m);
    any->value.data = malloc(any->value.len ? any->value.len : 1);
    if (!any->value.data) return DOCQ_ERR;
    protobuf_c_message_pack(m, any->value.data);
    return DOCQ_OK;
}

int docq_richstatus_quota(int code, const char *message, long retry_ms, const char *subject,
                          const char *description, uint8_t **out, size_t *len, docq_error *err) {
    Google__Protobuf__Duration delay = GOOGLE__PROTOBUF__DURATION__INIT;
    Google__Rpc__RetryInfo retry = GOOGLE__RPC__RETRY_INFO__INIT;
    Google__Rpc__QuotaFailure__Violation v = GOOGLE__RPC__QUOTA_FAILURE__VIOLATION__INIT;
    Google__Rpc__QuotaFailure__Violation *vs[] = {&v};
    Google__Rpc__QuotaFailure quota = GOOGLE__RPC__QUOTA_FAILURE__INIT;
    Google__Protobuf__Any anys[2];
    Google__Protobuf__Any *details[] = {&anys[0], &anys[1]};
    Google__Rpc__Status st = GOOGLE__RPC__STATUS__INIT;
    int rc = DOCQ_ERR;

    delay.seconds = retry_ms / 1000;
    delay.nanos = (int32_t)(retry_ms % 1000) * 1000000;
    retry.retry_delay = &delay;
    v.subject = (char *)subject;
    v.description = (char *)description;
    quota.n_violations = 1;
    quota.violations = vs;
    anys[0].value.data = anys[1].value.data = NULL;
    st.code = code;
    st.message = (char *)message;
    st.n_details = 2;
    st.details = details;
    *out = NULL;
    if (pack_any(&retry.base, DOCQ_TYPE_RETRY_INFO, &anys[0]) == DOCQ_OK &&
        pack_any(&quota.base, DOCQ_TYPE_QUOTA_FAILURE, &anys[1]) == DOCQ_OK) {
        *len = protobuf_c_message_get_packed_size(&st.base);
        *out = malloc(*len ? *len : 1);
        if (*out) {
            protobuf_c_message_pack(&st.base, *out);
            rc = DOCQ_OK;
        }
    }
    free(anys[0].value.data);
    free(anys[1].value.data);
    if (rc != DOCQ_OK) docq_error_set(err, DOCQ_ERR, "out of memory");
    return rc;
}

long docq_retry_delay_ms(int64_t seconds, int32_t nanos) {
    if (seconds < 0 || (seconds == 0 && nanos <= 0)) return 0;
    if (seconds >= DOCQ_RETRY_DELAY_MAX_MS / 1000) return DOCQ_RETRY_DELAY_MAX_MS;
    /* Both are small now: no overflow. Nanos outside 0..999999999 are
     * malformed; a negative one counts as 0, a huge one as one second. */
    long ns = nanos < 0 ? 0 : nanos > 999999999 ? 999999999 : nanos;
    long ms = (long)seconds * 1000 + (ns + 999999) / 1000000;
    return ms < DOCQ_RETRY_DELAY_MAX_MS ? ms : DOCQ_RETRY_DELAY_MAX_MS;
}

int docq_richstatus_retry_ms(const uint8_t *buf, size_t len, long *retry_ms) {
    Google__Rpc__Status *st = google__rpc__status__unpack(NULL, len, buf);
    if (!st) return DOCQ_EINVAL;
    int rc = DOCQ_ENOTFOUND;
    for (size_t i = 0; i < st->n_details && rc == DOCQ_ENOTFOUND; i++) {
        const Google__Protobuf__Any *any = st->details[i];
        if (strcmp(any->type_url, DOCQ_TYPE_RETRY_INFO) != 0) continue;
        Google__Rpc__RetryInfo *ri = google__rpc__retry_info__unpack(NULL, any->value.len, any->value.data);
        if (!ri) {
            rc = DOCQ_EINVAL;
        } else {
            const Google__Protobuf__Duration *d = ri->retry_delay;
            *retry_ms = d ? docq_retry_delay_ms(d->seconds, d->nanos) : 0;
            rc = DOCQ_OK;
            google__rpc__retry_info__free_unpacked(ri, NULL);
        }
    }
    google__rpc__status__free_unpacked(st, NULL);
    return rc;
}
