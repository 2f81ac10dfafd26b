/* Unit tests: the guard of client memory (src/core/mem_guard.c): a file shrunk under a
 * guarded mapping reads as zeros instead of killing the process; anything else still
 * gets SIGBUS. */
#include "config.h"

#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "core/mem_guard.h"

#define PAGE 4096u

/* A memfd of n pages, filled with 0xab, mapped shared; the file's fd in *fd. */
static uint8_t *shared_file(unsigned n, int *fd)
{
    *fd = memfd_create("guarded", MFD_CLOEXEC);
    assert_true(*fd >= 0);
    assert_int_equal(ftruncate(*fd, (off_t)n * PAGE), 0);
    uint8_t *p = mmap(NULL, (size_t)n * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, *fd, 0);
    assert_true(p != MAP_FAILED);
    memset(p, 0xab, (size_t)n * PAGE);
    return p;
}

static uint8_t touch(volatile uint8_t *p)
{
    uint8_t v = *p;

    *p = 0x5a;
    return v;
}

static void test_shrunk_file_under_guarded_memory_reads_as_zeros(void **state)
{
    int fd;
    uint8_t *p = shared_file(4, &fd);
    uint64_t replaced = mem_guard_pages_replaced();

    mem_guard_add(p, 4 * PAGE);
    assert_int_equal(touch(p + PAGE), 0xab); /* still the file's */
    assert_int_equal(ftruncate(fd, PAGE), 0); /* the client takes pages 1..3 away */
    assert_int_equal(touch(p), 0xab);         /* page 0 is still the file's */
    assert_int_equal(touch(p + PAGE + 7), 0); /* gone: a zero page now */
    assert_int_equal(p[PAGE + 7], 0x5a);      /* which takes writes */
    assert_int_equal(touch(p + 3 * PAGE), 0);
    assert_int_equal(mem_guard_pages_replaced(), replaced + 2);
    mem_guard_remove(p, 4 * PAGE);
    munmap(p, 4 * PAGE);
    close(fd);
}

static void test_partly_removed_range_keeps_guarding_the_rest(void **state)
{
    int fd;
    uint8_t *p = shared_file(4, &fd);
    uint64_t replaced = mem_guard_pages_replaced();

    mem_guard_add(p, 4 * PAGE);
    /* the session unmaps the middle pages (a partial invalidation) */
    mem_guard_remove(p + PAGE, 2 * PAGE);
    munmap(p + PAGE, 2 * PAGE);
    assert_int_equal(ftruncate(fd, 0), 0);
    assert_int_equal(touch(p), 0);
    assert_int_equal(touch(p + 3 * PAGE), 0);
    assert_int_equal(mem_guard_pages_replaced(), replaced + 2);
    mem_guard_remove(p, PAGE);
    mem_guard_remove(p + 3 * PAGE, PAGE);
    munmap(p, PAGE);
    munmap(p + 3 * PAGE, PAGE);
    close(fd);
}

/* Runs fn in a child; returns the signal that killed it, or 0. */
static int child_signal(void (*fn)(void))
{
    pid_t pid = fork();
    int st;

    assert_true(pid >= 0);
    if (pid == 0) {
        fn();
        _exit(0);
    }
    assert_int_equal(waitpid(pid, &st, 0), pid);
    return WIFSIGNALED(st) ? WTERMSIG(st) : 0;
}

static void touch_unguarded_shrunk_file(void)
{
    int fd;
    uint8_t *g = shared_file(1, &fd), *p;

    signal(SIGBUS, SIG_DFL); /* whatever the test framework installed */
    mem_guard_add(g, PAGE);  /* the guard is installed, for other memory */
    p = shared_file(2, &fd);
    if (ftruncate(fd, 0) == 0)
        touch(p + PAGE);
}

static void touch_removed_range(void)
{
    int fd;
    uint8_t *p = shared_file(2, &fd);

    signal(SIGBUS, SIG_DFL);
    mem_guard_add(p, 2 * PAGE);
    mem_guard_remove(p, 2 * PAGE); /* no longer client memory */
    if (ftruncate(fd, 0) == 0)
        touch(p);
}

static void test_sigbus_outside_guarded_memory_still_kills(void **state)
{
    assert_int_equal(child_signal(touch_unguarded_shrunk_file), SIGBUS);
    assert_int_equal(child_signal(touch_removed_range), SIGBUS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shrunk_file_under_guarded_memory_reads_as_zeros),
        cmocka_unit_test(test_partly_removed_range_keeps_guarding_the_rest),
        cmocka_unit_test(test_sigbus_outside_guarded_memory_still_kills),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
