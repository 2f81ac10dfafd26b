/* blk_req.c — virtio-blk request layout and bounds checks, and bounded data copies. */
#include "config.h"

#include "virtio/blk_req.h"

#include <endian.h>
#include <linux/virtio_blk.h>
#include <string.h>

#define BIT(f) (1ull << (f))
#define SECTOR 512u
#define HDR_BYTES 16u   /* struct virtio_blk_outhdr */
#define RANGE_BYTES 16u /* struct virtio_blk_discard_write_zeroes */

static uint8_t fail(const char **why, uint8_t status, const char *text)
{
    if (why)
        *why = text;
    return status;
}

/* Copies up to len bytes starting at byte skip of segments [i, end) into buf. */
static size_t gather(const struct vring_elem *e, unsigned i, unsigned end, uint64_t skip,
                     void *buf, size_t len)
{
    size_t done = 0;

    for (; i < end && done < len; i++) {
        uint32_t seg_len = e->seg[i].len;
        if (skip >= seg_len) {
            skip -= seg_len;
            continue;
        }
        size_t n = seg_len - skip;
        if (n > len - done)
            n = len - done;
        memcpy((uint8_t *)buf + done, (const uint8_t *)e->seg[i].addr + skip, n);
        done += n;
        skip = 0;
    }
    return done;
}

/* Points req's data part at len bytes starting start bytes into segments [first, end);
 * the caller has checked that they are there. */
static void set_data(const struct vring_elem *e, unsigned first, unsigned end, uint64_t start,
                     uint64_t len, struct blk_request *req)
{
    unsigned i = first, j;
    uint64_t left;

    req->data_len = len;
    if (len == 0)
        return; /* data_seg = data_nseg = data_off = 0 */
    while (i < end && start >= e->seg[i].len) {
        start -= e->seg[i].len;
        i++;
    }
    req->data_seg = i;
    req->data_off = (uint32_t)start;
    left = start + len; /* bytes counted from the start of segment i */
    for (j = i; j < end && left > e->seg[j].len; j++)
        left -= e->seg[j].len;
    req->data_nseg = j - i + 1;
}

/* seg_max and size_max for IN/OUT data (0 = no limit). seg_max counts descriptors: a piece
 * whose IOVA continues the previous one may be one descriptor that vring_dev_pop split at an
 * iova_map region boundary, so it is counted with it. size_max is checked per piece. Both
 * err on the side of accepting: a valid request is never refused. */
static uint8_t check_data_segments(const struct vring_elem *e, const struct blk_request *req,
                                   const struct blk_limits *lim, const char **why)
{
    uint64_t left = req->data_len, skip = req->data_off;
    uint32_t descs = 0;
    const struct vring_seg *prev = NULL;

    for (unsigned i = req->data_seg; i < req->data_seg + req->data_nseg && left; i++) {
        const struct vring_seg *s = &e->seg[i];
        uint64_t part = s->len - skip;
        if (part > left)
            part = left;
        if (part == 0)
            continue;
        if (lim->size_max && part > lim->size_max)
            return fail(why, VIRTIO_BLK_S_IOERR, "data segment larger than size_max");
        if (!prev || prev->iova + prev->len != s->iova)
            descs++;
        prev = s;
        left -= part;
        skip = 0;
    }
    if (lim->seg_max && descs > lim->seg_max)
        return fail(why, VIRTIO_BLK_S_IOERR, "more data segments than seg_max");
    return VIRTIO_BLK_S_OK;
}

/* sector + n sectors within capacity, without overflow */
static bool in_capacity(uint64_t sector, uint64_t n, uint64_t capacity)
{
    return sector <= capacity && n <= capacity - sector;
}

static uint8_t parse_ranges(const struct vring_elem *e, const struct blk_limits *lim,
                            struct blk_request *req, bool write_zeroes, const char **why)
{
    uint32_t max_seg = write_zeroes ? lim->max_write_zeroes_seg : lim->max_discard_seg;
    uint32_t max_sectors = write_zeroes ? lim->max_write_zeroes_sectors : lim->max_discard_sectors;
    uint64_t count;

    if (req->data_len % RANGE_BYTES)
        return fail(why, VIRTIO_BLK_S_IOERR, "range data not a multiple of 16 bytes");
    count = req->data_len / RANGE_BYTES;
    if (count == 0)
        return fail(why, VIRTIO_BLK_S_IOERR, "no range");
    if (count > max_seg)
        return fail(why, VIRTIO_BLK_S_IOERR,
                    write_zeroes ? "more ranges than max_write_zeroes_seg"
                                 : "more ranges than max_discard_seg");
    if (count > BLK_REQ_MAX_RANGES)
        return fail(why, VIRTIO_BLK_S_UNSUPP, "more ranges than BLK_REQ_MAX_RANGES");
    req->n_ranges = (unsigned)count;
    for (unsigned k = 0; k < req->n_ranges; k++) {
        uint8_t raw[RANGE_BYTES];
        uint64_t sector;
        uint32_t num, flags;
        struct blk_range *r = &req->range[k];

        gather(e, 0, e->n_out, HDR_BYTES + (uint64_t)k * RANGE_BYTES, raw, sizeof(raw));
        memcpy(&sector, raw, 8);
        memcpy(&num, raw + 8, 4);
        memcpy(&flags, raw + 12, 4);
        r->sector = le64toh(sector);
        r->num_sectors = le32toh(num);
        r->flags = le32toh(flags);
        /* QEMU's order: size, bounds, then flags */
        if (r->num_sectors > max_sectors)
            return fail(why, VIRTIO_BLK_S_IOERR,
                        write_zeroes ? "range larger than max_write_zeroes_sectors"
                                     : "range larger than max_discard_sectors");
        if (!in_capacity(r->sector, r->num_sectors, lim->capacity))
            return fail(why, VIRTIO_BLK_S_IOERR, "range beyond capacity");
        /* virtio 1.2 "Device Operation": unknown flags, and unmap on discard, are UNSUPP */
        if (r->flags & ~(uint32_t)VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP)
            return fail(why, VIRTIO_BLK_S_UNSUPP, "unknown range flags");
        if (!write_zeroes && r->flags)
            return fail(why, VIRTIO_BLK_S_UNSUPP, "unmap flag on a discard range");
    }
    return VIRTIO_BLK_S_OK;
}

uint8_t blk_req_parse(const struct vring_elem *elem, const struct blk_limits *lim,
                      struct blk_request *req, const char **why)
{
    unsigned n_out = elem->n_out, end = elem->n_out + elem->n_in;
    uint64_t out_total = 0, in_total = 0;
    uint8_t hdr[HDR_BYTES];
    uint32_t type;
    uint64_t sector;
    bool ro = lim->features & BIT(VIRTIO_BLK_F_RO);

    memset(req, 0, sizeof(*req));
    for (unsigned i = 0; i < end; i++) {
        if (i < n_out)
            out_total += elem->seg[i].len;
        else
            in_total += elem->seg[i].len;
    }

    /* the status byte is the chain's last writable byte */
    for (unsigned i = end; i > n_out; i--) {
        const struct vring_seg *s = &elem->seg[i - 1];
        if (s->len) {
            req->status = (uint8_t *)s->addr + s->len - 1;
            break;
        }
    }
    if (!req->status)
        return fail(why, VIRTIO_BLK_S_IOERR, "no writable status byte");

    if (out_total < HDR_BYTES)
        return fail(why, VIRTIO_BLK_S_IOERR, "request header cut off");
    gather(elem, 0, n_out, 0, hdr, sizeof(hdr));
    memcpy(&type, hdr, 4);
    memcpy(&sector, hdr + 8, 8);
    req->type = le32toh(type);
    req->sector = le64toh(sector);

    switch (req->type) {
    case VIRTIO_BLK_T_IN:
    case VIRTIO_BLK_T_GET_ID:
        /* data is writable; nothing may follow the header on the readable side */
        if (out_total != HDR_BYTES)
            return fail(why, VIRTIO_BLK_S_IOERR, "readable bytes after the header of a read");
        set_data(elem, n_out, end, 0, in_total - 1, req);
        if (req->type == VIRTIO_BLK_T_GET_ID) {
            if (req->data_len != VIRTIO_BLK_ID_BYTES)
                return fail(why, VIRTIO_BLK_S_IOERR, "GET_ID data is not 20 bytes");
            return VIRTIO_BLK_S_OK;
        }
        break;
    case VIRTIO_BLK_T_OUT:
        if (ro)
            return fail(why, VIRTIO_BLK_S_IOERR, "write to a read-only device");
        if (in_total != 1)
            return fail(why, VIRTIO_BLK_S_IOERR, "writable bytes before the status of a write");
        set_data(elem, 0, n_out, HDR_BYTES, out_total - HDR_BYTES, req);
        break;
    case VIRTIO_BLK_T_FLUSH:
        if (!(lim->features & BIT(VIRTIO_BLK_F_FLUSH)))
            return fail(why, VIRTIO_BLK_S_UNSUPP, "FLUSH without VIRTIO_BLK_F_FLUSH");
        return VIRTIO_BLK_S_OK; /* any data is ignored; data_len = 0 */
    case VIRTIO_BLK_T_DISCARD:
    case VIRTIO_BLK_T_WRITE_ZEROES: {
        bool wz = req->type == VIRTIO_BLK_T_WRITE_ZEROES;
        if (!(lim->features & BIT(wz ? VIRTIO_BLK_F_WRITE_ZEROES : VIRTIO_BLK_F_DISCARD)))
            return fail(why, VIRTIO_BLK_S_UNSUPP,
                        wz ? "WRITE_ZEROES without VIRTIO_BLK_F_WRITE_ZEROES"
                           : "DISCARD without VIRTIO_BLK_F_DISCARD");
        if (ro)
            return fail(why, VIRTIO_BLK_S_IOERR, "discard or write zeroes on a read-only device");
        if (in_total != 1)
            return fail(why, VIRTIO_BLK_S_IOERR, "writable bytes before the status");
        set_data(elem, 0, n_out, HDR_BYTES, out_total - HDR_BYTES, req);
        return parse_ranges(elem, lim, req, wz, why);
    }
    default:
        /* SCSI, GET_LIFETIME, SECURE_ERASE, zoned, legacy barrier bit, unknown */
        return fail(why, VIRTIO_BLK_S_UNSUPP, "unsupported request type");
    }

    /* IN / OUT */
    if (req->data_len % SECTOR)
        return fail(why, VIRTIO_BLK_S_IOERR, "data length not a multiple of 512");
    if (!in_capacity(req->sector, req->data_len / SECTOR, lim->capacity))
        return fail(why, VIRTIO_BLK_S_IOERR, "access beyond capacity");
    return check_data_segments(elem, req, lim, why);
}

/* The walk shared by both copies; to_guest says which way. */
static size_t copy_data(const struct vring_elem *e, const struct blk_request *req, uint64_t off,
                        void *buf, size_t len, bool to_guest)
{
    unsigned end = e->n_out + e->n_in;
    uint64_t skip;
    size_t done = 0;

    if (off >= req->data_len || len == 0 || req->data_nseg == 0)
        return 0;
    if (len > req->data_len - off)
        len = (size_t)(req->data_len - off);
    if (req->data_seg + req->data_nseg < end)
        end = req->data_seg + req->data_nseg;
    /* the device writes only writable segments and reads only readable ones */
    if (to_guest ? req->data_seg < e->n_out : end > e->n_out)
        return 0;
    skip = (uint64_t)req->data_off + off;
    for (unsigned i = req->data_seg; i < end && done < len; i++) {
        uint32_t seg_len = e->seg[i].len;
        if (skip >= seg_len) {
            skip -= seg_len;
            continue;
        }
        size_t n = seg_len - skip;
        if (n > len - done)
            n = len - done;
        uint8_t *g = (uint8_t *)e->seg[i].addr + skip;
        if (to_guest)
            memcpy(g, (const uint8_t *)buf + done, n);
        else
            memcpy((uint8_t *)buf + done, g, n);
        done += n;
        skip = 0;
    }
    return done;
}

size_t blk_req_copy_from(const struct vring_elem *elem, const struct blk_request *req,
                         uint64_t off, void *buf, size_t len)
{
    return copy_data(elem, req, off, buf, len, false);
}

size_t blk_req_copy_to(const struct vring_elem *elem, const struct blk_request *req,
                       uint64_t off, const void *buf, size_t len)
{
    return copy_data(elem, req, off, (void *)buf, len, true);
}
