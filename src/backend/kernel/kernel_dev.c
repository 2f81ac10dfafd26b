#include "config.h"

#include <fcntl.h>
#include <inttypes.h>
#include <linux/vhost.h>
#include <linux/virtio_config.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "backend/kernel/kernel_dev.h"
#include "util/compat.h"
#include "util/error.h"
#include "util/fd.h"

struct dma_entry {
    uint64_t iova, size;
    void *vaddr;
    uint32_t perm;
};

struct kernel_dev {
    struct vdpa_device vdpa;
    char *path;
    int fd;
    uint32_t device_id;
    uint64_t device_features, driver_features, backend_features;
    unsigned nvqs;
    uint16_t vq_num_max;
    uint32_t config_size;
    struct vdpa_iova_range iova_range;
    bool *vq_ready;
    GArray *dma; /* struct dma_entry, sorted by iova */
};

static struct kernel_dev *to_kdev(struct vdpa_device *dev)
{
    return (struct kernel_dev *)dev;
}

/* ioctl with context on failure */
static int kioctl(struct kernel_dev *k, unsigned long cmd, const char *what, void *arg,
                  GError **error)
{
    if (ioctl(k->fd, cmd, arg) < 0)
        return vdpad_fail(error, errno, "%s (%s): %s failed: %s", k->vdpa.name, k->path, what,
                          g_strerror(errno));
    return 0;
}

static int send_iotlb(struct kernel_dev *k, uint8_t type, uint64_t iova, uint64_t size,
                      void *vaddr, uint32_t perm, GError **error)
{
    struct vhost_msg_v2 msg = { .type = VHOST_IOTLB_MSG_V2 };

    msg.iotlb.type = type;
    msg.iotlb.iova = iova;
    msg.iotlb.size = size;
    msg.iotlb.uaddr = (uint64_t)(uintptr_t)vaddr;
    msg.iotlb.perm = (uint8_t)perm;
    ssize_t n = write(k->fd, &msg, sizeof(msg));
    if (n != (ssize_t)sizeof(msg))
        return vdpad_fail(error, n < 0 ? errno : EIO, "%s (%s): IOTLB message %u iova 0x%" PRIx64
                          " size 0x%" PRIx64 " refused: %s", k->vdpa.name, k->path, type, iova, size,
                          n < 0 ? g_strerror(errno) : "short write");
    return 0;
}

/* --- identity, features, status */

static uint32_t kd_get_device_id(struct vdpa_device *dev) { return to_kdev(dev)->device_id; }
static uint32_t kd_get_vendor_id(struct vdpa_device *dev) { return 0; }
static uint64_t kd_get_device_features(struct vdpa_device *dev) { return to_kdev(dev)->device_features; }
static uint64_t kd_get_driver_features(struct vdpa_device *dev) { return to_kdev(dev)->driver_features; }

static int kd_set_driver_features(struct vdpa_device *dev, uint64_t features, GError **error)
{
    struct kernel_dev *k = to_kdev(dev);
    int ret = kioctl(k, VHOST_SET_FEATURES, "SET_FEATURES", &features, error);

    if (ret == 0)
        k->driver_features = features;
    return ret;
}

static uint8_t kd_get_status(struct vdpa_device *dev)
{
    struct kernel_dev *k = to_kdev(dev);
    uint8_t status = 0;

    if (ioctl(k->fd, VHOST_VDPA_GET_STATUS, &status) < 0)
        g_warning("%s (%s): GET_STATUS failed: %s", dev->name, k->path, g_strerror(errno));
    return status;
}

static int kd_set_status(struct vdpa_device *dev, uint8_t status, GError **error)
{
    return kioctl(to_kdev(dev), VHOST_VDPA_SET_STATUS, "SET_STATUS", &status, error);
}

static int kd_reset(struct vdpa_device *dev, GError **error)
{
    struct kernel_dev *k = to_kdev(dev);
    uint8_t zero = 0;
    int unbind = VHOST_FILE_UNBIND;
    int ret = kioctl(k, VHOST_VDPA_SET_STATUS, "SET_STATUS 0 (reset)", &zero, error);

    if (ret < 0)
        return ret;
    /* The ops contract: a reset drops mappings and eventfds; the kernel keeps both. */
    for (guint i = k->dma->len; i-- > 0;) {
        struct dma_entry *e = &g_array_index(k->dma, struct dma_entry, i);
        if ((ret = send_iotlb(k, VHOST_IOTLB_INVALIDATE, e->iova, e->size, NULL, 0, error)) < 0)
            return ret;
    }
    g_array_set_size(k->dma, 0);
    for (unsigned i = 0; i < k->nvqs; i++) {
        struct vhost_vring_file f = { .index = i, .fd = VHOST_FILE_UNBIND };
        if ((ret = kioctl(k, VHOST_SET_VRING_KICK, "SET_VRING_KICK -1", &f, error)) < 0 ||
            (ret = kioctl(k, VHOST_SET_VRING_CALL, "SET_VRING_CALL -1", &f, error)) < 0)
            return ret;
        k->vq_ready[i] = false;
    }
    k->driver_features = 0;
    return kioctl(k, VHOST_VDPA_SET_CONFIG_CALL, "SET_CONFIG_CALL -1", &unbind, error);
}

static int kd_suspend(struct vdpa_device *dev, GError **error)
{
    return kioctl(to_kdev(dev), VHOST_VDPA_SUSPEND, "SUSPEND", NULL, error);
}

static int kd_resume(struct vdpa_device *dev, GError **error)
{
    return kioctl(to_kdev(dev), VHOST_VDPA_RESUME, "RESUME", NULL, error);
}

/* --- config */

static size_t kd_get_config_size(struct vdpa_device *dev) { return to_kdev(dev)->config_size; }
static uint32_t kd_get_generation(struct vdpa_device *dev) { return 0; }

static void kd_get_config(struct vdpa_device *dev, unsigned offset, void *buf, unsigned len)
{
    struct kernel_dev *k = to_kdev(dev);
    g_autofree struct vhost_vdpa_config *c = g_malloc0(sizeof(*c) + len);

    c->off = offset;
    c->len = len;
    if (ioctl(k->fd, VHOST_VDPA_GET_CONFIG, c) < 0) {
        g_warning("%s (%s): GET_CONFIG off %u len %u failed: %s", dev->name, k->path, offset,
                  len, g_strerror(errno));
        memset(buf, 0, len);
        return;
    }
    memcpy(buf, c->buf, len);
}

static void kd_set_config(struct vdpa_device *dev, unsigned offset, const void *buf, unsigned len)
{
    struct kernel_dev *k = to_kdev(dev);
    g_autofree struct vhost_vdpa_config *c = g_malloc0(sizeof(*c) + len);

    c->off = offset;
    c->len = len;
    memcpy(c->buf, buf, len);
    if (ioctl(k->fd, VHOST_VDPA_SET_CONFIG, c) < 0)
        g_warning("%s (%s): SET_CONFIG off %u len %u failed: %s", dev->name, k->path, offset,
                  len, g_strerror(errno));
}

static int kd_set_config_call(struct vdpa_device *dev, int fd, GError **error)
{
    return kioctl(to_kdev(dev), VHOST_VDPA_SET_CONFIG_CALL, "SET_CONFIG_CALL", &fd, error);
}

/* --- virtqueues */

static unsigned kd_get_vq_count(struct vdpa_device *dev) { return to_kdev(dev)->nvqs; }
static uint16_t kd_get_vq_num_max(struct vdpa_device *dev) { return to_kdev(dev)->vq_num_max; }
static uint16_t kd_get_vq_num_min(struct vdpa_device *dev) { return 1; }

static int kd_set_vq_num(struct vdpa_device *dev, unsigned idx, unsigned num, GError **error)
{
    struct vhost_vring_state s = { .index = idx, .num = num };

    return kioctl(to_kdev(dev), VHOST_SET_VRING_NUM, "SET_VRING_NUM", &s, error);
}

static int kd_set_vq_address(struct vdpa_device *dev, unsigned idx, uint64_t desc,
                             uint64_t driver, uint64_t device, GError **error)
{
    struct vhost_vring_addr a = {
        .index = idx, .desc_user_addr = desc, .avail_user_addr = driver, .used_user_addr = device,
    };

    return kioctl(to_kdev(dev), VHOST_SET_VRING_ADDR, "SET_VRING_ADDR", &a, error);
}

static int kd_set_vq_state(struct vdpa_device *dev, unsigned idx,
                           const struct vdpa_vq_state *state, GError **error)
{
    struct vhost_vring_state s = { .index = idx, .num = state->avail_index };

    return kioctl(to_kdev(dev), VHOST_SET_VRING_BASE, "SET_VRING_BASE", &s, error);
}

static int kd_get_vq_state(struct vdpa_device *dev, unsigned idx, struct vdpa_vq_state *state,
                           GError **error)
{
    struct vhost_vring_state s = { .index = idx };
    int ret = kioctl(to_kdev(dev), VHOST_GET_VRING_BASE, "GET_VRING_BASE", &s, error);

    if (ret == 0)
        state->avail_index = (uint16_t)s.num;
    return ret;
}

static int kd_set_vq_ready(struct vdpa_device *dev, unsigned idx, bool ready, GError **error)
{
    struct kernel_dev *k = to_kdev(dev);
    struct vhost_vring_state s = { .index = idx, .num = ready };
    int ret = kioctl(k, VHOST_VDPA_SET_VRING_ENABLE, "SET_VRING_ENABLE", &s, error);

    if (ret == 0 && idx < k->nvqs)
        k->vq_ready[idx] = ready;
    return ret;
}

static bool kd_get_vq_ready(struct vdpa_device *dev, unsigned idx)
{
    struct kernel_dev *k = to_kdev(dev);

    return idx < k->nvqs && k->vq_ready[idx];
}

static int kd_set_vq_kick(struct vdpa_device *dev, unsigned idx, int fd, GError **error)
{
    struct vhost_vring_file f = { .index = idx, .fd = fd };

    return kioctl(to_kdev(dev), VHOST_SET_VRING_KICK, "SET_VRING_KICK", &f, error);
}

static int kd_set_vq_call(struct vdpa_device *dev, unsigned idx, int fd, GError **error)
{
    struct vhost_vring_file f = { .index = idx, .fd = fd };

    return kioctl(to_kdev(dev), VHOST_SET_VRING_CALL, "SET_VRING_CALL", &f, error);
}

static int kd_get_vq_stats(struct vdpa_device *dev, unsigned idx, struct vdpa_vq_stats *stats,
                           GError **error)
{
    /* The uAPI carries no counters (they are in the vdpa netlink API). */
    stats->n = 0;
    return 0;
}

/* --- DMA */

static struct vdpa_iova_range kd_get_iova_range(struct vdpa_device *dev)
{
    return to_kdev(dev)->iova_range;
}

static guint dma_first_ending_after(struct kernel_dev *k, uint64_t iova)
{
    guint lo = 0, hi = k->dma->len;

    while (lo < hi) {
        guint mid = lo + (hi - lo) / 2;
        struct dma_entry *e = &g_array_index(k->dma, struct dma_entry, mid);
        if (e->iova + e->size - 1 < iova)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static int kd_dma_map(struct vdpa_device *dev, uint64_t iova, uint64_t size, void *vaddr,
                      uint32_t perm, GError **error)
{
    struct kernel_dev *k = to_kdev(dev);
    int ret = send_iotlb(k, VHOST_IOTLB_UPDATE, iova, size, vaddr, perm, error);

    if (ret < 0)
        return ret;
    struct dma_entry e = { iova, size, vaddr, perm };
    g_array_insert_val(k->dma, dma_first_ending_after(k, iova), e);
    return 0;
}

static int kd_dma_unmap(struct vdpa_device *dev, uint64_t iova, uint64_t size, GError **error)
{
    struct kernel_dev *k = to_kdev(dev);
    uint64_t last = iova + size - 1;
    guint i = dma_first_ending_after(k, iova);
    int ret;

    while (i < k->dma->len) {
        struct dma_entry e = g_array_index(k->dma, struct dma_entry, i);
        if (e.iova > last)
            break;
        /* the kernel drops the whole entry; map back what lies outside the range */
        if ((ret = send_iotlb(k, VHOST_IOTLB_INVALIDATE, e.iova, e.size, NULL, 0, error)) < 0)
            return ret;
        g_array_remove_index(k->dma, i);
        if (e.iova < iova) {
            struct dma_entry head = { e.iova, iova - e.iova, e.vaddr, e.perm };
            if ((ret = send_iotlb(k, VHOST_IOTLB_UPDATE, head.iova, head.size, head.vaddr,
                                  head.perm, error)) < 0)
                return ret;
            g_array_insert_val(k->dma, i, head);
            i++;
        }
        if (e.iova + e.size - 1 > last) {
            struct dma_entry tail = { last + 1, e.iova + e.size - 1 - last,
                                      (uint8_t *)e.vaddr + (last + 1 - e.iova), e.perm };
            if ((ret = send_iotlb(k, VHOST_IOTLB_UPDATE, tail.iova, tail.size, tail.vaddr,
                                  tail.perm, error)) < 0)
                return ret;
            g_array_insert_val(k->dma, i, tail);
            i++;
        }
    }
    return 0;
}

static int kd_dma_batch_begin(struct vdpa_device *dev, GError **error)
{
    struct kernel_dev *k = to_kdev(dev);

    if (!(k->backend_features & (1ull << VHOST_BACKEND_F_IOTLB_BATCH)))
        return 0;
    return send_iotlb(k, VHOST_IOTLB_BATCH_BEGIN, 0, 0, NULL, 0, error);
}

static int kd_dma_batch_end(struct vdpa_device *dev, GError **error)
{
    struct kernel_dev *k = to_kdev(dev);

    if (!(k->backend_features & (1ull << VHOST_BACKEND_F_IOTLB_BATCH)))
        return 0;
    return send_iotlb(k, VHOST_IOTLB_BATCH_END, 0, 0, NULL, 0, error);
}

static void kd_free(struct vdpa_device *dev)
{
    struct kernel_dev *k = to_kdev(dev);

    vdpad_close_fd(k->fd); /* the kernel resets the device and drops its IOTLB */
    g_array_free(k->dma, TRUE);
    g_free(k->vq_ready);
    g_free(k->path);
    vdpa_device_cleanup(dev);
    g_free(k);
}

int kernel_dev_set_dirty_log(struct vdpa_device *dev, uint64_t *log, bool on, GError **error)
{
    struct kernel_dev *k = to_kdev(dev);
    uint64_t features = k->driver_features;
    int ret;

    if (!(k->device_features & (1ull << VHOST_F_LOG_ALL)))
        return vdpad_fail(error, EOPNOTSUPP, "%s (%s): the device does not offer "
                          "VHOST_F_LOG_ALL", dev->name, k->path);
    if (on) {
        uint64_t base = (uint64_t)(uintptr_t)log;
        if ((ret = kioctl(k, VHOST_SET_LOG_BASE, "SET_LOG_BASE", &base, error)) < 0)
            return ret;
        features |= 1ull << VHOST_F_LOG_ALL;
    }
    return kioctl(k, VHOST_SET_FEATURES, on ? "SET_FEATURES (log on)" : "SET_FEATURES (log off)",
                  &features, error);
}

/* Three tables: suspend and resume are present only when the device offers them, because
 * the front derives the backend features it offers from which ops exist. */
#define KERNEL_DEV_OPS_COMMON \
    .get_device_id = kd_get_device_id, \
    .get_vendor_id = kd_get_vendor_id, \
    .get_device_features = kd_get_device_features, \
    .set_driver_features = kd_set_driver_features, \
    .get_driver_features = kd_get_driver_features, \
    .get_status = kd_get_status, \
    .set_status = kd_set_status, \
    .reset = kd_reset, \
    .get_config_size = kd_get_config_size, \
    .get_config = kd_get_config, \
    .set_config = kd_set_config, \
    .get_generation = kd_get_generation, \
    .set_config_call = kd_set_config_call, \
    .get_vq_count = kd_get_vq_count, \
    .get_vq_num_max = kd_get_vq_num_max, \
    .get_vq_num_min = kd_get_vq_num_min, \
    .set_vq_num = kd_set_vq_num, \
    .set_vq_address = kd_set_vq_address, \
    .set_vq_state = kd_set_vq_state, \
    .get_vq_state = kd_get_vq_state, \
    .set_vq_ready = kd_set_vq_ready, \
    .get_vq_ready = kd_get_vq_ready, \
    .set_vq_kick = kd_set_vq_kick, \
    .set_vq_call = kd_set_vq_call, \
    .get_vq_stats = kd_get_vq_stats, \
    .get_iova_range = kd_get_iova_range, \
    .dma_map = kd_dma_map, \
    .dma_unmap = kd_dma_unmap, \
    .dma_batch_begin = kd_dma_batch_begin, \
    .dma_batch_end = kd_dma_batch_end, \
    .free = kd_free,

static const struct vdpa_device_ops kernel_dev_ops = { KERNEL_DEV_OPS_COMMON };
static const struct vdpa_device_ops kernel_dev_ops_suspend = {
    KERNEL_DEV_OPS_COMMON
    .suspend = kd_suspend,
};
static const struct vdpa_device_ops kernel_dev_ops_suspend_resume = {
    KERNEL_DEV_OPS_COMMON
    .suspend = kd_suspend,
    .resume = kd_resume,
};

struct vdpa_device *kernel_dev_open(const char *name, const char *path, GError **error)
{
    g_autofree struct kernel_dev *k = g_new0(struct kernel_dev, 1);
    g_auto(vdpad_fd) fd = open(path, O_RDWR | O_CLOEXEC);

    if (fd < 0) {
        vdpad_fail(error, errno, "%s: cannot open %s: %s%s", name, path, g_strerror(errno),
                   errno == EBUSY ? " (another process has it open)" : "");
        return NULL;
    }
    k->fd = fd;
    k->path = g_strdup(path);
    k->vdpa.name = (char *)name; /* for messages until vdpa_device_init */

    uint64_t backend = 0;
    struct vhost_vdpa_iova_range range = { 0, UINT64_MAX };
    if (kioctl(k, VHOST_SET_OWNER, "SET_OWNER", NULL, error) < 0 ||
        kioctl(k, VHOST_VDPA_GET_DEVICE_ID, "GET_DEVICE_ID", &k->device_id, error) < 0 ||
        kioctl(k, VHOST_GET_FEATURES, "GET_FEATURES", &k->device_features, error) < 0 ||
        kioctl(k, VHOST_GET_BACKEND_FEATURES, "GET_BACKEND_FEATURES", &backend, error) < 0 ||
        kioctl(k, VHOST_VDPA_GET_VQS_COUNT, "GET_VQS_COUNT", &k->nvqs, error) < 0 ||
        kioctl(k, VHOST_VDPA_GET_VRING_NUM, "GET_VRING_NUM", &k->vq_num_max, error) < 0 ||
        kioctl(k, VHOST_VDPA_GET_CONFIG_SIZE, "GET_CONFIG_SIZE", &k->config_size, error) < 0)
        goto fail;
    if (ioctl(fd, VHOST_VDPA_GET_IOVA_RANGE, &range) < 0 && errno != ENOTTY) {
        vdpad_fail(error, errno, "%s (%s): GET_IOVA_RANGE failed: %s", name, path,
                   g_strerror(errno));
        goto fail;
    }
    k->iova_range = (struct vdpa_iova_range){ range.first, range.last };
    uint64_t needed = 1ull << VHOST_BACKEND_F_IOTLB_MSG_V2;
    if ((backend & needed) != needed) {
        vdpad_fail(error, EOPNOTSUPP, "%s (%s): the device lacks IOTLB message v2 (backend "
                   "features 0x%" PRIx64 ")", name, path, backend);
        goto fail;
    }
    k->backend_features = backend & (needed | (1ull << VHOST_BACKEND_F_IOTLB_BATCH) |
                                     (1ull << VHOST_BACKEND_F_SUSPEND) |
                                     (1ull << VHOST_BACKEND_F_RESUME));
    if (kioctl(k, VHOST_SET_BACKEND_FEATURES, "SET_BACKEND_FEATURES", &k->backend_features,
               error) < 0)
        goto fail;

    const struct vdpa_device_ops *ops = &kernel_dev_ops;
    if (k->backend_features & (1ull << VHOST_BACKEND_F_SUSPEND))
        ops = (k->backend_features & (1ull << VHOST_BACKEND_F_RESUME))
                  ? &kernel_dev_ops_suspend_resume : &kernel_dev_ops_suspend;

    k->vq_ready = g_new0(bool, k->nvqs);
    k->dma = g_array_new(FALSE, FALSE, sizeof(struct dma_entry));
    vdpa_device_init(&k->vdpa, ops, name, "kernel");
    vdpad_steal_fd(&fd);
    g_info("%s: kernel vDPA device %s: id %u, %u queues, features 0x%" PRIx64, name, path,
           k->device_id, k->nvqs, k->device_features);
    return &g_steal_pointer(&k)->vdpa;

fail:
    k->vdpa.name = NULL;
    return NULL;
}
