/* dirty_log.c — the dirty log object: creation, marking, moving pending marks, stats.
 * The remote flush (process_vm_readv/writev) is in remote_flush.c. */
#include "config.h"

#include <inttypes.h>
#include <sys/uio.h>

#include "dirty_log/dirty_log_priv.h"
#include "util/error.h"

/* a log bigger than this covers more than the 64-bit guest-physical space */
#define DIRTY_LOG_MAX_WORDS ((UINT64_MAX >> DIRTY_LOG_PAGE_SHIFT) / 64 + 1)
#define DIRTY_LOG_WARN_INTERVAL_US (10 * G_USEC_PER_SEC)

uint64_t dirty_log_words_for(uint64_t mem_end)
{
    return mem_end / DIRTY_LOG_WORD_SPAN + (mem_end % DIRTY_LOG_WORD_SPAN != 0);
}

struct dirty_log *dirty_log_new_local(uint64_t *words, uint64_t n_words)
{
    g_return_val_if_fail(words || n_words == 0, NULL);
    struct dirty_log *log = g_new0(struct dirty_log, 1);

    log->words = words;
    log->n_words = MIN(n_words, DIRTY_LOG_MAX_WORDS);
    g_mutex_init(&log->flush_lock);
    return log;
}

/* Reads the first and last word of the remote log, so that a wrong address or a dead peer
 * shows up now rather than at the first flush during migration. */
static int check_remote_readable(pid_t pid, uint64_t addr, uint64_t n_words, GError **error)
{
    uint64_t probe[2];
    uint64_t last_addr = addr + (n_words - 1) * sizeof(uint64_t);
    struct iovec local = { .iov_base = probe, .iov_len = sizeof(probe) };
    struct iovec remote[2] = {
        { .iov_base = (void *)(uintptr_t)addr, .iov_len = sizeof(uint64_t) },
        { .iov_base = (void *)(uintptr_t)last_addr, .iov_len = sizeof(uint64_t) },
    };
    unsigned n_remote = n_words > 1 ? 2 : 1;

    local.iov_len = n_remote * sizeof(uint64_t);
    ssize_t got = process_vm_readv(pid, &local, 1, remote, n_remote, 0);
    if (got < 0) {
        int err = errno;
        return vdpad_fail(error, err,
                          "dirty log of pid %d at 0x%" PRIx64 " (%" PRIu64 " words): "
                          "cannot read its first word: %s (errno %d)",
                          (int)pid, addr, n_words, g_strerror(err), err);
    }
    if ((size_t)got < local.iov_len)
        return vdpad_fail(error, EFAULT,
                          "dirty log of pid %d at 0x%" PRIx64 " (%" PRIu64 " words): "
                          "its last word at 0x%" PRIx64 " is not mapped",
                          (int)pid, addr, n_words, last_addr);
    return 0;
}

void dirty_log_free(struct dirty_log *log)
{
    if (!log)
        return;
    if (log->remote) {
        g_free(log->words);
        g_free(log->summary);
        dirty_log_batch_free(log->batch);
    }
    g_mutex_clear(&log->flush_lock);
    g_free(log);
}

struct dirty_log *dirty_log_new_remote(pid_t pid, uint64_t remote_addr, uint64_t n_words,
                                       GError **error)
{
    if (pid <= 0) {
        vdpad_fail(error, EINVAL, "dirty log: bad pid %d", (int)pid);
        return NULL;
    }
    if (remote_addr == 0 || remote_addr % sizeof(uint64_t) || n_words == 0 ||
        n_words > DIRTY_LOG_MAX_WORDS ||
        remote_addr + (n_words - 1) * sizeof(uint64_t) < remote_addr) {
        vdpad_fail(error, EINVAL,
                   "dirty log of pid %d: bad log 0x%" PRIx64 " of %" PRIu64 " words "
                   "(needs a nonzero 8-byte aligned address, 1 to %" PRIu64 " words, "
                   "no wrap-around)",
                   (int)pid, remote_addr, n_words, (uint64_t)DIRTY_LOG_MAX_WORDS);
        return NULL;
    }
    if (check_remote_readable(pid, remote_addr, n_words, error) < 0)
        return NULL;

    g_autoptr(dirty_log) log = g_new0(struct dirty_log, 1);
    g_mutex_init(&log->flush_lock);
    log->remote = true;
    log->pid = pid;
    log->remote_addr = remote_addr;
    log->n_words = n_words;
    log->n_summary = n_words / 64 + (n_words % 64 != 0);
    log->words = g_try_new0(uint64_t, n_words);
    log->summary = g_try_new0(uint64_t, log->n_summary);
    log->batch = dirty_log_batch_new();
    if (!log->words || !log->summary || !log->batch) {
        vdpad_fail(error, ENOMEM,
                   "dirty log of pid %d at 0x%" PRIx64 ": no memory for a pending bitmap "
                   "of %" PRIu64 " words",
                   (int)pid, remote_addr, n_words);
        return NULL;
    }
    return g_steal_pointer(&log);
}

static void warn_out_of_range(struct dirty_log *log, uint64_t gpa, uint64_t len)
{
    int64_t now = g_get_monotonic_time();
    int64_t next = __atomic_load_n(&log->next_warn_us, __ATOMIC_RELAXED);

    /* one thread wins the slot; the others stay quiet until the interval passes */
    if (now < next ||
        !__atomic_compare_exchange_n(&log->next_warn_us, &next,
                                     now + DIRTY_LOG_WARN_INTERVAL_US, false,
                                     __ATOMIC_RELAXED, __ATOMIC_RELAXED))
        return;
    uint64_t dropped = __atomic_load_n(&log->stats.out_of_range, __ATOMIC_RELAXED);
    if (log->remote)
        g_warning("dirty log of pid %d at 0x%" PRIx64 " (%" PRIu64 " words): "
                  "mark of gpa 0x%" PRIx64 " len 0x%" PRIx64 " reaches beyond the log; "
                  "%" PRIu64 " page marks dropped so far",
                  (int)log->pid, log->remote_addr, log->n_words, gpa, len, dropped);
    else
        g_warning("dirty log at %p (%" PRIu64 " words): mark of gpa 0x%" PRIx64
                  " len 0x%" PRIx64 " reaches beyond the log; %" PRIu64
                  " page marks dropped so far",
                  (void *)log->words, log->n_words, gpa, len, dropped);
}

/* ORs mask into word w (w < n_words) of the log's sink. The local OR is atomic because
 * QEMU exchanges words concurrently; it is never skipped when the bits look set already,
 * since that read could pass our earlier guest-memory writes (store-load reordering). */
static inline void set_word(struct dirty_log *log, uint64_t w, uint64_t mask)
{
    if (log->remote)
        dirty_log_pending_or(log, w, mask);
    else
        __atomic_fetch_or(&log->words[w], mask, __ATOMIC_RELEASE);
}

void dirty_log_mark(struct dirty_log *log, uint64_t gpa, uint64_t len)
{
    if (len == 0)
        return;
    uint64_t first = gpa >> DIRTY_LOG_PAGE_SHIFT;
    /* a range running past 2^64 is cut there: all of its pages are beyond any log */
    uint64_t last = len - 1 > UINT64_MAX - gpa ? UINT64_MAX >> DIRTY_LOG_PAGE_SHIFT
                                               : (gpa + len - 1) >> DIRTY_LOG_PAGE_SHIFT;
    uint64_t first_w = first / 64, last_w = last / 64;

    dirty_log_stat_add(&log->stats.pages_marked, last - first + 1);
    if (last_w >= log->n_words) {
        /* here n_words <= last_w < 2^46, so n_words * 64 does not overflow */
        uint64_t end_page = log->n_words * 64;
        uint64_t dropped = first >= end_page ? last - first + 1 : last - end_page + 1;

        dirty_log_stat_add(&log->stats.out_of_range, dropped);
        warn_out_of_range(log, gpa, len);
        if (first >= end_page)
            return;
        last = end_page - 1;
        last_w = log->n_words - 1;
    }
    for (uint64_t w = first_w; w <= last_w; w++) {
        uint64_t mask = ~0ull;

        if (w == first_w)
            mask &= ~0ull << (first % 64);
        if (w == last_w)
            mask &= ~0ull >> (63 - last % 64);
        set_word(log, w, mask);
    }
}

int dirty_log_flush(struct dirty_log *log, GError **error)
{
    if (!log->remote)
        return 0;
    g_mutex_lock(&log->flush_lock);
    int ret = dirty_log_flush_remote(log, error);
    g_mutex_unlock(&log->flush_lock);
    dirty_log_stat_add(ret == 0 ? &log->stats.flushes : &log->stats.flush_errors, 1);
    return ret;
}

void dirty_log_move_pending(struct dirty_log *dst, struct dirty_log *src)
{
    g_return_if_fail(dst != src);
    if (!src->remote)
        return;
    g_mutex_lock(&src->flush_lock);
    for (uint64_t s = 0; s < src->n_summary; s++) {
        if (__atomic_load_n(&src->summary[s], __ATOMIC_RELAXED) == 0)
            continue;
        uint64_t flagged = __atomic_exchange_n(&src->summary[s], 0, __ATOMIC_SEQ_CST);

        while (flagged) {
            uint64_t w = s * 64 + (uint64_t)__builtin_ctzll(flagged);
            uint64_t bits = __atomic_exchange_n(&src->words[w], 0, __ATOMIC_SEQ_CST);
            uint64_t n = (uint64_t)__builtin_popcountll(bits);

            flagged &= flagged - 1;
            if (!bits)
                continue;
            dirty_log_stat_add(&dst->stats.pages_marked, n);
            if (w < dst->n_words) {
                set_word(dst, w, bits);
            } else {
                dirty_log_stat_add(&dst->stats.out_of_range, n);
                warn_out_of_range(dst, w * DIRTY_LOG_WORD_SPAN, DIRTY_LOG_WORD_SPAN);
            }
        }
    }
    g_mutex_unlock(&src->flush_lock);
}

void dirty_log_get_stats(const struct dirty_log *log, struct dirty_log_stats *out)
{
    out->pages_marked = __atomic_load_n(&log->stats.pages_marked, __ATOMIC_RELAXED);
    out->out_of_range = __atomic_load_n(&log->stats.out_of_range, __ATOMIC_RELAXED);
    out->flushes = __atomic_load_n(&log->stats.flushes, __ATOMIC_RELAXED);
    out->words_written = __atomic_load_n(&log->stats.words_written, __ATOMIC_RELAXED);
    out->words_unchanged = __atomic_load_n(&log->stats.words_unchanged, __ATOMIC_RELAXED);
    out->flush_errors = __atomic_load_n(&log->stats.flush_errors, __ATOMIC_RELAXED);
}
