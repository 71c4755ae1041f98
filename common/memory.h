/* memory.h -- giving memory that was freed back to the operating system.
 *
 * After a wave of calls ends, the allocator keeps the pages it used: the
 * process's RSS stays at its peak although its heap in use is back where it
 * was. docq_memory_trim hands them back: glibc's malloc_trim, and in a build
 * with AddressSanitizer (DOCQ_SANITIZE) its allocator's purge, which also
 * empties its quarantine of freed blocks, so that memory measurements mean
 * the same in both builds. */
#ifndef DOCQ_MEMORY_H
#define DOCQ_MEMORY_H

/* Give freed memory back to the system now. Can take milliseconds on a
 * large heap: call it off the paths that serve calls. */
void docq_memory_trim(void);

#endif
