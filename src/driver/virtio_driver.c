/* virtio_driver.c — the test driver's device setup: reset, features, guest memory, queues,
 * waiting for used buffers. Traffic is in vdrv_net.c and vdrv_blk.c. */
#include "config.h"

#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_net.h>
#include <linux/virtio_ring.h>
#include <poll.h>
#include <sched.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "driver/vdrv_internal.h"
#include "iova/iova_map.h"
#include "util/error.h"
#include "util/fd.h"

#define F(bit) (1ull << (bit))
#define VDRV_MIN_MEM (32ull << 20)

static uint64_t vdrv_known_features(uint32_t device_id)
{
    uint64_t common = F(VIRTIO_F_VERSION_1) | F(VIRTIO_F_ACCESS_PLATFORM) |
                      F(VIRTIO_RING_F_EVENT_IDX) | F(VIRTIO_RING_F_INDIRECT_DESC);

    if (device_id == VIRTIO_ID_NET)
        return common | F(VIRTIO_NET_F_MAC) | F(VIRTIO_NET_F_MTU) | F(VIRTIO_NET_F_STATUS) |
               F(VIRTIO_NET_F_CTRL_VQ) | F(VIRTIO_NET_F_MQ) | F(VIRTIO_NET_F_CTRL_RX) |
               F(VIRTIO_NET_F_CTRL_RX_EXTRA) | F(VIRTIO_NET_F_CTRL_VLAN) |
               F(VIRTIO_NET_F_CTRL_MAC_ADDR) | F(VIRTIO_NET_F_CTRL_GUEST_OFFLOADS) |
               F(VIRTIO_NET_F_GUEST_CSUM);
    return common | F(VIRTIO_BLK_F_SIZE_MAX) | F(VIRTIO_BLK_F_SEG_MAX) |
           F(VIRTIO_BLK_F_BLK_SIZE) | F(VIRTIO_BLK_F_FLUSH) | F(VIRTIO_BLK_F_MQ) |
           F(VIRTIO_BLK_F_DISCARD) | F(VIRTIO_BLK_F_WRITE_ZEROES) | F(VIRTIO_BLK_F_RO);
}

/* ------------------------------------------------------------------ memory */

bool vdrv_alloc(struct vdrv *drv, uint64_t size, uint64_t align, struct vdrv_mem *out)
{
    uint64_t off = (drv->mem_used + align - 1) / align * align;

    if (off > drv->mem_size || size > drv->mem_size - off)
        return false;
    drv->mem_used = off + size;
    out->ptr = drv->mem + off;
    out->iova = drv->iova_base + off;
    memset(out->ptr, 0, size);
    return true;
}

static uint64_t vdrv_ring_bytes(unsigned num)
{
    uint64_t used_off = (vring_desc_bytes(num) + vring_avail_bytes(num) + VRING_USED_ALIGN - 1) /
                        VRING_USED_ALIGN * VRING_USED_ALIGN;

    return used_off + vring_used_bytes(num);
}

/* ------------------------------------------------------------------ queues */

void vdrv_vq_publish(struct vdrv_vq *vq)
{
    if (vring_drv_publish(&vq->vr))
        (void)eventfd_write(vq->kick_fd, 1);
}

int vdrv_vq_broken(struct vdrv *drv, struct vdrv_vq *vq, GError **error)
{
    return vdpad_fail(error, EIO, "%s: queue %u: the device broke the ring: %s",
                      drv->dev->name, vq->idx, vq->vr.error);
}

static bool vdrv_any_used(struct vdrv_vq *const *vqs, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        if (vring_drv_used_count(&vqs[i]->vr) > 0 || vqs[i]->vr.broken)
            return true;
    return false;
}

bool vdrv_wait_used(struct vdrv *drv, struct vdrv_vq *const *vqs, unsigned n,
                    unsigned timeout_ms)
{
    int64_t deadline = g_get_monotonic_time() + (int64_t)timeout_ms * 1000;
    struct pollfd pfd[8];

    g_assert(n <= G_N_ELEMENTS(pfd));
    for (;;) {
        int64_t left;
        bool arrived = false;

        if (vdrv_any_used(vqs, n))
            return true;
        left = deadline - g_get_monotonic_time();
        if (left <= 0)
            return false;
        if (drv->cfg.poll) {
            sched_yield();
            continue;
        }
        /* ask for interrupts, then look again: an entry used meanwhile did not signal */
        for (unsigned i = 0; i < n; i++)
            if (!vring_drv_set_notify(&vqs[i]->vr, true))
                arrived = true;
        if (!arrived) {
            for (unsigned i = 0; i < n; i++)
                pfd[i] = (struct pollfd){ .fd = vqs[i]->call_fd, .events = POLLIN };
            if (poll(pfd, n, (int)((left + 999) / 1000)) > 0) {
                eventfd_t v;

                for (unsigned i = 0; i < n; i++)
                    if (pfd[i].revents & POLLIN)
                        (void)eventfd_read(vqs[i]->call_fd, &v);
            }
        }
        for (unsigned i = 0; i < n; i++)
            vring_drv_set_notify(&vqs[i]->vr, false);
    }
}

/* the token of chains that are not a pair's or a request's buffer */
static char vdrv_raw_token;

int vdrv_vq_roundtrip(struct vdrv *drv, struct vdrv_vq *vq, const struct vring_buf *bufs,
                      unsigned n_out, unsigned n_in, struct vring_desc *table,
                      uint64_t table_iova, uint32_t *used_len, GError **error)
{
    static char token;
    int ret;

    if (vq->vr.broken)
        return vdrv_vq_broken(drv, vq, error);
    ret = table ? vring_drv_add_indirect(&vq->vr, bufs, n_out, n_in, &token, table, table_iova)
                : vring_drv_add(&vq->vr, bufs, n_out, n_in, &token);
    if (ret < 0)
        return vdpad_fail(error, -ret, "%s: queue %u: cannot add a chain of %u+%u buffers: %s",
                          drv->dev->name, vq->idx, n_out, n_in, g_strerror(-ret));
    vdrv_vq_publish(vq);
    for (;;) {
        void *got = vring_drv_get_used(&vq->vr, used_len);

        if (got == &token)
            return 0;
        if (got)
            continue; /* a raw chain posted earlier */
        if (vq->vr.broken)
            return vdrv_vq_broken(drv, vq, error);
        if (!vdrv_wait_used(drv, &vq, 1, drv->timeout_ms))
            return vdpad_fail(error, ETIMEDOUT,
                              "%s: queue %u: no answer within %u ms (the queue must be reset)",
                              drv->dev->name, vq->idx, drv->timeout_ms);
    }
}

int vdrv_post_raw(struct vdrv *drv, unsigned idx, const struct vring_buf *bufs, unsigned n_out,
                  unsigned n_in, GError **error)
{
    struct vdrv_vq *vq;
    int ret;

    if (idx >= drv->nvqs || !drv->vqs[idx].used)
        return vdpad_fail(error, EINVAL, "%s: queue %u is not set up", drv->dev->name, idx);
    vq = &drv->vqs[idx];
    ret = vring_drv_add(&vq->vr, bufs, n_out, n_in, &vdrv_raw_token);
    if (ret < 0)
        return vdpad_fail(error, -ret, "%s: queue %u: cannot add a raw chain: %s",
                          drv->dev->name, idx, g_strerror(-ret));
    vdrv_vq_publish(vq);
    return 0;
}

bool vdrv_config_signalled(struct vdrv *drv, unsigned timeout_ms)
{
    struct pollfd pfd = { .fd = drv->config_fd, .events = POLLIN };
    eventfd_t v;

    if (drv->config_fd < 0 || poll(&pfd, 1, (int)timeout_ms) <= 0)
        return false;
    return eventfd_read(drv->config_fd, &v) == 0;
}

static int vdrv_eventfd(struct vdrv *drv, int *fd, GError **error)
{
    *fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (*fd < 0)
        return vdpad_fail(error, errno, "%s: eventfd: %s", drv->dev->name, g_strerror(errno));
    return 0;
}

/* Sets up queue idx: ring memory, eventfds, and the device side (num, address, base 0,
 * kick, call, ready). */
static int vdrv_vq_setup(struct vdrv *drv, unsigned idx, GError **error)
{
    const struct vdpa_device_ops *ops = drv->dev->ops;
    struct vdrv_vq *vq = &drv->vqs[idx];
    unsigned num = drv->vq_num;
    uint64_t avail_off = vring_desc_bytes(num);
    uint64_t used_off = (avail_off + vring_avail_bytes(num) + VRING_USED_ALIGN - 1) /
                        VRING_USED_ALIGN * VRING_USED_ALIGN;
    struct vdpa_vq_state base = { .avail_index = 0 };
    int ret;

    if (!vdrv_alloc(drv, vdrv_ring_bytes(num), 4096, &vq->ring))
        return vdpad_fail(error, ENOMEM, "%s: queue %u: guest memory of %" PRIu64 " bytes full",
                          drv->dev->name, idx, drv->mem_size);
    vq->vr.ring.num = num;
    vq->vr.ring.desc = vq->ring.ptr;
    vq->vr.ring.avail = (struct vring_avail *)((uint8_t *)vq->ring.ptr + avail_off);
    vq->vr.ring.used = (struct vring_used *)((uint8_t *)vq->ring.ptr + used_off);
    vq->vr.event_idx = drv->features & F(VIRTIO_RING_F_EVENT_IDX);
    vq->vr.indirect = drv->features & F(VIRTIO_RING_F_INDIRECT_DESC);
    ret = vring_drv_init(&vq->vr, 0);
    if (ret < 0)
        return vdpad_fail(error, -ret, "%s: queue %u: ring init: %s", drv->dev->name, idx,
                          g_strerror(-ret));
    vq->used = true;
    if ((ret = vdrv_eventfd(drv, &vq->kick_fd, error)) < 0 ||
        (ret = vdrv_eventfd(drv, &vq->call_fd, error)) < 0)
        return ret;
    if ((ret = ops->set_vq_num(drv->dev, idx, num, error)) < 0 ||
        (ret = ops->set_vq_address(drv->dev, idx, vq->ring.iova, vq->ring.iova + avail_off,
                                   vq->ring.iova + used_off, error)) < 0 ||
        (ret = ops->set_vq_state(drv->dev, idx, &base, error)) < 0 ||
        (ret = ops->set_vq_kick(drv->dev, idx, vq->kick_fd, error)) < 0 ||
        (ret = ops->set_vq_call(drv->dev, idx, vq->call_fd, error)) < 0 ||
        (ret = ops->set_vq_ready(drv->dev, idx, true, error)) < 0)
        return vdpad_prefix_error(error, "vdrv: queue %u setup: ", idx);
    return 0;
}

/* ------------------------------------------------------------------ setup and teardown */

static void vdrv_teardown(struct vdrv *drv)
{
    if (drv->dev)
        drv->dev->ops->reset(drv->dev, NULL);
    if (drv->device_id == VIRTIO_ID_NET)
        vdrv_net_teardown(drv);
    else if (drv->device_id == VIRTIO_ID_BLOCK)
        vdrv_blk_teardown(drv);
    for (unsigned i = 0; drv->vqs && i < drv->nvqs; i++) {
        struct vdrv_vq *vq = &drv->vqs[i];

        if (vq->used)
            vring_drv_destroy(&vq->vr);
        vdpad_close_fd(vq->kick_fd);
        vdpad_close_fd(vq->call_fd);
    }
    g_clear_pointer(&drv->vqs, g_free);
    drv->nvqs = 0;
    vdpad_close_fd(drv->config_fd);
    drv->config_fd = -1;
    if (drv->mem)
        munmap(drv->mem, drv->mem_size);
    drv->mem = NULL;
    drv->mem_used = 0;
    drv->mapped = false;
    vdpad_close_fd(drv->memfd);
    drv->memfd = -1;
}

static int vdrv_set_status(struct vdrv *drv, uint8_t add, GError **error)
{
    const struct vdpa_device_ops *ops = drv->dev->ops;
    uint8_t status = ops->get_status(drv->dev) | add;

    return ops->set_status(drv->dev, status, error);
}

static int vdrv_negotiate(struct vdrv *drv, GError **error)
{
    const struct vdpa_device_ops *ops = drv->dev->ops;
    const uint64_t need = F(VIRTIO_F_VERSION_1) | F(VIRTIO_F_ACCESS_PLATFORM);
    uint64_t offered = ops->get_device_features(drv->dev);
    uint64_t want = drv->cfg.features ? drv->cfg.features : vdrv_known_features(drv->device_id);
    int ret;

    drv->features = want & offered;
    if ((drv->features & need) != need)
        return vdpad_fail(error, ENOTSUP,
                          "%s: features 0x%" PRIx64 " lack VERSION_1 or ACCESS_PLATFORM "
                          "(device offers 0x%" PRIx64 ")",
                          drv->dev->name, drv->features, offered);
    if ((ret = ops->set_driver_features(drv->dev, drv->features, error)) < 0 ||
        (ret = vdrv_set_status(drv, VIRTIO_CONFIG_S_FEATURES_OK, error)) < 0)
        return ret;
    if (!(ops->get_status(drv->dev) & VIRTIO_CONFIG_S_FEATURES_OK))
        return vdpad_fail(error, ENOTSUP, "%s: the device refused features 0x%" PRIx64,
                          drv->dev->name, drv->features);
    return 0;
}

static int vdrv_setup(struct vdrv *drv, GError **error)
{
    const struct vdpa_device_ops *ops = drv->dev->ops;
    struct vdpa_iova_range range;
    unsigned num_max = ops->get_vq_num_max(drv->dev);
    uint64_t need;
    int ret;

    drv->memfd = drv->config_fd = -1;
    if ((ret = ops->reset(drv->dev, error)) < 0)
        return ret;
    drv->device_id = ops->get_device_id(drv->dev);
    if (drv->device_id != VIRTIO_ID_NET && drv->device_id != VIRTIO_ID_BLOCK)
        return vdpad_fail(error, ENOTSUP, "%s: device id %u is neither net nor blk",
                          drv->dev->name, drv->device_id);
    if ((ret = vdrv_set_status(drv, VIRTIO_CONFIG_S_ACKNOWLEDGE, error)) < 0 ||
        (ret = vdrv_set_status(drv, VIRTIO_CONFIG_S_DRIVER, error)) < 0 ||
        (ret = vdrv_negotiate(drv, error)) < 0)
        return ret;

    drv->vq_num = drv->cfg.vq_num ? drv->cfg.vq_num : MIN(num_max, 256u);
    if (!vring_num_valid(drv->vq_num) || drv->vq_num > num_max)
        return vdpad_fail(error, EINVAL, "%s: ring size %u (device maximum %u)", drv->dev->name,
                          drv->vq_num, num_max);
    drv->nvqs = ops->get_vq_count(drv->dev);
    drv->vqs = g_new0(struct vdrv_vq, drv->nvqs);
    for (unsigned i = 0; i < drv->nvqs; i++) {
        drv->vqs[i].idx = i;
        drv->vqs[i].kick_fd = drv->vqs[i].call_fd = -1;
    }

    /* guest memory: a shared memfd, mapped for the device at the start of its range */
    need = drv->nvqs * (vdrv_ring_bytes(drv->vq_num) + 4096) +
           (drv->device_id == VIRTIO_ID_NET ? vdrv_net_mem_needed(drv)
                                            : vdrv_blk_mem_needed(drv)) +
           (1u << 20);
    drv->mem_size = drv->cfg.mem_bytes ? drv->cfg.mem_bytes
                                       : MAX(VDRV_MIN_MEM, (need + (2u << 20) - 1) & ~((2ull << 20) - 1));
    if (drv->mem_size < need)
        return vdpad_fail(error, ENOMEM, "%s: %" PRIu64 " bytes of guest memory, %" PRIu64
                          " needed", drv->dev->name, drv->mem_size, need);
    range = ops->get_iova_range(drv->dev);
    if (range.last < range.first || range.last - range.first < drv->mem_size - 1)
        return vdpad_fail(error, ENOSPC,
                          "%s: IOVA range [0x%" PRIx64 ", 0x%" PRIx64 "] too small for %" PRIu64
                          " bytes",
                          drv->dev->name, range.first, range.last, drv->mem_size);
    drv->iova_base = range.first;
    drv->memfd = memfd_create("vdrv-guest", MFD_CLOEXEC);
    if (drv->memfd < 0 || ftruncate(drv->memfd, (off_t)drv->mem_size) < 0)
        return vdpad_fail(error, errno, "%s: guest memory (memfd of %" PRIu64 " bytes): %s",
                          drv->dev->name, drv->mem_size, g_strerror(errno));
    drv->mem = mmap(NULL, drv->mem_size, PROT_READ | PROT_WRITE, MAP_SHARED, drv->memfd, 0);
    if (drv->mem == MAP_FAILED) {
        drv->mem = NULL;
        return vdpad_fail(error, errno, "%s: mmap of guest memory: %s", drv->dev->name,
                          g_strerror(errno));
    }
    if ((ret = ops->dma_map(drv->dev, drv->iova_base, drv->mem_size, drv->mem, IOVA_PERM_RW,
                            error)) < 0)
        return ret;
    drv->mapped = true;
    if ((ret = vdrv_eventfd(drv, &drv->config_fd, error)) < 0 ||
        (ret = ops->set_config_call(drv->dev, drv->config_fd, error)) < 0)
        return ret;

    ret = drv->device_id == VIRTIO_ID_NET ? vdrv_net_setup(drv, error)
                                          : vdrv_blk_setup(drv, error);
    if (ret < 0)
        return ret;
    for (unsigned i = 0; i < drv->nvqs; i++) {
        if (drv->vqs[i].wanted && (ret = vdrv_vq_setup(drv, i, error)) < 0)
            return ret;
    }
    return vdrv_set_status(drv, VIRTIO_CONFIG_S_DRIVER_OK, error);
}

struct vdrv *vdrv_new(struct vdpa_device *dev, const struct vdrv_config *cfg, GError **error)
{
    g_autoptr(vdrv) drv = g_new0(struct vdrv, 1);
    static const struct vdrv_config defaults;

    drv->dev = dev;
    drv->cfg = cfg ? *cfg : defaults;
    drv->timeout_ms = drv->cfg.timeout_ms ? drv->cfg.timeout_ms : 5000;
    if (vdrv_setup(drv, error) < 0) {
        vdpad_prefix_error(error, "vdrv: ");
        return NULL;
    }
    return g_steal_pointer(&drv);
}

int vdrv_reset(struct vdrv *drv, GError **error)
{
    vdrv_teardown(drv);
    if (vdrv_setup(drv, error) < 0)
        return vdpad_prefix_error(error, "vdrv: reset: ");
    return 0;
}

void vdrv_free(struct vdrv *drv)
{
    if (!drv)
        return;
    vdrv_teardown(drv);
    g_free(drv);
}

void *vdrv_alloc_scratch(struct vdrv *drv, size_t size, uint64_t *iova)
{
    struct vdrv_mem m;

    if (!drv->mem || !vdrv_alloc(drv, size, 64, &m))
        return NULL;
    *iova = m.iova;
    return m.ptr;
}

void *vdrv_guest_memory(const struct vdrv *drv, uint64_t *iova, uint64_t *size)
{
    *iova = drv->iova_base;
    *size = drv->mem_size;
    return drv->mem;
}

uint64_t vdrv_features(const struct vdrv *drv)
{
    return drv->features;
}

struct vdpa_device *vdrv_device(const struct vdrv *drv)
{
    return drv->dev;
}
