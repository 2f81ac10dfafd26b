/* fuse_front.h — the device nodes: a FUSE filesystem at DIR whose files are the nodes.
 *
 * Each node is a regular file DIR/NAME (mode 0600, root). The kernel passes its ioctls
 * as restricted FUSE ioctls and its writes (IOTLB messages) as direct-I/O writes; this
 * file moves them to the uAPI dispatcher (uapi.h) and the answers back. Shared mmap is
 * refused by the kernel (direct I/O without mmap), so QEMU falls back to eventfd kicks.
 *
 * Open and close: one opener at a time (EBUSY, as the kernel's vhost-vdpa). The open file
 * is the capability; it may be passed to another process (libvirt opens, QEMU uses). The
 * session ends at FUSE release, when the last reference to the open file goes: a close,
 * or the death of every process holding it.
 *
 * The filesystem is mounted with allow_other, so a client of another uid can use an fd
 * that root opened and passed to it, and default_permissions, so the kernel enforces the
 * 0600 mode at open.
 *
 * Threads: served from the GLib main context of the control thread, one request at a
 * time. Never touch DIR from that thread while mounted: it would wait for itself.
 */
#pragma once

#include <glib.h>

#include "core/node.h"

struct fuse_front;
typedef struct fuse_front fuse_front; /* for g_autoptr */

/* Mounts a FUSE filesystem at dir (created if missing; a stale mount of a dead daemon is
 * detached first), showing the registry's nodes, served from the default main context. */
struct fuse_front *fuse_front_new(const char *dir, struct node_registry *reg, GError **error);

/* Ends every session, unmounts and frees. */
void fuse_front_free(struct fuse_front *front);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(fuse_front, fuse_front_free)

/* The node's path (DIR/NAME); the caller frees it. */
char *fuse_front_node_path(struct fuse_front *front, const char *name);

/* Set when the kernel ended the mount (someone unmounted it): the daemon should stop. */
gboolean fuse_front_exited(struct fuse_front *front);
