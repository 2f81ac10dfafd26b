/* session.h — one client's use of one device node.
 *
 * A session exists while a client has the node open. It holds what the client set
 * through the vhost-vdpa uAPI (owner, features, ring addresses and bases, eventfds, the
 * IOTLB) and routes it to the backend device. In passthrough mode every ring goes to the
 * device as the client set it, and vdpad takes no part per packet. Keeping the client's
 * view here, rather than only in the device, is what lets the relay later point the
 * device at shadow rings and back.
 *
 * Lifetime: session_new() when the node is opened, session_free() when the last reference
 * to the open file goes (close or death of every holder). Both reset the device; free
 * also drops the mappings and closes the fds.
 *
 * Threads: the control thread only (the daemon's main loop).
 * Errors: 0 or -errno, the errno the kernel's vhost-vdpa returns for the same request,
 * with *error saying which device and queue, and which values.
 */
#pragma once

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "backend/vdpa_device.h"

struct session;
typedef struct session session; /* for g_autoptr */

/* Maps client memory into ours. The front provides the real one (guest_mem.h); tests and
 * fuzzers provide their own. map returns -EOPNOTSUPP for memory that exists but cannot be
 * shared (anonymous or private: QEMU's ROMs, VGA memory, ACPI tables; or guest RAM without
 * a shared memory backend). */
struct session_mem_ops {
    int (*map)(void *opaque, pid_t pid, uint64_t uaddr, uint64_t size, bool writable,
               void **local, GError **error);
    void (*unmap)(void *opaque, void *local, uint64_t size);
};

struct session_vq_info {
    unsigned num;
    uint64_t desc, avail, used; /* client IOVAs */
    uint16_t base;
    bool ready;
    bool has_kick, has_call;
};

struct session *session_new(struct vdpa_device *dev, pid_t opener,
                            const struct session_mem_ops *mem, void *mem_opaque, GError **error);
void session_free(struct session *s);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(session, session_free)

struct vdpa_device *session_device(const struct session *s);
pid_t session_opener(const struct session *s);
pid_t session_owner(const struct session *s); /* 0 before SET_OWNER */

/* --- ownership */
int session_set_owner(struct session *s, pid_t tgid, GError **error);

/* --- features */
uint64_t session_get_features(struct session *s);
int session_set_features(struct session *s, uint64_t features, GError **error);
uint64_t session_get_backend_features(struct session *s);
int session_set_backend_features(struct session *s, uint64_t features, GError **error);
uint64_t session_acked_backend_features(const struct session *s);

/* --- status and config */
uint8_t session_get_status(struct session *s);
int session_set_status(struct session *s, uint8_t status, GError **error);
int session_get_config(struct session *s, uint32_t off, uint32_t len, void *buf, GError **error);
int session_set_config(struct session *s, uint32_t off, uint32_t len, const void *buf,
                       GError **error);
int session_set_config_call(struct session *s, int fd, GError **error);
int session_suspend(struct session *s, GError **error);
int session_resume(struct session *s, GError **error);

/* --- virtqueues (idx checked: -ENOBUFS past the queue count, as the kernel) */
unsigned session_vq_count(const struct session *s);
int session_set_vring_num(struct session *s, unsigned idx, unsigned num, GError **error);
int session_set_vring_addr(struct session *s, unsigned idx, uint64_t desc, uint64_t avail,
                           uint64_t used, GError **error);
int session_set_vring_base(struct session *s, unsigned idx, unsigned base, GError **error);
/* The queue's next available index. While the device runs, the queue is first quiesced
 * (the device suspended, or the queue disabled) so the answer is exact and stays true:
 * clients ask only when they stop. After a reset from DRIVER_OK it is the index the queue
 * had at the reset (QEMU 7.2 resets before it asks), until the next SET_VRING_BASE or
 * DRIVER_OK. */
int session_get_vring_base(struct session *s, unsigned idx, uint16_t *base, GError **error);
/* fd: ours (the session takes ownership), or -1 to unbind */
int session_set_vring_kick(struct session *s, unsigned idx, int fd, GError **error);
int session_set_vring_call(struct session *s, unsigned idx, int fd, GError **error);
int session_set_vring_enable(struct session *s, unsigned idx, bool enable, GError **error);
/* Stored and reported back; vDPA devices do not busy-poll. */
int session_set_vring_busyloop(struct session *s, unsigned idx, unsigned timeout);
unsigned session_get_vring_busyloop(struct session *s, unsigned idx);
int session_get_vq_info(struct session *s, unsigned idx, struct session_vq_info *info);

/* --- IOTLB (client IOVA -> address uaddr in process pid, mapped into ours)
 *
 * Memory the client cannot share (map returns -EOPNOTSUPP) is accepted as unreachable:
 * the device gets no mapping for it, so a buffer there fails that queue. QEMU sends its
 * ROMs and VGA memory this way and never puts buffers there. Guest RAM is different: an
 * unshareable range at guest-physical 0 or 1 MiB, where x86 RAM lies, is refused
 * (-EOPNOTSUPP) with an error that names the domain XML to add (whatever the mem_ops said),
 * and so is DRIVER_OK afterwards.
 * At most 2048 entries (the kernel's max_iotlb_entries), counting memory invalidated
 * inside a batch and kept until its end: an update past that, or an invalidation that
 * would split an entry of a full table, is -ENOSPC.
 * Updates are whole pages (iova, size and uaddr page aligned, else -EINVAL), and an
 * invalidation removes the whole pages its range touches: what mem_ops->unmap gets is
 * always page aligned. */
int session_iotlb_update(struct session *s, uint64_t iova, uint64_t size, uint64_t uaddr,
                         uint8_t perm, pid_t pid, GError **error);
int session_iotlb_invalidate(struct session *s, uint64_t iova, uint64_t size, GError **error);
int session_iotlb_batch_begin(struct session *s, GError **error);
int session_iotlb_batch_end(struct session *s, GError **error);
/* Bytes of client memory currently mapped. */
uint64_t session_mapped_bytes(const struct session *s);
