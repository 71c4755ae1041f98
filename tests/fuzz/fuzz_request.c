/* libFuzzer target: request decoding and validation, as docq-server does it
 * for every call: the bytes are parsed as each request type, and what parses
 * goes through the doc_id, task_id and page_token checks. Must never crash, leak or hit
 * undefined behaviour, whatever the bytes. */
#include <stdint.h>
#include <string.h>

#include <grpc/grpc.h>
#include <grpc/slice.h>

#include "codec.h"
#include "store.h"
#include "task.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    grpc_init();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const ProtobufCMessageDescriptor *types[] = {&docq__v1__submit_doc_request__descriptor,
                                                 &docq__v1__get_status_request__descriptor,
                                                 &docq__v1__watch_status_request__descriptor,
                                                 &docq__v1__task__descriptor,
                                                 &docq__v1__list_tasks_request__descriptor,
                                                 &docq__v1__delete_task_request__descriptor};
    grpc_slice s = grpc_slice_from_copied_buffer((const char *)data, size);
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
    grpc_slice_unref(s);
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        ProtobufCMessage *m = docq_codec_unpack(types[i], bb);
        if (!m) continue;
        docq_error err;
        int shard;
        if (i == 0) {
            const char *doc = ((Docq__V1__SubmitDocRequest *)m)->doc_id;
            docq_doc_id_validate(doc, strlen(doc), &err);
        } else if (i == 1 || i == 2) {
            const char *id = i == 1 ? ((Docq__V1__GetStatusRequest *)m)->task_id
                                    : ((Docq__V1__WatchStatusRequest *)m)->task_id;
            docq_task_id_parse(id, strlen(id), &shard, &err);
        } else if (i == 4) {
            int64_t score;
            char id[DOCQ_TASK_ID_MAX];
            docq_list_token_parse(((Docq__V1__ListTasksRequest *)m)->page_token, &score, id, &err);
        } else if (i == 5) {
            const char *id = ((Docq__V1__DeleteTaskRequest *)m)->task_id;
            docq_task_id_parse(id, strlen(id), &shard, &err);
        } else {
            docq_task t = {0};
            docq_codec_task_from_msg((Docq__V1__Task *)m, &t, &err);
            docq_task_clear(&t);
        }
        protobuf_c_message_free_unpacked(m, NULL);
    }
    grpc_byte_buffer_destroy(bb);
    return 0;
}
