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
 *
 * Barriers (both sides mirror each other):
 *   - the consumer of an index (device: avail->idx, driver: used->idx) loads it with acquire
 *     ordering before it reads the entries and descriptors the index covers;
 *   - the producer writes entries first and publishes the index with a release store;
 *   - a full fence separates publishing an index from reading the other side's suppression
 *     state (used_event / avail flags for the device, avail_event / used flags for the
 *     driver), and enabling notifications from re-reading the other side's index.
 * Ownership: ring memory, the iova_map, the dirty log and indirect tables stay the caller's.
 * Errors are returned as negative errno values; nothing here allocates after setup.
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

/* An available buffer (a whole descriptor chain), as popped from the ring.
 * A zero-length descriptor is accepted and yields no segment (its address is not looked
 * at); it still counts against the chain-length bounds and the readable-before-writable
 * order. An indirect descriptor may be the head or end a direct chain (as vhost accepts);
 * the WRITE flag on it is ignored (virtio 1.2 §2.7.5.3.2). */
struct vring_elem {
    uint16_t head;      /* id to return in the used ring */
    unsigned n_out;     /* device-readable segments: seg[0 .. n_out) */
    unsigned n_in;      /* device-writable segments: seg[n_out .. n_out + n_in) */
    uint64_t out_bytes; /* total readable length */
    uint64_t in_bytes;  /* total writable length */
    unsigned max_segs;  /* capacity of seg[] */
    struct vring_seg *seg;
};

/* Allocates an element able to hold max_segs segments (0 = VRING_MAX_SEGS); free with
 * vring_elem_free. Give it at least the queue's max_segs: a chain is bounded by the smaller
 * of the two, and a chain over the bound breaks the queue. */
struct vring_elem *vring_elem_new(unsigned max_segs);
void vring_elem_free(struct vring_elem *elem);

struct vring_dev {
    /* set by the owner before vring_dev_start() */
    struct vring_layout ring;
    const struct iova_map *mem; /* translates buffer and indirect-table IOVAs */
    bool event_idx;             /* VIRTIO_RING_F_EVENT_IDX negotiated */
    bool indirect;              /* VIRTIO_RING_F_INDIRECT_DESC negotiated */
    unsigned max_segs;          /* bound per chain; 0 = VRING_MAX_SEGS */
    /* When set, every write to the used ring (entries, idx, flags, avail_event) is marked
     * in the log right after it is stored: used entries before the used->idx store that
     * publishes them, used->idx just after its own store (marking it before could let the
     * log's reader collect the bit while the page still held the old index). used_iova is
     * the used ring's IOVA (= GPA). */
    struct dirty_log *log;
    uint64_t used_iova;

    /* state */
    uint16_t last_avail; /* next avail entry to take (vhost's "base") */
    uint16_t shadow_avail; /* avail->idx as last read (checked: at most num ahead) */
    uint16_t used_idx;   /* next used index to publish */
    uint16_t signalled_used; /* used idx at the last notification decision (event_idx) */
    bool signalled_used_valid;
    bool broken;     /* a hostile or corrupt ring was seen; nothing more is done */
    int broken_errno; /* the negative errno every call returns once broken */
    char error[160]; /* why, when broken */
};

/* Starts the device side at avail index base, like vhost's SET_VRING_BASE: last_avail =
 * used_idx = base (nothing in flight). Ring memory is not touched. A bad layout (num not
 * valid, a NULL or misaligned part, no mem) breaks the queue at once (-EINVAL). */
void vring_dev_start(struct vring_dev *vq, uint16_t base);

/* Takes the next available chain into elem. Only reads ring memory.
 * Returns 1 when elem holds a chain, 0 when the ring is empty, or a negative errno when the
 * ring is bad; then vq->broken is set, vq->error says what was wrong (queue-local, with the
 * values), and every later call returns the same error:
 *   -EINVAL     avail idx more than num ahead of last_avail; head or next out of range;
 *               INDIRECT with NEXT; nested indirect; indirect not negotiated; indirect
 *               table length 0 or not a multiple of 16; readable descriptor after a
 *               writable one
 *   -ELOOP      chain longer than num (direct) or than its table (indirect): a loop
 *   -E2BIG      more segments than max_segs, or an indirect table of more entries
 *   -EFAULT     buffer unmapped or wrapping; indirect table not in one readable mapping
 *   -EACCES     buffer mapped without the permission its direction needs
 *   -EOVERFLOW  chain longer than 2^32 bytes in total (virtio 1.2 §2.7.5.2) */
int vring_dev_pop(struct vring_dev *vq, struct vring_elem *elem);

/* Puts back the last n popped chains (they will be popped again). n must not exceed the
 * chains popped and not yet filled. */
void vring_dev_unpop(struct vring_dev *vq, unsigned n);

/* Number of entries the driver has made available and we have not taken (reads avail idx
 * afresh). 0 when broken; an avail idx more than num ahead breaks the queue (as pop). */
unsigned vring_dev_avail_count(struct vring_dev *vq);

/* Writes used entries and publishes them with one index update (release ordering).
 * fill writes entry used_idx + offset; flush publishes count filled entries. Both are
 * no-ops on a broken queue. */
void vring_dev_fill(struct vring_dev *vq, unsigned offset, uint16_t head, uint32_t len);
void vring_dev_flush(struct vring_dev *vq, unsigned count);
/* fill + flush of one entry */
void vring_dev_push(struct vring_dev *vq, uint16_t head, uint32_t len);

/* After publishing used entries: must the driver be notified (used_event or
 * VRING_AVAIL_F_NO_INTERRUPT)? Updates the event-idx bookkeeping; call once per batch.
 * False on a broken queue. */
bool vring_dev_need_notify(struct vring_dev *vq);

/* Asks the driver for (enable) or against (disable) kicks: VRING_USED_F_NO_NOTIFY or
 * avail_event. After enabling, check vring_dev_avail_count() again: a buffer added just
 * before the enable did not kick. With event idx, enable sets avail_event to the last avail
 * idx seen and disable writes nothing (the driver then kicks at most once more, as in
 * vhost). */
void vring_dev_set_notify(struct vring_dev *vq, bool enable);

/* Marks in vq->log (when set) the first len bytes of elem's device-writable segments, by
 * IOVA. Call it after writing the buffers and before pushing the used entry for elem. */
void vring_dev_log_write(struct vring_dev *vq, const struct vring_elem *elem, uint32_t len);

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
    uint16_t avail_published; /* avail->idx as last stored; the kick decision's "old" */
    uint16_t last_used;      /* next used entry to collect */
    uint16_t shadow_used;    /* used->idx as last read (checked against chains in flight) */
    unsigned chains_in_flight; /* added and not yet collected */
    void **token;            /* per head: caller's token, NULL when free */
    uint16_t *chain_len;     /* per head: descriptors in the chain (1 if indirect) */
    uint32_t *in_len;        /* per head: device-writable bytes, bounds the used length */
    /* Next links, per descriptor. The free list and every chain are threaded through them;
     * add copies them into desc.next. The driver follows only this private copy, so a
     * device scribbling on the table cannot redirect it. */
    uint16_t *next;
    bool broken;
    char error[160];
};

/* Initialises the driver side over zeroed ring memory, starting at avail/used index base:
 * writes avail->idx and used->idx = base (the ring is the driver's until the device starts)
 * and threads the free list through desc.next. Returns 0 or -ENOMEM / -EINVAL (bad num, a
 * NULL part). */
int vring_drv_init(struct vring_drv *vq, uint16_t base);
void vring_drv_destroy(struct vring_drv *vq);

/* Adds one chain: n_out device-readable buffers, then n_in device-writable ones. token
 * (non-NULL) comes back from vring_drv_get_used(). The chain is not visible to the device
 * until vring_drv_publish(). Returns 0, -ENOSPC (not enough free descriptors), -EIO (queue
 * broken) or -EINVAL (no token, no buffers, more than num, writable total over UINT32_MAX or
 * chain total over 2^32 bytes). */
int vring_drv_add(struct vring_drv *vq, const struct vring_buf *bufs, unsigned n_out,
                  unsigned n_in, void *token);

/* Same, through an indirect table the caller owns: table (local address) at table_iova,
 * with room for n_out + n_in descriptors. Uses one ring descriptor. -EINVAL also when
 * indirect was not negotiated; n_out + n_in must not exceed num (virtio 1.2 §2.7.5.3.1).
 * The table must stay untouched until the chain comes back. */
int vring_drv_add_indirect(struct vring_drv *vq, const struct vring_buf *bufs, unsigned n_out,
                           unsigned n_in, void *token, struct vring_desc *table,
                           uint64_t table_iova);

/* Makes added chains visible (avail idx store, release ordering). Returns whether the
 * device must be kicked (VRING_USED_F_NO_NOTIFY or avail_event). */
bool vring_drv_publish(struct vring_drv *vq);

/* Collects one used chain: returns its token and sets *len (len may be NULL), or returns
 * NULL when none is pending. A used id that is out of range or not in flight, a length
 * larger than the chain's writable size, or a used idx further ahead than the published
 * chains in flight, breaks the queue (NULL, vq->broken, vq->error). */
void *vring_drv_get_used(struct vring_drv *vq, uint32_t *len);

/* Number of used entries pending collection (reads used idx afresh; 0 when broken). */
unsigned vring_drv_used_count(struct vring_drv *vq);

/* Asks the device for (enable) or against (disable) used notifications
 * (VRING_AVAIL_F_NO_INTERRUPT or used_event). Enable returns false when used entries
 * arrived meanwhile, so the caller polls again before sleeping; otherwise true. With event
 * idx, enable sets used_event to last_used and disable writes nothing. */
bool vring_drv_set_notify(struct vring_drv *vq, bool enable);

/* Chains added and not yet used. */
unsigned vring_drv_in_flight(const struct vring_drv *vq);
