/* compat.h — kernel uAPI bits newer than Debian 12's linux-libc-dev (6.1), and syscalls glibc
 * 2.36 does not wrap. Values are the kernel's ABI. */
#pragma once

#include <linux/vhost.h>
#include <linux/vhost_types.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef VHOST_VDPA_RESUME
#define VHOST_VDPA_RESUME _IO(VHOST_VIRTIO, 0x7E)
#endif
#ifndef VHOST_BACKEND_F_RESUME
#define VHOST_BACKEND_F_RESUME 0x5
#endif
#ifndef VHOST_VDPA_GET_VRING_DESC_GROUP
#define VHOST_VDPA_GET_VRING_DESC_GROUP _IOWR(VHOST_VIRTIO, 0x7F, struct vhost_vring_state)
#endif

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_getfd
#define SYS_pidfd_getfd 438
#endif

static inline int vdpad_pidfd_open(pid_t pid)
{
    return (int)syscall(SYS_pidfd_open, pid, 0);
}

static inline int vdpad_pidfd_getfd(int pidfd, int targetfd)
{
    return (int)syscall(SYS_pidfd_getfd, pidfd, targetfd, 0);
}
