/* Unit tests: the dirty page log (local and remote sinks).
 *
 * The "remote" process is usually this one (process_vm_writev to our own pid into a plain
 * buffer), a forked child where the test needs a separate address space or a dead peer.
 * Env: DIRTY_LOG_STRESS_MS sets how long each concurrency test runs (default 1000). */
#include "config.h"

#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "dirty_log/dirty_log.h"
#include "util/error.h"

#define PAGE DIRTY_LOG_PAGE_SIZE
#define SPAN DIRTY_LOG_WORD_SPAN

/* ---- helpers ------------------------------------------------------------------------ */

static uint64_t xorshift(uint64_t *s)
{
    uint64_t x = *s;

    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

/* The reference: sets, page by page, the bit of every page touched by [gpa, gpa + len)
 * that lies inside n_words words. Returns the number of pages left out. */
static uint64_t ref_mark(uint64_t *ref, uint64_t n_words, uint64_t gpa, uint64_t len)
{
    if (len == 0)
        return 0;
    unsigned __int128 end = (unsigned __int128)gpa + len; /* exclusive, may be 2^64 or more */
    if (end > (unsigned __int128)1 << 64)
        end = (unsigned __int128)1 << 64;
    uint64_t first = gpa / PAGE;
    uint64_t last = (uint64_t)((end - 1) / PAGE);
    uint64_t dropped = 0;

    for (uint64_t p = first; p <= last; p++) {
        if (p / 64 >= n_words) {
            dropped += last - p + 1;
            break;
        }
        ref[p / 64] |= 1ull << (p % 64);
    }
    return dropped;
}

static void assert_words_equal(const uint64_t *got, const uint64_t *want, uint64_t n)
{
    for (uint64_t w = 0; w < n; w++) {
        if (got[w] != want[w])
            fail_msg("word %" PRIu64 ": got 0x%016" PRIx64 " want 0x%016" PRIx64, w, got[w],
                     want[w]);
    }
}

static struct dirty_log *new_self_remote(uint64_t *buf, uint64_t n_words)
{
    g_autoptr(GError) err = NULL;
    struct dirty_log *log = dirty_log_new_remote(getpid(), (uintptr_t)buf, n_words, &err);

    if (!log)
        fail_msg("remote log on self: %s", err->message);
    return log;
}

static void flush_ok(struct dirty_log *log)
{
    g_autoptr(GError) err = NULL;
    int ret = dirty_log_flush(log, &err);

    if (ret != 0)
        fail_msg("flush: %d %s", ret, err ? err->message : "(no message)");
}

static double now_s(void)
{
    return (double)g_get_monotonic_time() / G_USEC_PER_SEC;
}

/* The tricky ranges first, then random ones; all inside 16 words. */
#define LAYOUT_WORDS 16
static void layout_case(unsigned i, uint64_t *seed, uint64_t *gpa, uint64_t *len)
{
    static const uint64_t fixed[][2] = {
        { 0, 1 },                      /* first byte of page 0 */
        { PAGE - 1, 1 },               /* last byte of page 0 */
        { PAGE - 1, 2 },               /* straddles pages 0 and 1 */
        { PAGE, PAGE },                /* exactly page 1, ends on a page boundary */
        { 3 * PAGE, 2 * PAGE },        /* pages 3-4, ends on a boundary */
        { 3 * PAGE + 1, 2 * PAGE },    /* pages 3-5 */
        { 0, SPAN },                   /* exactly word 0 */
        { 63 * PAGE, 2 * PAGE },       /* last page of word 0, first of word 1 */
        { 63 * PAGE + 4095, 2 },       /* two bytes across the word boundary */
        { 10 * PAGE, 200 * PAGE },     /* words 0-3, partial at both ends */
        { SPAN, 3 * SPAN },            /* whole words 1-3 */
        { 5 * PAGE, 0 },               /* len 0: nothing */
        { LAYOUT_WORDS * SPAN - 1, 1 },/* the very last page */
    };
    if (i < G_N_ELEMENTS(fixed)) {
        *gpa = fixed[i][0];
        *len = fixed[i][1];
        return;
    }
    *gpa = xorshift(seed) % (LAYOUT_WORDS * SPAN);
    uint64_t room = LAYOUT_WORDS * SPAN - *gpa;
    switch (xorshift(seed) % 3) {
    case 0: *len = xorshift(seed) % (2 * PAGE); break;
    case 1: *len = xorshift(seed) % (3 * SPAN); break;
    default: *len = xorshift(seed) % (room + 1); break;
    }
    *len = MIN(*len, room);
}

/* ---- layout ------------------------------------------------------------------------- */

static void words_for_rounds_up_to_whole_words(void **state)
{
    assert_int_equal(dirty_log_words_for(0), 0);
    assert_int_equal(dirty_log_words_for(1), 1);
    assert_int_equal(dirty_log_words_for(SPAN - 1), 1);
    assert_int_equal(dirty_log_words_for(SPAN), 1);
    assert_int_equal(dirty_log_words_for(SPAN + 1), 2);
    assert_int_equal(dirty_log_words_for(16ull << 30), 65536);
    /* the whole 64-bit space, without overflowing */
    assert_int_equal(dirty_log_words_for(UINT64_MAX), 1ull << 46);
}

static void local_marks_set_exactly_the_reference_bits(void **state)
{
    uint64_t seed = 0x9e3779b97f4a7c15ull;

    for (unsigned i = 0; i < 2000; i++) {
        uint64_t log_words[LAYOUT_WORDS] = { 0 }, ref[LAYOUT_WORDS] = { 0 };
        uint64_t gpa, len;
        g_autoptr(dirty_log) log = dirty_log_new_local(log_words, LAYOUT_WORDS);

        layout_case(i, &seed, &gpa, &len);
        dirty_log_mark(log, gpa, len);
        assert_int_equal(ref_mark(ref, LAYOUT_WORDS, gpa, len), 0);
        assert_words_equal(log_words, ref, LAYOUT_WORDS);

        struct dirty_log_stats st;
        dirty_log_get_stats(log, &st);
        uint64_t pages = 0;
        for (unsigned w = 0; w < LAYOUT_WORDS; w++)
            pages += (uint64_t)__builtin_popcountll(ref[w]);
        assert_int_equal(st.pages_marked, pages);
        assert_int_equal(st.out_of_range, 0);
    }
}

static void local_marks_accumulate_without_touching_other_bits(void **state)
{
    uint64_t seed = 42, log_words[LAYOUT_WORDS] = { 0 }, ref[LAYOUT_WORDS] = { 0 };
    g_autoptr(dirty_log) log = dirty_log_new_local(log_words, LAYOUT_WORDS);

    for (unsigned i = 0; i < 300; i++) {
        uint64_t gpa, len;

        layout_case(100 + i, &seed, &gpa, &len);
        len %= 3 * PAGE; /* small ranges, so the log does not fill up at once */
        dirty_log_mark(log, gpa, len);
        ref_mark(ref, LAYOUT_WORDS, gpa, len);
        assert_words_equal(log_words, ref, LAYOUT_WORDS);
    }
    /* flushing a local log is a no-op */
    assert_int_equal(dirty_log_flush(log, NULL), 0);
    assert_words_equal(log_words, ref, LAYOUT_WORDS);
}

static void remote_marks_reach_the_log_only_on_flush(void **state)
{
    uint64_t seed = 7;

    for (unsigned i = 0; i < 500; i++) {
        uint64_t buf[LAYOUT_WORDS] = { 0 }, ref[LAYOUT_WORDS] = { 0 }, zero[LAYOUT_WORDS] = { 0 };
        uint64_t gpa, len;
        g_autoptr(dirty_log) log = new_self_remote(buf, LAYOUT_WORDS);

        layout_case(i, &seed, &gpa, &len);
        dirty_log_mark(log, gpa, len);
        ref_mark(ref, LAYOUT_WORDS, gpa, len);
        assert_words_equal(buf, zero, LAYOUT_WORDS);
        flush_ok(log);
        assert_words_equal(buf, ref, LAYOUT_WORDS);

        struct dirty_log_stats st;
        dirty_log_get_stats(log, &st);
        uint64_t nonzero = 0;
        for (unsigned w = 0; w < LAYOUT_WORDS; w++)
            nonzero += ref[w] != 0;
        assert_int_equal(st.words_written, nonzero);
        assert_int_equal(st.flushes, 1);
        /* nothing pending any more: a second flush writes nothing */
        flush_ok(log);
        dirty_log_get_stats(log, &st);
        assert_int_equal(st.words_written, nonzero);
        assert_int_equal(st.flushes, 2);
    }
}

static void remote_flush_skips_words_that_already_hold_the_bits(void **state)
{
    uint64_t buf[4] = { ~0ull, 0x0f, 0, 0 };
    g_autoptr(dirty_log) log = new_self_remote(buf, 4);
    struct dirty_log_stats st;

    dirty_log_mark(log, 0, SPAN);           /* word 0: all bits, already there */
    dirty_log_mark(log, SPAN + PAGE, PAGE); /* word 1 bit 1: already there */
    flush_ok(log);
    dirty_log_get_stats(log, &st);
    assert_int_equal(st.words_written, 0);
    assert_int_equal(st.words_unchanged, 2);
    assert_int_equal(buf[0], ~0ull);
    assert_int_equal(buf[1], 0x0f);

    dirty_log_mark(log, SPAN + 5 * PAGE, 1); /* word 1 bit 5: new */
    flush_ok(log);
    dirty_log_get_stats(log, &st);
    assert_int_equal(st.words_written, 1);
    assert_int_equal(buf[1], 0x2f);
}

/* 16 GiB of guest in 64 Ki words: whole-word masks, not page loops; and the flush batches. */
static void big_ranges_set_whole_words_and_flush_in_batches(void **state)
{
    const uint64_t n = dirty_log_words_for(16ull << 30);
    g_autofree uint64_t *words = g_new0(uint64_t, n);
    g_autofree uint64_t *buf = g_new0(uint64_t, n);
    g_autoptr(dirty_log) local = dirty_log_new_local(words, n);
    g_autoptr(dirty_log) remote = new_self_remote(buf, n);
    struct dirty_log_stats st;

    double t0 = now_s();
    dirty_log_mark(local, 0, 16ull << 30);
    double t_local = now_s() - t0;
    for (uint64_t w = 0; w < n; w++)
        assert_int_equal(words[w], ~0ull);

    /* 1 GiB from the middle of page 3: partial first word, whole words, one last page */
    memset(words, 0, n * sizeof(uint64_t));
    dirty_log_mark(local, 3 * PAGE + 100, 1ull << 30);
    assert_int_equal(words[0], ~0ull << 3);
    for (uint64_t w = 1; w < 4096; w++)
        assert_int_equal(words[w], ~0ull);
    assert_int_equal(words[4096], 0xf); /* pages 262144..262147: the range ends inside page 3+2^18 */
    assert_int_equal(words[4097], 0);

    t0 = now_s();
    dirty_log_mark(remote, 0, 16ull << 30);
    flush_ok(remote);
    double t_remote = now_s() - t0;
    for (uint64_t w = 0; w < n; w++)
        assert_int_equal(buf[w], ~0ull);
    dirty_log_get_stats(remote, &st);
    assert_int_equal(st.words_written, n);
    assert_int_equal(st.pages_marked, n * 64);

    /* every other word: more runs than IOV_MAX; each lands where it belongs */
    memset(buf, 0, n * sizeof(uint64_t));
    g_autofree uint64_t *ref = g_new0(uint64_t, n);
    for (uint64_t w = 0; w < n; w += 2) {
        uint64_t gpa = w * SPAN + (w % 64) * PAGE;

        dirty_log_mark(remote, gpa, PAGE);
        ref_mark(ref, n, gpa, PAGE);
    }
    t0 = now_s();
    flush_ok(remote);
    double t_sparse = now_s() - t0;
    assert_words_equal(buf, ref, n);
    print_message("    16 GiB log (%" PRIu64 " words): local mark of all %.3f ms, remote mark+flush "
                  "of all %.3f ms, flush of %" PRIu64 " scattered words %.3f ms\n",
                  n, t_local * 1e3, t_remote * 1e3, n / 2, t_sparse * 1e3);
}

/* ---- out of range ------------------------------------------------------------------- */

#define OOR_WORDS 8
#define GUARD_WORDS 8

/* marks that cross or lie beyond the end; returns the page marks that must be dropped */
static uint64_t mark_out_of_range(struct dirty_log *log, uint64_t *ref)
{
    static const uint64_t cases[][2] = {
        { OOR_WORDS * SPAN - PAGE, 3 * PAGE },   /* last page in, 2 out */
        { OOR_WORDS * SPAN, 1 },                 /* first page after the log */
        { (OOR_WORDS + 3) * SPAN + 17, 5 * SPAN },
        { UINT64_MAX - 100, 1000 },              /* runs past 2^64 */
        { 0, UINT64_MAX },                       /* everything */
    };
    uint64_t dropped = 0;

    for (unsigned i = 0; i < G_N_ELEMENTS(cases); i++) {
        dirty_log_mark(log, cases[i][0], cases[i][1]);
        dropped += ref_mark(ref, OOR_WORDS, cases[i][0], cases[i][1]);
    }
    return dropped;
}

static void check_out_of_range(struct dirty_log *log, const uint64_t *buf, const uint64_t *ref,
                               uint64_t dropped)
{
    struct dirty_log_stats st;

    assert_words_equal(buf, ref, OOR_WORDS);
    for (unsigned g = 0; g < GUARD_WORDS; g++)
        assert_int_equal(buf[OOR_WORDS + g], 0);
    dirty_log_get_stats(log, &st);
    assert_int_equal(st.out_of_range, dropped);
    /* (0, UINT64_MAX) alone asks for 2^52 pages */
    assert_true(st.pages_marked > (1ull << 52));
}

static void out_of_range_marks_are_counted_and_not_written_local(void **state)
{
    uint64_t buf[OOR_WORDS + GUARD_WORDS] = { 0 }, ref[OOR_WORDS] = { 0 };
    g_autoptr(dirty_log) log = dirty_log_new_local(buf, OOR_WORDS);

    uint64_t dropped = mark_out_of_range(log, ref);
    assert_int_equal(dropped, 2 + 1 + (5 * 64 + 1) + 1 + ((1ull << 52) - OOR_WORDS * 64));
    check_out_of_range(log, buf, ref, dropped);

    /* a log of no words drops everything */
    g_autoptr(dirty_log) empty = dirty_log_new_local(NULL, 0);
    struct dirty_log_stats st;
    dirty_log_mark(empty, 0, 2 * PAGE);
    dirty_log_get_stats(empty, &st);
    assert_int_equal(st.out_of_range, 2);
}

static void out_of_range_marks_are_counted_and_not_written_remote(void **state)
{
    uint64_t buf[OOR_WORDS + GUARD_WORDS] = { 0 }, ref[OOR_WORDS] = { 0 };
    g_autoptr(dirty_log) log = new_self_remote(buf, OOR_WORDS);

    uint64_t dropped = mark_out_of_range(log, ref);
    flush_ok(log);
    check_out_of_range(log, buf, ref, dropped);
}

/* ---- remote errors ------------------------------------------------------------------ */

/* A child that maps a log buffer of n words (plus guards), sends its address, and serves
 * commands until told to quit:
 *   'v' round: compares its words with the reference for pattern `round`, reports the
 *              number of mismatching words (guards included), then collects-and-clears
 *              every word like QEMU's sync
 *   'q': exits 0 */
struct child {
    pid_t pid;
    int cmd;      /* we write commands */
    int rep;      /* we read replies */
    uint64_t addr;
};

#define PATTERN_WORDS 1024
#define PATTERN_MARKS 400

static void pattern_range(unsigned round, unsigned i, uint64_t *gpa, uint64_t *len)
{
    uint64_t seed = 0x1234567ull * (round + 1) + i * 0x9e3779b97f4a7c15ull + 1;

    xorshift(&seed);
    *gpa = xorshift(&seed) % (PATTERN_WORDS * SPAN);
    *len = xorshift(&seed) % (i % 7 == 0 ? 4 * SPAN : 3 * PAGE);
    *len = MIN(*len, PATTERN_WORDS * SPAN - *gpa);
}

static void pattern_ref(unsigned round, uint64_t *ref)
{
    memset(ref, 0, PATTERN_WORDS * sizeof(uint64_t));
    for (unsigned i = 0; i < PATTERN_MARKS; i++) {
        uint64_t gpa, len;

        pattern_range(round, i, &gpa, &len);
        ref_mark(ref, PATTERN_WORDS, gpa, len);
    }
}

static void pattern_mark(unsigned round, struct dirty_log *log)
{
    for (unsigned i = 0; i < PATTERN_MARKS; i++) {
        uint64_t gpa, len;

        pattern_range(round, i, &gpa, &len);
        dirty_log_mark(log, gpa, len);
    }
}

static __attribute__((noreturn)) void child_main(int cmd, int rep)
{
    size_t bytes = (PATTERN_WORDS + GUARD_WORDS) * sizeof(uint64_t);
    uint64_t *buf = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    static uint64_t ref[PATTERN_WORDS];
    uint64_t addr = (uintptr_t)buf;

    if (buf == MAP_FAILED || write(rep, &addr, sizeof(addr)) != sizeof(addr))
        _exit(2);
    for (;;) {
        unsigned char c[2];

        if (read(cmd, c, 1) != 1)
            _exit(3); /* the parent is gone */
        if (c[0] == 'q')
            _exit(0);
        if (c[0] != 'v' || read(cmd, c + 1, 1) != 1)
            _exit(4);
        pattern_ref(c[1], ref);
        uint64_t bad = 0;
        for (unsigned w = 0; w < PATTERN_WORDS + GUARD_WORDS; w++) {
            uint64_t want = w < PATTERN_WORDS ? ref[w] : 0;

            bad += __atomic_exchange_n(&buf[w], 0, __ATOMIC_ACQ_REL) != want;
        }
        if (write(rep, &bad, sizeof(bad)) != sizeof(bad))
            _exit(5);
    }
}

static void child_start(struct child *c)
{
    int to_child[2], from_child[2];

    assert_int_equal(pipe2(to_child, O_CLOEXEC), 0);
    assert_int_equal(pipe2(from_child, O_CLOEXEC), 0);
    c->pid = fork();
    assert_true(c->pid >= 0);
    if (c->pid == 0) {
        close(to_child[1]);
        close(from_child[0]);
        child_main(to_child[0], from_child[1]);
    }
    close(to_child[0]);
    close(from_child[1]);
    c->cmd = to_child[1];
    c->rep = from_child[0];
    assert_int_equal(read(c->rep, &c->addr, sizeof(c->addr)), sizeof(c->addr));
}

static uint64_t child_verify(struct child *c, unsigned round)
{
    unsigned char msg[2] = { 'v', (unsigned char)round };
    uint64_t bad;

    assert_int_equal(write(c->cmd, msg, 2), 2);
    assert_int_equal(read(c->rep, &bad, sizeof(bad)), sizeof(bad));
    return bad;
}

/* Tells the child to quit and reaps it; returns its exit status. */
static int child_quit(struct child *c)
{
    int status;

    assert_int_equal(write(c->cmd, "q", 1), 1);
    assert_int_equal(waitpid(c->pid, &status, 0), c->pid);
    close(c->cmd);
    close(c->rep);
    assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

static void forked_child_receives_exactly_the_marked_bits(void **state)
{
    struct child c;
    g_autoptr(GError) err = NULL;

    child_start(&c);
    g_autoptr(dirty_log) log = dirty_log_new_remote(c.pid, c.addr, PATTERN_WORDS, &err);
    assert_non_null(log);

    uint64_t written = 0;
    for (unsigned round = 0; round < 3; round++) {
        g_autofree uint64_t *ref = g_new0(uint64_t, PATTERN_WORDS);
        struct dirty_log_stats st;

        pattern_mark(round, log);
        flush_ok(log);
        /* the child checks its copy against the same pattern, then clears it */
        assert_int_equal(child_verify(&c, round), 0);
        pattern_ref(round, ref);
        for (unsigned w = 0; w < PATTERN_WORDS; w++)
            written += ref[w] != 0;
        dirty_log_get_stats(log, &st);
        assert_int_equal(st.words_written, written);
    }
    assert_int_equal(child_quit(&c), 0);
}

static void flush_to_an_exited_process_fails_and_keeps_the_bits(void **state)
{
    struct child c;
    g_autoptr(GError) err = NULL;
    struct dirty_log_stats st;

    child_start(&c);
    g_autoptr(dirty_log) log = dirty_log_new_remote(c.pid, c.addr, PATTERN_WORDS, &err);
    assert_non_null(log);
    assert_int_equal(child_quit(&c), 0);

    pattern_mark(1, log);
    assert_int_equal(dirty_log_flush(log, &err), -ESRCH);
    g_autofree char *pid_text = g_strdup_printf("pid %d", (int)c.pid);
    g_autofree char *addr_text = g_strdup_printf("0x%" PRIx64, c.addr);
    assert_non_null(strstr(err->message, pid_text));
    assert_non_null(strstr(err->message, addr_text));
    assert_non_null(strstr(err->message, "errno 3"));
    assert_int_equal(err->code, ESRCH);
    g_clear_error(&err);
    /* still there: the next flush fails the same way */
    assert_int_equal(dirty_log_flush(log, &err), -ESRCH);
    g_clear_error(&err);
    dirty_log_get_stats(log, &st);
    assert_int_equal(st.flush_errors, 2);
    assert_int_equal(st.flushes, 0);
    assert_int_equal(st.words_written, 0);

    /* the kept bits reach a live log: move them to a new remote log and flush it */
    g_autofree uint64_t *buf = g_new0(uint64_t, PATTERN_WORDS);
    g_autofree uint64_t *ref = g_new0(uint64_t, PATTERN_WORDS);
    g_autoptr(dirty_log) live = new_self_remote(buf, PATTERN_WORDS);
    dirty_log_move_pending(live, log);
    flush_ok(live);
    pattern_ref(1, ref);
    assert_words_equal(buf, ref, PATTERN_WORDS);
    /* nothing is left in the dead log, so its flush has nothing to fail on */
    assert_int_equal(dirty_log_flush(log, NULL), 0);
}

static void flush_stops_at_an_unmapped_word_and_keeps_the_rest(void **state)
{
    const size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    const uint64_t per_page = pg / sizeof(uint64_t);
    uint8_t *map = mmap(NULL, 3 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    g_autoptr(GError) err = NULL;

    assert_true(map != MAP_FAILED);
    assert_int_equal(munmap(map + pg, pg), 0); /* a hole in the middle */
    uint64_t *words = (uint64_t *)(void *)map;
    uint64_t hole_word = per_page + 5, after_word = 2 * per_page + 1;
    g_autoptr(dirty_log) log = new_self_remote(words, 3 * per_page);

    dirty_log_mark(log, 7 * PAGE, 1);                       /* word 0: readable */
    dirty_log_mark(log, hole_word * SPAN + 2 * PAGE, 1);    /* in the hole */
    dirty_log_mark(log, after_word * SPAN + 9 * PAGE, 1);   /* after the hole */
    assert_int_equal(dirty_log_flush(log, &err), -EFAULT);
    g_autofree char *hole_text = g_strdup_printf("0x%" PRIxPTR,
                                                 (uintptr_t)(words + hole_word));
    assert_non_null(strstr(err->message, hole_text));
    /* the word before the hole went through */
    assert_int_equal(words[0], 1ull << 7);
    assert_int_equal(words[after_word], 0);

    /* the other two are still pending */
    uint64_t local_words[3 * 512] = { 0 };
    g_assert(per_page <= 512);
    g_autoptr(dirty_log) local = dirty_log_new_local(local_words, 3 * per_page);
    dirty_log_move_pending(local, log);
    for (uint64_t w = 0; w < 3 * per_page; w++) {
        uint64_t want = w == hole_word ? 1ull << 2 : w == after_word ? 1ull << 9 : 0;

        assert_int_equal(local_words[w], want);
    }
    munmap(map, pg);
    munmap(map + 2 * pg, pg);
}

static void new_remote_rejects_logs_it_cannot_read(void **state)
{
    const size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    uint64_t buf[4] = { 0 };
    g_autoptr(GError) err = NULL;

    assert_null(dirty_log_new_remote(0, (uintptr_t)buf, 4, &err));
    assert_int_equal(err->code, EINVAL);
    g_clear_error(&err);
    assert_null(dirty_log_new_remote(getpid(), (uintptr_t)buf + 1, 4, &err));
    assert_int_equal(err->code, EINVAL);
    g_clear_error(&err);
    assert_null(dirty_log_new_remote(getpid(), (uintptr_t)buf, 0, &err));
    assert_int_equal(err->code, EINVAL);
    g_clear_error(&err);
    assert_null(dirty_log_new_remote(getpid(), UINT64_MAX - 7, 2, &err)); /* wraps */
    assert_int_equal(err->code, EINVAL);
    g_clear_error(&err);

    /* a mapped page between two holes */
    uint8_t *map = mmap(NULL, 3 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(map != MAP_FAILED);
    assert_int_equal(munmap(map, pg), 0);
    assert_int_equal(munmap(map + 2 * pg, pg), 0);

    /* first word unmapped */
    assert_null(dirty_log_new_remote(getpid(), (uintptr_t)map, 4, &err));
    assert_int_equal(err->code, EFAULT);
    g_autofree char *addr_text = g_strdup_printf("0x%" PRIxPTR, (uintptr_t)map);
    assert_non_null(strstr(err->message, addr_text));
    g_clear_error(&err);

    /* last word unmapped: the log runs one word past the mapped page */
    uint64_t n = pg / sizeof(uint64_t) + 1;
    assert_null(dirty_log_new_remote(getpid(), (uintptr_t)(map + pg), n, &err));
    assert_int_equal(err->code, EFAULT);
    assert_non_null(strstr(err->message, "last word"));
    g_clear_error(&err);
    g_autoptr(dirty_log) fits = dirty_log_new_remote(getpid(), (uintptr_t)(map + pg), n - 1, &err);
    assert_non_null(fits);
    munmap(map + pg, pg);

    /* a process that is gone */
    struct child c;
    child_start(&c);
    assert_int_equal(child_quit(&c), 0);
    assert_null(dirty_log_new_remote(c.pid, c.addr, PATTERN_WORDS, &err));
    assert_int_equal(err->code, ESRCH);
    g_autofree char *pid_text = g_strdup_printf("pid %d", (int)c.pid);
    assert_non_null(strstr(err->message, pid_text));
}

static void move_pending_carries_marks_to_a_new_log(void **state)
{
    uint64_t old_buf[8] = { 0 }, new_buf[4] = { 0 };
    g_autoptr(dirty_log) old_log = new_self_remote(old_buf, 8);
    g_autoptr(dirty_log) new_log = new_self_remote(new_buf, 4);
    struct dirty_log_stats st;

    dirty_log_mark(old_log, 0, PAGE);              /* word 0 bit 0 */
    dirty_log_mark(old_log, 3 * SPAN + PAGE, PAGE); /* word 3 bit 1 */
    dirty_log_mark(old_log, 6 * SPAN, 2 * PAGE);   /* word 6: beyond the new log */
    dirty_log_move_pending(new_log, old_log);
    flush_ok(old_log);
    assert_int_equal(old_buf[0] | old_buf[3] | old_buf[6], 0); /* nothing left behind */
    flush_ok(new_log);
    assert_int_equal(new_buf[0], 1);
    assert_int_equal(new_buf[3], 2);
    dirty_log_get_stats(new_log, &st);
    assert_int_equal(st.pages_marked, 4);
    assert_int_equal(st.out_of_range, 2);
}

/* ---- THE property: concurrent marks are never lost ----------------------------------
 *
 * Two marker threads mark random ranges of a small log (so they collide on words all the
 * time); a collector thread reads-and-clears words with an atomic exchange, as QEMU's sync
 * does; for a remote log a flusher thread flushes in a loop. A global clock orders events:
 *   marker:    m = ++tick; dirty_log_mark(); d = ++tick; rec[page] = (m, d)
 *   flusher:   f = tick; dirty_log_flush(); flushed_upto = f
 *   collector: u = tick (local) or flushed_upto (remote); x = exchange(word, 0);
 *              t = tick; last_seen[page] = t for each page in x
 * A mark with d <= u was in the log word before the exchange (local: the OR came before u
 * was read; remote: a flush that started after the mark returned has completed, and such
 * a flush delivers the mark — the contract). If no exchange since m saw its page
 * (last_seen < m), that exchange must see it: otherwise a bit was lost or delayed. This is
 * checked at every exchange, for every page of the word, so a loss anywhere in the run is
 * caught, not only one that happens to be a page's last mark (pages are marked again and
 * again). At the end, after a final flush and collection, every marked page has been seen
 * after its last mark, and no page was seen that nobody marked.
 *
 * Marks are mostly one or two pages, so a page is rarely marked again before the collector
 * comes by and a lost bit stays visible. On two CPUs the threads are pinned in pairs and
 * yield often, so that every pair of them runs side by side for many short stretches
 * (left alone, the scheduler put the collector and the flusher on one CPU, where they
 * never race). Mutants checked by hand, each caught in every 1 s run: a plain (non-atomic)
 * OR into the local log or the pending bitmap, taking a pending word with load+store
 * instead of an exchange, clearing summary bits after taking the words, and writing our
 * bits without ORing in the remote word. */

#define STRESS_WORDS 64
#define STRESS_PAGES (STRESS_WORDS * 64)
#define N_MARKERS 2

struct stress {
    struct dirty_log *log;
    uint64_t *target;        /* what the collector reads: the local log or the remote buffer */
    bool remote;
    uint64_t tick;           /* the clock (atomic) */
    uint64_t flushed_upto;   /* remote: clock at the start of the last completed flush */
    int stop_markers, stop_others;
    uint64_t rec[N_MARKERS][STRESS_PAGES]; /* (m << 32) | d of each marker's last mark */
    uint64_t last_seen[STRESS_PAGES];      /* collector only */
    uint64_t marks[N_MARKERS], pages[N_MARKERS];
    uint64_t exchanges, collected, checks, violations;
    char first_violation[160];
};

struct marker_arg {
    struct stress *s;
    unsigned id;
};

static void *marker_thread(void *p)
{
    struct marker_arg *a = p;
    struct stress *s = a->s;
    uint64_t seed = 0xdeadbeefull + a->id * 7919;

    while (!__atomic_load_n(&s->stop_markers, __ATOMIC_RELAXED)) {
        uint64_t gpa = xorshift(&seed) % (STRESS_PAGES * PAGE), len;
        uint64_t r = xorshift(&seed) % 100;

        if (r < 60)
            len = 1 + xorshift(&seed) % PAGE;         /* a buffer: one or two pages */
        else if (r < 95)
            gpa &= ~(PAGE - 1), len = PAGE;           /* one aligned page */
        else if (xorshift(&seed) % 1000)
            len = 1 + xorshift(&seed) % (3 * SPAN);   /* across words */
        else
            gpa = 0, len = STRESS_PAGES * PAGE;       /* the whole log */
        len = MIN(len, STRESS_PAGES * PAGE - gpa);

        uint64_t m = __atomic_add_fetch(&s->tick, 1, __ATOMIC_SEQ_CST);
        dirty_log_mark(s->log, gpa, len);
        uint64_t d = __atomic_add_fetch(&s->tick, 1, __ATOMIC_SEQ_CST);
        uint64_t first = gpa / PAGE, last = (gpa + len - 1) / PAGE;
        for (uint64_t pg = first; pg <= last; pg++)
            __atomic_store_n(&s->rec[a->id][pg], m << 32 | d, __ATOMIC_RELEASE);
        s->pages[a->id] += last - first + 1;
        if (++s->marks[a->id] % 32 == 0)
            sched_yield();
    }
    return NULL;
}

static void *flusher_thread(void *p)
{
    struct stress *s = p;

    while (!__atomic_load_n(&s->stop_others, __ATOMIC_RELAXED)) {
        uint64_t f = __atomic_load_n(&s->tick, __ATOMIC_SEQ_CST);
        g_autoptr(GError) err = NULL;

        if (dirty_log_flush(s->log, &err) != 0) {
            g_strlcpy(s->first_violation, err->message, sizeof(s->first_violation));
            __atomic_fetch_add(&s->violations, 1, __ATOMIC_RELAXED);
            break;
        }
        __atomic_store_n(&s->flushed_upto, f, __ATOMIC_SEQ_CST);
        sched_yield();
    }
    return NULL;
}

/* One QEMU-style read-and-clear of word w, with the check described above. */
static void collect_word(struct stress *s, uint64_t w)
{
    uint64_t u = s->remote ? __atomic_load_n(&s->flushed_upto, __ATOMIC_SEQ_CST)
                           : __atomic_load_n(&s->tick, __ATOMIC_SEQ_CST);
    uint64_t x = __atomic_load_n(&s->target[w], __ATOMIC_SEQ_CST);

    if (x) {
        x = __atomic_exchange_n(&s->target[w], 0, __ATOMIC_SEQ_CST);
        s->collected += x != 0;
    }
    uint64_t t = __atomic_load_n(&s->tick, __ATOMIC_SEQ_CST);

    s->exchanges++;
    for (unsigned b = 0; b < 64; b++) {
        uint64_t pg = w * 64 + b;

        if (x & (1ull << b)) {
            s->last_seen[pg] = t;
            continue;
        }
        for (unsigned k = 0; k < N_MARKERS; k++) {
            uint64_t r = __atomic_load_n(&s->rec[k][pg], __ATOMIC_ACQUIRE);
            uint64_t m = r >> 32, d = r & 0xffffffffu;

            if (!r || d > u)
                continue;
            s->checks++;
            if (s->last_seen[pg] < m) {
                if (s->violations++ == 0)
                    snprintf(s->first_violation, sizeof(s->first_violation),
                             "page %" PRIu64 " marked at %" PRIu64 "-%" PRIu64 " by marker %u, "
                             "not seen at %" PRIu64 " (last seen %" PRIu64 ")",
                             pg, m, d, k, u, s->last_seen[pg]);
            }
        }
    }
}

static void *collector_thread(void *p)
{
    struct stress *s = p;

    while (!__atomic_load_n(&s->stop_others, __ATOMIC_RELAXED)) {
        for (uint64_t w = 0; w < STRESS_WORDS; w++)
            collect_word(s, w);
        sched_yield();
    }
    return NULL;
}

/* Left alone, the scheduler tends to put two threads that race with each other (the
 * collector and the flusher) on one CPU, where they never run at the same time. Spread
 * them: collector and marker 0 on the first CPU, the flusher and marker 1 on the second. */
static void pin_to_cpu(pthread_t thread, unsigned nth)
{
    cpu_set_t allowed, one;
    unsigned seen = 0;

    if (sched_getaffinity(0, sizeof(allowed), &allowed) != 0 || CPU_COUNT(&allowed) < 2)
        return;
    for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
        if (!CPU_ISSET(cpu, &allowed) || seen++ != nth % 2)
            continue;
        CPU_ZERO(&one);
        CPU_SET(cpu, &one);
        pthread_setaffinity_np(thread, sizeof(one), &one);
        return;
    }
}

static unsigned stress_ms(void)
{
    const char *env = g_getenv("DIRTY_LOG_STRESS_MS");

    return env ? (unsigned)g_ascii_strtoull(env, NULL, 10) : 1000;
}

static void run_stress(bool remote)
{
    g_autofree struct stress *s = g_new0(struct stress, 1);
    g_autofree uint64_t *target = g_new0(uint64_t, STRESS_WORDS + GUARD_WORDS);
    pthread_t markers[N_MARKERS], collector, flusher;
    struct marker_arg args[N_MARKERS];

    s->remote = remote;
    s->target = target;
    s->log = remote ? new_self_remote(target, STRESS_WORDS)
                    : dirty_log_new_local(target, STRESS_WORDS);
    double t0 = now_s();
    assert_int_equal(pthread_create(&collector, NULL, collector_thread, s), 0);
    pin_to_cpu(collector, 0);
    if (remote) {
        assert_int_equal(pthread_create(&flusher, NULL, flusher_thread, s), 0);
        pin_to_cpu(flusher, 1);
    }
    for (unsigned k = 0; k < N_MARKERS; k++) {
        args[k] = (struct marker_arg){ .s = s, .id = k };
        assert_int_equal(pthread_create(&markers[k], NULL, marker_thread, &args[k]), 0);
        pin_to_cpu(markers[k], k);
    }
    g_usleep((gulong)stress_ms() * 1000);
    __atomic_store_n(&s->stop_markers, 1, __ATOMIC_RELAXED);
    for (unsigned k = 0; k < N_MARKERS; k++)
        pthread_join(markers[k], NULL);
    __atomic_store_n(&s->stop_others, 1, __ATOMIC_RELAXED);
    pthread_join(collector, NULL);
    if (remote)
        pthread_join(flusher, NULL);

    /* the final flush and collection, like QEMU's last sync after the device stopped */
    uint64_t f = __atomic_load_n(&s->tick, __ATOMIC_SEQ_CST);
    flush_ok(s->log);
    s->flushed_upto = f;
    for (uint64_t w = 0; w < STRESS_WORDS; w++)
        collect_word(s, w);
    double elapsed = now_s() - t0;

    if (s->violations)
        fail_msg("%" PRIu64 " lost marks; first: %s", s->violations, s->first_violation);
    assert_true(s->tick < 1ull << 32); /* the packing of rec */
    uint64_t marked_pages = 0;
    for (uint64_t pg = 0; pg < STRESS_PAGES; pg++) {
        bool marked = false;

        for (unsigned k = 0; k < N_MARKERS; k++) {
            uint64_t r = s->rec[k][pg];

            if (!r)
                continue;
            marked = true;
            if (s->last_seen[pg] < r >> 32)
                fail_msg("page %" PRIu64 ": last mark at %" PRIu64 " never seen (last seen %"
                         PRIu64 ")", pg, r >> 32, s->last_seen[pg]);
        }
        if (!marked && s->last_seen[pg])
            fail_msg("page %" PRIu64 " seen but never marked", pg);
        marked_pages += marked;
    }
    for (unsigned g = 0; g < GUARD_WORDS; g++)
        assert_int_equal(target[STRESS_WORDS + g], 0);

    struct dirty_log_stats st;
    dirty_log_get_stats(s->log, &st);
    assert_int_equal(st.pages_marked, s->pages[0] + s->pages[1]);
    assert_true(s->marks[0] > 1000 && s->marks[1] > 1000);
    /* the run did race: the collector took bits many times and checked many marks */
    assert_true(s->checks > 1000);
    assert_true(s->collected > 1000);
    assert_int_equal(marked_pages, STRESS_PAGES); /* the rare whole-log marks alone do that */
    print_message("    %s: %.2f s, %" PRIu64 " marks (%" PRIu64 " pages), %" PRIu64 " words read, "
                  "%" PRIu64 " nonzero words collected, %" PRIu64 " checks, 0 lost\n",
                  remote ? "remote" : "local", elapsed, s->marks[0] + s->marks[1],
                  st.pages_marked, s->exchanges, s->collected, s->checks);
    if (remote)
        print_message("    remote: %" PRIu64 " flushes wrote %" PRIu64 " words, skipped %" PRIu64
                      " unchanged\n", st.flushes, st.words_written, st.words_unchanged);
    dirty_log_free(s->log);
}

static void concurrent_marks_are_never_lost_local(void **state)
{
    run_stress(false);
}

static void concurrent_marks_are_never_lost_remote(void **state)
{
    run_stress(true);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(words_for_rounds_up_to_whole_words),
        cmocka_unit_test(local_marks_set_exactly_the_reference_bits),
        cmocka_unit_test(local_marks_accumulate_without_touching_other_bits),
        cmocka_unit_test(remote_marks_reach_the_log_only_on_flush),
        cmocka_unit_test(remote_flush_skips_words_that_already_hold_the_bits),
        cmocka_unit_test(big_ranges_set_whole_words_and_flush_in_batches),
        cmocka_unit_test(out_of_range_marks_are_counted_and_not_written_local),
        cmocka_unit_test(out_of_range_marks_are_counted_and_not_written_remote),
        cmocka_unit_test(new_remote_rejects_logs_it_cannot_read),
        cmocka_unit_test(forked_child_receives_exactly_the_marked_bits),
        cmocka_unit_test(flush_to_an_exited_process_fails_and_keeps_the_bits),
        cmocka_unit_test(flush_stops_at_an_unmapped_word_and_keeps_the_rest),
        cmocka_unit_test(move_pending_carries_marks_to_a_new_log),
        cmocka_unit_test(concurrent_marks_are_never_lost_local),
        cmocka_unit_test(concurrent_marks_are_never_lost_remote),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
