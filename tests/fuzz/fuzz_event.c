/* libFuzzer target: task-change event payloads (common/event.c), which the
 * server's subscriber reads from Redis pub/sub, where anything with access
 * to Redis can publish. A payload is parsed or refused, never crashes; a
 * parsed one names the same task as its first netstring, and the Task
 * message made from it packs. */
#include <stdint.h>
#include <string.h>

#include "codec.h"
#include "event.h"
#include "fuzz_check.h"
#include "task.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *buf = (const char *)data, *id;
    size_t idlen;
    int have_id = docq_event_task_id(buf, size, &id, &idlen) == DOCQ_OK;
    if (have_id) FUZZ_CHECK(id >= buf && idlen <= size && id + idlen <= buf + size);
    docq_task t = {0};
    docq_error err = {0};
    if (docq_event_parse(buf, size, &t, &err) != DOCQ_OK) {
        /* Refused: the task is left empty. */
        FUZZ_CHECK(t.task_id[0] == '\0' && !t.result && !t.error && !t.owner && t.version == 0);
        return 0;
    }
    int shard;
    FUZZ_CHECK(have_id && strlen(t.task_id) == idlen && memcmp(t.task_id, id, idlen) == 0);
    FUZZ_CHECK(docq_task_id_parse(t.task_id, strlen(t.task_id), &shard, NULL) == DOCQ_OK);
    docq_task_msg msg;
    docq_codec_task_msg(&t, &msg);
    size_t n = protobuf_c_message_get_packed_size(&msg.msg.base);
    uint8_t *packed = malloc(n ? n : 1);
    FUZZ_CHECK(packed && protobuf_c_message_pack(&msg.msg.base, packed) == n);
    free(packed);
    docq_task_clear(&t);
    return 0;
}
