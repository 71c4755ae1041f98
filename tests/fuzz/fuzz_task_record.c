/* libFuzzer target: task records as read back from Redis (field/value pairs,
 * here separated by NUL bytes), then turned into the Task message clients
 * get. A corrupt or hostile record must be refused or read, never crash. */
#include <stdint.h>
#include <string.h>

#include "codec.h"
#include "task.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    docq_task t = {0};
    const char *p = (const char *)data, *end = p + size;
    while (p < end) {
        const char *name = p, *nend = memchr(p, 0, (size_t)(end - p));
        if (!nend) break;
        const char *val = nend + 1, *vend = val < end ? memchr(val, 0, (size_t)(end - val)) : NULL;
        if (!vend) vend = end;
        docq_task_set_field(&t, name, (size_t)(nend - name), val, (size_t)(vend - val));
        p = vend + 1;
    }
    docq_task_msg msg;
    docq_codec_task_msg(&t, &msg);
    uint8_t buf[4096];
    size_t n = protobuf_c_message_get_packed_size(&msg.msg.base);
    if (n <= sizeof(buf)) protobuf_c_message_pack(&msg.msg.base, buf);
    docq_task_clear(&t);
    return 0;
}
