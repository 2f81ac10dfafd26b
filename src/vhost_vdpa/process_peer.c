/* The uAPI peer for real client processes: their memory through process_vm_readv/writev
 * on the calling thread, their file descriptors through pidfd_getfd. */
#include "config.h"

#include <fcntl.h>
#include <sys/uio.h>

#include "util/compat.h"
#include "util/fd.h"
#include "vhost_vdpa/uapi.h"

static int process_read_mem(void *opaque, pid_t tid, uint64_t addr, void *buf, size_t len)
{
    struct iovec local = { buf, len }, remote = { (void *)(uintptr_t)addr, len };
    ssize_t n = process_vm_readv(tid, &local, 1, &remote, 1, 0);

    if (n < 0)
        return -errno;
    return (size_t)n == len ? 0 : -EFAULT;
}

static int process_write_mem(void *opaque, pid_t tid, uint64_t addr, const void *buf, size_t len)
{
    struct iovec local = { (void *)buf, len }, remote = { (void *)(uintptr_t)addr, len };
    ssize_t n = process_vm_writev(tid, &local, 1, &remote, 1, 0);

    if (n < 0)
        return -errno;
    return (size_t)n == len ? 0 : -EFAULT;
}

static int process_take_fd(void *opaque, pid_t tgid, int fd)
{
    g_auto(vdpad_fd) pidfd = vdpad_pidfd_open(tgid);

    if (pidfd < 0)
        return -errno;
    int ours = vdpad_pidfd_getfd(pidfd, fd);
    if (ours < 0)
        return -errno;
    return ours; /* pidfd_getfd sets FD_CLOEXEC */
}

static const struct uapi_peer_ops process_peer_ops = {
    .read_mem = process_read_mem,
    .write_mem = process_write_mem,
    .take_fd = process_take_fd,
};

const struct uapi_peer uapi_process_peer = { &process_peer_ops, NULL };
