/* sim_blk.c — the simulated block device: a sparse RAM disk behind 1..16 request queues.
 *
 * The disk is an anonymous private mapping reserved at creation (MAP_NORESERVE): pages are
 * allocated when first written. DISCARD and WRITE_ZEROES zero their ranges, whole pages
 * with MADV_DONTNEED (the memory is released and reads back as zeroes) and the partial
 * pages at the edges with memset, so a discarded sector always reads back as zeroes.
 * The disk is the medium: device reset does not erase it.
 *
 * Requests are parsed by blk_req_parse (layout, bounds, seg_max/size_max); the device
 * checks the disk bounds again before touching memory.
 */
#include "config.h"

#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_ring.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "backend/sim/sim.h"
#include "backend/sim/sim_core.h"
#include "util/error.h"
#include "virtio/blk_req.h"

#define BLK_SECTOR 512u
#define BLK_MAX_QUEUES 16
#define BLK_ID_BYTES VIRTIO_BLK_ID_BYTES

struct sim_blk_vq_stats {
    uint64_t requests, reads, writes, read_bytes, written_bytes;
    uint64_t flushes, discards, write_zeroes, errors, unsupported;
};

struct sim_blk {
    struct sim sim;
    uint8_t *disk;
    uint64_t size;
    long page_size;
    char serial[BLK_ID_BYTES]; /* NUL-padded, not NUL-terminated when 20 long */
    struct blk_limits lim;     /* .features = the negotiated ones once DRIVER_OK */
    struct sim_blk_vq_stats *vs;
    struct blk_request req; /* being executed (too large for the worker's stack) */
};

#define F(bit) (1ull << (bit))

uint64_t sim_blk_supported_features(void)
{
    return F(VIRTIO_F_VERSION_1) | F(VIRTIO_F_ACCESS_PLATFORM) | F(VIRTIO_BLK_F_SIZE_MAX) |
           F(VIRTIO_BLK_F_SEG_MAX) | F(VIRTIO_BLK_F_BLK_SIZE) | F(VIRTIO_BLK_F_FLUSH) |
           F(VIRTIO_BLK_F_MQ) | F(VIRTIO_BLK_F_DISCARD) | F(VIRTIO_BLK_F_WRITE_ZEROES) |
           F(VIRTIO_RING_F_EVENT_IDX) | F(VIRTIO_RING_F_INDIRECT_DESC);
}

static struct sim_blk *to_blk(struct sim *s)
{
    return (struct sim_blk *)s;
}

/* Is [sector, sector + bytes/512) inside the disk? Overflow-safe. */
static bool blk_in_disk(const struct sim_blk *b, uint64_t sector, uint64_t bytes)
{
    return sector <= b->size / BLK_SECTOR && bytes <= b->size - sector * BLK_SECTOR;
}

/* Zeroes [off, off + len) of the disk, releasing the whole pages inside it. */
static void blk_zero(struct sim_blk *b, uint64_t off, uint64_t len)
{
    uint64_t ps = (uint64_t)b->page_size;
    uint64_t first = (off + ps - 1) / ps * ps, last = (off + len) / ps * ps;

    if (first < last && madvise(b->disk + first, last - first, MADV_DONTNEED) == 0) {
        memset(b->disk + off, 0, first - off);
        memset(b->disk + last, 0, off + len - last);
    } else {
        memset(b->disk + off, 0, len);
    }
}

/* Executes a parsed request; returns its status and sets *written (data bytes written
 * into the request's buffers). */
static uint8_t blk_execute(struct sim_blk *b, unsigned idx, const struct vring_elem *e,
                           const struct blk_request *req, uint32_t *written)
{
    struct sim_blk_vq_stats *vs = &b->vs[idx];

    *written = 0;
    switch (req->type) {
    case VIRTIO_BLK_T_IN:
        if (!blk_in_disk(b, req->sector, req->data_len))
            return VIRTIO_BLK_S_IOERR;
        blk_req_copy_to(e, req, 0, b->disk + req->sector * BLK_SECTOR, req->data_len);
        *written = (uint32_t)req->data_len;
        vs->reads++;
        vs->read_bytes += req->data_len;
        return VIRTIO_BLK_S_OK;
    case VIRTIO_BLK_T_OUT:
        if (!blk_in_disk(b, req->sector, req->data_len))
            return VIRTIO_BLK_S_IOERR;
        blk_req_copy_from(e, req, 0, b->disk + req->sector * BLK_SECTOR, req->data_len);
        vs->writes++;
        vs->written_bytes += req->data_len;
        return VIRTIO_BLK_S_OK;
    case VIRTIO_BLK_T_FLUSH:
        vs->flushes++; /* RAM: nothing is volatile */
        return VIRTIO_BLK_S_OK;
    case VIRTIO_BLK_T_GET_ID: {
        size_t n = MIN(req->data_len, (uint64_t)BLK_ID_BYTES);

        *written = (uint32_t)blk_req_copy_to(e, req, 0, b->serial, n);
        return VIRTIO_BLK_S_OK;
    }
    case VIRTIO_BLK_T_DISCARD:
    case VIRTIO_BLK_T_WRITE_ZEROES:
        /* all ranges are checked before any is applied */
        for (unsigned i = 0; i < req->n_ranges; i++)
            if (!blk_in_disk(b, req->range[i].sector,
                             (uint64_t)req->range[i].num_sectors * BLK_SECTOR))
                return VIRTIO_BLK_S_IOERR;
        for (unsigned i = 0; i < req->n_ranges; i++)
            blk_zero(b, req->range[i].sector * BLK_SECTOR,
                     (uint64_t)req->range[i].num_sectors * BLK_SECTOR);
        if (req->type == VIRTIO_BLK_T_DISCARD)
            vs->discards++;
        else
            vs->write_zeroes++;
        return VIRTIO_BLK_S_OK;
    default:
        return VIRTIO_BLK_S_UNSUPP;
    }
}

static void blk_process_queue(struct sim_blk *b, unsigned idx)
{
    struct sim *s = &b->sim;
    struct sim_vq *q = &s->vqs[idx];
    struct sim_blk_vq_stats *vs = &b->vs[idx];
    struct blk_request *req = &b->req;
    unsigned done = 0;

    vring_dev_set_notify(&q->vr, false);
    for (;;) {
        const char *why = NULL;
        uint32_t written = 0;
        uint8_t status;
        int r;

        if (done >= SIM_BUDGET) {
            s->pending |= 1ull << idx;
            break;
        }
        r = vring_dev_pop(&q->vr, q->elem);
        if (r < 0) {
            sim_vq_fail(s, idx, "%s", q->vr.error);
            break;
        }
        if (r == 0) {
            vring_dev_set_notify(&q->vr, true);
            if (vring_dev_avail_count(&q->vr) == 0)
                break;
            vring_dev_set_notify(&q->vr, false);
            continue;
        }
        q->received_desc++;
        vs->requests++;
        done++;
        req->status = NULL;
        status = blk_req_parse(q->elem, &b->lim, req, &why);
        if (status == VIRTIO_BLK_S_OK)
            status = blk_execute(b, idx, q->elem, req, &written);
        if (status == VIRTIO_BLK_S_UNSUPP)
            vs->unsupported++;
        else if (status != VIRTIO_BLK_S_OK)
            vs->errors++;
        if (status != VIRTIO_BLK_S_OK)
            g_debug("%s: queue %u: request type %u sector %" PRIu64 ": status %u (%s)",
                    s->vdev.name, idx, req->type, req->sector, status, why ? why : "bounds");
        if (req->status) {
            *req->status = status;
            written += 1;
        } else {
            if (status == VIRTIO_BLK_S_OK)
                vs->errors++; /* completed without a status byte */
            written = 0;
        }
        vring_dev_push(&q->vr, q->elem->head, written);
        q->completed_desc++;
    }
    sim_vq_notify(s, idx);
}

static void blk_process(struct sim *s)
{
    uint64_t pending = s->pending;

    s->pending = 0;
    for (unsigned i = 0; i < s->nvqs; i++)
        if (pending & (1ull << i))
            blk_process_queue(to_blk(s), i);
}

static void blk_reset(struct sim *s)
{
    to_blk(s)->lim.features = 0;
}

static void blk_driver_ok(struct sim *s)
{
    to_blk(s)->lim.features = s->driver_features;
}

static void blk_get_stats(struct sim *s, unsigned idx, struct vdpa_vq_stats *st)
{
    const struct sim_blk_vq_stats *v = &to_blk(s)->vs[idx];

    vdpa_vq_stats_add(st, "requests", v->requests);
    vdpa_vq_stats_add(st, "reads", v->reads);
    vdpa_vq_stats_add(st, "writes", v->writes);
    vdpa_vq_stats_add(st, "read_bytes", v->read_bytes);
    vdpa_vq_stats_add(st, "written_bytes", v->written_bytes);
    vdpa_vq_stats_add(st, "flushes", v->flushes);
    vdpa_vq_stats_add(st, "discards", v->discards);
    vdpa_vq_stats_add(st, "write_zeroes", v->write_zeroes);
    vdpa_vq_stats_add(st, "errors", v->errors + s->vqs[idx].ring_errors);
    vdpa_vq_stats_add(st, "unsupported", v->unsupported);
}

static void blk_destroy(struct sim *s)
{
    struct sim_blk *b = to_blk(s);

    if (b->disk)
        munmap(b->disk, b->size);
    g_free(b->vs);
}

static const struct sim_type sim_blk_type = {
    .device_id = VIRTIO_ID_BLOCK,
    .process = blk_process,
    .reset = blk_reset,
    .driver_ok = blk_driver_ok,
    .get_stats = blk_get_stats,
    .destroy = blk_destroy,
};

static void blk_fill_config(struct sim_blk *b, unsigned queues)
{
    struct virtio_blk_config *cfg = (struct virtio_blk_config *)b->sim.config;
    uint32_t max_sectors = (uint32_t)MIN(b->lim.capacity, (uint64_t)UINT32_MAX);

    cfg->capacity = htole64(b->lim.capacity);
    cfg->size_max = htole32(b->lim.size_max);
    cfg->seg_max = htole32(b->lim.seg_max);
    cfg->blk_size = htole32(BLK_SECTOR);
    cfg->num_queues = htole16((uint16_t)queues);
    cfg->max_discard_sectors = htole32(max_sectors);
    cfg->max_discard_seg = htole32(BLK_REQ_MAX_RANGES);
    cfg->discard_sector_alignment = htole32(1);
    cfg->max_write_zeroes_sectors = htole32(max_sectors);
    cfg->max_write_zeroes_seg = htole32(BLK_REQ_MAX_RANGES);
    cfg->write_zeroes_may_unmap = 1;
}

struct vdpa_device *sim_blk_new(const struct sim_blk_config *cfg, GError **error)
{
    const uint64_t always = F(VIRTIO_F_VERSION_1) | F(VIRTIO_F_ACCESS_PLATFORM);
    uint64_t features = cfg->features ? cfg->features | always : sim_blk_supported_features();
    unsigned num_max = cfg->vq_num_max ? cfg->vq_num_max : 256;
    uint32_t seg_max = cfg->seg_max ? cfg->seg_max : 128;
    uint32_t size_max = cfg->size_max ? cfg->size_max : 1u << 20;
    const char *name = cfg->name ? cfg->name : "sim-blk";
    struct sim_blk *b;

    if (cfg->size_bytes == 0 || cfg->size_bytes % BLK_SECTOR)
        return vdpad_fail(error, EINVAL, "%s: disk size %" PRIu64 " (a positive multiple of %u)",
                          name, cfg->size_bytes, BLK_SECTOR),
               NULL;
    if (cfg->queues < 1 || cfg->queues > BLK_MAX_QUEUES)
        return vdpad_fail(error, EINVAL, "%s: %u queues (1..%d)", name, cfg->queues,
                          BLK_MAX_QUEUES),
               NULL;
    if (seg_max > VRING_MAX_SEGS - 2 || size_max < BLK_SECTOR)
        return vdpad_fail(error, EINVAL, "%s: seg_max %u (1..%u), size_max %u (>= %u)", name,
                          seg_max, VRING_MAX_SEGS - 2, size_max, BLK_SECTOR),
               NULL;
    if (features & ~sim_blk_supported_features())
        return vdpad_fail(error, EINVAL,
                          "%s: features 0x%" PRIx64 " not supported (supported 0x%" PRIx64 ")",
                          name, features & ~sim_blk_supported_features(),
                          sim_blk_supported_features()),
               NULL;
    if (!vring_num_valid(num_max) || num_max > UINT16_MAX)
        return vdpad_fail(error, EINVAL, "%s: queue size %u (a power of two up to %u)", name,
                          num_max, VRING_MAX_NUM),
               NULL;

    b = g_new0(struct sim_blk, 1);
    b->size = cfg->size_bytes;
    b->page_size = sysconf(_SC_PAGESIZE);
    b->vs = g_new0(struct sim_blk_vq_stats, cfg->queues);
    b->lim.capacity = cfg->size_bytes / BLK_SECTOR;
    b->lim.seg_max = seg_max;
    b->lim.size_max = size_max;
    b->lim.max_discard_sectors = b->lim.max_write_zeroes_sectors =
        (uint32_t)MIN(b->lim.capacity, (uint64_t)UINT32_MAX);
    b->lim.max_discard_seg = b->lim.max_write_zeroes_seg = BLK_REQ_MAX_RANGES;
    g_autofree char *serial = g_strdup_printf("vdpad-sim-%s", name);
    memcpy(b->serial, serial, MIN(strlen(serial), sizeof(b->serial))); /* NUL-padded */

    if (sim_init(&b->sim, &sim_blk_type, &sim_ops, name, "sim-blk", features,
                 sizeof(struct virtio_blk_config), cfg->queues, (uint16_t)num_max,
                 VRING_MAX_SEGS, error) < 0) {
        sim_ops.free(&b->sim.vdev);
        return NULL;
    }
    b->disk = mmap(NULL, b->size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (b->disk == MAP_FAILED) {
        b->disk = NULL;
        vdpad_fail(error, errno, "%s: cannot reserve a %" PRIu64 "-byte disk: %s", name,
                   b->size, g_strerror(errno));
        sim_ops.free(&b->sim.vdev);
        return NULL;
    }
    blk_fill_config(b, cfg->queues);
    return &b->sim.vdev;
}
