/* fuzz_blk_req — virtio-blk requests from hostile chains through parse and the copies.
 *
 * Input: [n segments - 1][readable count][features][seg_max][size_max lo][size_max hi]
 * [capacity: 2 bytes][contiguous-IOVA mask: 2 bytes][max_discard_sectors][max_discard_seg]
 * [max_wz_sectors][max_wz_seg], then 2 length bytes per segment, then the readable bytes.
 * Every segment is its own exact-size allocation: ASan sees any access outside them. */
#include "config.h"

#include <assert.h>
#include <linux/virtio_blk.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "virtio/blk_req.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_SEGS 16
#define HEAD 14

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct vring_seg seg[MAX_SEGS];
    struct vring_elem elem = { .seg = seg, .max_segs = MAX_SEGS };
    struct blk_limits lim = { 0 };
    struct blk_request req;
    unsigned n, i;
    uint64_t iova = 0x100000;

    if (size < HEAD)
        return 0;
    n = data[0] % MAX_SEGS + 1;
    elem.n_out = data[1] % (n + 1);
    elem.n_in = n - elem.n_out;
    lim.features = (data[2] & 1 ? 1ull << VIRTIO_BLK_F_RO : 0) |
                   (data[2] & 2 ? 1ull << VIRTIO_BLK_F_FLUSH : 0) |
                   (data[2] & 4 ? 1ull << VIRTIO_BLK_F_DISCARD : 0) |
                   (data[2] & 8 ? 1ull << VIRTIO_BLK_F_WRITE_ZEROES : 0);
    lim.seg_max = data[3] % 20;
    lim.size_max = (uint32_t)(data[4] | data[5] << 8);
    lim.capacity = (uint64_t)(data[6] | data[7] << 8);
    if (data[2] & 0x80)
        lim.capacity = UINT64_MAX - lim.capacity;
    unsigned contiguous = data[8] | data[9] << 8;
    lim.max_discard_sectors = data[10];
    lim.max_discard_seg = data[11] % 80;
    lim.max_write_zeroes_sectors = data[12];
    lim.max_write_zeroes_seg = data[13] % 80;
    data += HEAD;
    size -= HEAD;
    if (size < 2 * n)
        return 0;

    uint64_t total = 0;
    for (i = 0; i < n; i++) {
        seg[i].len = (uint32_t)(data[2 * i] | data[2 * i + 1] << 8) % 4096;
        total += seg[i].len;
    }
    data += 2 * n;
    size -= 2 * n;
    for (i = 0; i < n; i++) {
        seg[i].addr = malloc(seg[i].len ? seg[i].len : 1);
        if (i < elem.n_out) {
            /* readable contents from the input, zeros past its end */
            size_t take = size < seg[i].len ? size : seg[i].len;
            memcpy(seg[i].addr, data, take);
            memset((uint8_t *)seg[i].addr + take, 0, seg[i].len - take);
            data += take;
            size -= take;
            elem.out_bytes += seg[i].len;
        } else {
            memset(seg[i].addr, 0xcc, seg[i].len);
            elem.in_bytes += seg[i].len;
        }
        if (!(contiguous & (1u << i)))
            iova += 0x10000;
        seg[i].iova = iova;
        iova += seg[i].len;
    }

    const char *why = NULL;
    uint8_t st = blk_req_parse(&elem, &lim, &req, &why);
    assert(st == VIRTIO_BLK_S_OK || st == VIRTIO_BLK_S_IOERR || st == VIRTIO_BLK_S_UNSUPP);
    assert(st == VIRTIO_BLK_S_OK || why);
    if (req.status)
        *req.status = st; /* must lie inside a writable segment */
    else
        assert(st == VIRTIO_BLK_S_IOERR && elem.in_bytes == 0);

    if (st == VIRTIO_BLK_S_OK) {
        assert(req.data_len <= total);
        assert(req.data_nseg == 0 || req.data_seg + req.data_nseg <= n);
        assert(req.n_ranges <= BLK_REQ_MAX_RANGES);
        uint8_t *buf = malloc(req.data_len + 1);
        bool writable = req.data_nseg && req.data_seg >= elem.n_out;
        size_t got = blk_req_copy_from(&elem, &req, 0, buf, req.data_len + 1);
        assert(got == (writable || !req.data_nseg ? 0 : req.data_len));
        memset(buf, 0xab, req.data_len + 1);
        size_t put = blk_req_copy_to(&elem, &req, 0, buf, req.data_len + 1);
        assert(put == (writable ? req.data_len : 0));
        if (req.data_len > 3) {
            /* a copy from the middle stops at the end of the data */
            assert(blk_req_copy_to(&elem, &req, req.data_len - 3, buf, 100) == (writable ? 3 : 0));
        }
        if (req.type == VIRTIO_BLK_T_IN || req.type == VIRTIO_BLK_T_OUT)
            assert(req.data_len % 512 == 0 && req.sector <= lim.capacity &&
                   req.data_len / 512 <= lim.capacity - req.sector);
        free(buf);
        /* copying did not reach the status byte */
        if (writable)
            assert(*req.status == st);
    }
    for (i = 0; i < n; i++)
        free(seg[i].addr);
    return 0;
}
