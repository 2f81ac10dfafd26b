/* sim_core.c — the generic simulated vDPA device: ops, queues, IOMMU, worker thread.
 * See sim_core.h for the threading and locking rules. */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "backend/sim/sim_core.h"
#include "util/error.h"
#include "util/fd.h"

/* epoll tag of the control eventfd; queue kicks carry (kick_gen << 32 | idx) */
#define SIM_CTL_TAG UINT64_MAX

static bool sim_running(const struct sim *s)
{
    return (s->status & VIRTIO_CONFIG_S_DRIVER_OK) && !(s->status & VIRTIO_CONFIG_S_FAILED) &&
           !s->suspended;
}

void sim_lock(struct sim *s)
{
    atomic_fetch_add(&s->lock_waiters, 1);
    pthread_mutex_lock(&s->lock);
    atomic_fetch_sub(&s->lock_waiters, 1);
}

void sim_unlock(struct sim *s)
{
    pthread_mutex_unlock(&s->lock);
}

static void sim_wake(struct sim *s)
{
    if (s->ctl_fd >= 0)
        (void)eventfd_write(s->ctl_fd, 1);
}

static void sim_signal(int fd)
{
    if (fd >= 0)
        (void)eventfd_write(fd, 1);
}

void sim_config_changed(struct sim *s)
{
    s->generation++;
    sim_signal(s->config_call_fd);
}

void sim_vq_fail(struct sim *s, unsigned idx, const char *fmt, ...)
{
    struct sim_vq *vq = &s->vqs[idx];
    va_list ap;

    if (vq->failed)
        return;
    vq->failed = true;
    vq->ring_errors++;
    va_start(ap, fmt);
    vsnprintf(vq->error, sizeof(vq->error), fmt, ap);
    va_end(ap);
    g_warning("%s: queue %u stopped, device needs reset: %s", s->vdev.name, idx, vq->error);
    s->status |= VIRTIO_CONFIG_S_NEEDS_RESET;
    sim_config_changed(s);
    /* used entries published before the failure: the ring library grants no notification
     * on a broken queue, so signal them now rather than leave them unannounced */
    sim_signal(vq->call_fd);
}

void sim_vq_notify(struct sim *s, unsigned idx)
{
    struct sim_vq *vq = &s->vqs[idx];

    if (vring_dev_need_notify(&vq->vr))
        sim_signal(vq->call_fd);
}

/* ------------------------------------------------------------------ rings */

/* Points vq->vr at the rings' local addresses; false (queue failed) when a ring is not
 * mapped with the access the device needs, or misaligned. Does not touch ring memory. */
static bool sim_vq_translate(struct sim *s, unsigned idx)
{
    struct sim_vq *vq = &s->vqs[idx];
    unsigned num = vq->num;
    void *desc = iova_map_ptr(s->map, vq->desc_iova, vring_desc_bytes(num), IOVA_PERM_READ);
    void *avail = iova_map_ptr(s->map, vq->driver_iova, vring_avail_bytes(num), IOVA_PERM_READ);
    void *used = iova_map_ptr(s->map, vq->device_iova, vring_used_bytes(num), IOVA_PERM_WRITE);

    if (!desc || !avail || !used) {
        sim_vq_fail(s, idx,
                    "ring of %u entries not mapped (%s): desc 0x%" PRIx64 ", avail 0x%" PRIx64
                    ", used 0x%" PRIx64,
                    num, !desc ? "desc" : !avail ? "avail" : "used", vq->desc_iova,
                    vq->driver_iova, vq->device_iova);
        return false;
    }
    if ((uintptr_t)desc % VRING_DESC_ALIGN || (uintptr_t)avail % VRING_AVAIL_ALIGN ||
        (uintptr_t)used % VRING_USED_ALIGN) {
        sim_vq_fail(s, idx, "ring memory misaligned: desc %p, avail %p, used %p", desc, avail,
                    used);
        return false;
    }
    vq->vr.ring.num = num;
    vq->vr.ring.desc = desc;
    vq->vr.ring.avail = avail;
    vq->vr.ring.used = used;
    vq->vr.mem = s->map;
    return true;
}

/* Starts queue idx at vq->base: translates its rings and hands it to the worker. */
static void sim_vq_start(struct sim *s, unsigned idx)
{
    struct sim_vq *vq = &s->vqs[idx];

    vq->started = false;
    vq->restart = false;
    if (vq->failed || !sim_vq_translate(s, idx))
        return;
    vq->vr.event_idx = s->driver_features & (1ull << VIRTIO_RING_F_EVENT_IDX);
    vq->vr.indirect = s->driver_features & (1ull << VIRTIO_RING_F_INDIRECT_DESC);
    vq->vr.max_segs = vq->elem->max_segs;
    vq->vr.log = NULL;
    vring_dev_start(&vq->vr, vq->base);
    if (vq->vr.broken) {
        sim_vq_fail(s, idx, "%s", vq->vr.error);
        return;
    }
    vq->started = true;
    s->pending |= 1ull << idx;
}

/* The avail index the queue will continue from. */
static uint16_t sim_vq_base(const struct sim_vq *vq)
{
    return vq->started && !vq->restart ? vq->vr.last_avail : vq->base;
}

/* After the map changed: the ring pointers of running queues must follow. While suspended
 * the rings may be in transition (the caller is re-pointing queues), so wait for resume. */
static void sim_map_changed(struct sim *s)
{
    for (unsigned i = 0; i < s->nvqs; i++) {
        struct sim_vq *vq = &s->vqs[i];

        vq->vr.mem = s->map;
        if (!vq->started || vq->failed)
            continue;
        if (s->suspended) {
            vq->base = sim_vq_base(vq);
            vq->restart = true;
        } else {
            sim_vq_translate(s, i);
        }
    }
    s->pending |= (s->nvqs >= 64 ? UINT64_MAX : (1ull << s->nvqs) - 1);
}

/* ------------------------------------------------------------------ worker */

static void *sim_worker(void *arg)
{
    struct sim *s = arg;
    struct epoll_event ev[SIM_MAX_VQS + 1];
    bool busy = false;

    for (;;) {
        int n = epoll_wait(s->epfd, ev, G_N_ELEMENTS(ev), busy ? 0 : -1);

        if (n < 0) {
            if (errno != EINTR)
                g_warning("%s: worker: epoll_wait: %s", s->vdev.name, g_strerror(errno));
            n = 0;
        }
        pthread_mutex_lock(&s->lock);
        for (int i = 0; i < n; i++) {
            uint64_t tag = ev[i].data.u64;
            eventfd_t value;

            if (tag == SIM_CTL_TAG) {
                (void)eventfd_read(s->ctl_fd, &value);
                continue;
            }
            unsigned idx = (uint32_t)tag;
            /* only the fd this event was registered for: it is readable and we are its
             * only reader, so the read does not block */
            if (idx < s->nvqs && s->vqs[idx].kick_gen == (uint32_t)(tag >> 32) &&
                s->vqs[idx].kick_fd >= 0) {
                (void)eventfd_read(s->vqs[idx].kick_fd, &value);
                s->pending |= 1ull << idx;
            }
        }
        if (s->stop) {
            pthread_mutex_unlock(&s->lock);
            break;
        }
        busy = false;
        if (sim_running(s) && s->pending) {
            uint64_t usable = 0;

            for (unsigned i = 0; i < s->nvqs; i++)
                if (sim_vq_usable(s, i))
                    usable |= 1ull << i;
            s->pending &= usable;
            if (s->pending)
                s->type->process(s);
            busy = s->pending != 0;
        }
        pthread_mutex_unlock(&s->lock);
        /* let a waiting op in before the next round */
        while (atomic_load(&s->lock_waiters))
            sched_yield();
    }
    return NULL;
}

/* ------------------------------------------------------------------ setup and teardown */

int sim_init(struct sim *s, const struct sim_type *type, const struct vdpa_device_ops *ops,
             const char *name, const char *backend, uint64_t device_features,
             size_t config_size, unsigned nvqs, uint16_t num_max, unsigned max_segs,
             GError **error)
{
    struct epoll_event ev = { .events = EPOLLIN, .data.u64 = SIM_CTL_TAG };
    int ret;

    g_assert(nvqs > 0 && nvqs <= SIM_MAX_VQS);
    vdpa_device_init(&s->vdev, ops, name, backend);
    s->type = type;
    s->device_features = device_features;
    s->nvqs = nvqs;
    s->num_max = num_max;
    s->config_size = config_size;
    s->config_call_fd = -1;
    s->epfd = -1;
    s->ctl_fd = -1;
    pthread_mutex_init(&s->lock, NULL);
    s->config = g_malloc0(config_size);
    s->map = iova_map_new();
    s->vqs = g_new0(struct sim_vq, nvqs);
    for (unsigned i = 0; i < nvqs; i++) {
        s->vqs[i].kick_fd = -1;
        s->vqs[i].call_fd = -1;
        s->vqs[i].num = num_max;
        s->vqs[i].elem = vring_elem_new(max_segs);
        s->vqs[i].elem2 = vring_elem_new(max_segs);
        s->vqs[i].vr.mem = s->map;
    }

    s->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (s->epfd < 0)
        return vdpad_fail(error, errno, "%s: epoll_create1: %s", name, g_strerror(errno));
    s->ctl_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (s->ctl_fd < 0)
        return vdpad_fail(error, errno, "%s: eventfd: %s", name, g_strerror(errno));
    if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->ctl_fd, &ev) < 0)
        return vdpad_fail(error, errno, "%s: epoll_ctl: %s", name, g_strerror(errno));
    ret = pthread_create(&s->thread, NULL, sim_worker, s);
    if (ret != 0)
        return vdpad_fail(error, ret, "%s: cannot start the worker thread: %s", name,
                          g_strerror(ret));
    s->thread_started = true;
    g_autofree char *tname = g_strdup_printf("sim-%s", name);
    tname[MIN(strlen(tname), 15)] = '\0';
    pthread_setname_np(s->thread, tname);
    return 0;
}

static void sim_vq_close_fds(struct sim *s, struct sim_vq *vq)
{
    if (vq->kick_fd >= 0 && s->epfd >= 0)
        epoll_ctl(s->epfd, EPOLL_CTL_DEL, vq->kick_fd, NULL);
    vdpad_fd_replace_dup(&vq->kick_fd, -1);
    vdpad_fd_replace_dup(&vq->call_fd, -1);
    vq->kick_gen++;
}

static void sim_free(struct vdpa_device *dev)
{
    struct sim *s = sim_from_vdev(dev);

    if (s->thread_started) {
        sim_lock(s);
        s->stop = true;
        sim_unlock(s);
        sim_wake(s);
        pthread_join(s->thread, NULL);
    }
    if (s->type->destroy)
        s->type->destroy(s);
    for (unsigned i = 0; s->vqs && i < s->nvqs; i++) {
        sim_vq_close_fds(s, &s->vqs[i]);
        vring_elem_free(s->vqs[i].elem);
        vring_elem_free(s->vqs[i].elem2);
    }
    g_free(s->vqs);
    vdpad_close_fd(s->config_call_fd);
    vdpad_close_fd(s->ctl_fd);
    vdpad_close_fd(s->epfd);
    g_free(s->config);
    g_clear_pointer(&s->map, iova_map_free);
    g_clear_pointer(&s->batch, iova_map_free);
    pthread_mutex_destroy(&s->lock);
    vdpa_device_cleanup(&s->vdev);
    g_free(s);
}

/* Back to the state after creation (lock held); counters and the device's medium stay. */
static void sim_do_reset(struct sim *s)
{
    for (unsigned i = 0; i < s->nvqs; i++) {
        struct sim_vq *vq = &s->vqs[i];

        sim_vq_close_fds(s, vq);
        vq->num = s->num_max;
        vq->desc_iova = vq->driver_iova = vq->device_iova = 0;
        vq->ready = false;
        vq->base = 0;
        vq->started = vq->restart = vq->failed = false;
        vq->error[0] = '\0';
        memset(&vq->vr, 0, sizeof(vq->vr));
        vq->vr.mem = s->map;
    }
    vdpad_fd_replace_dup(&s->config_call_fd, -1);
    iova_map_clear(s->map);
    g_clear_pointer(&s->batch, iova_map_free);
    s->driver_features = 0;
    s->status = 0;
    s->suspended = false;
    s->pending = 0;
    s->generation++;
    s->type->reset(s);
}

/* ------------------------------------------------------------------ ops: identity, features */

static uint32_t sim_get_device_id(struct vdpa_device *dev)
{
    return sim_from_vdev(dev)->type->device_id;
}

static uint32_t sim_get_vendor_id(struct vdpa_device *dev)
{
    return 0; /* like vdpa_sim */
}

static uint64_t sim_get_device_features(struct vdpa_device *dev)
{
    return sim_from_vdev(dev)->device_features;
}

static int sim_set_driver_features(struct vdpa_device *dev, uint64_t features, GError **error)
{
    struct sim *s = sim_from_vdev(dev);
    int ret = 0;

    sim_lock(s);
    if (s->status & VIRTIO_CONFIG_S_FEATURES_OK)
        ret = vdpad_fail(error, EINVAL,
                         "%s: features 0x%" PRIx64 " refused: features already accepted "
                         "(status 0x%x has FEATURES_OK)",
                         dev->name, features, s->status);
    else if (features & ~s->device_features)
        ret = vdpad_fail(error, EINVAL,
                         "%s: features 0x%" PRIx64 " refused: 0x%" PRIx64
                         " not offered (device offers 0x%" PRIx64 ")",
                         dev->name, features, features & ~s->device_features,
                         s->device_features);
    else
        s->driver_features = features;
    sim_unlock(s);
    return ret;
}

static uint64_t sim_get_driver_features(struct vdpa_device *dev)
{
    struct sim *s = sim_from_vdev(dev);
    uint64_t features;

    sim_lock(s);
    features = s->driver_features;
    sim_unlock(s);
    return features;
}

/* ------------------------------------------------------------------ ops: status, lifecycle */

static uint8_t sim_get_status(struct vdpa_device *dev)
{
    struct sim *s = sim_from_vdev(dev);
    uint8_t status;

    sim_lock(s);
    status = s->status;
    sim_unlock(s);
    return status;
}

static bool sim_features_acceptable(struct sim *s, const char **why)
{
    uint64_t f = s->driver_features;

    if (!(f & (1ull << VIRTIO_F_VERSION_1))) {
        *why = "VERSION_1 not negotiated (legacy drivers are not supported)";
        return false;
    }
    if (!(f & (1ull << VIRTIO_F_ACCESS_PLATFORM))) {
        *why = "ACCESS_PLATFORM not negotiated (the device only works through its IOMMU)";
        return false;
    }
    return !s->type->features_ok || s->type->features_ok(s, f, why);
}

static int sim_set_status(struct vdpa_device *dev, uint8_t status, GError **error)
{
    struct sim *s = sim_from_vdev(dev);
    uint8_t old, new;
    int ret = 0;

    sim_lock(s);
    if (status == 0) {
        sim_do_reset(s);
        goto out;
    }
    old = s->status;
    /* the driver cannot clear bits (only reset can); it need not echo NEEDS_RESET */
    if ((old & ~VIRTIO_CONFIG_S_NEEDS_RESET) & ~status) {
        ret = vdpad_fail(error, EINVAL, "%s: status 0x%x -> 0x%x would clear bits 0x%x",
                         dev->name, old, status, (old & ~VIRTIO_CONFIG_S_NEEDS_RESET) & ~status);
        goto out;
    }
    new = status | (old & VIRTIO_CONFIG_S_NEEDS_RESET);
    if ((new & VIRTIO_CONFIG_S_FEATURES_OK) && !(old & VIRTIO_CONFIG_S_FEATURES_OK)) {
        const char *why = NULL;

        if (!sim_features_acceptable(s, &why)) {
            /* virtio: the device leaves FEATURES_OK clear; the driver reads it back */
            g_debug("%s: FEATURES_OK refused for features 0x%" PRIx64 ": %s", dev->name,
                    s->driver_features, why);
            new &= ~VIRTIO_CONFIG_S_FEATURES_OK;
        }
    }
    if ((new & VIRTIO_CONFIG_S_DRIVER_OK) && !(new & VIRTIO_CONFIG_S_FEATURES_OK)) {
        ret = vdpad_fail(error, EINVAL, "%s: status 0x%x: DRIVER_OK without FEATURES_OK",
                         dev->name, status);
        goto out;
    }
    s->status = new;
    if ((new & VIRTIO_CONFIG_S_DRIVER_OK) && !(old & VIRTIO_CONFIG_S_DRIVER_OK)) {
        for (unsigned i = 0; i < s->nvqs; i++)
            if (s->vqs[i].ready)
                sim_vq_start(s, i);
        if (s->type->driver_ok)
            s->type->driver_ok(s);
        sim_wake(s);
    }
out:
    sim_unlock(s);
    return ret;
}

static int sim_reset(struct vdpa_device *dev, GError **error)
{
    struct sim *s = sim_from_vdev(dev);

    sim_lock(s);
    sim_do_reset(s);
    sim_unlock(s);
    return 0;
}

static int sim_suspend(struct vdpa_device *dev, GError **error)
{
    struct sim *s = sim_from_vdev(dev);

    /* the worker walks rings only inside a round, under the lock: once we hold it, no
     * round is in flight, and none starts while suspended */
    sim_lock(s);
    s->suspended = true;
    sim_unlock(s);
    return 0;
}

static int sim_resume(struct vdpa_device *dev, GError **error)
{
    struct sim *s = sim_from_vdev(dev);

    sim_lock(s);
    if (s->suspended) {
        s->suspended = false;
        for (unsigned i = 0; i < s->nvqs; i++) {
            struct sim_vq *vq = &s->vqs[i];

            if (vq->started && vq->restart)
                sim_vq_start(s, i);
        }
        /* kicks that came while suspended only marked their queue; look at all */
        for (unsigned i = 0; i < s->nvqs; i++)
            if (s->vqs[i].started)
                s->pending |= 1ull << i;
        sim_wake(s);
    }
    sim_unlock(s);
    return 0;
}

/* ------------------------------------------------------------------ ops: config space */

static size_t sim_get_config_size(struct vdpa_device *dev)
{
    return sim_from_vdev(dev)->config_size;
}

static void sim_get_config(struct vdpa_device *dev, unsigned offset, void *buf, unsigned len)
{
    struct sim *s = sim_from_vdev(dev);
    size_t n = 0;

    if (offset < s->config_size)
        n = MIN((size_t)len, s->config_size - offset);
    sim_lock(s);
    if (n)
        memcpy(buf, s->config + offset, n);
    sim_unlock(s);
    memset((uint8_t *)buf + n, 0, len - n);
}

static void sim_set_config(struct vdpa_device *dev, unsigned offset, const void *buf,
                           unsigned len)
{
    /* Every field the simulated devices offer is read-only to a VERSION_1 driver (the net
     * MAC is changed through the control queue); writes are ignored as virtio allows. */
    g_debug("%s: ignored config write of %u bytes at %u", dev->name, len, offset);
}

static uint32_t sim_get_generation(struct vdpa_device *dev)
{
    struct sim *s = sim_from_vdev(dev);
    uint32_t gen;

    sim_lock(s);
    gen = s->generation;
    sim_unlock(s);
    return gen;
}

static int sim_set_config_call(struct vdpa_device *dev, int fd, GError **error)
{
    struct sim *s = sim_from_vdev(dev);
    int ret;

    sim_lock(s);
    ret = vdpad_fd_replace_dup(&s->config_call_fd, fd);
    sim_unlock(s);
    if (ret < 0)
        return vdpad_fail(error, -ret, "%s: config eventfd %d: %s", dev->name, fd,
                          g_strerror(-ret));
    return 0;
}

/* ------------------------------------------------------------------ ops: queues */

static unsigned sim_get_vq_count(struct vdpa_device *dev)
{
    return sim_from_vdev(dev)->nvqs;
}

static uint16_t sim_get_vq_num_max(struct vdpa_device *dev)
{
    return sim_from_vdev(dev)->num_max;
}

static uint16_t sim_get_vq_num_min(struct vdpa_device *dev)
{
    return 1;
}

static int sim_check_idx(struct sim *s, unsigned idx, const char *what, GError **error)
{
    if (idx >= s->nvqs)
        return vdpad_fail(error, EINVAL, "%s: %s: queue %u out of range (%u queues)",
                          s->vdev.name, what, idx, s->nvqs);
    return 0;
}

/* Ring layout changes are refused on a running queue; on a suspended one they take effect
 * at resume (this is how a relay re-points a queue at its shadow ring). */
static int sim_check_changeable(struct sim *s, unsigned idx, const char *what, GError **error)
{
    struct sim_vq *vq = &s->vqs[idx];

    /* a queue the worker walks must not change under it; before DRIVER_OK, or while
     * suspended, nothing walks it */
    if (vq->started && !s->suspended)
        return vdpad_fail(error, EBUSY,
                          "%s: queue %u: cannot set %s while the device is running it "
                          "(suspend first)", s->vdev.name, idx, what);
    if (vq->started && !vq->restart) {
        vq->base = vq->vr.last_avail;
        vq->restart = true;
    }
    return 0;
}

static int sim_set_vq_num(struct vdpa_device *dev, unsigned idx, unsigned num, GError **error)
{
    struct sim *s = sim_from_vdev(dev);
    int ret;

    if ((ret = sim_check_idx(s, idx, "set_vq_num", error)) < 0)
        return ret;
    if (!vring_num_valid(num) || num > s->num_max)
        return vdpad_fail(error, EINVAL,
                          "%s: queue %u: size %u invalid (a power of two up to %u)", dev->name,
                          idx, num, s->num_max);
    sim_lock(s);
    ret = sim_check_changeable(s, idx, "the size", error);
    if (ret == 0)
        s->vqs[idx].num = num;
    sim_unlock(s);
    return ret;
}

static int sim_set_vq_address(struct vdpa_device *dev, unsigned idx, uint64_t desc_area,
                              uint64_t driver_area, uint64_t device_area, GError **error)
{
    struct sim *s = sim_from_vdev(dev);
    int ret;

    if ((ret = sim_check_idx(s, idx, "set_vq_address", error)) < 0)
        return ret;
    if (desc_area % VRING_DESC_ALIGN || driver_area % VRING_AVAIL_ALIGN ||
        device_area % VRING_USED_ALIGN)
        return vdpad_fail(error, EINVAL,
                          "%s: queue %u: misaligned ring: desc 0x%" PRIx64 " (align %d), "
                          "avail 0x%" PRIx64 " (align %d), used 0x%" PRIx64 " (align %d)",
                          dev->name, idx, desc_area, VRING_DESC_ALIGN, driver_area,
                          VRING_AVAIL_ALIGN, device_area, VRING_USED_ALIGN);
    sim_lock(s);
    ret = sim_check_changeable(s, idx, "the ring address", error);
    if (ret == 0) {
        s->vqs[idx].desc_iova = desc_area;
        s->vqs[idx].driver_iova = driver_area;
        s->vqs[idx].device_iova = device_area;
    }
    sim_unlock(s);
    return ret;
}

static int sim_set_vq_state(struct vdpa_device *dev, unsigned idx,
                            const struct vdpa_vq_state *state, GError **error)
{
    struct sim *s = sim_from_vdev(dev);
    int ret;

    if ((ret = sim_check_idx(s, idx, "set_vq_state", error)) < 0)
        return ret;
    sim_lock(s);
    ret = sim_check_changeable(s, idx, "the state", error);
    if (ret == 0)
        s->vqs[idx].base = state->avail_index;
    sim_unlock(s);
    return ret;
}

static int sim_get_vq_state(struct vdpa_device *dev, unsigned idx, struct vdpa_vq_state *state,
                            GError **error)
{
    struct sim *s = sim_from_vdev(dev);
    int ret;

    if ((ret = sim_check_idx(s, idx, "get_vq_state", error)) < 0)
        return ret;
    sim_lock(s);
    state->avail_index = sim_vq_base(&s->vqs[idx]);
    sim_unlock(s);
    return 0;
}

static int sim_set_vq_ready(struct vdpa_device *dev, unsigned idx, bool ready, GError **error)
{
    struct sim *s = sim_from_vdev(dev);
    struct sim_vq *vq;
    int ret;

    if ((ret = sim_check_idx(s, idx, "set_vq_ready", error)) < 0)
        return ret;
    sim_lock(s);
    vq = &s->vqs[idx];
    if (ready && !vq->ready) {
        vq->ready = true;
        if (s->status & VIRTIO_CONFIG_S_DRIVER_OK) {
            sim_vq_start(s, idx);
            sim_wake(s);
        }
    } else if (!ready && vq->ready) {
        vq->base = sim_vq_base(vq);
        vq->started = vq->restart = false;
        vq->ready = false;
        /* queues that depended on this one (a TX waiting for its RX) look again */
        for (unsigned i = 0; i < s->nvqs; i++)
            if (s->vqs[i].started)
                s->pending |= 1ull << i;
        sim_wake(s);
    }
    sim_unlock(s);
    return 0;
}

static bool sim_get_vq_ready(struct vdpa_device *dev, unsigned idx)
{
    struct sim *s = sim_from_vdev(dev);
    bool ready;

    if (idx >= s->nvqs)
        return false;
    sim_lock(s);
    ready = s->vqs[idx].ready;
    sim_unlock(s);
    return ready;
}

static int sim_set_vq_kick(struct vdpa_device *dev, unsigned idx, int fd, GError **error)
{
    struct sim *s = sim_from_vdev(dev);
    g_auto(vdpad_fd) copy = -1;
    struct sim_vq *vq;
    int ret;

    if ((ret = sim_check_idx(s, idx, "set_vq_kick", error)) < 0)
        return ret;
    if ((ret = vdpad_fd_replace_dup(&copy, fd)) < 0)
        return vdpad_fail(error, -ret, "%s: queue %u: kick eventfd %d: %s", dev->name, idx, fd,
                          g_strerror(-ret));
    sim_lock(s);
    vq = &s->vqs[idx];
    if (vq->kick_fd >= 0)
        epoll_ctl(s->epfd, EPOLL_CTL_DEL, vq->kick_fd, NULL);
    vdpad_close_fd(vq->kick_fd);
    vq->kick_fd = vdpad_steal_fd(&copy);
    vq->kick_gen++;
    if (vq->kick_fd >= 0) {
        struct epoll_event ev = {
            .events = EPOLLIN,
            .data.u64 = (uint64_t)vq->kick_gen << 32 | idx,
        };

        if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, vq->kick_fd, &ev) < 0) {
            ret = vdpad_fail(error, errno, "%s: queue %u: cannot poll kick eventfd %d: %s",
                             dev->name, idx, fd, g_strerror(errno));
            vdpad_fd_replace_dup(&vq->kick_fd, -1);
        } else {
            /* a kick may have been written to the new fd before we polled it */
            s->pending |= 1ull << idx;
            sim_wake(s);
        }
    }
    sim_unlock(s);
    return ret;
}

static int sim_set_vq_call(struct vdpa_device *dev, unsigned idx, int fd, GError **error)
{
    struct sim *s = sim_from_vdev(dev);
    int ret;

    if ((ret = sim_check_idx(s, idx, "set_vq_call", error)) < 0)
        return ret;
    sim_lock(s);
    ret = vdpad_fd_replace_dup(&s->vqs[idx].call_fd, fd);
    sim_unlock(s);
    if (ret < 0)
        return vdpad_fail(error, -ret, "%s: queue %u: call eventfd %d: %s", dev->name, idx, fd,
                          g_strerror(-ret));
    return 0;
}

static int sim_get_vq_stats(struct vdpa_device *dev, unsigned idx, struct vdpa_vq_stats *stats,
                            GError **error)
{
    struct sim *s = sim_from_vdev(dev);
    int ret;

    if ((ret = sim_check_idx(s, idx, "get_vq_stats", error)) < 0)
        return ret;
    memset(stats, 0, sizeof(*stats));
    sim_lock(s);
    vdpa_vq_stats_add(stats, "received_desc", s->vqs[idx].received_desc);
    vdpa_vq_stats_add(stats, "completed_desc", s->vqs[idx].completed_desc);
    s->type->get_stats(s, idx, stats);
    sim_unlock(s);
    return 0;
}

/* ------------------------------------------------------------------ ops: DMA */

static struct vdpa_iova_range sim_get_iova_range(struct vdpa_device *dev)
{
    return (struct vdpa_iova_range){ .first = 0, .last = UINT64_MAX };
}

static int sim_dma_map(struct vdpa_device *dev, uint64_t iova, uint64_t size, void *vaddr,
                       uint32_t perm, GError **error)
{
    struct sim *s = sim_from_vdev(dev);
    int ret;

    if (s->batch) { /* applied at batch end; errors are reported now */
        ret = iova_map_add(s->batch, iova, size, vaddr, perm, error);
    } else {
        sim_lock(s);
        ret = iova_map_add(s->map, iova, size, vaddr, perm, error);
        if (ret == 0)
            sim_map_changed(s);
        sim_unlock(s);
        if (ret == 0)
            sim_wake(s);
    }
    if (ret < 0)
        return vdpad_prefix_error(error, "%s: dma_map: ", dev->name);
    return 0;
}

static int sim_dma_unmap(struct vdpa_device *dev, uint64_t iova, uint64_t size, GError **error)
{
    struct sim *s = sim_from_vdev(dev);
    int64_t ret;

    if (s->batch) {
        ret = iova_map_remove(s->batch, iova, size);
    } else {
        sim_lock(s);
        ret = iova_map_remove(s->map, iova, size);
        if (ret > 0)
            sim_map_changed(s);
        sim_unlock(s);
    }
    if (ret < 0)
        return vdpad_fail(error, (int)-ret,
                          "%s: dma_unmap: invalid range 0x%" PRIx64 " + 0x%" PRIx64, dev->name,
                          iova, size);
    return 0;
}

static int sim_dma_batch_begin(struct vdpa_device *dev, GError **error)
{
    struct sim *s = sim_from_vdev(dev);
    g_autoptr(iova_map) copy = iova_map_new();
    struct iova_region r;

    if (s->batch)
        return vdpad_fail(error, EBUSY, "%s: dma batch already open", dev->name);
    /* the worker only reads s->map and only this thread changes it: no lock needed */
    for (unsigned i = 0; iova_map_nth(s->map, i, &r); i++) {
        int ret = iova_map_add(copy, r.iova, r.size, r.addr, r.perm, error);

        if (ret < 0)
            return vdpad_prefix_error(error, "%s: dma batch: ", dev->name);
    }
    s->batch = g_steal_pointer(&copy);
    return 0;
}

static int sim_dma_batch_end(struct vdpa_device *dev, GError **error)
{
    struct sim *s = sim_from_vdev(dev);
    struct iova_map *old;

    if (!s->batch)
        return vdpad_fail(error, EINVAL, "%s: dma batch end without begin", dev->name);
    sim_lock(s);
    old = s->map;
    s->map = g_steal_pointer(&s->batch);
    sim_map_changed(s);
    sim_unlock(s);
    sim_wake(s);
    iova_map_free(old);
    return 0;
}

const struct vdpa_device_ops sim_ops = {
    .get_device_id = sim_get_device_id,
    .get_vendor_id = sim_get_vendor_id,
    .get_device_features = sim_get_device_features,
    .set_driver_features = sim_set_driver_features,
    .get_driver_features = sim_get_driver_features,
    .get_status = sim_get_status,
    .set_status = sim_set_status,
    .reset = sim_reset,
    .suspend = sim_suspend,
    .resume = sim_resume,
    .get_config_size = sim_get_config_size,
    .get_config = sim_get_config,
    .set_config = sim_set_config,
    .get_generation = sim_get_generation,
    .set_config_call = sim_set_config_call,
    .get_vq_count = sim_get_vq_count,
    .get_vq_num_max = sim_get_vq_num_max,
    .get_vq_num_min = sim_get_vq_num_min,
    .set_vq_num = sim_set_vq_num,
    .set_vq_address = sim_set_vq_address,
    .set_vq_state = sim_set_vq_state,
    .get_vq_state = sim_get_vq_state,
    .set_vq_ready = sim_set_vq_ready,
    .get_vq_ready = sim_get_vq_ready,
    .set_vq_kick = sim_set_vq_kick,
    .set_vq_call = sim_set_vq_call,
    .get_vq_stats = sim_get_vq_stats,
    .get_iova_range = sim_get_iova_range,
    .dma_map = sim_dma_map,
    .dma_unmap = sim_dma_unmap,
    .dma_batch_begin = sim_dma_batch_begin,
    .dma_batch_end = sim_dma_batch_end,
    .free = sim_free,
};
