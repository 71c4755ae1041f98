/* memory.c -- memory trims, in plain and sanitizer builds. See memory.h. */
#include <malloc.h>

#include "memory.h"

#if defined(__SANITIZE_ADDRESS__)
#define DOCQ_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define DOCQ_ASAN 1
#endif
#endif

#ifdef DOCQ_ASAN
/* AddressSanitizer's own allocator (sanitizer/allocator_interface.h, which
 * gcc 12 does not ship): releases free memory and the quarantine. */
void __sanitizer_purge_allocator(void);
#endif

void docq_memory_trim(void) {
#ifdef DOCQ_ASAN
    __sanitizer_purge_allocator();
#endif
#ifdef __GLIBC__
    malloc_trim(0);
#endif
}
