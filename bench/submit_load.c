/* submit_load.c -- docq-bench: SubmitDoc load for a fixed time, from threads
 * making blocking calls through one docq_client (one HTTP/2 connection).
 *
 *   docq-bench SERVER THREADS SECONDS
 *
 * Prints one line: "ok=N refused=N failed=N seconds=S rps=R", where rps
 * counts admitted submits. Exit status 0, or 2 for bad arguments. */
#include <grpc/grpc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "client.h"
#include "codec.h"

typedef struct load {
    docq_client *client;
    double end;               /* Monotonic seconds at which threads stop. */
    atomic_long ok, refused, failed;
} load;

static double mono(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void *run(void *arg) {
    load *l = arg;
    Docq__V1__SubmitDocRequest req = DOCQ__V1__SUBMIT_DOC_REQUEST__INIT;
    req.doc_id = "bench-doc";
    while (mono() < l->end) {
        ProtobufCMessage *resp;
        docq_rpc_status st;
        int rc = docq_client_call(l->client, DOCQ_METHOD_SUBMIT_DOC, &req.base,
                                  &docq__v1__submit_doc_response__descriptor, 10000, &resp, &st);
        if (rc == DOCQ_OK) {
            atomic_fetch_add(&l->ok, 1);
            protobuf_c_message_free_unpacked(resp, NULL);
        } else if (rc == DOCQ_ELIMITED) {
            atomic_fetch_add(&l->refused, 1);
        } else {
            atomic_fetch_add(&l->failed, 1);
        }
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 4 || atoi(argv[2]) < 1 || atoi(argv[2]) > 256 || atof(argv[3]) <= 0) {
        fprintf(stderr, "usage: docq-bench SERVER THREADS(1-256) SECONDS\n");
        return 2;
    }
    int nthreads = atoi(argv[2]);
    docq_error err = {0};
    grpc_init();
    load l = {.client = docq_client_create(argv[1], NULL, 5000, 0, &err)};
    if (!l.client) {
        fprintf(stderr, "docq-bench: %s\n", err.msg);
        return 1;
    }
    pthread_t tids[256];
    double start = mono();
    l.end = start + atof(argv[3]);
    for (int i = 0; i < nthreads; i++) pthread_create(&tids[i], NULL, run, &l);
    for (int i = 0; i < nthreads; i++) pthread_join(tids[i], NULL);
    double secs = mono() - start;
    printf("ok=%ld refused=%ld failed=%ld seconds=%.2f rps=%.0f\n", atomic_load(&l.ok),
           atomic_load(&l.refused), atomic_load(&l.failed), secs, atomic_load(&l.ok) / secs);
    docq_client_free(l.client);
    grpc_shutdown();
    return 0;
}
