/* mem_guard.h — client memory that may vanish under us.
 *
 * Client memory is a shared mapping of the client's file (a memfd, a hugetlbfs file). The
 * client can shrink that file at any time (ftruncate); our pages past its new end then
 * raise SIGBUS when touched, and the device's worker would take the whole daemon down. The
 * guard keeps the ranges of client memory mapped in this process; a SIGBUS (BUS_ADRERR)
 * inside one of them gets a private zero page mapped over the faulting page, so the access
 * completes: memory the client took away reads as zeros, and writes to it are lost. The
 * device then sees an empty or garbage ring, which only breaks that client's queues. A
 * SIGBUS anywhere else goes to the handler that was installed before (or kills the
 * process, as without the guard).
 *
 * Threads: mem_guard_add and mem_guard_remove are called from the control thread only (the
 * session's); the signal handler runs on whichever thread faults and reads the ranges
 * lock-free. mem_guard_add installs the handler if it is not installed (again); the
 * handler found there becomes the fallback.
 * Ownership: the guard maps nothing except the replacement pages, which go away with the
 * range's munmap.
 */
#pragma once

#include <stdint.h>

/* [start, start + size) is client memory, just mapped. */
void mem_guard_add(void *start, uint64_t size);
/* [start, start + size) of guarded memory is about to be unmapped (it may be part of a
 * range added in one piece; the range is forgotten when all of it was removed). */
void mem_guard_remove(void *start, uint64_t size);
/* Pages replaced with zero pages since the process started. */
uint64_t mem_guard_pages_replaced(void);
/* Ranges guarded now (for leak checks in tests). */
unsigned mem_guard_ranges(void);
