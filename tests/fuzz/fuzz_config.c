/* libFuzzer target: configuration and URL parsing. The input's first byte
 * picks the binary; the rest, split at newlines, is its command line. Every
 * line is also parsed as a Redis URL and as host:port. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    /* Only the fuzzed command line may set anything. */
    extern char **environ;
    for (;;) {
        char name[128] = "";
        for (char **e = environ; *e && !name[0]; e++) {
            size_t n = strcspn(*e, "=");
            if (strncmp(*e, "DOCQ_", 5) == 0 && n < sizeof(name)) {
                memcpy(name, *e, n);
                name[n] = '\0';
            }
        }
        if (!name[0]) break;
        unsetenv(name);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0 || size > 4096) return 0;
    unsigned bin = 1u << (data[0] % 3);
    char *text = malloc(size);
    char *argv[DOCQ_MAX_ARGS * 2 + 2];
    int argc = 0;
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    argv[argc++] = (char *)"docq-fuzz";
    for (char *line = text, *next; line && argc < (int)(sizeof(argv) / sizeof(argv[0])) - 1; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = '\0';
        argv[argc++] = line;
        docq_redis_addr addr;
        docq_error err;
        docq_redis_url_parse(line, &addr, &err);
        docq_hostport_check(line, 1, &err);
    }
    argv[argc] = NULL;
    docq_config cfg;
    docq_error err;
    docq_config_load(&cfg, bin, argc, argv, &err);
    free(text);
    return 0;
}
