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
#include "virtio/net_state.h"

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

enum session_mode {
    SESSION_PASSTHROUGH, /* the device works on the guest's data rings */
    SESSION_RELAY,       /* the data rings go through the relay, which logs dirty pages */
};

/* What happens to the session, for the node's observers (D-Bus signals). Called on the
 * control thread. */
struct session_events {
    void (*mode_changed)(void *opaque, enum session_mode mode, double switch_ms);
    /* the device stopped from DRIVER_OK; bases[i] is queue i's next avail index, valid
     * for queues with started[i] */
    void (*stopped)(void *opaque, const uint16_t *bases, const bool *started, unsigned n);
    void (*state_restored)(void *opaque, unsigned commands, double ms);
    void (*migration_failed)(void *opaque, const char *why);
    /* Called at DRIVER_OK when the session expects a restore (session_expect_restore):
     * fills *st and returns 1, returns 0 when there is nothing to restore, or a negative
     * errno (with *error) to refuse the start: a device must not start in the wrong state.
     * May block briefly (the destination asks the source). */
    int (*fetch_restore)(void *opaque, struct net_state *st, GError **error);
    void *opaque;
};

struct session *session_new(struct vdpa_device *dev, pid_t opener,
                            const struct session_mem_ops *mem, void *mem_opaque, GError **error);
void session_free(struct session *s);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(session, session_free)

void session_set_events(struct session *s, const struct session_events *events);

struct vdpa_device *session_device(const struct session *s);
pid_t session_opener(const struct session *s);
pid_t session_owner(const struct session *s); /* 0 before SET_OWNER */

/* --- ownership */
int session_set_owner(struct session *s, pid_t tgid, GError **error);

/* --- migration
 *
 * vdpad offers VHOST_F_LOG_ALL (bit 26) whenever the device can suspend; QEMU 7.2 then
 * allows migration. SET_FEATURES with bit 26 set switches the data queues into the relay
 * (dirty pages go to the log at SET_LOG_BASE); with it cleared, back to passthrough. Both
 * are accepted after FEATURES_OK, as QEMU requires (it aborts if they fail). The control
 * queue of a net device is relayed from DRIVER_OK on, in both modes, so the session always
 * knows the state the guest set (session_net_state). */
int session_set_log_base(struct session *s, uint64_t addr, GError **error);
enum session_mode session_mode(struct session *s);
/* The net state the driver set; false when there is none (not net, not started). */
bool session_net_state(struct session *s, struct net_state *out);
/* The next start restores a device state (fetch_restore): the destination of a migration,
 * or a source that resumes after stopping for one. The data queues are held back until
 * the state is replayed through the control queue. */
void session_expect_restore(struct session *s);
/* Whether dirty logging is on (a migration runs). */
bool session_logging(struct session *s);
/* Dirty pages logged so far (marks, not distinct pages), for monitoring. */
uint64_t session_dirty_marks(struct session *s);

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

/* The IOVA range the client may map: the device's, without the window at its top that
 * vdpad keeps for shadow rings (ADR 0008). A vdpad chained behind this node then puts
 * its own window below ours. */
struct vdpa_iova_range session_get_iova_range(struct session *s);

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
