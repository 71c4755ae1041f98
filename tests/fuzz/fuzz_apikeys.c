/* libFuzzer target: the API keys file parser (common/apikeys.c), which
 * reads whatever an operator, or an attacker able to write the file, put in
 * it. Any bytes must give a table or an error, never a crash, a leak or
 * undefined behaviour; a table holds only entries the format allows, and a
 * key looks up its own entry or none. */
#include <stdint.h>
#include <string.h>

#include "apikeys.h"
#include "fuzz_check.h"

/* Every entry of a parsed table obeys apikeys.h. */
static void check_entry(const docq_apikey *k) {
    size_t n = strnlen(k->caller, sizeof(k->caller));
    FUZZ_CHECK(n >= 1 && n <= DOCQ_CALLER_ID_MAX);
    for (size_t i = 0; i < n; i++) FUZZ_CHECK(k->caller[i] > 0x20 && k->caller[i] < 0x7f);
    FUZZ_CHECK(k->limit == -1 || (k->limit >= 0 && k->limit <= DOCQ_RATE_LIMIT_MAX));
    FUZZ_CHECK(k->window_s == -1 || (k->window_s >= 1 && k->window_s <= DOCQ_RATE_WINDOW_MAX_S));
    FUZZ_CHECK(k->line >= 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    docq_error err = {0};
    docq_apikeys *t = docq_apikeys_parse((const char *)data, size, &err);
    if (!t) {
        FUZZ_CHECK(err.code == DOCQ_EINVAL || err.code == DOCQ_ERR);
        FUZZ_CHECK(memchr(err.msg, '\0', sizeof(err.msg)) != NULL);
        return 0;
    }
    /* Every prefix of the input, taken as a key, finds an entry that is
     * well-formed, or nothing. */
    for (size_t n = 0; n <= size && n <= 64; n++) {
        const docq_apikey *k = docq_apikeys_find(t, (const char *)data, n);
        if (k) check_entry(k);
    }
    FUZZ_CHECK(docq_apikeys_count(t) <= size / 2);
    docq_apikeys_free(t);
    return 0;
}
