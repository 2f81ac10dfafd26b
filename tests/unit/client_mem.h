/* client_mem.h — a client's memory for session, uAPI and fuzz tests, in this process.
 *
 * The "client" (QEMU's part) is a memfd mapped shared at base. The client names its
 * memory by "user addresses": uaddr_base + offset. Unit tests use uaddr_base = base (the
 * client is this process); the fuzzer uses a fixed fake address, so that fuzzed
 * addresses mean the same in every run.
 *
 * client_mem_ops is the session's mem_ops over it (opaque = the client_mem): map gives the
 * session a second, independent mapping of the memfd (what vdpad gets through
 * /proc/<pid>/map_files), so the device can only reach what the session mapped, and an
 * unmapped range really is gone. It refuses, as guest_mem does:
 *   - ranges that are not page aligned, wrap, or leave the memfd: -EFAULT / -EINVAL;
 *   - ranges in the "unshareable" window (like QEMU's ROMs, or RAM without a shared
 *     backend): -EOPNOTSUPP.
 * It counts live mappings and bytes, so tests can prove nothing leaks.
 *
 * Threads: one test thread. Ownership: the client_mem owns its memfd and view; mappings
 * handed to the session are the session's until it unmaps them.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/session.h"

struct client_mem {
    int memfd;
    uint8_t *base;       /* our view of the whole memfd */
    uint64_t size;       /* bytes, a multiple of the page size */
    uint64_t uaddr_base; /* the client's address of base */
    /* uaddrs the map refuses as unshareable ([lo, hi); empty when lo == hi) */
    uint64_t unshared_lo, unshared_hi;
    /* bookkeeping of the session's mappings */
    uint64_t live_bytes;   /* mapped and not yet unmapped */
    uint64_t maps, unmaps; /* calls that succeeded */
};

/* size is rounded up to whole pages; uaddr_base 0 = base (identity). NULL on failure. */
struct client_mem *client_mem_new(uint64_t size, uint64_t uaddr_base);
void client_mem_free(struct client_mem *m);

/* The client address of offset off, and our pointer to it. */
uint64_t client_mem_uaddr(const struct client_mem *m, uint64_t off);
void *client_mem_ptr(const struct client_mem *m, uint64_t off);

extern const struct session_mem_ops client_mem_ops;

/* Open file descriptors of this process (for leak checks). */
unsigned count_open_fds(void);
