/* mem_guard.c — see mem_guard.h. */
#include "config.h"

#include <errno.h>
#include <glib.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/mem_guard.h"

/* The guarded ranges are exactly the client memory mapped now (a partial removal splits a
 * range), so they never overlap. A process has at most vm.max_map_count (65530 by
 * default) mappings, so this many slots suffice. */
#define GUARD_SLOTS 65536u

struct guard_slot {
    /* end == 0: free. Published after start; the handler reads end, start, end again. */
    _Atomic uintptr_t start;
    _Atomic uintptr_t end;
};

static struct guard_slot slots[GUARD_SLOTS];
static _Atomic unsigned slots_used; /* every slot in use is below this */
/* Bumped after every range is published. A removal that splits a range publishes what it
 * keeps before it shrinks the old slot; a handler that read the old slot shrunk sees the
 * bump too, and scans again. */
static _Atomic unsigned generation;
static _Atomic uint64_t pages_replaced;
static struct sigaction previous;
static uintptr_t page_size;

static bool scan_ranges(uintptr_t addr)
{
    unsigned n = atomic_load_explicit(&slots_used, memory_order_acquire);

    for (unsigned i = 0; i < n; i++) {
        uintptr_t end = atomic_load_explicit(&slots[i].end, memory_order_acquire);
        uintptr_t start = atomic_load_explicit(&slots[i].start, memory_order_acquire);

        if (end && addr >= start && addr < end &&
            atomic_load_explicit(&slots[i].end, memory_order_acquire) == end)
            return true;
    }
    return false;
}

static bool in_client_memory(uintptr_t addr)
{
    /* bounded: the control thread, not this one, changes the ranges */
    for (int tries = 0; tries < 64; tries++) {
        unsigned gen = atomic_load_explicit(&generation, memory_order_acquire);

        if (scan_ranges(addr))
            return true;
        if (atomic_load_explicit(&generation, memory_order_acquire) == gen)
            return false;
    }
    return false;
}

/* "mem_guard: SIGBUS at 0x...: why\n" on stderr, with what a signal handler may call */
static void say_why(uintptr_t addr, const char *why)
{
    char buf[128] = "mem_guard: SIGBUS at 0x";
    size_t n = strlen(buf);

    for (int shift = 60; shift >= 0; shift -= 4)
        buf[n++] = "0123456789abcdef"[(addr >> shift) & 0xf];
    buf[n++] = ':';
    buf[n++] = ' ';
    for (size_t i = 0; why[i] && n < sizeof(buf) - 1; i++)
        buf[n++] = why[i];
    buf[n++] = '\n';
    ssize_t ignored = write(STDERR_FILENO, buf, n);
    (void)ignored;
}

static void on_sigbus(int sig, siginfo_t *si, void *ucontext)
{
    uintptr_t addr = (uintptr_t)si->si_addr;

    if (si->si_code == BUS_ADRERR && in_client_memory(addr)) {
        if (mmap((void *)(addr & ~(page_size - 1)), page_size, PROT_READ | PROT_WRITE,
                 MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) != MAP_FAILED) {
            atomic_fetch_add(&pages_replaced, 1);
            return; /* the access is retried, on the zero page */
        }
        say_why(addr, "client memory, but no zero page could be mapped there");
    } else if (si->si_code > 0) {
        say_why(addr, si->si_code == BUS_ADRERR ? "not client memory" : "not a missing page");
    }
    /* not ours: back to the handler before us (a sanitizer's) or the default action; a
     * fault happens again when we return, a signal sent by kill() is sent again */
    sigaction(SIGBUS, &previous, NULL);
    if (si->si_code <= 0)
        raise(SIGBUS);
}

/* Installs the handler unless it is there (someone may have replaced it since: a test
 * framework does between tests); what was there before becomes the fallback. */
static void ensure_installed(void)
{
    struct sigaction sa, cur;

    if (sigaction(SIGBUS, NULL, &cur) == 0 && (cur.sa_flags & SA_SIGINFO) &&
        cur.sa_sigaction == on_sigbus)
        return;
    page_size = (uintptr_t)sysconf(_SC_PAGESIZE);
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = on_sigbus;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGBUS, &sa, &previous) < 0)
        g_warning("cannot install the SIGBUS handler for client memory: %s", g_strerror(errno));
}

static void slot_set(unsigned i, uintptr_t start, uintptr_t end)
{
    atomic_store_explicit(&slots[i].end, 0, memory_order_release);
    atomic_store_explicit(&slots[i].start, start, memory_order_release);
    atomic_store_explicit(&slots[i].end, end, memory_order_release);
}

void mem_guard_add(void *start, uint64_t size)
{
    ensure_installed();
    if (size == 0)
        return;
    for (unsigned i = 0; i < GUARD_SLOTS; i++) {
        if (atomic_load_explicit(&slots[i].end, memory_order_relaxed) != 0)
            continue;
        slot_set(i, (uintptr_t)start, (uintptr_t)start + size);
        if (i >= atomic_load(&slots_used))
            atomic_store_explicit(&slots_used, i + 1, memory_order_release);
        atomic_fetch_add_explicit(&generation, 1, memory_order_release);
        return;
    }
    g_warning("client memory at %p is not guarded: %u ranges already", start, GUARD_SLOTS);
}

void mem_guard_remove(void *start, uint64_t size)
{
    uintptr_t a = (uintptr_t)start, z = a + size;
    unsigned n = atomic_load(&slots_used);

    for (unsigned i = 0; i < n; i++) {
        uintptr_t s = atomic_load(&slots[i].start), e = atomic_load(&slots[i].end);

        if (!e || a < s || a >= e)
            continue;
        /* keep what lies outside [a, z): the tail in a new slot, the head in this one */
        if (z < e)
            mem_guard_add((void *)z, e - z);
        if (a > s) {
            atomic_store_explicit(&slots[i].end, a, memory_order_release);
        } else {
            atomic_store_explicit(&slots[i].end, 0, memory_order_release);
            n = atomic_load(&slots_used);
            while (n > 0 && atomic_load(&slots[n - 1].end) == 0)
                n--;
            atomic_store_explicit(&slots_used, n, memory_order_release);
        }
        return;
    }
}

uint64_t mem_guard_pages_replaced(void)
{
    return atomic_load(&pages_replaced);
}

unsigned mem_guard_ranges(void)
{
    unsigned n = atomic_load(&slots_used), used = 0;

    for (unsigned i = 0; i < n; i++)
        used += atomic_load(&slots[i].end) != 0;
    return used;
}
