/* Print the Lua source of docq's submit script on stdout, so that bench/run
 * can load it into Redis and have redis-benchmark run the same Redis work a
 * SubmitDoc does (the ceiling docq's throughput is compared with). */
#include <stdio.h>

#include "store.h"

int main(void) {
    fputs(docq_store_submit_script(), stdout);
    return ferror(stdout) ? 1 : 0;
}
