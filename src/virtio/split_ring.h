/* split_ring.h — the split virtqueue (virtio 1.2 §2.7), the only copy in vdpad.
 *
 * Two views of the same ring layout:
 *   - the device side (struct vring_dev) consumes available buffers and returns used ones.
 *     It treats the ring as hostile: every index, descriptor, length, address and indirect
 *     table is checked, and a bad ring breaks only that queue (vring_dev.broken, .error).
 *   - the driver side (struct vring_drv) adds buffers and collects used ones. It checks what
 *     the device returns (ids, lengths) as well, since a device can be buggy.
 * The simulator and the relay's guest-facing half use the device side; the test driver and
 * the relay's device-facing (shadow) half use the driver side.
 *
 * Memory: ring pointers are local addresses (the owner translated the ring IOVAs before
 * starting the queue). Buffer and indirect-table addresses are IOVAs, translated by the
 * device side through the queue's iova_map.
 *
 * Threads: a vring_dev or vring_drv belongs to one thread at a time, its owner. The other
 * side of the ring is another thread or process, synchronised only through ring memory and
 * the barriers in this file. The iova_map must not change while the owner walks the ring
 * (the owner holds whatever lock serialises map updates).
 */
#pragma once

#include <linux/virtio_ring.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct iova_map;
struct dirty_log;

/* Largest ring the library accepts (virtio: a power of two up to 32768). */
#define VRING_MAX_NUM 32768u
/* Default bound on segments per chain; also bounds indirect tables. */
#define VRING_MAX_SEGS 1024u

/* Sizes and alignment of the three parts of a split ring of num entries (virtio 1.x). */
size_t vring_desc_bytes(unsigned num);
size_t vring_avail_bytes(unsigned num); /* includes used_event */
size_t vring_used_bytes(unsigned num);  /* includes avail_event */
#define VRING_DESC_ALIGN 16
#define VRING_AVAIL_ALIGN 2
#define VRING_USED_ALIGN 4

/* Is num a valid split-ring size (power of two, 1..VRING_MAX_NUM)? */
bool vring_num_valid(unsigned num);

/* The three parts, as local pointers. */
struct vring_layout {
    unsigned num;
    struct vring_desc *desc;
    struct vring_avail *avail;
    struct vring_used *used;
};

/* ------------------------------------------------------------------ device side */

/* One contiguous piece of a buffer: a descriptor, or the part of one that lies in one
 * iova_map region. Device-readable segments come first, then device-writable ones. */
struct vring_seg {
    uint64_t iova;
    void *addr; /* local address of iova */
    uint32_t len;
};

/* An available buffer (a whole descriptor chain), as popped from the ring. */
struct vring_elem {
    uint16_t head;      /* id to return in the used ring */
    unsigned n_out;     /* device-readable segments: seg[0 .. n_out) */
    unsigned n_in;      /* device-writable segments: seg[n_out .. n_out + n_in) */
    uint64_t out_bytes; /* total readable length */
    uint64_t in_bytes;  /* total writable length */
    unsigned max_segs;  /* capacity of seg[] */
    struct vring_seg *seg;
};

/* Allocates an element able to hold max_segs segments (free with vring_elem_free). */
struct vring_elem *vring_elem_new(unsigned max_segs);
void vring_elem_free(struct vring_elem *elem);

struct vring_dev {
    /* set by the owner before vring_dev_start() */
    struct vring_layout ring;
    const struct iova_map *mem; /* translates buffer and indirect-table IOVAs */
    bool event_idx;             /* VIRTIO_RING_F_EVENT_IDX negotiated */
    bool indirect;              /* VIRTIO_RING_F_INDIRECT_DESC negotiated */
    unsigned max_segs;          /* bound per chain; 0 = VRING_MAX_SEGS */
    /* When set, every write to the used ring (entries, idx, avail_event) is marked in the
     * log before the index that publishes it; used_iova is the used ring's IOVA. */
    struct dirty_log *log;
    uint64_t used_iova;

    /* state */
    uint16_t last_avail; /* next avail entry to take (vhost's "base") */
    uint16_t used_idx;   /* next used index to publish */
    uint16_t signalled_used; /* used idx at the last notification (event_idx) */
    bool signalled_used_valid;
    bool broken;     /* a hostile or corrupt ring was seen; nothing more is done */
    char error[160]; /* why, when broken */
};

/* Starts the device side at avail index base, like vhost's SET_VRING_BASE: last_avail =
 * used_idx = base (nothing in flight). */
void vring_dev_start(struct vring_dev *vq, uint16_t base);

/* Takes the next available chain into elem.
 * Returns 1 when elem holds a chain, 0 when the ring is empty, or a negative errno when the
 * ring is bad; then vq->broken is set, vq->error says what was wrong (queue-local, with the
 * values), and every later call returns the same error. */
int vring_dev_pop(struct vring_dev *vq, struct vring_elem *elem);

/* Puts back the last n popped chains (they will be popped again). */
void vring_dev_unpop(struct vring_dev *vq, unsigned n);

/* Number of entries the driver has made available and we have not taken. */
unsigned vring_dev_avail_count(struct vring_dev *vq);

/* Writes used entries and publishes them with one index update (release ordering). */
void vring_dev_fill(struct vring_dev *vq, unsigned offset, uint16_t head, uint32_t len);
void vring_dev_flush(struct vring_dev *vq, unsigned count);
/* fill + flush of one entry */
void vring_dev_push(struct vring_dev *vq, uint16_t head, uint32_t len);

/* After publishing used entries: must the driver be notified (used_event or
 * VRING_AVAIL_F_NO_INTERRUPT)? Updates the event-idx bookkeeping; call once per batch. */
bool vring_dev_need_notify(struct vring_dev *vq);

/* Asks the driver for (enable) or against (disable) kicks: VRING_USED_F_NO_NOTIFY or
 * avail_event. After enabling, check vring_dev_avail_count() again: a buffer added just
 * before the enable did not kick. */
void vring_dev_set_notify(struct vring_dev *vq, bool enable);

/* ------------------------------------------------------------------ driver side */

/* A buffer to add, by IOVA. */
struct vring_buf {
    uint64_t iova;
    uint32_t len;
};

struct vring_drv {
    /* set by the owner before vring_drv_init() */
    struct vring_layout ring;
    bool event_idx;
    bool indirect;

    /* state (owned by the library) */
    uint16_t free_head;
    unsigned num_free;
    uint16_t avail_idx;      /* next avail index to publish (our copy) */
    uint16_t avail_published;
    uint16_t last_used;      /* next used entry to collect */
    uint16_t kicked_avail;   /* avail idx at the last kick decision (event_idx) */
    void **token;            /* per head: caller's token, NULL when free */
    uint16_t *chain_len;     /* per head: descriptors in the chain (1 if indirect) */
    uint32_t *in_len;        /* per head: device-writable bytes, bounds the used length */
    bool broken;
    char error[160];
};

/* Initialises the driver side over zeroed ring memory, starting at avail/used index base.
 * Returns 0 or -ENOMEM / -EINVAL (bad num). */
int vring_drv_init(struct vring_drv *vq, uint16_t base);
void vring_drv_destroy(struct vring_drv *vq);

/* Adds one chain: n_out device-readable buffers, then n_in device-writable ones. token
 * (non-NULL) comes back from vring_drv_get_used(). The chain is not visible to the device
 * until vring_drv_publish(). Returns 0, -ENOSPC (not enough free descriptors) or -EINVAL. */
int vring_drv_add(struct vring_drv *vq, const struct vring_buf *bufs, unsigned n_out,
                  unsigned n_in, void *token);

/* Same, through an indirect table the caller owns: table (local address) at table_iova,
 * with room for n_out + n_in descriptors. Uses one ring descriptor. */
int vring_drv_add_indirect(struct vring_drv *vq, const struct vring_buf *bufs, unsigned n_out,
                           unsigned n_in, void *token, struct vring_desc *table,
                           uint64_t table_iova);

/* Makes added chains visible (avail idx store, release ordering). Returns whether the
 * device must be kicked (VRING_USED_F_NO_NOTIFY or avail_event). */
bool vring_drv_publish(struct vring_drv *vq);

/* Collects one used chain: returns its token and sets *len, or returns NULL when none is
 * pending. A used id that is out of range or not in flight, or a length larger than the
 * chain's writable size, breaks the queue (NULL, vq->broken, vq->error). */
void *vring_drv_get_used(struct vring_drv *vq, uint32_t *len);

/* Number of used entries pending collection. */
unsigned vring_drv_used_count(struct vring_drv *vq);

/* Asks the device for (enable) or against (disable) used notifications
 * (VRING_AVAIL_F_NO_INTERRUPT or used_event). Enable returns false when used entries
 * arrived meanwhile, so the caller polls again before sleeping. */
bool vring_drv_set_notify(struct vring_drv *vq, bool enable);

/* Chains added and not yet used. */
unsigned vring_drv_in_flight(const struct vring_drv *vq);
