/* blk_req.h — parsing virtio-blk requests (virtio 1.2 §5.2.6) from a popped chain.
 *
 * A request is: a 16-byte device-readable header (type, reserved, sector), then data
 * (device-readable for OUT, DISCARD and WRITE_ZEROES; device-writable for IN and GET_ID),
 * then one device-writable status byte. The header and the data may span segments. The
 * parser checks the layout and the bounds against the device's limits and never touches
 * memory outside the chain's segments; the device then executes the request.
 *
 * Threads: pure functions.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "virtio/split_ring.h"

#define BLK_REQ_MAX_RANGES 64 /* discard / write-zeroes segments handled per request */

struct blk_limits {
    uint64_t capacity;        /* sectors of 512 bytes */
    uint32_t seg_max;         /* data segments per request; 0 = no limit */
    uint32_t size_max;        /* bytes per data segment; 0 = no limit */
    uint64_t features;        /* negotiated: FLUSH, DISCARD, WRITE_ZEROES, RO... */
    uint32_t max_discard_sectors, max_discard_seg;
    uint32_t max_write_zeroes_sectors, max_write_zeroes_seg;
};

struct blk_range {
    uint64_t sector;
    uint32_t num_sectors;
    uint32_t flags;
};

struct blk_request {
    uint32_t type;
    uint64_t sector;
    /* the data part: segments [data_seg, data_seg + data_nseg) of the chain, starting
     * data_off bytes into the first one, data_len bytes in all */
    unsigned data_seg, data_nseg;
    uint32_t data_off;
    uint64_t data_len;
    uint8_t *status;          /* the status byte in guest memory, or NULL if none */
    unsigned n_ranges;        /* DISCARD / WRITE_ZEROES */
    struct blk_range range[BLK_REQ_MAX_RANGES];
};

/* Parses elem. Returns VIRTIO_BLK_S_OK when req is ready to execute, or the status the
 * device must complete it with (VIRTIO_BLK_S_IOERR for bad layout or bounds,
 * VIRTIO_BLK_S_UNSUPP for unknown or not negotiated types); *why (static text) says why.
 * When the chain has no writable status byte, req->status is NULL and the request can
 * only be completed with used length 0.
 * The status byte is the last writable byte. Layout is strict: IN and GET_ID have no
 * readable bytes after the header; OUT, DISCARD and WRITE_ZEROES have no writable bytes
 * but the status; GET_ID has exactly 20 data bytes; FLUSH ignores any data. IOERR also for:
 * OUT, DISCARD or WRITE_ZEROES when VIRTIO_BLK_F_RO is negotiated; IN/OUT data not a
 * multiple of 512, beyond capacity, over seg_max or size_max; ranges not a multiple of 16
 * bytes, none, more than max_*_seg, over max_*_sectors or beyond capacity. UNSUPP also for
 * range flags other than UNMAP, UNMAP on DISCARD (virtio 1.2, like QEMU), and more ranges
 * than BLK_REQ_MAX_RANGES when max_*_seg allows them. why may be NULL. */
uint8_t blk_req_parse(const struct vring_elem *elem, const struct blk_limits *lim,
                      struct blk_request *req, const char **why);

/* Copies between the request's data segments and a flat buffer (at most len bytes,
 * from data offset off, never past data_len). Return the bytes copied. copy_from reads only
 * a readable data part (OUT, DISCARD, WRITE_ZEROES) and copy_to writes only a writable one
 * (IN, GET_ID); the other way round they copy nothing. */
size_t blk_req_copy_from(const struct vring_elem *elem, const struct blk_request *req,
                         uint64_t off, void *buf, size_t len);
size_t blk_req_copy_to(const struct vring_elem *elem, const struct blk_request *req,
                       uint64_t off, const void *buf, size_t len);
