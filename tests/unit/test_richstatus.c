/* test_richstatus.c -- google.rpc.Status with RetryInfo and QuotaFailure
 * (common/richstatus.c), against bytes made by Google's protobuf. */
#include <stdint.h>
#include <stdlib.h>

#include "check.h"
#include "google/rpc/error_details.pb-c.h"
#include "google/rpc/status.pb-c.h"
#include "richstatus.h"

/* Status{code: 8, message: "rate limit exceeded, retry in 1500 ms", details:
 * [Any(RetryInfo{retry_delay: 1.5 s}), Any(QuotaFailure{violations: [{subject:
 * "acme", description: "at most 5 SubmitDoc calls per 60 s per caller"}]})]},
 * serialized by python3-protobuf 3.21 (Any.Pack) from proto/google/rpc. */
static const uint8_t golden[] = {
    0x08, 0x08, 0x12, 0x25, 0x72, 0x61, 0x74, 0x65, 0x20, 0x6c, 0x69, 0x6d, 0x69, 0x74, 0x20, 0x65,
    0x78, 0x63, 0x65, 0x65, 0x64, 0x65, 0x64, 0x2c, 0x20, 0x72, 0x65, 0x74, 0x72, 0x79, 0x20, 0x69,
    0x6e, 0x20, 0x31, 0x35, 0x30, 0x30, 0x20, 0x6d, 0x73, 0x1a, 0x36, 0x0a, 0x28, 0x74, 0x79, 0x70,
    0x65, 0x2e, 0x67, 0x6f, 0x6f, 0x67, 0x6c, 0x65, 0x61, 0x70, 0x69, 0x73, 0x2e, 0x63, 0x6f, 0x6d,
    0x2f, 0x67, 0x6f, 0x6f, 0x67, 0x6c, 0x65, 0x2e, 0x72, 0x70, 0x63, 0x2e, 0x52, 0x65, 0x74, 0x72,
    0x79, 0x49, 0x6e, 0x66, 0x6f, 0x12, 0x0a, 0x0a, 0x08, 0x08, 0x01, 0x10, 0x80, 0xca, 0xb5, 0xee,
    0x01, 0x1a, 0x66, 0x0a, 0x2b, 0x74, 0x79, 0x70, 0x65, 0x2e, 0x67, 0x6f, 0x6f, 0x67, 0x6c, 0x65,
    0x61, 0x70, 0x69, 0x73, 0x2e, 0x63, 0x6f, 0x6d, 0x2f, 0x67, 0x6f, 0x6f, 0x67, 0x6c, 0x65, 0x2e,
    0x72, 0x70, 0x63, 0x2e, 0x51, 0x75, 0x6f, 0x74, 0x61, 0x46, 0x61, 0x69, 0x6c, 0x75, 0x72, 0x65,
    0x12, 0x37, 0x0a, 0x35, 0x0a, 0x04, 0x61, 0x63, 0x6d, 0x65, 0x12, 0x2d, 0x61, 0x74, 0x20, 0x6d,
    0x6f, 0x73, 0x74, 0x20, 0x35, 0x20, 0x53, 0x75, 0x62, 0x6d, 0x69, 0x74, 0x44, 0x6f, 0x63, 0x20,
    0x63, 0x61, 0x6c, 0x6c, 0x73, 0x20, 0x70, 0x65, 0x72, 0x20, 0x36, 0x30, 0x20, 0x73, 0x20, 0x70,
    0x65, 0x72, 0x20, 0x63, 0x61, 0x6c, 0x6c, 0x65, 0x72,
};

static void quota_golden_bytes(void) {
    uint8_t *buf = NULL;
    size_t len = 0;
    docq_error err = {0};
    CHECK_INT_EQ(docq_richstatus_quota(8, "rate limit exceeded, retry in 1500 ms", 1500, "acme",
                                       "at most 5 SubmitDoc calls per 60 s per caller", &buf, &len, &err),
                 DOCQ_OK);
    CHECK_MEM_EQ(buf, len, golden, sizeof(golden));
    free(buf);
}

static void retry_delay_read_back(void) {
    long ms = -1;
    CHECK_INT_EQ(docq_richstatus_retry_ms(golden, sizeof(golden), &ms), DOCQ_OK);
    CHECK_INT_EQ(ms, 1500);
    uint8_t *buf = NULL;
    size_t len = 0;
    CHECK_INT_EQ(docq_richstatus_quota(8, "m", 59999, "::1", "d", &buf, &len, NULL), DOCQ_OK);
    CHECK_INT_EQ(docq_richstatus_retry_ms(buf, len, &ms), DOCQ_OK);
    CHECK_INT_EQ(ms, 59999);
    free(buf);
}

static void retry_delay_missing_or_malformed(void) {
    long ms = 7;
    /* Status{code: 8} has no details. */
    static const uint8_t bare[] = {0x08, 0x08};
    CHECK_INT_EQ(docq_richstatus_retry_ms(bare, sizeof(bare), &ms), DOCQ_ENOTFOUND);
    CHECK_INT_EQ(ms, 7);
    static const uint8_t junk[] = {0x12, 0xff, 0x01};
    CHECK_INT_EQ(docq_richstatus_retry_ms(junk, sizeof(junk), &ms), DOCQ_EINVAL);
    CHECK_INT_EQ(docq_richstatus_retry_ms(golden, 40, &ms), DOCQ_EINVAL); /* Cut short. */
}

/* The retry delay read from a Status whose RetryInfo says seconds and nanos,
 * packed here with protobuf-c as a hostile server could send it. */
static long delay_of(int64_t seconds, int32_t nanos) {
    Google__Protobuf__Duration d = GOOGLE__PROTOBUF__DURATION__INIT;
    Google__Rpc__RetryInfo ri = GOOGLE__RPC__RETRY_INFO__INIT;
    Google__Protobuf__Any any = GOOGLE__PROTOBUF__ANY__INIT;
    Google__Protobuf__Any *details[] = {&any};
    Google__Rpc__Status st = GOOGLE__RPC__STATUS__INIT;
    uint8_t inner[64], outer[256];
    long ms = -7;
    d.seconds = seconds;
    d.nanos = nanos;
    ri.retry_delay = &d;
    any.type_url = (char *)DOCQ_TYPE_RETRY_INFO;
    any.value.len = protobuf_c_message_pack(&ri.base, inner);
    any.value.data = inner;
    st.code = 8;
    st.n_details = 1;
    st.details = details;
    size_t n = protobuf_c_message_pack(&st.base, outer);
    CHECK_INT_EQ(docq_richstatus_retry_ms(outer, n, &ms), DOCQ_OK);
    return ms;
}

static void retry_delay_capped_and_safe(void) {
    CHECK_INT_EQ(delay_of(2, 500000000), 2500);
    CHECK_INT_EQ(delay_of(0, 1), 1);
    CHECK_INT_EQ(delay_of(3599, 999999999), 3600000);
    CHECK_INT_EQ(delay_of(3600, 0), 3600000);
    CHECK_INT_EQ(delay_of(3601, 0), 3600000);
    CHECK_INT_EQ(delay_of(10000000000LL, 0), 3600000);         /* 317 years. */
    CHECK_INT_EQ(delay_of(INT64_MAX, INT32_MAX), 3600000);     /* seconds * 1000 would overflow. */
    CHECK_INT_EQ(delay_of(INT64_MAX / 1000 + 1, 0), 3600000);
    CHECK_INT_EQ(delay_of(-1, 0), 0);
    CHECK_INT_EQ(delay_of(INT64_MIN, INT32_MIN), 0);
    CHECK_INT_EQ(delay_of(0, -5), 0);
    CHECK_INT_EQ(delay_of(5, INT32_MAX), 6000);                /* Malformed nanos: at most 1 s more. */
    CHECK_INT_EQ(delay_of(5, -999999999), 5000);
}

CHECK_MAIN(
    CHECK_CASE(quota_golden_bytes,
               "a rate-limit google.rpc.Status encodes to the same bytes as Google's protobuf "
               "makes"),
    CHECK_CASE(retry_delay_read_back, "the RetryInfo delay of a status reads back in milliseconds"),
    CHECK_CASE(retry_delay_missing_or_malformed,
               "a status without RetryInfo, or malformed bytes, gives no retry delay"),
    CHECK_CASE(retry_delay_capped_and_safe,
               "a RetryInfo delay is capped at one hour, and huge or negative seconds and nanos "
               "neither overflow nor go below 0"))
