/* dirty_log.h — the dirty page log, in vhost's layout.
 *
 * One bit per 4 KiB guest-physical page: page p is bit (p % 64) of 64-bit word p / 64,
 * little endian (the layout of QEMU's vhost log and the kernel's log_write). A writer
 * only ever sets bits; the log's reader (QEMU) collects and clears them.
 *
 * Two sinks behind one type:
 *   - local: the log is mapped in our memory (vhost-user LOG_SHMFD). Marking is an atomic
 *     OR straight into the log.
 *   - remote: the log lives in another process (QEMU's VHOST_SET_LOG_BASE address). Marks
 *     go into a pending bitmap here; dirty_log_flush() pushes them with
 *     process_vm_readv/writev, reading each touched word, ORing, and writing it back, in
 *     batches of adjacent words. The reader clears words with an atomic exchange; a bit it
 *     collects between our read and our write is written again, so it may be seen twice
 *     but is never lost. A flush that fails keeps the bits pending.
 *     See docs/adr/0002-dirty-log-remote-writes.md.
 *
 * Marks beyond the log's last word are dropped (never written), counted in
 * stats.out_of_range, and reported by a rate-limited warning.
 *
 * Ownership: a local log's words stay the caller's and must outlive the dirty_log. A remote
 * log owns its pending bitmap; the remote memory is QEMU's. When QEMU replaces its log (a new
 * VHOST_SET_LOG_BASE) it frees the old one, so the old remote log must never be flushed
 * again: create the new log, dirty_log_move_pending() from the old one, free the old one.
 *
 * Threads: dirty_log_mark() is lock-free, does not allocate (except the rate-limited
 * warning) and may be called from any thread. Call it after the guest-memory writes it
 * covers: it has release semantics, so a reader that sees the bit also sees the data.
 * flush, move_pending, stats and free are called by the log's owner; flush may run
 * concurrently with marks (concurrent flushes of one log are serialized internally).
 */
#pragma once

#include <glib.h>
#include <stdint.h>
#include <sys/types.h>

#define DIRTY_LOG_PAGE_SHIFT 12
#define DIRTY_LOG_PAGE_SIZE (1ull << DIRTY_LOG_PAGE_SHIFT)
/* bytes of guest memory covered by one log word */
#define DIRTY_LOG_WORD_SPAN (64ull * DIRTY_LOG_PAGE_SIZE)

struct dirty_log;
typedef struct dirty_log dirty_log; /* for g_autoptr */

struct dirty_log_stats {
    uint64_t pages_marked;    /* page marks requested (a page marked twice counts twice) */
    uint64_t out_of_range;    /* page marks beyond the log's size, dropped */
    uint64_t flushes;         /* successful flushes (remote) */
    uint64_t words_written;   /* log words written to the remote process */
    uint64_t words_unchanged; /* pending words not written: the remote word had the bits */
    uint64_t flush_errors;    /* failed flushes (remote); their bits went back to pending */
};

/* Number of 64-bit log words that cover guest-physical addresses [0, mem_end). */
uint64_t dirty_log_words_for(uint64_t mem_end);

/* A log of n_words words at words, in our memory. The memory stays the caller's. */
struct dirty_log *dirty_log_new_local(uint64_t *words, uint64_t n_words);

/* A log of n_words words at remote_addr in process pid. remote_addr must be 8-byte aligned
 * and n_words nonzero. Checks that the first and last word can be read in that process;
 * returns NULL with *error set if not (ESRCH: no such process, EFAULT: not mapped, EPERM:
 * not allowed to access it, ENOMEM: no memory for the pending bitmap). */
struct dirty_log *dirty_log_new_remote(pid_t pid, uint64_t remote_addr, uint64_t n_words,
                                       GError **error);

/* Frees the log and, for a remote log, the marks still pending (flush first). */
void dirty_log_free(struct dirty_log *log);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(dirty_log, dirty_log_free)

/* Marks every page touched by [gpa, gpa + len). len 0 marks nothing. */
void dirty_log_mark(struct dirty_log *log, uint64_t gpa, uint64_t len);

/* Pushes pending marks into the log (remote); a no-op returning 0 for a local log.
 * A flush that starts after a dirty_log_mark() returned delivers that mark (so: flush, then
 * answer GET_VRING_BASE). Returns 0 or a negative errno with *error saying which process,
 * address and errno (ESRCH when the process is gone). Whatever was not written stays
 * pending. */
int dirty_log_flush(struct dirty_log *log, GError **error);

/* Takes every mark pending in src (a remote log; a local log has none) and marks it in dst,
 * e.g. when QEMU moves its log to a new address. Marks beyond dst's size count as dst's
 * out_of_range. src and dst must differ. */
void dirty_log_move_pending(struct dirty_log *dst, struct dirty_log *src);

void dirty_log_get_stats(const struct dirty_log *log, struct dirty_log_stats *out);
