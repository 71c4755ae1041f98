/* test_event.c -- task change event payloads (common/event.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "event.h"

#define ID "s3-00112233445566778899aabbccddeeff"

/* A payload as the scripts' Lua snippet builds it for a finished task. */
static const char good[] = "35:" ID ",6:doc_id,5:doc_1,5:state,7:SUCCESS,8:attempts,1:1,"
                           "10:created_at,13:1700000000123,7:version,1:3,3:seq,2:17,"
                           "6:result,11:{\"a\":\"b,c\"},";

static void parse_whole_event(void) {
    docq_task t = {0};
    docq_error err = {0};
    CHECK_INT_EQ(docq_event_parse(good, strlen(good), &t, &err), DOCQ_OK);
    CHECK_STR_EQ(t.task_id, ID);
    CHECK_STR_EQ(t.doc_id, "doc_1");
    CHECK_INT_EQ(t.state, DOCQ_STATE_SUCCESS);
    CHECK_INT_EQ(t.attempts, 1);
    CHECK_INT_EQ(t.created_at_ms, 1700000000123LL);
    CHECK_INT_EQ(t.version, 3);
    CHECK_INT_EQ(t.seq, 17);
    CHECK_STR_EQ(t.result, "{\"a\":\"b,c\"}");
    CHECK_INT_EQ(t.queue_position, 0);
    docq_task_clear(&t);
}

static void values_are_binary_safe(void) {
    /* Colons, commas, digits and a NUL inside a value are just bytes. */
    static const char p[] = "35:" ID ",7:version,1:2,6:result,9:1:x,\0:2,,,5:state,7:STARTED,";
    docq_task t = {0};
    CHECK_INT_EQ(docq_event_parse(p, sizeof(p) - 1, &t, NULL), DOCQ_OK);
    CHECK_MEM_EQ(t.result, t.result_len, "1:x,\0:2,,", 9);
    CHECK_INT_EQ(t.state, DOCQ_STATE_STARTED);
    CHECK_INT_EQ(t.version, 2);
    docq_task_clear(&t);
}

static void task_id_read_alone(void) {
    const char *id = NULL;
    size_t n = 0;
    CHECK_INT_EQ(docq_event_task_id(good, strlen(good), &id, &n), DOCQ_OK);
    CHECK_MEM_EQ(id, n, ID, strlen(ID));
    /* Only the first netstring counts: garbage after it is not looked at. */
    CHECK_INT_EQ(docq_event_task_id("2:ab,garbage", 12, &id, &n), DOCQ_OK);
    CHECK_MEM_EQ(id, n, "ab", 2);
    CHECK_INT_EQ(docq_event_task_id("", 0, &id, &n), DOCQ_EINVAL);
    CHECK_INT_EQ(docq_event_task_id("3:ab,", 5, &id, &n), DOCQ_EINVAL);
}

static void malformed_events_refused(void) {
    static const struct {
        const char *p, *what;
    } bad[] = {
        {"", "an empty payload"},
        {"35:" ID, "an id without its comma"},
        {"35:" ID ";7:version,1:1,", "a wrong terminator"},
        {"035:" ID ",7:version,1:1,", "a length with a leading zero"},
        {"x:" ID ",7:version,1:1,", "a length that is not a number"},
        {":" ID ",7:version,1:1,", "no length at all"},
        {"35" ID ",7:version,1:1,", "a length without its colon"},
        {"99999999999:" ID ",", "a length of 11 digits"},
        {"4000000000:" ID ",", "a length past the end"},
        {"35:" ID ",7:version,", "a field without its value"},
        {"35:" ID ",7:version,1:1,5:sta", "a field cut short"},
        {"35:" ID ",7:version,1:1,x", "bytes after the last netstring"},
        {"3:abc,7:version,1:1,", "a task id docq could not have issued"},
        {"35:" ID ",7:version,2:-1,", "a negative version"},
        {"35:" ID ",7:version,1:1,5:state,4:DONE,", "an unknown state"},
        {"35:" ID ",5:state,7:PENDING,", "no version"},
        {"35:" ID ",", "nothing but the id"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        docq_task t = {0};
        docq_error err = {0};
        int rc = docq_event_parse(bad[i].p, strlen(bad[i].p), &t, &err);
        CHECK_MSG(rc == DOCQ_EINVAL, "%s gave %d", bad[i].what, rc);
        CHECK_MSG(err.msg[0] != '\0', "%s: no reason given", bad[i].what);
        CHECK_MSG(t.task_id[0] == '\0' && t.result == NULL, "%s left data in the task", bad[i].what);
    }
}

static void every_cut_is_refused(void) {
    /* A payload cut anywhere before its end never parses (nor crashes, nor
     * reads past the cut: run under valgrind). */
    size_t n = strlen(good);
    for (size_t cut = 0; cut < n; cut++) {
        char *copy = malloc(cut ? cut : 1);
        memcpy(copy, good, cut);
        docq_task t = {0};
        int rc = docq_event_parse(copy, cut, &t, NULL);
        /* Cuts that end right after a field's value leave a shorter but
         * well-formed event; every other cut is malformed. */
        if (rc == DOCQ_OK) {
            CHECK_MSG(copy[cut - 1] == ',', "cut at %zu parsed", cut);
            docq_task_clear(&t);
        } else {
            CHECK_MSG(rc == DOCQ_EINVAL, "cut at %zu gave %d", cut, rc);
        }
        free(copy);
    }
}

static void parse_replaces_previous(void) {
    docq_task t = {0};
    t.result = strdup("old");
    t.result_len = 3;
    t.queue_position = 9;
    static const char p[] = "35:" ID ",7:version,1:1,5:state,7:PENDING,";
    CHECK_INT_EQ(docq_event_parse(p, sizeof(p) - 1, &t, NULL), DOCQ_OK);
    CHECK(t.result == NULL); /* Freed by the clear (valgrind checks). */
    CHECK_INT_EQ(t.queue_position, 0);
    CHECK_INT_EQ(t.state, DOCQ_STATE_PENDING);
    docq_task_clear(&t);
}

CHECK_MAIN(
    CHECK_CASE(parse_whole_event,
               "an event payload parses into the task id and every field of the record"),
    CHECK_CASE(values_are_binary_safe,
               "event values holding colons, commas and NUL bytes are read whole"),
    CHECK_CASE(task_id_read_alone, "an event's task id is read without parsing the rest"),
    CHECK_CASE(malformed_events_refused,
               "a malformed event is refused with a reason and leaves the task empty"),
    CHECK_CASE(every_cut_is_refused,
               "an event cut short anywhere is refused unless the cut falls between whole fields"),
    CHECK_CASE(parse_replaces_previous, "parsing an event frees and replaces what the task held"))
