/* vdrv_blk.c — the test driver's blk side: one request at a time per queue, through a
 * per-queue area of guest memory (header, data, status) and, optionally, an indirect
 * table. */
#include "config.h"

#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_ring.h>
#include <stddef.h>
#include <string.h>

#include "driver/vdrv_internal.h"
#include "util/error.h"

#define F(bit) (1ull << (bit))
/* offsets in a queue's area; the data part has room for segments laid out with gaps */
#define BLK_HDR_OFF 0u
#define BLK_DATA_OFF 64u
#define BLK_STATUS_OFF (BLK_DATA_OFF + 2 * VDRV_BLK_MAX_DATA)
/* Gap between data segments, so that each is its own descriptor to the device (a device
 * cannot tell IOVA-contiguous descriptors from one split buffer). */
#define BLK_SEG_GAP 64u
#define BLK_AREA (BLK_STATUS_OFF + 64u)
#define BLK_TABLE_BYTES ((VDRV_BLK_MAX_SEGS + 2u) * sizeof(struct vring_desc))

static unsigned blk_config_queues(const struct vdrv *drv)
{
    uint16_t n = 0;

    if (!(drv->features & F(VIRTIO_BLK_F_MQ)))
        return 1;
    drv->dev->ops->get_config(drv->dev, offsetof(struct virtio_blk_config, num_queues), &n,
                              sizeof(n));
    return MAX(le16toh(n), 1);
}

uint64_t vdrv_blk_mem_needed(const struct vdrv *drv)
{
    return (uint64_t)blk_config_queues(drv) * (BLK_AREA + BLK_TABLE_BYTES + 128);
}

int vdrv_blk_setup(struct vdrv *drv, GError **error)
{
    drv->blk_queues = blk_config_queues(drv);
    if (drv->blk_queues > drv->nvqs)
        return vdpad_fail(error, EINVAL, "%s: config says %u queues, the device has %u",
                          drv->dev->name, drv->blk_queues, drv->nvqs);
    drv->blk_buf = g_new0(struct vdrv_mem, drv->blk_queues);
    drv->blk_table = g_new0(struct vdrv_mem, drv->blk_queues);
    for (unsigned q = 0; q < drv->blk_queues; q++) {
        drv->vqs[q].wanted = true;
        if (!vdrv_alloc(drv, BLK_AREA, 64, &drv->blk_buf[q]) ||
            !vdrv_alloc(drv, BLK_TABLE_BYTES, 16, &drv->blk_table[q]))
            return vdpad_fail(error, ENOMEM, "%s: guest memory of %" PRIu64 " bytes full",
                              drv->dev->name, drv->mem_size);
    }
    return 0;
}

void vdrv_blk_teardown(struct vdrv *drv)
{
    g_clear_pointer(&drv->blk_buf, g_free);
    g_clear_pointer(&drv->blk_table, g_free);
    drv->blk_queues = 0;
}

uint64_t vdrv_blk_capacity(struct vdrv *drv)
{
    uint64_t cap = 0;

    drv->dev->ops->get_config(drv->dev, offsetof(struct virtio_blk_config, capacity), &cap,
                              sizeof(cap));
    return le64toh(cap);
}

unsigned vdrv_blk_queues(const struct vdrv *drv)
{
    return drv->blk_queues;
}

int vdrv_blk_request_segs(struct vdrv *drv, unsigned q, uint32_t type, uint64_t sector,
                          void *data, size_t len, size_t seg_len, uint8_t *status,
                          GError **error)
{
    bool data_in = type == VIRTIO_BLK_T_IN || type == VIRTIO_BLK_T_GET_ID;
    bool indirect = drv->cfg.indirect && (drv->features & F(VIRTIO_RING_F_INDIRECT_DESC));
    g_autofree struct vring_buf *bufs = NULL;
    struct virtio_blk_outhdr hdr = {
        .type = htole32(type),
        .sector = htole64(sector),
    };
    struct vdrv_mem *area;
    uint8_t *base, *statusp;
    size_t nseg, stride;
    unsigned n = 0;
    uint32_t used = 0;
    int ret;

    if (drv->device_id != VIRTIO_ID_BLOCK || q >= drv->blk_queues)
        return vdpad_fail(error, EINVAL, "%s: no blk queue %u (%u set up)", drv->dev->name, q,
                          drv->blk_queues);
    if (len > VDRV_BLK_MAX_DATA)
        return vdpad_fail(error, EINVAL, "%s: request of %zu bytes (at most %u)", drv->dev->name,
                          len, VDRV_BLK_MAX_DATA);
    if (seg_len == 0 || seg_len > len)
        seg_len = MAX(len, 1);
    nseg = (len + seg_len - 1) / seg_len; /* 0 for no data */
    if (nseg + 2 > VDRV_BLK_MAX_SEGS || nseg + 2 > drv->vq_num)
        return vdpad_fail(error, EINVAL, "%s: %zu data segments do not fit a request",
                          drv->dev->name, nseg);

    area = &drv->blk_buf[q];
    base = area->ptr;
    statusp = base + BLK_STATUS_OFF;
    stride = nseg > 1 ? (seg_len + 2 * BLK_SEG_GAP - 1) / BLK_SEG_GAP * BLK_SEG_GAP : seg_len;
    memcpy(base + BLK_HDR_OFF, &hdr, sizeof(hdr));
    *statusp = 0xff;

    bufs = g_new(struct vring_buf, nseg + 2);
    bufs[n++] = (struct vring_buf){ area->iova + BLK_HDR_OFF, sizeof(hdr) };
    for (size_t k = 0; k < nseg; k++) {
        size_t piece = MIN(seg_len, len - k * seg_len);

        if (!data_in)
            memcpy(base + BLK_DATA_OFF + k * stride, (uint8_t *)data + k * seg_len, piece);
        bufs[n++] = (struct vring_buf){ area->iova + BLK_DATA_OFF + k * stride, (uint32_t)piece };
    }
    bufs[n++] = (struct vring_buf){ area->iova + BLK_STATUS_OFF, 1 };
    ret = vdrv_vq_roundtrip(drv, &drv->vqs[q], bufs, data_in ? 1 : n - 1,
                            data_in ? n - 1 : 1, indirect ? drv->blk_table[q].ptr : NULL,
                            indirect ? drv->blk_table[q].iova : 0, &used, error);
    if (ret < 0)
        return ret;
    *status = *statusp;
    if (data_in && *status == VIRTIO_BLK_S_OK)
        for (size_t k = 0; k < nseg; k++)
            memcpy((uint8_t *)data + k * seg_len, base + BLK_DATA_OFF + k * stride,
                   MIN(seg_len, len - k * seg_len));
    return 0;
}

int vdrv_blk_request(struct vdrv *drv, unsigned q, uint32_t type, uint64_t sector, void *data,
                     size_t len, uint8_t *status, GError **error)
{
    return vdrv_blk_request_segs(drv, q, type, sector, data, len, len, status, error);
}
