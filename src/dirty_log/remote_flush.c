/* remote_flush.c — pushes a remote log's pending marks into the other process.
 *
 * For each batch of pending words (taken with an atomic exchange, so marks racing with the
 * flush stay pending for the next one): read the remote words with process_vm_readv, OR our
 * bits in, and write back with process_vm_writev only the words that change. Adjacent words
 * travel as one iovec. Whatever could not be read or written goes back to pending.
 * Why this cannot lose a bit against QEMU's exchange-and-clear: docs/adr/0002. */
#include "config.h"

#include <inttypes.h>
#include <limits.h>
#include <sys/uio.h>

#include "dirty_log/dirty_log_priv.h"
#include "util/error.h"

/* words per process_vm_* call; a batch never has more runs than words, so this also bounds
 * the iovec count */
#define BATCH_WORDS 1024u
G_STATIC_ASSERT(BATCH_WORDS <= IOV_MAX);
G_STATIC_ASSERT(BATCH_WORDS >= 64);

struct dirty_log_batch {
    unsigned n;                   /* words gathered */
    uint64_t index[BATCH_WORDS];  /* word numbers, increasing */
    uint64_t bits[BATCH_WORDS];   /* our bits for each, taken from pending */
    uint64_t value[BATCH_WORDS];  /* the remote words as read, then the words to write */
    struct iovec remote[BATCH_WORDS];
};

struct dirty_log_batch *dirty_log_batch_new(void)
{
    return g_try_new0(struct dirty_log_batch, 1);
}

void dirty_log_batch_free(struct dirty_log_batch *batch)
{
    g_free(batch);
}

static uint64_t word_addr(const struct dirty_log *log, uint64_t w)
{
    return log->remote_addr + w * sizeof(uint64_t);
}

/* One remote iovec per run of adjacent words among index[0..n). Returns the run count. */
static unsigned build_runs(const struct dirty_log *log, const uint64_t *index, unsigned n,
                           struct iovec *iov)
{
    unsigned runs = 0;

    for (unsigned i = 0; i < n; i++) {
        if (runs && index[i] == index[i - 1] + 1) {
            iov[runs - 1].iov_len += sizeof(uint64_t);
            continue;
        }
        iov[runs].iov_base = (void *)(uintptr_t)word_addr(log, index[i]);
        iov[runs].iov_len = sizeof(uint64_t);
        runs++;
    }
    return runs;
}

/* Puts the bits of batch words [from, to) back into pending. */
static void restore(struct dirty_log *log, const struct dirty_log_batch *b, unsigned from,
                    unsigned to)
{
    for (unsigned i = from; i < to; i++)
        dirty_log_pending_or(log, b->index[i], b->bits[i]);
}

static int transfer_failed(struct dirty_log *log, const char *call, uint64_t addr,
                           unsigned done, unsigned n, int err, GError **error)
{
    return vdpad_fail(error, err,
                      "dirty log of pid %d at 0x%" PRIx64 ": %s at 0x%" PRIx64
                      " failed after %u of %u words: %s (errno %d)%s",
                      (int)log->pid, log->remote_addr, call, addr, done, n, g_strerror(err), err,
                      err == ESRCH ? "; the process is gone" : "");
}

/* Reads, ORs and writes back the batch's words; on failure the untransferred bits go back
 * to pending and the first error is returned. Empties the batch. */
static int push_batch(struct dirty_log *log, GError **error)
{
    struct dirty_log_batch *b = log->batch;
    unsigned n = b->n;
    int ret = 0;

    b->n = 0;
    if (n == 0)
        return 0;

    struct iovec local = { .iov_base = b->value, .iov_len = n * sizeof(uint64_t) };
    unsigned runs = build_runs(log, b->index, n, b->remote);
    ssize_t got = process_vm_readv(log->pid, &local, 1, b->remote, runs, 0);
    if (got < 0) {
        int err = errno;

        restore(log, b, 0, n);
        return transfer_failed(log, "process_vm_readv", word_addr(log, b->index[0]), 0, n,
                               err, error);
    }
    /* a partial read stops at an iovec the kernel could not access */
    unsigned n_read = (unsigned)((size_t)got / sizeof(uint64_t));
    if (n_read < n) {
        restore(log, b, n_read, n);
        ret = transfer_failed(log, "process_vm_readv", word_addr(log, b->index[n_read]),
                              n_read, n, EFAULT, error);
    }

    /* keep only the words that change; compacting in place is safe since m <= i */
    unsigned m = 0;
    for (unsigned i = 0; i < n_read; i++) {
        uint64_t want = b->value[i] | b->bits[i];

        if (want == b->value[i])
            continue;
        b->index[m] = b->index[i];
        b->bits[m] = b->bits[i];
        b->value[m] = want;
        m++;
    }
    dirty_log_stat_add(&log->stats.words_unchanged, n_read - m);
    if (m == 0)
        return ret;

    local.iov_len = m * sizeof(uint64_t);
    runs = build_runs(log, b->index, m, b->remote);
    ssize_t put = process_vm_writev(log->pid, &local, 1, b->remote, runs, 0);
    if (put < 0) {
        int err = errno;

        restore(log, b, 0, m);
        if (ret == 0)
            ret = transfer_failed(log, "process_vm_writev", word_addr(log, b->index[0]), 0,
                                  m, err, error);
        return ret;
    }
    /* a word cut in the middle counts as not written: writing it again only duplicates */
    unsigned n_written = (unsigned)((size_t)put / sizeof(uint64_t));
    dirty_log_stat_add(&log->stats.words_written, n_written);
    if (n_written < m) {
        restore(log, b, n_written, m);
        if (ret == 0)
            ret = transfer_failed(log, "process_vm_writev", word_addr(log, b->index[n_written]),
                                  n_written, m, EFAULT, error);
    }
    return ret;
}

int dirty_log_flush_remote(struct dirty_log *log, GError **error)
{
    struct dirty_log_batch *b = log->batch;

    b->n = 0;
    for (uint64_t s = 0; s < log->n_summary; s++) {
        /* plain check first: most summary words are empty */
        if (__atomic_load_n(&log->summary[s], __ATOMIC_RELAXED) == 0)
            continue;
        /* room for all 64 words of this summary word, so a failed push leaves every
         * summary word not yet taken untouched */
        if (b->n > BATCH_WORDS - 64) {
            int ret = push_batch(log, error);
            if (ret < 0)
                return ret;
        }
        /* clear the summary bits before taking the words: a mark landing after the take
         * finds its summary bit clear and sets it again (see dirty_log_pending_or) */
        uint64_t flagged = __atomic_exchange_n(&log->summary[s], 0, __ATOMIC_SEQ_CST);
        while (flagged) {
            uint64_t w = s * 64 + (uint64_t)__builtin_ctzll(flagged);
            uint64_t bits = __atomic_exchange_n(&log->words[w], 0, __ATOMIC_SEQ_CST);

            flagged &= flagged - 1;
            if (bits) {
                b->index[b->n] = w;
                b->bits[b->n] = bits;
                b->n++;
            }
        }
    }
    return push_batch(log, error);
}
