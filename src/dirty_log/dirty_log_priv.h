/* dirty_log_priv.h — the dirty log's insides, shared by dirty_log.c (the object, marking)
 * and remote_flush.c (pushing pending marks into another process). Not for other modules. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "dirty_log/dirty_log.h"

struct dirty_log_batch;

struct dirty_log {
    bool remote;
    uint64_t n_words;
    /* local: the log itself (the caller's memory). remote: the pending bitmap (ours), same
     * layout; marks OR bits in, flush takes words out with an atomic exchange. */
    uint64_t *words;

    /* remote only */
    pid_t pid;
    uint64_t remote_addr;
    /* one bit per pending word: set after a word goes from 0 to nonzero, cleared by the flush
     * just before it takes that word, so flush visits only words that have bits */
    uint64_t *summary;
    uint64_t n_summary;
    GMutex flush_lock;             /* serializes flush and move_pending; guards batch */
    struct dirty_log_batch *batch; /* flush scratch, allocated once */

    int64_t next_warn_us;          /* rate limit of the out-of-range warning (atomic) */
    struct dirty_log_stats stats;  /* every field updated atomically */
};

static inline void dirty_log_stat_add(uint64_t *counter, uint64_t n)
{
    __atomic_fetch_add(counter, n, __ATOMIC_RELAXED);
}

/* ORs mask into pending word w (w < n_words) and makes sure its summary bit is set, so a
 * flush that starts after this returns takes the bits.
 *
 * Setting the summary bit only when the word was empty is not enough: a second marker
 * could find the word non-empty while the first has not set the bit yet, return, and a
 * flush would miss its mark until later. Checking the bit instead is safe because all four
 * accesses are seq_cst: if our load still sees the bit, the flush that clears it comes
 * later in the total order, and so does its exchange of the word, which then holds our OR.
 * The load keeps the shared summary line read-mostly: the locked OR is rare. */
static inline void dirty_log_pending_or(struct dirty_log *log, uint64_t w, uint64_t mask)
{
    uint64_t *summary = &log->summary[w / 64];
    uint64_t flag = 1ull << (w % 64);

    __atomic_fetch_or(&log->words[w], mask, __ATOMIC_SEQ_CST);
    if (!(__atomic_load_n(summary, __ATOMIC_SEQ_CST) & flag))
        __atomic_fetch_or(summary, flag, __ATOMIC_SEQ_CST);
}

/* The flush scratch of a remote log; NULL when out of memory. */
struct dirty_log_batch *dirty_log_batch_new(void);
void dirty_log_batch_free(struct dirty_log_batch *batch);

/* The remote flush, called with flush_lock held. */
int dirty_log_flush_remote(struct dirty_log *log, GError **error);
