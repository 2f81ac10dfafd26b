/* split_ring.c — the split virtqueue, device and driver sides (see split_ring.h). */
#include "config.h"

#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <glib.h>

#include "dirty_log/dirty_log.h"
#include "iova/iova_map.h"
#include "virtio/split_ring.h"

/* virtio 1.2 §2.7.5.2: a chain is at most 2^32 bytes long in total */
#define VRING_MAX_CHAIN_BYTES (1ull << 32)

/* ------------------------------------------------------------------ layout */

size_t vring_desc_bytes(unsigned num)
{
    return (size_t)num * sizeof(struct vring_desc);
}

size_t vring_avail_bytes(unsigned num)
{
    return offsetof(struct vring_avail, ring) + (size_t)num * sizeof(__virtio16) +
           sizeof(__virtio16);
}

size_t vring_used_bytes(unsigned num)
{
    return offsetof(struct vring_used, ring) + (size_t)num * sizeof(struct vring_used_elem) +
           sizeof(__virtio16);
}

bool vring_num_valid(unsigned num)
{
    return num >= 1 && num <= VRING_MAX_NUM && (num & (num - 1)) == 0;
}

static __virtio16 *used_event(const struct vring_layout *r)
{
    return &r->avail->ring[r->num];
}

static __virtio16 *avail_event(const struct vring_layout *r)
{
    return (__virtio16 *)&r->used->ring[r->num];
}

/* Ring fields are little endian (virtio 1.x) and shared with another thread or process. */
static inline uint16_t load16(const __virtio16 *p)
{
    return le16toh(__atomic_load_n(p, __ATOMIC_RELAXED));
}

static inline uint16_t load16_acquire(const __virtio16 *p)
{
    return le16toh(__atomic_load_n(p, __ATOMIC_ACQUIRE));
}

static inline uint32_t load32(const __virtio32 *p)
{
    return le32toh(__atomic_load_n(p, __ATOMIC_RELAXED));
}

static inline void store16(__virtio16 *p, uint16_t v)
{
    __atomic_store_n(p, htole16(v), __ATOMIC_RELAXED);
}

static inline void store16_release(__virtio16 *p, uint16_t v)
{
    __atomic_store_n(p, htole16(v), __ATOMIC_RELEASE);
}

static inline void store32(__virtio32 *p, uint32_t v)
{
    __atomic_store_n(p, htole32(v), __ATOMIC_RELAXED);
}

static inline void full_fence(void)
{
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
}

/* ------------------------------------------------------------------ device side */

struct vring_elem *vring_elem_new(unsigned max_segs)
{
    if (max_segs == 0)
        max_segs = VRING_MAX_SEGS;

    struct vring_elem *elem =
        g_malloc0(sizeof(*elem) + (size_t)max_segs * sizeof(struct vring_seg));

    elem->max_segs = max_segs;
    elem->seg = (struct vring_seg *)(elem + 1);
    return elem;
}

void vring_elem_free(struct vring_elem *elem)
{
    g_free(elem);
}

static int dev_fail(struct vring_dev *vq, int errnum, const char *fmt, ...) G_GNUC_PRINTF(3, 4);

static int dev_fail(struct vring_dev *vq, int errnum, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(vq->error, sizeof(vq->error), fmt, ap);
    va_end(ap);
    vq->broken = true;
    vq->broken_errno = -errnum;
    return -errnum;
}

void vring_dev_start(struct vring_dev *vq, uint16_t base)
{
    const struct vring_layout *r = &vq->ring;

    vq->last_avail = base;
    vq->shadow_avail = base;
    vq->used_idx = base;
    vq->signalled_used = base;
    vq->signalled_used_valid = false;
    vq->broken = false;
    vq->broken_errno = 0;
    vq->error[0] = '\0';
    if (!vring_num_valid(r->num) || !r->desc || !r->avail || !r->used || !vq->mem ||
        (uintptr_t)r->desc % VRING_DESC_ALIGN || (uintptr_t)r->avail % VRING_AVAIL_ALIGN ||
        (uintptr_t)r->used % VRING_USED_ALIGN)
        dev_fail(vq, EINVAL, "bad ring layout: num %u desc %p avail %p used %p mem %p",
                 r->num, (void *)r->desc, (void *)r->avail, (void *)r->used,
                 (const void *)vq->mem);
}

/* Reads avail->idx (acquire: the entries and descriptors it covers are read after it). */
static int dev_read_avail_idx(struct vring_dev *vq)
{
    uint16_t idx = load16_acquire(&vq->ring.avail->idx);
    uint16_t ahead = (uint16_t)(idx - vq->last_avail);

    if (ahead > vq->ring.num)
        return dev_fail(vq, EINVAL, "avail idx %u is %u ahead of last_avail %u (num %u)", idx,
                        ahead, vq->last_avail, vq->ring.num);
    vq->shadow_avail = idx;
    return 0;
}

/* Copies one descriptor out of shared memory. The driver may rewrite the table while we
 * walk it, so every field is fetched once and then only the copy is used. Indirect tables
 * may be misaligned, hence memcpy from bytes. */
static void desc_read(struct vring_desc *out, const unsigned char *table, unsigned idx)
{
    memcpy(out, table + (size_t)idx * sizeof(*out), sizeof(*out));
    __asm__ __volatile__("" ::: "memory");
}

struct walk {
    struct vring_dev *vq;
    struct vring_elem *elem;
    unsigned max_segs;
    unsigned nseg;
    uint16_t head;
    bool indirect;  /* inside an indirect table */
    unsigned index; /* of the current descriptor in its table */
};

static const char *walk_where(const struct walk *w)
{
    return w->indirect ? "indirect entry" : "descriptor";
}

/* Appends the segments of one non-empty buffer, translated through the map. */
static int walk_add_buffer(struct walk *w, uint64_t iova, uint32_t len, bool write)
{
    struct vring_dev *vq = w->vq;
    uint64_t at = iova, left = len;

    if (iova > UINT64_MAX - (len - 1))
        return dev_fail(vq, EFAULT, "head %u: %s %u: buffer iova 0x%" PRIx64 " len %u wraps",
                        w->head, walk_where(w), w->index, iova, len);
    while (left) {
        struct iova_seg s;

        if (w->nseg == w->max_segs)
            return dev_fail(vq, E2BIG, "head %u: chain needs more than max_segs %u segments",
                            w->head, w->max_segs);

        int r = iova_map_first_seg(vq->mem, at, left, write ? IOVA_PERM_WRITE : IOVA_PERM_READ,
                                   &s);

        if (r == -EACCES)
            return dev_fail(vq, EACCES,
                            "head %u: %s %u: buffer iova 0x%" PRIx64 " len %u: iova 0x%" PRIx64
                            " is not %s",
                            w->head, walk_where(w), w->index, iova, len, at,
                            write ? "writable" : "readable");
        if (r < 0)
            return dev_fail(vq, EFAULT,
                            "head %u: %s %u: buffer iova 0x%" PRIx64 " len %u: iova 0x%" PRIx64
                            " is not mapped",
                            w->head, walk_where(w), w->index, iova, len, at);
        w->elem->seg[w->nseg++] = (struct vring_seg){ .iova = s.iova, .addr = s.addr,
                                                      .len = (uint32_t)s.len };
        at += s.len;
        left -= s.len;
    }
    return 0;
}

static int walk_chain(struct vring_dev *vq, uint16_t head, struct vring_elem *elem)
{
    const unsigned num = vq->ring.num;
    struct walk w = { .vq = vq, .elem = elem, .head = head, .index = head };
    const unsigned char *table = (const unsigned char *)vq->ring.desc;
    unsigned table_size = num, visited = 0;
    uint64_t out_bytes = 0, in_bytes = 0;
    unsigned n_out = 0;
    bool seen_write = false;

    w.max_segs = vq->max_segs ? vq->max_segs : VRING_MAX_SEGS;
    if (elem->max_segs < w.max_segs)
        w.max_segs = elem->max_segs;

    for (;;) {
        struct vring_desc d;

        /* Every descriptor of a table visited once at most: more means a loop. This bounds
         * the walk at num + max_segs steps whatever the ring holds. */
        if (++visited > table_size) {
            if (w.indirect)
                return dev_fail(vq, ELOOP,
                                "head %u: chain in indirect table is longer than its %u "
                                "entries (loop?)",
                                head, table_size);
            return dev_fail(vq, ELOOP, "head %u: chain is longer than num %u (loop?)", head,
                            num);
        }
        desc_read(&d, table, w.index);

        uint16_t flags = le16toh(d.flags);
        uint32_t len = le32toh(d.len);
        uint64_t addr = le64toh(d.addr);

        if (flags & VRING_DESC_F_INDIRECT) {
            if (w.indirect)
                return dev_fail(vq, EINVAL, "head %u: indirect entry %u is itself indirect",
                                head, w.index);
            if (!vq->indirect)
                return dev_fail(vq, EINVAL,
                                "head %u: descriptor %u is indirect, but "
                                "VIRTIO_RING_F_INDIRECT_DESC was not negotiated",
                                head, w.index);
            if (flags & VRING_DESC_F_NEXT)
                return dev_fail(vq, EINVAL,
                                "head %u: descriptor %u has both INDIRECT and NEXT (flags 0x%x)",
                                head, w.index, flags);
            if (len == 0 || len % sizeof(struct vring_desc))
                return dev_fail(vq, EINVAL,
                                "head %u: descriptor %u: indirect table length %u is not a "
                                "non-zero multiple of 16",
                                head, w.index, len);
            if (len / sizeof(struct vring_desc) > w.max_segs)
                return dev_fail(vq, E2BIG,
                                "head %u: descriptor %u: indirect table of %u entries exceeds "
                                "max_segs %u",
                                head, w.index, (unsigned)(len / sizeof(struct vring_desc)),
                                w.max_segs);

            const unsigned char *t = iova_map_ptr(vq->mem, addr, len, IOVA_PERM_READ);

            if (!t)
                return dev_fail(vq, EFAULT,
                                "head %u: descriptor %u: indirect table at iova 0x%" PRIx64
                                " len %u is not in one readable mapping",
                                head, w.index, addr, len);
            table = t;
            table_size = len / sizeof(struct vring_desc);
            visited = 0;
            w.indirect = true;
            w.index = 0;
            continue;
        }

        bool write = flags & VRING_DESC_F_WRITE;

        if (write)
            seen_write = true;
        else if (seen_write)
            return dev_fail(vq, EINVAL,
                            "head %u: %s %u is device-readable but follows a writable one",
                            head, walk_where(&w), w.index);
        /* zero-length descriptors are accepted and yield no segment */
        if (len) {
            if (out_bytes + in_bytes + len > VRING_MAX_CHAIN_BYTES)
                return dev_fail(vq, EOVERFLOW,
                                "head %u: %s %u (len %u) takes the chain past 2^32 bytes "
                                "(0x%" PRIx64 " before it)",
                                head, walk_where(&w), w.index, len, out_bytes + in_bytes);

            int r = walk_add_buffer(&w, addr, len, write);

            if (r)
                return r;
            if (write)
                in_bytes += len;
            else {
                out_bytes += len;
                n_out = w.nseg;
            }
        }
        if (!(flags & VRING_DESC_F_NEXT))
            break;

        uint16_t next = le16toh(d.next);

        if (next >= table_size)
            return dev_fail(vq, EINVAL, "head %u: %s %u has next %u >= %s %u", head,
                            walk_where(&w), w.index, next,
                            w.indirect ? "table size" : "num", table_size);
        w.index = next;
    }
    elem->head = head;
    elem->n_out = n_out;
    elem->n_in = w.nseg - n_out;
    elem->out_bytes = out_bytes;
    elem->in_bytes = in_bytes;
    return 0;
}

int vring_dev_pop(struct vring_dev *vq, struct vring_elem *elem)
{
    if (vq->broken)
        return vq->broken_errno;
    if (vq->last_avail == vq->shadow_avail) {
        int r = dev_read_avail_idx(vq);

        if (r)
            return r;
        if (vq->last_avail == vq->shadow_avail)
            return 0;
    }

    unsigned slot = vq->last_avail & (vq->ring.num - 1);
    uint16_t head = load16(&vq->ring.avail->ring[slot]);

    if (head >= vq->ring.num)
        return dev_fail(vq, EINVAL, "avail ring entry %u (avail index %u) has head %u >= num %u",
                        slot, vq->last_avail, head, vq->ring.num);

    int r = walk_chain(vq, head, elem);

    if (r)
        return r;
    vq->last_avail++;
    return 1;
}

void vring_dev_unpop(struct vring_dev *vq, unsigned n)
{
    vq->last_avail = (uint16_t)(vq->last_avail - n);
}

unsigned vring_dev_avail_count(struct vring_dev *vq)
{
    if (vq->broken || dev_read_avail_idx(vq))
        return 0;
    return (uint16_t)(vq->shadow_avail - vq->last_avail);
}

/* Marks a used-ring write in the dirty log. Always after the write it covers: the log's
 * reader may collect and clear a bit at any time, so a mark made before the write could be
 * consumed while the page still held the old value. */
static void dev_log(struct vring_dev *vq, size_t offset, size_t len)
{
    if (vq->log)
        dirty_log_mark(vq->log, vq->used_iova + offset, len);
}

void vring_dev_fill(struct vring_dev *vq, unsigned offset, uint16_t head, uint32_t len)
{
    if (vq->broken)
        return;

    unsigned slot = (uint16_t)(vq->used_idx + offset) & (vq->ring.num - 1);
    struct vring_used_elem *e = &vq->ring.used->ring[slot];

    store32(&e->id, head);
    store32(&e->len, len);
    /* logged before the used->idx store that publishes it */
    dev_log(vq, offsetof(struct vring_used, ring) + slot * sizeof(*e), sizeof(*e));
}

void vring_dev_flush(struct vring_dev *vq, unsigned count)
{
    if (vq->broken)
        return;

    uint16_t old = vq->used_idx, new = (uint16_t)(old + count);

    store16_release(&vq->ring.used->idx, new);
    dev_log(vq, offsetof(struct vring_used, idx), sizeof(__virtio16));
    vq->used_idx = new;
    /* the event window [signalled_used, new) would pass 2^16 entries: notify next time */
    if ((uint16_t)(new - vq->signalled_used) < (uint16_t)(new - old))
        vq->signalled_used_valid = false;
}

void vring_dev_push(struct vring_dev *vq, uint16_t head, uint32_t len)
{
    vring_dev_fill(vq, 0, head, len);
    vring_dev_flush(vq, 1);
}

bool vring_dev_need_notify(struct vring_dev *vq)
{
    if (vq->broken)
        return false;
    /* our used->idx store before reading whether the driver wants to hear of it */
    full_fence();
    if (!vq->event_idx)
        return !(load16(&vq->ring.avail->flags) & VRING_AVAIL_F_NO_INTERRUPT);

    uint16_t old = vq->signalled_used, new = vq->used_idx;
    bool valid = vq->signalled_used_valid;

    vq->signalled_used = new;
    vq->signalled_used_valid = true;
    return !valid || vring_need_event(load16(used_event(&vq->ring)), new, old);
}

void vring_dev_set_notify(struct vring_dev *vq, bool enable)
{
    if (vq->broken)
        return;
    if (vq->event_idx) {
        if (!enable)
            return;
        store16(avail_event(&vq->ring), vq->shadow_avail);
        dev_log(vq, offsetof(struct vring_used, ring) +
                        vq->ring.num * sizeof(struct vring_used_elem),
                sizeof(__virtio16));
    } else {
        store16(&vq->ring.used->flags, enable ? 0 : VRING_USED_F_NO_NOTIFY);
        dev_log(vq, offsetof(struct vring_used, flags), sizeof(__virtio16));
    }
    /* the request is visible before the caller re-reads avail->idx */
    if (enable)
        full_fence();
}

void vring_dev_log_write(struct vring_dev *vq, const struct vring_elem *elem, uint32_t len)
{
    if (!vq->log)
        return;
    for (unsigned i = elem->n_out; i < elem->n_out + elem->n_in && len; i++) {
        uint32_t l = elem->seg[i].len < len ? elem->seg[i].len : len;

        dirty_log_mark(vq->log, elem->seg[i].iova, l);
        len -= l;
    }
}

/* ------------------------------------------------------------------ driver side */

static void drv_fail(struct vring_drv *vq, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

static void drv_fail(struct vring_drv *vq, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(vq->error, sizeof(vq->error), fmt, ap);
    va_end(ap);
    vq->broken = true;
}

static void drv_free_arrays(struct vring_drv *vq)
{
    g_clear_pointer(&vq->token, g_free);
    g_clear_pointer(&vq->chain_len, g_free);
    g_clear_pointer(&vq->in_len, g_free);
    g_clear_pointer(&vq->next, g_free);
}

int vring_drv_init(struct vring_drv *vq, uint16_t base)
{
    const struct vring_layout *r = &vq->ring;
    unsigned num = r->num;

    vq->token = NULL;
    vq->chain_len = NULL;
    vq->in_len = NULL;
    vq->next = NULL;
    if (!vring_num_valid(num) || !r->desc || !r->avail || !r->used)
        return -EINVAL;
    vq->token = g_try_new0(void *, num);
    vq->chain_len = g_try_new0(uint16_t, num);
    vq->in_len = g_try_new0(uint32_t, num);
    vq->next = g_try_new0(uint16_t, num);
    if (!vq->token || !vq->chain_len || !vq->in_len || !vq->next) {
        drv_free_arrays(vq);
        return -ENOMEM;
    }
    for (unsigned i = 0; i < num; i++) {
        vq->next[i] = (uint16_t)((i + 1) % num);
        r->desc[i].next = htole16(vq->next[i]);
    }
    vq->free_head = 0;
    vq->num_free = num;
    vq->avail_idx = base;
    vq->avail_published = base;
    vq->last_used = base;
    vq->shadow_used = base;
    vq->chains_in_flight = 0;
    vq->broken = false;
    vq->error[0] = '\0';
    store16(&r->avail->flags, 0);
    store16(&r->avail->idx, base);
    store16(&r->used->idx, base);
    /* with event idx, a device that has not run yet has asked for nothing: arm both events at
     * base, or a ring started at a non-zero base (a migration's destination) would never kick
     * for its first buffer */
    store16(avail_event(r), base);
    store16(used_event(r), base);
    return 0;
}

void vring_drv_destroy(struct vring_drv *vq)
{
    drv_free_arrays(vq);
}

/* Checks a chain's shape; returns its writable byte count or -EINVAL. */
static int64_t drv_check_chain(const struct vring_drv *vq, const struct vring_buf *bufs,
                               unsigned n_out, unsigned n_in, const void *token)
{
    uint64_t out = 0, in = 0;

    if (!token || !bufs || n_out > vq->ring.num || n_in > vq->ring.num ||
        n_out + n_in == 0 || n_out + n_in > vq->ring.num)
        return -EINVAL;
    for (unsigned i = 0; i < n_out; i++)
        out += bufs[i].len;
    for (unsigned i = n_out; i < n_out + n_in; i++)
        in += bufs[i].len;
    if (in > UINT32_MAX || out + in > VRING_MAX_CHAIN_BYTES)
        return -EINVAL;
    return (int64_t)in;
}

static void drv_make_available(struct vring_drv *vq, uint16_t head, void *token,
                               uint16_t chain_len, uint32_t in_len)
{
    vq->token[head] = token;
    vq->chain_len[head] = chain_len;
    vq->in_len[head] = in_len;
    store16(&vq->ring.avail->ring[vq->avail_idx & (vq->ring.num - 1)], head);
    vq->avail_idx++;
    vq->chains_in_flight++;
}

static void desc_write(struct vring_desc *d, uint64_t addr, uint32_t len, uint16_t flags,
                       uint16_t next)
{
    d->addr = htole64(addr);
    d->len = htole32(len);
    d->flags = htole16(flags);
    d->next = htole16(next);
}

int vring_drv_add(struct vring_drv *vq, const struct vring_buf *bufs, unsigned n_out,
                  unsigned n_in, void *token)
{
    if (vq->broken)
        return -EIO;

    int64_t in = drv_check_chain(vq, bufs, n_out, n_in, token);
    unsigned total = n_out + n_in;

    if (in < 0)
        return (int)in;
    if (total > vq->num_free)
        return -ENOSPC;

    uint16_t head = vq->free_head, cur = head;

    for (unsigned i = 0; i < total; i++) {
        uint16_t flags = (i >= n_out ? VRING_DESC_F_WRITE : 0) |
                         (i + 1 < total ? VRING_DESC_F_NEXT : 0);

        desc_write(&vq->ring.desc[cur], bufs[i].iova, bufs[i].len, flags, vq->next[cur]);
        cur = vq->next[cur];
    }
    vq->free_head = cur;
    vq->num_free -= total;
    drv_make_available(vq, head, token, (uint16_t)total, (uint32_t)in);
    return 0;
}

int vring_drv_add_indirect(struct vring_drv *vq, const struct vring_buf *bufs, unsigned n_out,
                           unsigned n_in, void *token, struct vring_desc *table,
                           uint64_t table_iova)
{
    if (vq->broken)
        return -EIO;
    if (!vq->indirect || !table)
        return -EINVAL;

    int64_t in = drv_check_chain(vq, bufs, n_out, n_in, token);
    unsigned total = n_out + n_in;

    if (in < 0)
        return (int)in;
    if (vq->num_free == 0)
        return -ENOSPC;
    for (unsigned i = 0; i < total; i++) {
        uint16_t flags = (i >= n_out ? VRING_DESC_F_WRITE : 0) |
                         (i + 1 < total ? VRING_DESC_F_NEXT : 0);

        desc_write(&table[i], bufs[i].iova, bufs[i].len, flags,
                   (uint16_t)(i + 1 < total ? i + 1 : 0));
    }

    uint16_t head = vq->free_head;

    desc_write(&vq->ring.desc[head], table_iova, total * (uint32_t)sizeof(struct vring_desc),
               VRING_DESC_F_INDIRECT, vq->next[head]);
    vq->free_head = vq->next[head];
    vq->num_free--;
    drv_make_available(vq, head, token, 1, (uint32_t)in);
    return 0;
}

bool vring_drv_publish(struct vring_drv *vq)
{
    if (vq->broken)
        return false;

    uint16_t old = vq->avail_published, new = vq->avail_idx;

    if (old == new)
        return false;
    /* ring entries and descriptors before the index that covers them */
    store16_release(&vq->ring.avail->idx, new);
    vq->avail_published = new;
    /* our avail->idx store before reading whether the device wants to hear of it */
    full_fence();
    if (vq->event_idx)
        return vring_need_event(load16(avail_event(&vq->ring)), new, old);
    return !(load16(&vq->ring.used->flags) & VRING_USED_F_NO_NOTIFY);
}

/* Reads used->idx (acquire: the used entries it covers are read after it). */
static bool drv_read_used_idx(struct vring_drv *vq)
{
    uint16_t idx = load16_acquire(&vq->ring.used->idx);
    uint16_t ahead = (uint16_t)(idx - vq->last_used);
    /* the device can only have seen what was published */
    unsigned visible = vq->chains_in_flight - (uint16_t)(vq->avail_idx - vq->avail_published);

    if (ahead > visible) {
        drv_fail(vq, "used idx %u is %u ahead of last_used %u with %u chains in flight", idx,
                 ahead, vq->last_used, visible);
        return false;
    }
    vq->shadow_used = idx;
    return true;
}

void *vring_drv_get_used(struct vring_drv *vq, uint32_t *len)
{
    if (vq->broken)
        return NULL;
    if (vq->last_used == vq->shadow_used &&
        (!drv_read_used_idx(vq) || vq->last_used == vq->shadow_used))
        return NULL;

    const unsigned num = vq->ring.num;
    unsigned slot = vq->last_used & (num - 1);
    const struct vring_used_elem *e = &vq->ring.used->ring[slot];
    uint32_t id = load32(&e->id), used_len = load32(&e->len);

    if (id >= num) {
        drv_fail(vq, "used entry %u (used index %u) has id %u >= num %u", slot, vq->last_used,
                 id, num);
        return NULL;
    }
    if (!vq->token[id]) {
        drv_fail(vq, "used entry %u (used index %u) has id %u, which is not in flight", slot,
                 vq->last_used, id);
        return NULL;
    }
    if (used_len > vq->in_len[id]) {
        drv_fail(vq, "used entry %u (used index %u): len %u for id %u exceeds its %u writable "
                 "bytes",
                 slot, vq->last_used, used_len, id, vq->in_len[id]);
        return NULL;
    }

    /* return the chain to the free list, following our own copy of the links */
    uint16_t last = (uint16_t)id;

    for (unsigned i = 1; i < vq->chain_len[id]; i++)
        last = vq->next[last];
    vq->next[last] = vq->free_head;
    vq->free_head = (uint16_t)id;
    vq->num_free += vq->chain_len[id];

    void *token = vq->token[id];

    vq->token[id] = NULL;
    vq->last_used++;
    vq->chains_in_flight--;
    if (len)
        *len = used_len;
    return token;
}

unsigned vring_drv_used_count(struct vring_drv *vq)
{
    if (vq->broken || !drv_read_used_idx(vq))
        return 0;
    return (uint16_t)(vq->shadow_used - vq->last_used);
}

bool vring_drv_set_notify(struct vring_drv *vq, bool enable)
{
    if (vq->broken)
        return true;
    if (vq->event_idx) {
        if (!enable)
            return true;
        store16(used_event(&vq->ring), vq->last_used);
    } else {
        store16(&vq->ring.avail->flags, enable ? 0 : VRING_AVAIL_F_NO_INTERRUPT);
    }
    if (!enable)
        return true;
    /* the request is visible before we re-read used->idx */
    full_fence();
    return vring_drv_used_count(vq) == 0;
}

unsigned vring_drv_in_flight(const struct vring_drv *vq)
{
    return vq->chains_in_flight;
}
