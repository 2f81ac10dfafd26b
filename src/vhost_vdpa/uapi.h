/* uapi.h — the vhost-vdpa uAPI, as the kernel's drivers/vhost/vdpa.c serves it.
 *
 * The one place where the protocol is dispatched: ioctl numbers and argument layouts,
 * IOTLB messages written to the node, ownership checks and errno values. It decodes a
 * request, checks it, and calls the session (core/session.h), which holds the state and
 * talks to the device. The transport (FUSE today) lives elsewhere and only moves bytes.
 *
 * Ownership and isolation: the open file is the capability (one opener at a time, see the
 * front); libvirt opens the node and QEMU uses it. Before SET_OWNER any holder of the file
 * may make the requests the kernel serves without an owner (features, status, config...),
 * as QEMU's init does; per-queue ioctls, IOTLB messages and unknown ioctls get EPERM, as in
 * the kernel. After SET_OWNER only the owner's process may make any request: stricter than
 * the kernel, which lets anyone holding the fd change status and config.
 *
 * Threads: the control thread.
 */
#pragma once

#include <glib.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/session.h"

/* The process making a request. */
struct uapi_caller {
    pid_t tid;    /* the calling thread, for reaching its memory */
    pid_t tgid;   /* its process */
    uint64_t arg; /* the ioctl's argument pointer, in the caller's memory */
};

/* How to reach the caller: its memory (GET/SET_CONFIG carry a variable-length payload
 * the transport does not move) and its file descriptors (eventfds named by number). */
struct uapi_peer_ops {
    int (*read_mem)(void *opaque, pid_t tid, uint64_t addr, void *buf, size_t len);
    int (*write_mem)(void *opaque, pid_t tid, uint64_t addr, const void *buf, size_t len);
    /* A copy of the caller's fd, as our own fd; -EBADF if it has none by that number. */
    int (*take_fd)(void *opaque, pid_t tgid, int fd);
};

struct uapi_peer {
    const struct uapi_peer_ops *ops;
    void *opaque;
};

/* The peer that reaches real processes: process_vm_readv/writev on the thread,
 * pidfd_open + pidfd_getfd on the process. */
extern const struct uapi_peer uapi_process_peer;

/* Handles ioctl cmd. in/in_len: the bytes the transport copied from the caller
 * (_IOC_SIZE(cmd) for _IOC_WRITE commands); out/out_len: the bytes it copies back
 * (_IOC_SIZE(cmd) for _IOC_READ commands). Returns the ioctl's result (>= 0; out is then
 * filled) or -errno, with *error saying why. Unknown commands: -ENOTTY. */
int uapi_ioctl(struct session *s, const struct uapi_caller *caller, const struct uapi_peer *peer,
               unsigned cmd, const void *in, size_t in_len, void *out, size_t out_len,
               GError **error);

/* Handles a write() of IOTLB messages (struct vhost_msg or vhost_msg_v2, one per write).
 * Returns the bytes consumed or -errno (EFAULT when the message was refused, as the
 * kernel does; *error has the real reason). */
ssize_t uapi_write(struct session *s, const struct uapi_caller *caller, const void *buf,
                   size_t len, GError **error);

/* The name of an ioctl ("VHOST_SET_VRING_KICK"), or NULL. For logs. */
const char *uapi_ioctl_name(unsigned cmd);
