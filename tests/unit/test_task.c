/* test_task.c -- doc_id validation, task ids, sharding and record fields
 * (common/task.c). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "store.h"
#include "task.h"

/* Validate the first len bytes of s; returns the status, message in *err. */
static int validate(const char *s, size_t len, docq_error *err) {
    memset(err, 0, sizeof(*err));
    return docq_doc_id_validate(s, len, err);
}

/* Build n copies of c into buf (which holds at least n + 1 bytes). */
static char *fill(char *buf, char c, size_t n) {
    memset(buf, c, n);
    buf[n] = '\0';
    return buf;
}

static void doc_id_empty(void) {
    docq_error err;
    CHECK_INT_EQ(validate("", 0, &err), DOCQ_EINVAL);
    CHECK_INT_EQ(err.code, DOCQ_EINVAL);
    CHECK_STR_CONTAINS(err.msg, "empty");
    /* A NULL error struct is allowed. */
    CHECK_INT_EQ(docq_doc_id_validate("", 0, NULL), DOCQ_EINVAL);
}

static void doc_id_max_len(void) {
    char buf[DOCQ_DOC_ID_MAX + 8];
    docq_error err;
    CHECK_INT_EQ(validate(fill(buf, 'a', 256), 256, &err), DOCQ_OK);
    CHECK_INT_EQ(validate("a", 1, &err), DOCQ_OK);
    /* 254 ASCII bytes and a two-byte letter: 256 bytes, accepted. */
    fill(buf, 'a', 254);
    memcpy(buf + 254, "\xc3\xa9", 3);
    CHECK_INT_EQ(validate(buf, 256, &err), DOCQ_OK);
}

static void doc_id_too_long(void) {
    char buf[DOCQ_DOC_ID_MAX + 8];
    docq_error err;
    CHECK_INT_EQ(validate(fill(buf, 'a', 257), 257, &err), DOCQ_EINVAL);
    CHECK_STR_CONTAINS(err.msg, "257");
    CHECK_STR_CONTAINS(err.msg, "256");
    /* The limit is in bytes, not characters: 255 ASCII bytes and one
     * two-byte letter are 256 characters but 257 bytes. */
    fill(buf, 'a', 255);
    memcpy(buf + 255, "\xc3\xa9", 3);
    CHECK_INT_EQ(validate(buf, 257, &err), DOCQ_EINVAL);
    CHECK_STR_CONTAINS(err.msg, "257");
}

static void doc_id_c0_control(void) {
    static const struct {
        const char *s;
        size_t len;
        const char *code;
    } bad[] = {
        {"a\x01" "b", 3, "U+0001"},
        {"a\nb", 3, "U+000A"},
        {"a\tb", 3, "U+0009"},
        {"\rb", 2, "U+000D"},
        {"a\x1f", 2, "U+001F"},
        {"a\0b", 3, "U+0000"}, /* A NUL inside the given length. */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        docq_error err;
        int rc = validate(bad[i].s, bad[i].len, &err);
        CHECK_MSG(rc == DOCQ_EINVAL, "input %zu was accepted", i);
        CHECK_STR_CONTAINS(err.msg, "control character");
        CHECK_STR_CONTAINS(err.msg, bad[i].code);
    }
    docq_error err;
    validate("ab\n", 3, &err);
    CHECK_STR_CONTAINS(err.msg, "byte 2"); /* The message says where. */
}

static void doc_id_del(void) {
    docq_error err;
    CHECK_INT_EQ(validate("doc\x7f", 4, &err), DOCQ_EINVAL);
    CHECK_STR_CONTAINS(err.msg, "control character");
    CHECK_STR_CONTAINS(err.msg, "U+007F");
    CHECK_STR_CONTAINS(err.msg, "byte 3");
}

static void doc_id_c1_control(void) {
    docq_error err;
    CHECK_INT_EQ(validate("a\xc2\x85", 3, &err), DOCQ_EINVAL); /* U+0085, NEL. */
    CHECK_STR_CONTAINS(err.msg, "control character");
    CHECK_STR_CONTAINS(err.msg, "U+0085");
    CHECK_INT_EQ(validate("\xc2\x80", 2, &err), DOCQ_EINVAL); /* U+0080, first C1. */
    CHECK_INT_EQ(validate("\xc2\x9f", 2, &err), DOCQ_EINVAL); /* U+009F, last C1. */
    /* U+00A0, just past the C1 block, is text. */
    CHECK_INT_EQ(validate("\xc2\xa0", 2, &err), DOCQ_OK);
}

static void doc_id_bad_utf8(void) {
    static const struct {
        const char *s;
        const char *what;
    } bad[] = {
        {"\x80", "lone continuation byte"},
        {"ab\xbf" "cd", "continuation byte after ASCII"},
        {"\xe6\x97", "sequence truncated by the end"},
        {"\xe6\x97" "a", "sequence cut by an ASCII byte"},
        {"\xc3", "lead byte alone at the end"},
        {"\xc0\xaf", "overlong '/' in two bytes"},
        {"\xc1\xbf", "overlong U+007F"},
        {"\xe0\x80\xaf", "overlong '/' in three bytes"},
        {"\xf0\x8f\xbf\xbf", "overlong U+FFFF in four bytes"},
        {"\xed\xa0\x80", "surrogate U+D800"},
        {"\xed\xbf\xbf", "surrogate U+DFFF"},
        {"\xf4\x90\x80\x80", "U+110000, above U+10FFFF"},
        {"\xf5\x80\x80\x80", "lead byte F5"},
        {"\xf8\x88\x80\x80\x80", "five-byte form"},
        {"\xfe", "byte FE"},
        {"\xff", "byte FF"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        docq_error err;
        int rc = validate(bad[i].s, strlen(bad[i].s), &err);
        CHECK_MSG(rc == DOCQ_EINVAL, "%s was accepted", bad[i].what);
        CHECK_MSG(strstr(err.msg, "UTF-8") != NULL, "%s: message '%s'", bad[i].what, err.msg);
        CHECK_MSG(!docq_utf8_valid(bad[i].s, strlen(bad[i].s)), "docq_utf8_valid took %s",
                  bad[i].what);
    }
    docq_error err;
    validate("abc\xff", 4, &err);
    CHECK_STR_CONTAINS(err.msg, "byte 3");
    /* A sequence cut by the given length is truncated even if the bytes go on. */
    CHECK_INT_EQ(validate("\xe6\x97\xa5", 2, &err), DOCQ_EINVAL);
}

static void doc_id_multibyte(void) {
    static const char *good[] = {
        "caf\xc3\xa9",                      /* café */
        "\xe6\x97\xa5\xe6\x9c\xac",         /* 日本 */
        "\xf0\x9f\x93\x84 report",          /* 📄 report */
        "\xef\xbf\xbd",                     /* U+FFFD */
        "\xee\x80\x80",                     /* U+E000, just past the surrogates */
        "\xf4\x8f\xbf\xbf",                 /* U+10FFFF, the last code point */
        "reports/2024/q1 final.pdf",
        " ~!@#$%^&*()_+{}|:\"<>?`-=[]\\;',./",
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        docq_error err;
        int rc = validate(good[i], strlen(good[i]), &err);
        CHECK_MSG(rc == DOCQ_OK, "input %zu refused: %s", i, err.msg);
        CHECK_MSG(docq_utf8_valid(good[i], strlen(good[i])), "docq_utf8_valid refused input %zu", i);
    }
}

static void utf8_valid_allows_controls(void) {
    /* An AI answer may hold any Unicode text, control characters and NULs
     * included: only the encoding is checked. */
    CHECK(docq_utf8_valid("", 0));
    CHECK(docq_utf8_valid("a\0b", 3));
    CHECK(docq_utf8_valid("line\nline\t\x7f\xc2\x85", 13));
    CHECK(!docq_utf8_valid("ok\0\xc3", 4));
}

static void task_id_new_parses(void) {
    static const int shards[] = {0, 7, 1023};
    for (size_t k = 0; k < sizeof(shards) / sizeof(shards[0]); k++) {
        char id[DOCQ_TASK_ID_MAX], prefix[16];
        docq_error err = {0};
        int rc = docq_task_id_new(shards[k], id, sizeof(id), &err);
        CHECK_MSG(rc == DOCQ_OK, "shard %d: %s", shards[k], err.msg);
        snprintf(prefix, sizeof(prefix), "s%d-", shards[k]);
        size_t plen = strlen(prefix);
        CHECK_MSG(strncmp(id, prefix, plen) == 0, "id %s lacks prefix %s", id, prefix);
        CHECK_INT_EQ(strlen(id), plen + 32);
        for (size_t i = plen; i < strlen(id); i++)
            CHECK_MSG((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f'),
                      "id %s has '%c' at %zu", id, id[i], i);
        int shard = -1;
        CHECK_INT_EQ(docq_task_id_parse(id, strlen(id), &shard, &err), DOCQ_OK);
        CHECK_INT_EQ(shard, shards[k]);
    }
}

static void task_id_new_differ(void) {
    enum { N = 64 };
    char ids[N][DOCQ_TASK_ID_MAX];
    for (int i = 0; i < N; i++) CHECK_INT_EQ(docq_task_id_new(3, ids[i], sizeof(ids[i]), NULL), DOCQ_OK);
    for (int i = 0; i < N; i++)
        for (int j = i + 1; j < N; j++) CHECK_MSG(strcmp(ids[i], ids[j]) != 0, "ids %d and %d: %s", i, j, ids[i]);
}

static void random_hex_across_pool_refills(void) {
    enum { N = 200, BYTES = 7 }; /* 1,400 bytes: several refills, none at a request's edge. */
    char hex[N][2 * BYTES + 1];
    char big[2 * 65 + 1];
    for (int i = 0; i < N; i++) {
        memset(hex[i], '#', sizeof(hex[i]));
        CHECK_INT_EQ(docq_random_hex(hex[i], sizeof(hex[i]), BYTES, NULL), DOCQ_OK);
        CHECK_INT_EQ((long long)strlen(hex[i]), 2 * BYTES);
        CHECK_MSG(strspn(hex[i], "0123456789abcdef") == 2 * BYTES, "not lowercase hex: %s", hex[i]);
    }
    for (int i = 0; i < N; i++)
        for (int j = i + 1; j < N; j++) CHECK_MSG(strcmp(hex[i], hex[j]) != 0, "%d and %d: %s", i, j, hex[i]);
    CHECK_INT_EQ(docq_random_hex(big, sizeof(big), 65, NULL), DOCQ_ERR);
    CHECK_INT_EQ(docq_random_hex(big, 2 * 8, 8, NULL), DOCQ_ERR);
}

static void task_id_new_small_buffer(void) {
    char buf[64];
    docq_error err = {0};
    memset(buf, '#', sizeof(buf));
    /* "s7-" and 32 digits need 36 bytes with the NUL; 35 are too few. */
    CHECK_INT_EQ(docq_task_id_new(7, buf, 35, &err), DOCQ_ERR);
    CHECK_STR_CONTAINS(err.msg, "too small");
    for (size_t i = 35; i < sizeof(buf); i++) CHECK_MSG(buf[i] == '#', "byte %zu written", i);
    CHECK_INT_EQ(docq_task_id_new(7, buf, 36, &err), DOCQ_OK);
    CHECK_INT_EQ(strlen(buf), 35);
}

static void task_id_malformed(void) {
    static const char *bad[] = {
        "",
        "s",
        "s3",
        "s3-",
        "s-00112233445566778899aabbccddeeff",        /* No shard. */
        "x1-00112233445566778899aabbccddeeff",       /* Not 's'. */
        "S1-00112233445566778899aabbccddeeff",       /* Uppercase 's'. */
        "s1-00112233445566778899aabbccddeef",        /* 31 digits. */
        "s1-00112233445566778899aabbccddeeff0",      /* 33 digits. */
        "s1-00112233445566778899AABBCCDDEEFF",       /* Uppercase hex. */
        "s01-00112233445566778899aabbccddeeff",      /* Leading zero. */
        "s00-00112233445566778899aabbccddeeff",
        "s100112233445566778899aabbccddeeff0",       /* No dash. */
        "s1_00112233445566778899aabbccddeeff",       /* Not a dash. */
        "s1-00112233445566778899aabbccddeefg",       /* Not hex. */
        "s1-0011223344556677 8899aabbccddeef",
        "s1--0112233445566778899aabbccddeeff",
        "s-1-00112233445566778899aabbccddeeff",      /* Negative shard. */
        "s123456-00112233445566778899aabbccddeeff",  /* Six-digit shard. */
        " s1-00112233445566778899aabbccddeeff",
        "s1-00112233445566778899aabbccddeeff\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        docq_error err = {0};
        int shard = -7;
        int rc = docq_task_id_parse(bad[i], strlen(bad[i]), &shard, &err);
        CHECK_MSG(rc == DOCQ_EINVAL, "'%s' was accepted", bad[i]);
        CHECK_MSG(shard == -7, "'%s' set the shard", bad[i]);
        CHECK_MSG(strstr(err.msg, "task_id") != NULL, "'%s': message '%s'", bad[i], err.msg);
    }
    docq_error err = {0};
    int shard;
    docq_task_id_parse("", 0, &shard, &err);
    CHECK_STR_CONTAINS(err.msg, "empty");
    docq_task_id_parse("x", 1, &shard, &err);
    CHECK_STR_CONTAINS(err.msg, "s<shard>-<32 hex digits>");
}

static void task_id_parse_bounds(void) {
    const char *id = "s1023-00112233445566778899aabbccddeeff";
    int shard = -1;
    CHECK_INT_EQ(docq_task_id_parse(id, strlen(id), &shard, NULL), DOCQ_OK);
    CHECK_INT_EQ(shard, 1023);
    /* Only len bytes are read: a prefix of a valid id is not valid. */
    CHECK_INT_EQ(docq_task_id_parse(id, strlen(id) - 1, &shard, NULL), DOCQ_EINVAL);
    CHECK_INT_EQ(docq_task_id_parse(id, 5, &shard, NULL), DOCQ_EINVAL);
    /* Shard 0 and the largest five-digit shard parse; the caller checks the
     * shard against its configured count. */
    CHECK_INT_EQ(docq_task_id_parse("s0-ffffffffffffffffffffffffffffffff", 35, &shard, NULL), DOCQ_OK);
    CHECK_INT_EQ(shard, 0);
    CHECK_INT_EQ(docq_task_id_parse("s99999-00000000000000000000000000000000", 39, &shard, NULL), DOCQ_OK);
    CHECK_INT_EQ(shard, 99999);
}

static void task_id_shard_reads_the_digits(void) {
    char id[DOCQ_TASK_ID_MAX];
    int parsed = -1;
    /* Every id docq_task_id_new makes gives back its shard, as the parse does. */
    for (int shard = 0; shard < 100000; shard = shard * 7 + 1) {
        CHECK_INT_EQ(docq_task_id_new(shard, id, sizeof(id), NULL), DOCQ_OK);
        CHECK_INT_EQ(docq_task_id_parse(id, strlen(id), &parsed, NULL), DOCQ_OK);
        CHECK_INT_EQ(docq_task_id_shard(id), shard);
        CHECK_INT_EQ(docq_task_id_shard(id), parsed);
    }
    CHECK_INT_EQ(docq_task_id_shard("s0-ffffffffffffffffffffffffffffffff"), 0);
    CHECK_INT_EQ(docq_task_id_shard("s99999-00000000000000000000000000000000"), 99999);
    /* Not checked, never read past the end: no digits is shard 0. */
    CHECK_INT_EQ(docq_task_id_shard(""), 0);
    CHECK_INT_EQ(docq_task_id_shard("s"), 0);
    CHECK_INT_EQ(docq_task_id_shard("s-1"), 0);
    CHECK_INT_EQ(docq_task_id_shard("s12"), 12);
}

static void shard_for_stable(void) {
    static const char *callers[] = {"", "alice", "ipv4:10.0.0.1:5000", "x509:CN=worker-7"};
    for (size_t i = 0; i < sizeof(callers) / sizeof(callers[0]); i++) {
        int a = docq_shard_for(callers[i], strlen(callers[i]), 16);
        int b = docq_shard_for(callers[i], strlen(callers[i]), 16);
        CHECK_MSG(a == b, "'%s' gave %d then %d", callers[i], a, b);
    }
    /* Pinned: the published 64-bit FNV-1a test vectors ("" 0xcbf29ce484222325,
     * "a" 0xaf63dc4c8601ec8c, "foobar" 0x85944171f73967e8) mod 1024. Servers of
     * different versions must agree, or a rolling upgrade moves callers. */
    CHECK_INT_EQ(docq_shard_for("", 0, 1024), 0x325);
    CHECK_INT_EQ(docq_shard_for("a", 1, 1024), 0x08c);
    CHECK_INT_EQ(docq_shard_for("foobar", 6, 1024), 0x3e8);
    CHECK_INT_EQ(docq_shard_for("alice", 5, 1), 0);
    /* Only len bytes count. */
    CHECK_INT_EQ(docq_shard_for("alice-and-more", 5, 1024), docq_shard_for("alice", 5, 1024));
}

static void shard_for_in_range(void) {
    static const int counts[] = {1, 2, 3, 7, 16, 1000, 1024};
    for (size_t k = 0; k < sizeof(counts) / sizeof(counts[0]); k++) {
        for (int i = 0; i < 5000; i++) {
            char caller[32];
            int n = snprintf(caller, sizeof(caller), "caller-%d", i);
            int s = docq_shard_for(caller, (size_t)n, counts[k]);
            CHECK_MSG(s >= 0 && s < counts[k], "%s gave shard %d of %d", caller, s, counts[k]);
        }
        /* Bytes above 0x7f hash as unsigned: still in range. */
        int s = docq_shard_for("\xff\xfe\x80", 3, counts[k]);
        CHECK_MSG(s >= 0 && s < counts[k], "high bytes gave shard %d of %d", s, counts[k]);
    }
}

static void shard_for_spread(void) {
    int used[16] = {0};
    for (int i = 0; i < 1000; i++) {
        char caller[32];
        int n = snprintf(caller, sizeof(caller), "ipv4:10.0.%d.%d:4000", i / 256, i % 256);
        int s = docq_shard_for(caller, (size_t)n, 16);
        if (s >= 0 && s < 16) used[s]++;
    }
    for (int s = 0; s < 16; s++) {
        CHECK_MSG(used[s] > 0, "shard %d got no caller", s);
        /* 62.5 on average; a shard with three times that is no spread. */
        CHECK_MSG(used[s] < 190, "shard %d got %d of 1000 callers", s, used[s]);
    }
}

static void list_token_round_trip(void) {
    char tok[DOCQ_LIST_TOKEN_MAX], id[DOCQ_TASK_ID_MAX];
    const char *tid = "s1023-0123456789abcdef0123456789abcdef";
    int64_t score = -1;
    docq_list_token_format(tok, sizeof(tok), 999999999999999999LL, tid);
    CHECK_INT_EQ(docq_list_token_parse(tok, &score, id, NULL), DOCQ_OK);
    CHECK(score == 999999999999999999LL);
    CHECK_STR_EQ(id, tid);
    docq_list_token_format(tok, sizeof(tok), 0, "s0-00000000000000000000000000000000");
    CHECK_INT_EQ(docq_list_token_parse(tok, &score, id, NULL), DOCQ_OK);
    CHECK(score == 0);
}

static void list_token_malformed(void) {
    char id[DOCQ_TASK_ID_MAX], tok[DOCQ_LIST_TOKEN_MAX], hex[2 * DOCQ_LIST_TOKEN_MAX];
    int64_t score;
    static const char *bad_hex[] = {"", "a", "zz", "3G", "3132", "2E"};
    for (size_t i = 0; i < sizeof(bad_hex) / sizeof(bad_hex[0]); i++)
        CHECK_MSG(docq_list_token_parse(bad_hex[i], &score, id, NULL) == DOCQ_EINVAL, "'%s' parsed", bad_hex[i]);
    /* Well-formed hex of texts docq never writes. */
    static const char *bad_text[] = {"12", "12.", ".s0-00000000000000000000000000000000",
                                     "-1.s0-00000000000000000000000000000000",
                                     "1x.s0-00000000000000000000000000000000",
                                     "1234567890123456789.s0-00000000000000000000000000000000",
                                     "1.s0-0000000000000000000000000000000", "1.s0-00000000000000000000000000000000.",
                                     "1.S0-00000000000000000000000000000000"};
    for (size_t i = 0; i < sizeof(bad_text) / sizeof(bad_text[0]); i++) {
        size_t n = strlen(bad_text[i]);
        for (size_t j = 0; j < n; j++) snprintf(hex + 2 * j, 3, "%02x", (unsigned char)bad_text[i][j]);
        hex[2 * n] = '\0';
        CHECK_MSG(docq_list_token_parse(hex, &score, id, NULL) == DOCQ_EINVAL, "'%s' parsed", bad_text[i]);
    }
    /* A NUL byte inside. */
    docq_list_token_format(tok, sizeof(tok), 5, "s0-00000000000000000000000000000000");
    memcpy(tok, "00", 2);
    CHECK_INT_EQ(docq_list_token_parse(tok, &score, id, NULL), DOCQ_EINVAL);
}

static void state_names(void) {
    static const struct {
        docq_task_state s;
        const char *name;
        int terminal;
    } states[] = {
        {DOCQ_STATE_PENDING, "PENDING", 0},
        {DOCQ_STATE_STARTED, "STARTED", 0},
        {DOCQ_STATE_SUCCESS, "SUCCESS", 1},
        {DOCQ_STATE_FAILURE, "FAILURE", 1},
        {DOCQ_STATE_CANCELLED, "CANCELLED", 1},
    };
    for (size_t i = 0; i < sizeof(states) / sizeof(states[0]); i++) {
        docq_task_state out = DOCQ_STATE_UNSPECIFIED;
        CHECK_STR_EQ(docq_task_state_name(states[i].s), states[i].name);
        CHECK_INT_EQ(docq_task_state_parse(states[i].name, strlen(states[i].name), &out), DOCQ_OK);
        CHECK_INT_EQ(out, states[i].s);
        CHECK_INT_EQ(docq_task_state_terminal(states[i].s), states[i].terminal);
    }
    CHECK_STR_EQ(docq_task_state_name(DOCQ_STATE_UNSPECIFIED), "STATE_UNSPECIFIED");
    CHECK_STR_EQ(docq_task_state_name((docq_task_state)99), "STATE_UNSPECIFIED");
    CHECK_STR_EQ(docq_task_state_name((docq_task_state)-1), "STATE_UNSPECIFIED");
    CHECK_INT_EQ(docq_task_state_terminal(DOCQ_STATE_UNSPECIFIED), 0);

    static const char *bad[] = {"", "pending", "PENDIN", "PENDINGX", "STATE_UNSPECIFIED", "DONE"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        docq_task_state out = DOCQ_STATE_STARTED;
        CHECK_MSG(docq_task_state_parse(bad[i], strlen(bad[i]), &out) == DOCQ_EINVAL, "'%s' parsed", bad[i]);
        CHECK_INT_EQ(out, DOCQ_STATE_STARTED);
    }
    /* Length-delimited, as Redis replies are. */
    docq_task_state out;
    CHECK_INT_EQ(docq_task_state_parse("SUCCESSFUL", 7, &out), DOCQ_OK);
    CHECK_INT_EQ(out, DOCQ_STATE_SUCCESS);
}

/* 1 when a and b hold the same values (compared field by field: struct
 * padding is not compared). */
static int same_task(const docq_task *a, const docq_task *b) {
    return strcmp(a->task_id, b->task_id) == 0 && strcmp(a->doc_id, b->doc_id) == 0 &&
           a->state == b->state && a->result == b->result && a->result_len == b->result_len &&
           a->error == b->error && a->attempts == b->attempts &&
           a->created_at_ms == b->created_at_ms && a->started_at_ms == b->started_at_ms &&
           a->finished_at_ms == b->finished_at_ms && a->version == b->version && a->seq == b->seq &&
           a->queue_position == b->queue_position;
}

/* docq_task_set_field with NUL-terminated name and value. */
static int set(docq_task *t, const char *name, const char *val) {
    return docq_task_set_field(t, name, strlen(name), val, strlen(val));
}

static void set_field_every_field(void) {
    docq_task t = {0};
    CHECK_INT_EQ(set(&t, "doc_id", "caf\xc3\xa9"), DOCQ_OK);
    CHECK_INT_EQ(set(&t, "state", "FAILURE"), DOCQ_OK);
    CHECK_INT_EQ(set(&t, "error", "AI answered 503"), DOCQ_OK);
    CHECK_INT_EQ(docq_task_set_field(&t, "result", 6, "{\"a\":\0}", 7), DOCQ_OK);
    CHECK_INT_EQ(set(&t, "attempts", "4294967295"), DOCQ_OK);
    CHECK_INT_EQ(set(&t, "created_at", "1700000000123"), DOCQ_OK);
    CHECK_INT_EQ(set(&t, "started_at", "1700000001000"), DOCQ_OK);
    CHECK_INT_EQ(set(&t, "finished_at", "999999999999999999"), DOCQ_OK);
    CHECK_INT_EQ(set(&t, "version", "42"), DOCQ_OK);
    CHECK_INT_EQ(set(&t, "seq", "123456789012"), DOCQ_OK);
    CHECK_STR_EQ(t.doc_id, "caf\xc3\xa9");
    CHECK_INT_EQ(t.state, DOCQ_STATE_FAILURE);
    CHECK_STR_EQ(t.error, "AI answered 503");
    CHECK_INT_EQ(t.result_len, 7);
    CHECK_MEM_EQ(t.result, t.result_len, "{\"a\":\0}", 7);
    CHECK(t.result && t.result[7] == '\0');
    CHECK_INT_EQ(t.attempts, 4294967295u);
    CHECK_INT_EQ(t.created_at_ms, 1700000000123LL);
    CHECK_INT_EQ(t.started_at_ms, 1700000001000LL);
    CHECK_INT_EQ(t.finished_at_ms, 999999999999999999LL);
    CHECK_INT_EQ(t.version, 42);
    CHECK_INT_EQ(t.seq, 123456789012LL);
    CHECK_INT_EQ(t.queue_position, 0); /* Computed, never a record field. */

    /* Setting a field again replaces it (and frees the old copy: valgrind). */
    CHECK_INT_EQ(set(&t, "result", "second"), DOCQ_OK);
    CHECK_STR_EQ(t.result, "second");
    CHECK_INT_EQ(t.result_len, 6);
    CHECK_INT_EQ(set(&t, "error", ""), DOCQ_OK);
    CHECK_STR_EQ(t.error, "");
    CHECK_INT_EQ(set(&t, "attempts", "0"), DOCQ_OK);
    CHECK_INT_EQ(t.attempts, 0);
    docq_task_clear(&t);
}

static void set_field_deliveries(void) {
    docq_task t = {0};
    CHECK_INT_EQ(set(&t, "deliveries", "3"), DOCQ_OK);
    CHECK_INT_EQ(t.deliveries, 3);
    CHECK_INT_EQ(set(&t, "deliveries", "4294967295"), DOCQ_OK);
    CHECK_INT_EQ(t.deliveries, 4294967295u);
    CHECK_INT_EQ(set(&t, "deliveries", "4294967296"), DOCQ_EINVAL);
    CHECK_INT_EQ(set(&t, "deliveries", "-1"), DOCQ_EINVAL);
    CHECK_INT_EQ(t.deliveries, 4294967295u);
    /* failures is the worker's retry budget, not part of the API task. */
    CHECK_INT_EQ(set(&t, "failures", "2"), DOCQ_OK);
    docq_task_clear(&t);
}

static void set_field_malformed(void) {
    static const struct {
        const char *name, *val;
    } bad[] = {
        {"attempts", ""},
        {"attempts", "abc"},
        {"attempts", "-1"},
        {"attempts", "+1"},
        {"attempts", " 1"},
        {"attempts", "1 "},
        {"attempts", "1.5"},
        {"attempts", "4294967296"}, /* UINT32_MAX + 1. */
        {"created_at", ""},
        {"created_at", "12x"},
        {"created_at", "0x10"},
        {"created_at", "-1700000000000"},
        {"created_at", "1000000000000000000"}, /* 19 digits. */
        {"started_at", "soon"},
        {"finished_at", "1e12"},
        {"version", ""},
        {"version", "-2"},
        {"version", "v1"},
        {"seq", "1.0"},
        {"state", ""},
        {"state", "DONE"},
        {"state", "success"},
        {"state", "3"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        docq_task t = {0}, before;
        t.attempts = 2;
        t.created_at_ms = t.started_at_ms = t.finished_at_ms = 5;
        t.state = DOCQ_STATE_STARTED;
        t.version = 7;
        t.seq = 9;
        before = t;
        int rc = set(&t, bad[i].name, bad[i].val);
        CHECK_MSG(rc == DOCQ_EINVAL, "%s='%s' gave %d", bad[i].name, bad[i].val, rc);
        CHECK_MSG(same_task(&t, &before), "%s='%s' changed the task", bad[i].name,
                  bad[i].val);
    }
    docq_task t = {0};
    char big[DOCQ_DOC_ID_MAX + 2];
    CHECK_INT_EQ(set(&t, "doc_id", fill(big, 'd', DOCQ_DOC_ID_MAX + 1)), DOCQ_EINVAL);
    CHECK_STR_EQ(t.doc_id, "");
    CHECK_INT_EQ(set(&t, "doc_id", fill(big, 'd', DOCQ_DOC_ID_MAX)), DOCQ_OK);
    CHECK_INT_EQ(strlen(t.doc_id), DOCQ_DOC_ID_MAX);
}

static void set_field_unknown_ignored(void) {
    docq_task t = {0}, before;
    CHECK_INT_EQ(set(&t, "attempts", "3"), DOCQ_OK);
    before = t;
    CHECK_INT_EQ(set(&t, "worker", "w-17"), DOCQ_OK);
    CHECK_INT_EQ(set(&t, "priority", "not a number"), DOCQ_OK);
    CHECK_INT_EQ(set(&t, "", ""), DOCQ_OK);
    /* Near misses of real names are other fields, not these. */
    CHECK_INT_EQ(set(&t, "attempt", "x"), DOCQ_OK);
    CHECK_INT_EQ(set(&t, "attemptss", "x"), DOCQ_OK);
    CHECK_INT_EQ(set(&t, "STATE", "x"), DOCQ_OK);
    CHECK_INT_EQ(docq_task_set_field(&t, "attempts", 7, "x", 1), DOCQ_OK); /* "attempt". */
    CHECK(same_task(&t, &before));
}

static void owner_field(void) {
    docq_task t = {0};
    CHECK_INT_EQ(set(&t, "owner", "acme"), DOCQ_OK);
    CHECK_STR_EQ(t.owner, "acme");
    CHECK_INT_EQ(set(&t, "owner", "CN=beta,O=Example"), DOCQ_OK);
    CHECK_STR_EQ(t.owner, "CN=beta,O=Example");
    /* Empty, too long or holding a NUL: a corrupt record. */
    char longer[DOCQ_OWNER_MAX + 1];
    memset(longer, 'o', DOCQ_OWNER_MAX);
    longer[DOCQ_OWNER_MAX] = '\0';
    CHECK_INT_EQ(set(&t, "owner", ""), DOCQ_EINVAL);
    CHECK_INT_EQ(set(&t, "owner", longer), DOCQ_EINVAL);
    longer[DOCQ_OWNER_MAX - 1] = '\0';
    CHECK_INT_EQ(set(&t, "owner", longer), DOCQ_OK);
    CHECK_INT_EQ(docq_task_set_field(&t, "owner", 5, "ac\0me", 5), DOCQ_EINVAL);
    CHECK_STR_EQ(t.owner, longer);
    docq_task_clear(&t);
    CHECK(t.owner == NULL);
}

static void task_clear_frees(void) {
    docq_task t = {0};
    strcpy(t.task_id, "s1-00112233445566778899aabbccddeeff");
    CHECK_INT_EQ(set(&t, "result", "an answer"), DOCQ_OK);
    CHECK_INT_EQ(set(&t, "error", "a reason"), DOCQ_OK);
    CHECK_INT_EQ(set(&t, "attempts", "2"), DOCQ_OK);
    docq_task_clear(&t);
    docq_task zero;
    memset(&zero, 0, sizeof(zero));
    CHECK(memcmp(&t, &zero, sizeof(t)) == 0);
    CHECK(t.result == NULL && t.error == NULL);
    /* Clearing a cleared task is harmless. */
    docq_task_clear(&t);
    CHECK(t.result == NULL);
}

/* Two workers whose pods share a host name and are both PID 1 still get
 * distinct consumer names in the group; a name that does not fit is refused. */
static void consumer_names_unique(void) {
    char a[320], b[320], tiny[16];
    docq_error err = {0};
    CHECK_INT_EQ(docq_consumer_name(a, sizeof(a), "docq-worker", 1, &err), DOCQ_OK);
    CHECK_INT_EQ(docq_consumer_name(b, sizeof(b), "docq-worker", 1, &err), DOCQ_OK);
    CHECK(strcmp(a, b) != 0);
    CHECK(strncmp(a, "docq-worker-1-", 14) == 0);
    CHECK_INT_EQ((long)strlen(a), 14 + 16);
    CHECK_INT_EQ(docq_consumer_name(tiny, sizeof(tiny), "docq-worker", 1, &err), DOCQ_EINVAL);
}

static void request_id_bounds(void) {
    char buf[DOCQ_REQUEST_ID_MAX + 8];
    docq_error err = {0};
    CHECK_INT_EQ(docq_request_id_validate(fill(buf, '~', 64), 64, &err), DOCQ_OK);
    CHECK_INT_EQ(docq_request_id_validate(" !", 2, &err), DOCQ_OK);
    CHECK_INT_EQ(docq_request_id_validate("", 0, &err), DOCQ_EINVAL);
    CHECK_STR_CONTAINS(err.msg, "empty");
    CHECK_INT_EQ(docq_request_id_validate(fill(buf, 'a', 65), 65, &err), DOCQ_EINVAL);
    CHECK_STR_CONTAINS(err.msg, "65 bytes long, the limit is 64");
    CHECK_INT_EQ(docq_request_id_validate("ab\x1f", 3, &err), DOCQ_EINVAL);
    CHECK_STR_CONTAINS(err.msg, "byte 0x1f at byte 2");
    CHECK_INT_EQ(docq_request_id_validate("\x7f", 1, &err), DOCQ_EINVAL);
    CHECK_INT_EQ(docq_request_id_validate("caf\xc3\xa9", 5, &err), DOCQ_EINVAL);
    CHECK_STR_CONTAINS(err.msg, "0xc3 at byte 3");
    CHECK_INT_EQ(docq_request_id_validate("a\0b", 3, NULL), DOCQ_EINVAL);
}

static void request_key_is_unambiguous(void) {
    char a[256], b[256];
    CHECK_INT_EQ(docq_key_request(a, sizeof(a), "docq", 5, "a:b", "c", 1), DOCQ_OK);
    CHECK_INT_EQ(docq_key_request(b, sizeof(b), "docq", 5, "a", "b:c", 3), DOCQ_OK);
    CHECK_STR_EQ(a, "docq:{s5}:req:a:b:63");
    CHECK_STR_EQ(b, "docq:{s5}:req:a:623a63");
    CHECK_INT_EQ(docq_key_request(a, 21, "docq", 5, "a", "bc", 2), DOCQ_OK);
    CHECK_INT_EQ(docq_key_request(a, 20, "docq", 5, "a", "bc", 2), DOCQ_EINVAL);
}

static void set_field_deadline(void) {
    docq_task t = {0};
    CHECK_INT_EQ(docq_task_set_field(&t, "deadline", 8, "1700000000123", 13), DOCQ_OK);
    CHECK(t.deadline_ms == 1700000000123LL);
    CHECK_INT_EQ(docq_task_set_field(&t, "deadline", 8, "soon", 4), DOCQ_EINVAL);
    CHECK_INT_EQ(docq_task_set_field(&t, "request_key", 11, "docq:{s0}:req:a:62", 18), DOCQ_OK);
    docq_task_clear(&t);
}

CHECK_MAIN(
    CHECK_CASE(request_id_bounds,
               "a request_id of 1 to 64 printable ASCII bytes is accepted and any other is refused "
               "saying why"),
    CHECK_CASE(request_key_is_unambiguous,
               "request keys of two callers never meet, whatever colons their ids hold, and one "
               "too long for its buffer is refused"),
    CHECK_CASE(set_field_deadline, "the deadline field of a stored record is read into the task"),
    CHECK_CASE(set_field_deliveries,
               "the deliveries field of a stored record is read into the task and a bad one is "
               "refused"),
    CHECK_CASE(doc_id_empty, "an empty doc_id is refused as empty"),
    CHECK_CASE(doc_id_max_len, "a doc_id of exactly 256 bytes is accepted"),
    CHECK_CASE(doc_id_too_long, "a doc_id of 257 bytes is refused, naming its length"),
    CHECK_CASE(doc_id_c0_control,
               "a doc_id with a C0 control character such as U+0001, newline, tab or NUL is "
               "refused"),
    CHECK_CASE(doc_id_del, "a doc_id with DEL 0x7f is refused as a control character"),
    CHECK_CASE(doc_id_c1_control, "a doc_id with a C1 control character such as U+0085 is refused"),
    CHECK_CASE(doc_id_bad_utf8,
               "a doc_id that is not valid UTF-8 is refused: stray, truncated, overlong, "
               "surrogate, above U+10FFFF"),
    CHECK_CASE(doc_id_multibyte, "a doc_id of multibyte UTF-8 text is accepted"),
    CHECK_CASE(utf8_valid_allows_controls,
               "docq_utf8_valid checks only the encoding, so NULs and control characters pass"),
    CHECK_CASE(task_id_new_parses,
               "a new task id is s, the shard, a dash and 32 lowercase hex digits, and parses "
               "back to its shard"),
    CHECK_CASE(task_id_new_differ, "two new task ids differ"),
    CHECK_CASE(random_hex_across_pool_refills,
               "random hex stays lowercase, full length and unrepeated across refills of the "
               "random pool, and oversize requests are refused"),
    CHECK_CASE(task_id_new_small_buffer,
               "a new task id does not fit a buffer that is too small and nothing past it is "
               "written"),
    CHECK_CASE(task_id_malformed, "a malformed task id is refused"),
    CHECK_CASE(task_id_parse_bounds,
               "a task id is parsed from exactly the bytes given, and any one- to five-digit "
               "shard parses"),
    CHECK_CASE(task_id_shard_reads_the_digits,
               "the shard read from a well-formed task id is the one it was made for, and no "
               "digits read as shard 0"),
    CHECK_CASE(shard_for_stable, "a caller always gets the same shard"),
    CHECK_CASE(shard_for_in_range, "a caller's shard is within 0 to shards - 1"),
    CHECK_CASE(shard_for_spread, "1000 distinct callers use every one of 16 shards"),
    CHECK_CASE(list_token_round_trip, "a ListTasks page token parses back to the index entry it was made from"),
    CHECK_CASE(list_token_malformed, "a page token docq could not have written is refused"),
    CHECK_CASE(state_names,
               "every state name parses back to its state and other names are refused"),
    CHECK_CASE(set_field_every_field, "every field of a stored record is read into the task"),
    CHECK_CASE(set_field_malformed,
               "a malformed number, state or doc_id in a stored record is refused and leaves the "
               "task unchanged"),
    CHECK_CASE(set_field_unknown_ignored, "an unknown field of a stored record is ignored"),
    CHECK_CASE(task_clear_frees, "clearing a task frees its strings and zeroes it"),
    CHECK_CASE(owner_field,
               "the owner field of a stored record is read, and an empty, overlong or NUL-holding "
               "one is refused"),
    CHECK_CASE(consumer_names_unique,
               "two workers with one hostname and pid have distinct consumer names"))
