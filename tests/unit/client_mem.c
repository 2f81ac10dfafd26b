/* client_mem.c — see client_mem.h. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <sys/mman.h>
#include <unistd.h>

#include "util/error.h"
#include "client_mem.h"

static uint64_t page_size(void)
{
    return (uint64_t)sysconf(_SC_PAGESIZE);
}

struct client_mem *client_mem_new(uint64_t size, uint64_t uaddr_base)
{
    struct client_mem *m = g_new0(struct client_mem, 1);

    m->size = (size + page_size() - 1) / page_size() * page_size();
    m->memfd = memfd_create("client-mem", MFD_CLOEXEC);
    if (m->memfd < 0 || ftruncate(m->memfd, (off_t)m->size) < 0)
        goto fail;
    m->base = mmap(NULL, m->size, PROT_READ | PROT_WRITE, MAP_SHARED, m->memfd, 0);
    if (m->base == MAP_FAILED) {
        m->base = NULL;
        goto fail;
    }
    m->uaddr_base = uaddr_base ? uaddr_base : (uint64_t)(uintptr_t)m->base;
    return m;
fail:
    client_mem_free(m);
    return NULL;
}

void client_mem_free(struct client_mem *m)
{
    if (!m)
        return;
    if (m->base)
        munmap(m->base, m->size);
    if (m->memfd >= 0)
        close(m->memfd);
    g_free(m);
}

uint64_t client_mem_uaddr(const struct client_mem *m, uint64_t off)
{
    return m->uaddr_base + off;
}

void *client_mem_ptr(const struct client_mem *m, uint64_t off)
{
    return m->base + off;
}

static int client_map(void *opaque, pid_t pid, uint64_t uaddr, uint64_t size, bool writable,
                      void **local, GError **error)
{
    struct client_mem *m = opaque;

    if (size == 0 || uaddr > UINT64_MAX - size)
        return vdpad_fail(error, EINVAL, "client memory: range 0x%" PRIx64 "+0x%" PRIx64
                          " is empty or wraps", uaddr, size);
    if (m->unshared_lo < m->unshared_hi && uaddr < m->unshared_hi &&
        uaddr + size > m->unshared_lo)
        return vdpad_fail(error, EOPNOTSUPP, "client memory at 0x%" PRIx64 " is anonymous",
                          uaddr);
    if (uaddr % page_size() || size % page_size())
        return vdpad_fail(error, EINVAL, "client memory: 0x%" PRIx64 "+0x%" PRIx64
                          " is not page aligned", uaddr, size);
    /* inside [uaddr_base, uaddr_base + size), without overflow */
    if (uaddr < m->uaddr_base || uaddr - m->uaddr_base > m->size ||
        size > m->size - (uaddr - m->uaddr_base))
        return vdpad_fail(error, EFAULT, "client memory: 0x%" PRIx64 "+0x%" PRIx64
                          " is not mapped by the client", uaddr, size);
    void *p = mmap(NULL, size, PROT_READ | (writable ? PROT_WRITE : 0), MAP_SHARED, m->memfd,
                   (off_t)(uaddr - m->uaddr_base));
    if (p == MAP_FAILED)
        return vdpad_fail(error, errno, "client memory: mmap: %s", g_strerror(errno));
    m->live_bytes += size;
    m->maps++;
    *local = p;
    return 0;
}

static void client_unmap(void *opaque, void *local, uint64_t size)
{
    struct client_mem *m = opaque;

    g_assert(local && size && size <= m->live_bytes);
    g_assert(munmap(local, size) == 0);
    m->live_bytes -= size;
    m->unmaps++;
}

const struct session_mem_ops client_mem_ops = {
    .map = client_map,
    .unmap = client_unmap,
};

unsigned count_open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    unsigned n = 0;

    g_assert(d);
    while (readdir(d))
        n++;
    closedir(d);
    return n - 3; /* ".", "..", and the directory's own fd */
}
