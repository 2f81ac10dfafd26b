/* libvirt_sync.h — the source side of a libvirt migration: vdpad writes, into the live XML of
 * the domain whose QEMU owns a node, where a destination gets that node's device state
 * (domain_metadata.h: this vdpad's channel address, the device name, the session's token).
 * libvirt carries the element to the destination, whose qemu hook prepares the destination
 * node from it before QEMU starts there (vdpad-libvirt-hook).
 *
 * When a node's session gets an owner (VHOST_SET_OWNER: NODE_CHANGED with an owner pid),
 * a job is queued: find the domain from the owner's command line (qemu_cmdline.h: -uuid,
 * else -name guest=NAME), read the domain's element (virDomainGetMetadata, LIVE), replace
 * this node's entry (others, of other nodes or other vdpads, stay) and write it back
 * (virDomainSetMetadata, VIR_DOMAIN_METADATA_ELEMENT, LIVE).
 *
 * Why a thread of its own, with its own connection: the owner is QEMU, and libvirtd holds
 * the domain's job while it starts QEMU (or receives a migration); virDomainSetMetadata waits
 * for that job. The control thread serves QEMU's requests on the node, so a libvirt call
 * from it would deadlock: libvirtd waits for QEMU, QEMU waits in our ioctl, we wait for
 * libvirtd. So the control thread only queues (never blocks on libvirt), and the worker
 * thread makes the calls, retrying a failed attempt with a doubling delay (bounded:
 * max_attempts) until the domain takes the element, the node's session ends (the job is
 * dropped), or vdpad stops. A process that is not a libvirt domain (no -name, no -uuid) or
 * has exited is given up at once.
 *
 * Threads: libvirt_sync_start/stop and the observer run on the control thread; the worker
 * thread owns the libvirt connection and the done callback runs on it. Ownership: the
 * registry is borrowed and must outlive the sync (stop it first); jobs copy what they need.
 */
#pragma once

#include <glib.h>

#include "core/node.h"

#define LIBVIRT_SYNC_DEFAULT_URI "qemu:///system"

struct libvirt_sync_config {
    const char *uri;         /* libvirt connection; NULL: LIBVIRT_SYNC_DEFAULT_URI */
    const char *address;     /* "HOST:PORT" destinations reach this vdpad's channel at */
    const char *dev_dir;     /* the nodes' directory: an entry's node is DEV_DIR/NAME */
    unsigned max_attempts;   /* 0: 10 */
    unsigned first_delay_ms; /* after the first failed attempt; 0: 250, doubling */
    unsigned max_delay_ms;   /* 0: 8000 */
};

/* A job's end (for tests and logs): 0 when the domain took the element, else -errno
 * (-ECANCELED: the session ended first). domain is NULL when it was not found. Called on
 * the worker thread. */
typedef void (*libvirt_sync_done_fn)(const char *node, const char *domain, int result,
                                     const char *message, void *opaque);

struct libvirt_sync;
typedef struct libvirt_sync libvirt_sync; /* for g_autoptr */

/* Starts the worker and observes the registry. The connection is opened by the worker (and
 * reopened after a failure), so libvirtd need not run yet. Fails on a bad config only. */
struct libvirt_sync *libvirt_sync_start(struct node_registry *reg,
                                        const struct libvirt_sync_config *cfg, GError **error);
/* Before any job runs (tests). */
void libvirt_sync_set_done(struct libvirt_sync *sync, libvirt_sync_done_fn fn, void *opaque);
/* Stops observing, drops queued jobs and joins the worker: a libvirt call in flight is
 * waited for (libvirtd bounds a job wait at 30 s). */
void libvirt_sync_stop(struct libvirt_sync *sync);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(libvirt_sync, libvirt_sync_stop)
