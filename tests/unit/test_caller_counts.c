/* test_caller_counts.c -- per-caller counts behind DOCQ_MAX_WATCHES_PER_CALLER
 * (server/caller_counts.c). */
#include <stdio.h>

#include "caller_counts.h"
#include "check.h"
#include "error.h"

static void count_stops_at_max(void) {
    caller_counts *t = caller_counts_create();
    caller_count *held[3], *extra = NULL;
    CHECK(t != NULL);
    for (int i = 0; i < 3; i++) CHECK_INT_EQ(caller_counts_acquire(t, "acme", 3, &held[i]), DOCQ_OK);
    CHECK_INT_EQ(caller_counts_get(t, "acme"), 3);
    CHECK_INT_EQ(caller_counts_acquire(t, "acme", 3, &extra), DOCQ_ELIMITED);
    CHECK(extra == NULL);
    /* Another caller has its own count. */
    CHECK_INT_EQ(caller_counts_acquire(t, "beta", 3, &extra), DOCQ_OK);
    CHECK_INT_EQ(caller_counts_get(t, "beta"), 1);
    /* Giving one back makes room for one. */
    caller_counts_release(t, held[0]);
    CHECK_INT_EQ(caller_counts_get(t, "acme"), 2);
    CHECK_INT_EQ(caller_counts_acquire(t, "acme", 3, &held[0]), DOCQ_OK);
    CHECK_INT_EQ(caller_counts_acquire(t, "acme", 3, &held[0]), DOCQ_ELIMITED);
    caller_counts_free(t);
}

static void zero_means_no_limit(void) {
    caller_counts *t = caller_counts_create();
    caller_count *c = NULL;
    for (int i = 0; i < 10000; i++) CHECK_INT_EQ(caller_counts_acquire(t, "10.0.0.1", 0, &c), DOCQ_OK);
    CHECK_INT_EQ(caller_counts_get(t, "10.0.0.1"), 10000);
    caller_counts_free(t);
}

static void emptied_counts_leave(void) {
    caller_counts *t = caller_counts_create();
    caller_count *c[5000];
    char id[32];
    /* Many callers (the table grows), each holding one, then none. */
    for (int i = 0; i < 5000; i++) {
        snprintf(id, sizeof(id), "caller-%d", i);
        CHECK_INT_EQ(caller_counts_acquire(t, id, 1, &c[i]), DOCQ_OK);
    }
    for (int i = 0; i < 5000; i++) {
        snprintf(id, sizeof(id), "caller-%d", i);
        CHECK_INT_EQ(caller_counts_get(t, id), 1);
        caller_counts_release(t, c[i]);
        CHECK_INT_EQ(caller_counts_get(t, id), 0);
    }
    caller_counts_release(t, NULL);
    /* Freed entries leave nothing behind: valgrind and ASan check it. */
    caller_counts_free(t);
}

CHECK_MAIN(
    CHECK_CASE(count_stops_at_max,
               "a caller's count stops at the maximum, other callers count apart, and a release "
               "makes room"),
    CHECK_CASE(zero_means_no_limit, "a maximum of 0 means no limit"),
    CHECK_CASE(emptied_counts_leave,
               "5000 callers' counts go away when each gives its last one back"))
