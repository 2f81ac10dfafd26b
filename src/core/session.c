#include "config.h"

#include <inttypes.h>
#include <linux/vhost_types.h>
#include <linux/virtio_config.h>
#include <unistd.h>

#include "core/mem_guard.h"
#include "core/session.h"
#include "core/session_priv.h"
#include "iova/iova_map.h"
#include "shadow_vq/relay.h"
#include "util/compat.h"
#include "util/error.h"
#include "util/fd.h"

/* IOTLB entries per session, as the kernel's vhost-vdpa (module parameter
 * max_iotlb_entries): each is at least one mapping in vdpad, and a process has a bounded
 * number of them (vm.max_map_count) that every other client shares. */
#define SESSION_MAX_IOTLB_ENTRIES 2048u

/* Mappings the session holds: its entries, and what waits for the end of a batch. */
static unsigned mappings_held(const struct session *s)
{
    return s->maps->len + s->unmap_at_batch_end->len;
}

/* Backend features vdpad's front offers; SUSPEND/RESUME only when the device can. */
#define BASE_BACKEND_FEATURES \
    ((1ull << VHOST_BACKEND_F_IOTLB_MSG_V2) | (1ull << VHOST_BACKEND_F_IOTLB_BATCH))

/* Client memory goes through these two: the guard keeps the device's worker alive when
 * the client shrinks the file behind it (mem_guard.h). */
static void unmap_client(struct session *s, void *local, uint64_t size)
{
    mem_guard_remove(local, size);
    s->mem->unmap(s->mem_opaque, local, size);
}

/* Unmaps what invalidations inside a batch left mapped; only once the device no longer
 * uses it (its batch was applied, or it was reset). */
static void release_deferred_unmaps(struct session *s)
{
    for (guint i = 0; i < s->unmap_at_batch_end->len; i++) {
        struct mem_record *r = &g_array_index(s->unmap_at_batch_end, struct mem_record, i);
        unmap_client(s, r->local, r->size);
    }
    g_array_set_size(s->unmap_at_batch_end, 0);
}

static void release_maps(struct session *s)
{
    release_deferred_unmaps(s);
    for (guint i = 0; i < s->maps->len; i++) {
        struct mem_record *r = &g_array_index(s->maps, struct mem_record, i);
        if (r->local)
            unmap_client(s, r->local, r->size);
    }
    g_array_set_size(s->maps, 0);
    iova_map_clear(s->iotlb);
}

/* After a device reset: give the device back what vhost-vdpa keeps across it (the
 * IOTLB, kick, call and config eventfds), as the kernel's vhost layer does. */
static int reapply_persistent_state(struct session *s, GError **error)
{
    const struct vdpa_device_ops *ops = s->dev->ops;
    int ret;

    for (guint i = 0; i < s->maps->len; i++) {
        struct mem_record *r = &g_array_index(s->maps, struct mem_record, i);
        struct iova_region reg;

        if (!r->local || !iova_map_lookup(s->iotlb, r->iova, &reg))
            continue;
        ret = ops->dma_map(s->dev, r->iova, r->size, r->local, reg.perm, error);
        if (ret < 0)
            return ret;
    }
    for (unsigned i = 0; i < s->nvqs; i++) {
        if (s->vq[i].kick_fd >= 0 && (ret = ops->set_vq_kick(s->dev, i, s->vq[i].kick_fd, error)) < 0)
            return ret;
        if (s->vq[i].call_fd >= 0 && (ret = ops->set_vq_call(s->dev, i, s->vq[i].call_fd, error)) < 0)
            return ret;
    }
    if (s->config_call_fd >= 0)
        return ops->set_config_call(s->dev, s->config_call_fd, error);
    return 0;
}

static void clear_vq_config(struct session *s)
{
    for (unsigned i = 0; i < s->nvqs; i++) {
        struct session_vq *vq = &s->vq[i];
        vq->num = 0;
        vq->desc = vq->avail = vq->used = 0;
        vq->addr_set = false;
        vq->base = 0;
        vq->ready = false;
    }
}

struct session *session_new(struct vdpa_device *dev, pid_t opener,
                            const struct session_mem_ops *mem, void *mem_opaque, GError **error)
{
    g_autoptr(session) s = g_new0(struct session, 1);

    s->dev = dev;
    s->opener = opener;
    s->mem = mem;
    s->mem_opaque = mem_opaque;
    s->config_call_fd = -1;
    s->cvq = UINT_MAX;
    g_mutex_init(&s->net_lock);
    s->nvqs = dev->ops->get_vq_count(dev);
    s->vq = g_new0(struct session_vq, s->nvqs);
    for (unsigned i = 0; i < s->nvqs; i++)
        s->vq[i].kick_fd = s->vq[i].call_fd = -1;
    s->iotlb = iova_map_new();
    s->maps = g_array_new(FALSE, FALSE, sizeof(struct mem_record));
    s->unmap_at_batch_end = g_array_new(FALSE, FALSE, sizeof(struct mem_record));
    if (dev->ops->reset(dev, error) < 0) {
        vdpad_prefix_error(error, "%s: reset at open: ", dev->name);
        return NULL;
    }
    return g_steal_pointer(&s);
}

void session_free(struct session *s)
{
    if (!s)
        return;
    g_autoptr(GError) err = NULL;
    if (s->dev && s->dev->ops->reset(s->dev, &err) < 0)
        g_warning("%s: reset at close failed: %s", DEV_NAME(s), err->message);
    session_relay_free(s); /* its thread touches guest memory: before the memory goes */
    if (s->maps && s->unmap_at_batch_end)
        release_maps(s);
    for (unsigned i = 0; i < s->nvqs; i++) {
        vdpad_close_fd(s->vq[i].kick_fd);
        vdpad_close_fd(s->vq[i].call_fd);
    }
    vdpad_close_fd(s->config_call_fd);
    g_free(s->vq);
    g_free(s->ram_unshared);
    if (s->maps)
        g_array_free(s->maps, TRUE);
    if (s->unmap_at_batch_end)
        g_array_free(s->unmap_at_batch_end, TRUE);
    iova_map_free(s->iotlb);
    g_free(s);
}

struct vdpa_device *session_device(const struct session *s)
{
    return s->dev;
}

pid_t session_opener(const struct session *s)
{
    return s->opener;
}

pid_t session_owner(const struct session *s)
{
    return s->owner;
}

/* ------------------------------------------------------------------ ownership */

int session_set_owner(struct session *s, pid_t tgid, GError **error)
{
    /* FUSE reports pid 0 for a caller outside our pid namespace: we could reach neither
     * its memory nor its fds, and owner 0 would mean "no owner" */
    if (tgid <= 0)
        return vdpad_fail(error, EPERM, "%s: SET_OWNER from a process outside vdpad's pid "
                          "namespace (pid %d)", DEV_NAME(s), (int)tgid);
    if (s->owner)
        return vdpad_fail(error, EBUSY, "%s: already owned by pid %d (SET_OWNER from pid %d)",
                          DEV_NAME(s), (int)s->owner, (int)tgid);
    s->owner = tgid;
    return 0;
}

/* ------------------------------------------------------------------ features */

uint64_t session_get_features(struct session *s)
{
    uint64_t f = s->dev->ops->get_device_features(s->dev);

    if (session_offers_log_all(s))
        f |= 1ull << VHOST_F_LOG_ALL;
    return f;
}

int session_set_features(struct session *s, uint64_t features, GError **error)
{
    const struct vdpa_device_ops *ops = s->dev->ops;
    const uint64_t log_bit = 1ull << VHOST_F_LOG_ALL;
    bool log = (features & log_bit) && session_offers_log_all(s);
    uint64_t dev_features = log ? features & ~log_bit : features;

    if (ops->get_status(s->dev) & VIRTIO_CONFIG_S_FEATURES_OK) {
        /* QEMU turns dirty logging on and off this way, and aborts if it fails */
        if (dev_features != s->negotiated)
            return vdpad_fail(error, EBUSY, "%s: SET_FEATURES 0x%" PRIx64 " after FEATURES_OK "
                              "changes more than VHOST_F_LOG_ALL (negotiated 0x%" PRIx64 ")",
                              DEV_NAME(s), features, s->negotiated);
        return session_relay_toggle_log(s, log, error);
    }
    g_autoptr(GError) cause = NULL;
    if (ops->set_driver_features(s->dev, dev_features, &cause) < 0) /* EINVAL, as the kernel */
        return vdpad_fail(error, EINVAL, "%s: SET_FEATURES 0x%" PRIx64 ": %s", DEV_NAME(s),
                          features, cause ? cause->message : "refused by the device");
    s->negotiated = dev_features;
    s->log_all = log; /* the relay takes the data queues at DRIVER_OK */
    return 0;
}

uint64_t session_get_backend_features(struct session *s)
{
    uint64_t f = BASE_BACKEND_FEATURES;

    if (s->dev->ops->suspend)
        f |= 1ull << VHOST_BACKEND_F_SUSPEND;
    if (s->dev->ops->resume)
        f |= 1ull << VHOST_BACKEND_F_RESUME;
    return f;
}

int session_set_backend_features(struct session *s, uint64_t features, GError **error)
{
    uint64_t offered = session_get_backend_features(s);

    if (features & ~offered)
        return vdpad_fail(error, EOPNOTSUPP, "%s: SET_BACKEND_FEATURES 0x%" PRIx64
                          " has bits not offered (offered 0x%" PRIx64 ")",
                          DEV_NAME(s), features, offered);
    s->backend_features = features;
    return 0;
}

uint64_t session_acked_backend_features(const struct session *s)
{
    return s->backend_features;
}

/* ------------------------------------------------------------------ status, config */

/* Stops the device taking more buffers from queue idx, so that its state is exact:
 * suspend the device when it can, else disable the queue. */
static int quiesce(struct session *s, unsigned idx, GError **error)
{
    const struct vdpa_device_ops *ops = s->dev->ops;

    if (!(ops->get_status(s->dev) & VIRTIO_CONFIG_S_DRIVER_OK) || s->suspended)
        return 0;
    if (ops->suspend) {
        int ret = ops->suspend(s->dev, error);
        if (ret == 0)
            s->suspended = true;
        return ret;
    }
    if (ops->get_vq_ready(s->dev, idx))
        return ops->set_vq_ready(s->dev, idx, false, error);
    return 0;
}

/* Before a reset from DRIVER_OK: what each started queue's base is, for the
 * GET_VRING_BASE that QEMU 7.2 sends after the reset. */
/* Where queue idx resumes: quiesced first, so that the answer stays true. A relayed queue
 * is drained into the guest ring, and the dirty log flushed, before it answers. */
static int read_base(struct session *s, unsigned idx, uint16_t *base, GError **error)
{
    int ret = quiesce(s, idx, error);

    if (ret < 0)
        return ret;
    if (session_vq_relayed(s, idx))
        return session_relay_drain(s, idx, base, error);
    struct vdpa_vq_state st;
    if ((ret = s->dev->ops->get_vq_state(s->dev, idx, &st, error)) < 0)
        return ret;
    *base = st.avail_index;
    return 0;
}

static void save_bases(struct session *s)
{
    g_autofree uint16_t *bases = g_new0(uint16_t, s->nvqs);
    g_autofree bool *started = g_new0(bool, s->nvqs);

    for (unsigned i = 0; i < s->nvqs; i++) {
        struct session_vq *vq = &s->vq[i];
        g_autoptr(GError) err = NULL;

        vq->saved_valid = false;
        if (vq->num == 0)
            continue;
        if (read_base(s, i, &vq->saved_base, &err) < 0) {
            g_warning("%s: queue %u: cannot read its state before reset: %s", DEV_NAME(s), i,
                      err->message);
            continue;
        }
        vq->saved_valid = true;
        bases[i] = vq->saved_base;
        started[i] = session_vq_started(s, i);
    }
    if (s->events.stopped)
        s->events.stopped(s->events.opaque, bases, started, s->nvqs);
}

uint8_t session_get_status(struct session *s)
{
    return s->dev->ops->get_status(s->dev);
}

int session_set_status(struct session *s, uint8_t status, GError **error)
{
    const struct vdpa_device_ops *ops = s->dev->ops;
    uint8_t old = ops->get_status(s->dev);
    int ret;

    if (status != 0 && (old & ~status))
        return vdpad_fail(error, EINVAL, "%s: SET_STATUS 0x%x would clear bits of 0x%x; "
                          "only a reset (0) may clear status bits", DEV_NAME(s), status, old);
    if (status == 0) {
        if (old & VIRTIO_CONFIG_S_DRIVER_OK)
            save_bases(s);
        ret = ops->reset(s->dev, error);
        if (ret < 0)
            return vdpad_prefix_error(error, "%s: reset: ", DEV_NAME(s));
        session_relay_stop(s); /* after the reset: the device no longer uses shadow rings */
        clear_vq_config(s);
        s->suspended = false;
        /* the device dropped its mappings, pending batch included */
        release_deferred_unmaps(s);
        /* a batch the client opened stays open across the reset, as in the kernel; the
         * device's own batch went with the reset */
        if (s->in_batch && ops->dma_batch_begin && (ret = ops->dma_batch_begin(s->dev, error)) < 0)
            return vdpad_prefix_error(error, "%s: reopening the IOTLB batch after reset: ",
                                      DEV_NAME(s));
        ret = reapply_persistent_state(s, error);
        if (ret < 0)
            return vdpad_prefix_error(error, "%s: restoring IOTLB and eventfds after reset: ",
                                      DEV_NAME(s));
        return 0;
    }
    bool starting = (status & VIRTIO_CONFIG_S_DRIVER_OK) && !(old & VIRTIO_CONFIG_S_DRIVER_OK);
    if (starting && s->ram_unshared)
        return vdpad_fail(error, EIO, "%s: DRIVER_OK refused: guest RAM is not reachable: %s",
                          DEV_NAME(s), s->ram_unshared);
    if (starting && (ret = session_relay_before_driver_ok(s, error)) < 0) {
        session_relay_stop(s);
        return vdpad_prefix_error(error, "%s: DRIVER_OK: ", DEV_NAME(s));
    }
    ret = ops->set_status(s->dev, status, error);
    if (ret < 0) {
        if (starting)
            session_relay_stop(s);
        return vdpad_prefix_error(error, "%s: SET_STATUS 0x%x: ", DEV_NAME(s), status);
    }
    if (starting) {
        for (unsigned i = 0; i < s->nvqs; i++)
            s->vq[i].saved_valid = false;
        if ((ret = session_relay_after_driver_ok(s, error)) < 0)
            return ret;
    }
    return 0;
}

static int check_config_range(struct session *s, const char *what, uint32_t off, uint32_t len,
                              GError **error)
{
    size_t size = s->dev->ops->get_config_size(s->dev);

    if (len == 0 || off > size || len > size - off)
        return vdpad_fail(error, EINVAL, "%s: %s off %u len %u: config space is %zu bytes",
                          DEV_NAME(s), what, off, len, size);
    return 0;
}

int session_get_config(struct session *s, uint32_t off, uint32_t len, void *buf, GError **error)
{
    int ret = check_config_range(s, "GET_CONFIG", off, len, error);

    if (ret < 0)
        return ret;
    s->dev->ops->get_config(s->dev, off, buf, len);
    return 0;
}

int session_set_config(struct session *s, uint32_t off, uint32_t len, const void *buf,
                       GError **error)
{
    int ret = check_config_range(s, "SET_CONFIG", off, len, error);

    if (ret < 0)
        return ret;
    s->dev->ops->set_config(s->dev, off, buf, len);
    return 0;
}

int session_set_config_call(struct session *s, int fd, GError **error)
{
    g_auto(vdpad_fd) owned = fd;
    int ret = s->dev->ops->set_config_call(s->dev, owned, error);

    if (ret < 0)
        return vdpad_prefix_error(error, "%s: SET_CONFIG_CALL: ", DEV_NAME(s));
    vdpad_close_fd(s->config_call_fd);
    s->config_call_fd = vdpad_steal_fd(&owned);
    return 0;
}

int session_suspend(struct session *s, GError **error)
{
    if (!s->dev->ops->suspend)
        return vdpad_fail(error, EOPNOTSUPP, "%s: the device cannot suspend", DEV_NAME(s));
    if (!(session_get_status(s) & VIRTIO_CONFIG_S_DRIVER_OK) || s->suspended)
        return 0;
    int ret = s->dev->ops->suspend(s->dev, error);
    if (ret == 0)
        s->suspended = true;
    return ret;
}

int session_resume(struct session *s, GError **error)
{
    if (!s->dev->ops->resume)
        return vdpad_fail(error, EOPNOTSUPP, "%s: the device cannot resume", DEV_NAME(s));
    if (!(session_get_status(s) & VIRTIO_CONFIG_S_DRIVER_OK) || !s->suspended)
        return 0;
    int ret = s->dev->ops->resume(s->dev, error);
    if (ret == 0)
        s->suspended = false;
    return ret;
}

/* ------------------------------------------------------------------ virtqueues */

unsigned session_vq_count(const struct session *s)
{
    return s->nvqs;
}

static int check_vq(struct session *s, const char *what, unsigned idx, GError **error)
{
    if (idx >= s->nvqs)
        return vdpad_fail(error, ENOBUFS, "%s: %s for queue %u: the device has %u queues",
                          DEV_NAME(s), what, idx, s->nvqs);
    return 0;
}

int session_set_vring_num(struct session *s, unsigned idx, unsigned num, GError **error)
{
    int ret = check_vq(s, "SET_VRING_NUM", idx, error);

    if (ret < 0)
        return ret;
    if (num == 0 || num > 0xffff || (num & (num - 1)))
        return vdpad_fail(error, EINVAL, "%s: queue %u: ring size %u is not a power of two "
                          "in 1..32768", DEV_NAME(s), idx, num);
    ret = s->dev->ops->set_vq_num(s->dev, idx, num, error);
    if (ret < 0)
        return vdpad_prefix_error(error, "%s: queue %u: ", DEV_NAME(s), idx);
    s->vq[idx].num = num;
    return 0;
}

int session_set_vring_addr(struct session *s, unsigned idx, uint64_t desc, uint64_t avail,
                           uint64_t used, GError **error)
{
    int ret = check_vq(s, "SET_VRING_ADDR", idx, error);

    if (ret < 0)
        return ret;
    if ((avail & 1) || (used & 3))
        return vdpad_fail(error, EINVAL, "%s: queue %u: avail 0x%" PRIx64 " or used 0x%" PRIx64
                          " misaligned (need 2 and 4)", DEV_NAME(s), idx, avail, used);
    struct session_vq *vq = &s->vq[idx];
    if (session_vq_relayed(s, idx)) {
        /* the device keeps working on its shadow ring */
        if (desc != vq->desc || avail != vq->avail || used != vq->used)
            return vdpad_fail(error, EBUSY, "%s: queue %u: its ring cannot move while relayed",
                              DEV_NAME(s), idx);
        return 0;
    }
    /* QEMU sends the same addresses again to toggle the log flag on a running queue
     * (which the kernel accepts at any time): nothing to reprogram */
    if (vq->ready && vq->desc == desc && vq->avail == avail && vq->used == used)
        return 0;
    g_autoptr(GError) cause = NULL;
    if (s->dev->ops->set_vq_address(s->dev, idx, desc, avail, used, &cause) < 0)
        return vdpad_fail(error, EINVAL, "%s: queue %u: SET_VRING_ADDR: %s", DEV_NAME(s), idx,
                          cause ? cause->message : "refused by the device");
    s->vq[idx].desc = desc;
    s->vq[idx].avail = avail;
    s->vq[idx].used = used;
    s->vq[idx].addr_set = true;
    return 0;
}

int session_set_vring_base(struct session *s, unsigned idx, unsigned base, GError **error)
{
    int ret = check_vq(s, "SET_VRING_BASE", idx, error);

    if (ret < 0)
        return ret;
    if (base > 0xffff)
        return vdpad_fail(error, EINVAL, "%s: queue %u: base %u is past 65535", DEV_NAME(s),
                          idx, base);
    s->vq[idx].saved_valid = false;
    if (session_vq_relayed(s, idx))
        return vdpad_fail(error, EBUSY, "%s: queue %u: SET_VRING_BASE while relayed",
                          DEV_NAME(s), idx);
    struct vdpa_vq_state st = { .avail_index = (uint16_t)base };
    g_autoptr(GError) cause = NULL;
    if (s->dev->ops->set_vq_state(s->dev, idx, &st, &cause) < 0)
        return vdpad_fail(error, EINVAL, "%s: queue %u: SET_VRING_BASE %u: %s", DEV_NAME(s), idx,
                          base, cause ? cause->message : "refused by the device");
    s->vq[idx].base = (uint16_t)base;
    return 0;
}

int session_get_vring_base(struct session *s, unsigned idx, uint16_t *base, GError **error)
{
    int ret = check_vq(s, "GET_VRING_BASE", idx, error);

    if (ret < 0)
        return ret;
    if (s->vq[idx].saved_valid) {
        *base = s->vq[idx].saved_base;
        return 0;
    }
    if ((ret = read_base(s, idx, base, error)) < 0)
        return vdpad_prefix_error(error, "%s: queue %u: GET_VRING_BASE: ", DEV_NAME(s), idx);
    return 0;
}

int session_set_vring_kick(struct session *s, unsigned idx, int fd, GError **error)
{
    g_auto(vdpad_fd) owned = fd;
    int ret = check_vq(s, "SET_VRING_KICK", idx, error);

    if (ret < 0)
        return ret;
    if (session_vq_relayed(s, idx))
        ret = relay_set_guest_fds(s->relay, idx, owned, -1, error);
    else
        ret = s->dev->ops->set_vq_kick(s->dev, idx, owned, error);
    if (ret < 0)
        return vdpad_prefix_error(error, "%s: queue %u: ", DEV_NAME(s), idx);
    vdpad_close_fd(s->vq[idx].kick_fd);
    s->vq[idx].kick_fd = vdpad_steal_fd(&owned);
    return 0;
}

int session_set_vring_call(struct session *s, unsigned idx, int fd, GError **error)
{
    g_auto(vdpad_fd) owned = fd;
    int ret = check_vq(s, "SET_VRING_CALL", idx, error);

    if (ret < 0)
        return ret;
    if (session_vq_relayed(s, idx))
        ret = relay_set_guest_fds(s->relay, idx, -1, owned, error);
    else
        ret = s->dev->ops->set_vq_call(s->dev, idx, owned, error);
    if (ret < 0)
        return vdpad_prefix_error(error, "%s: queue %u: ", DEV_NAME(s), idx);
    vdpad_close_fd(s->vq[idx].call_fd);
    s->vq[idx].call_fd = vdpad_steal_fd(&owned);
    return 0;
}

int session_set_vring_enable(struct session *s, unsigned idx, bool enable, GError **error)
{
    int ret = check_vq(s, "SET_VRING_ENABLE", idx, error);

    if (ret < 0)
        return ret;
    /* a migration's destination holds the data queues back until the state is replayed
     * (the control queue is known only at DRIVER_OK: hold back every queue for now) */
    bool held = s->restore_pending && enable &&
                !(s->dev->ops->get_status(s->dev) & VIRTIO_CONFIG_S_DRIVER_OK);
    if (!held && (ret = s->dev->ops->set_vq_ready(s->dev, idx, enable, error)) < 0)
        return vdpad_prefix_error(error, "%s: queue %u: enable %d: ", DEV_NAME(s), idx, enable);
    s->vq[idx].ready = enable;
    return 0;
}

int session_set_vring_busyloop(struct session *s, unsigned idx, unsigned timeout)
{
    if (idx >= s->nvqs)
        return -ENOBUFS;
    s->vq[idx].busyloop_timeout = timeout;
    return 0;
}

unsigned session_get_vring_busyloop(struct session *s, unsigned idx)
{
    return idx < s->nvqs ? s->vq[idx].busyloop_timeout : 0;
}

int session_get_vq_info(struct session *s, unsigned idx, struct session_vq_info *info)
{
    if (idx >= s->nvqs)
        return -ENOBUFS;
    const struct session_vq *vq = &s->vq[idx];
    *info = (struct session_vq_info){
        .num = vq->num, .desc = vq->desc, .avail = vq->avail, .used = vq->used,
        .base = vq->base, .ready = vq->ready,
        .has_kick = vq->kick_fd >= 0, .has_call = vq->call_fd >= 0,
    };
    return 0;
}

/* ------------------------------------------------------------------ IOTLB */

static guint find_first_record_ending_after(struct session *s, uint64_t iova)
{
    guint lo = 0, hi = s->maps->len;

    while (lo < hi) {
        guint mid = lo + (hi - lo) / 2;
        struct mem_record *r = &g_array_index(s->maps, struct mem_record, mid);
        if (r->iova + r->size - 1 < iova)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Client memory is mapped and unmapped in whole pages. */
static uint64_t page_size(void)
{
    static uint64_t size;

    if (!size)
        size = (uint64_t)sysconf(_SC_PAGESIZE);
    return size;
}

/* What an operator must change when guest RAM cannot be shared with vdpad. */
#define SHARED_RAM_HINT                                                                  \
    "add <memoryBacking><source type='memfd'/><access mode='shared'/></memoryBacking> to "  \
    "the domain XML, or use -object memory-backend-memfd,id=mem,share=on "              \
    "-machine memory-backend=mem with QEMU"

struct vdpa_iova_range session_get_iova_range(struct session *s)
{
    struct vdpa_iova_range range = s->dev->ops->get_iova_range(s->dev);
    uint64_t win_first, win_last;

    relay_shadow_window(s->dev, &win_first, &win_last);
    if (win_first > range.first)
        range.last = MIN(range.last, win_first - 1);
    return range;
}

/* Where x86 guest RAM lies: below 640 KiB and from 1 MiB. Unshareable memory there means
 * the guest RAM has no shared backend, which no device can work with. */
static bool range_holds_guest_ram(uint64_t iova, uint64_t size)
{
    uint64_t last = iova + size - 1;

    return iova == 0 || (iova <= 0x100000 && last >= 0x100000);
}

int session_iotlb_update(struct session *s, uint64_t iova, uint64_t size, uint64_t uaddr,
                         uint8_t perm, pid_t pid, GError **error)
{
    struct vdpa_iova_range range = s->dev->ops->get_iova_range(s->dev);
    int ret;

    if (size == 0 || iova < range.first || iova > UINT64_MAX - size + 1 ||
        iova + size - 1 > range.last)
        return vdpad_fail(error, EINVAL, "%s: IOTLB update iova 0x%" PRIx64 " size 0x%" PRIx64
                          " is empty, wraps or lies outside the IOVA range 0x%" PRIx64
                          "-0x%" PRIx64, DEV_NAME(s), iova, size, range.first, range.last);
    if (perm == 0 || (perm & ~VHOST_ACCESS_RW))
        return vdpad_fail(error, EINVAL, "%s: IOTLB update iova 0x%" PRIx64 ": bad perm %u",
                          DEV_NAME(s), iova, perm);
    uint64_t win_first, win_last;
    relay_shadow_window(s->dev, &win_first, &win_last);
    if (iova <= win_last && iova + size - 1 >= win_first)
        return vdpad_fail(error, EINVAL, "%s: IOTLB update iova 0x%" PRIx64 " size 0x%" PRIx64
                          " overlaps the window vdpad keeps for shadow rings (0x%" PRIx64
                          "-0x%" PRIx64 ")", DEV_NAME(s), iova, size, win_first, win_last);
    /* whole pages, so that every later cut, device unmap and munmap is page aligned */
    if ((iova | size | uaddr) & (page_size() - 1))
        return vdpad_fail(error, EINVAL, "%s: IOTLB update iova 0x%" PRIx64 " size 0x%" PRIx64
                          " uaddr 0x%" PRIx64 " is not page aligned", DEV_NAME(s), iova, size,
                          uaddr);
    if (mappings_held(s) >= SESSION_MAX_IOTLB_ENTRIES)
        return vdpad_fail(error, ENOSPC, "%s: IOTLB update iova 0x%" PRIx64 ": the IOTLB has "
                          "its maximum of %u entries (%u of them invalidated, kept until the "
                          "end of the batch)", DEV_NAME(s), iova, SESSION_MAX_IOTLB_ENTRIES,
                          s->unmap_at_batch_end->len);
    /* Overlap check before mapping anything, like the kernel (EEXIST). */
    guint at = find_first_record_ending_after(s, iova);
    if (at < s->maps->len) {
        struct mem_record *r = &g_array_index(s->maps, struct mem_record, at);
        if (r->iova <= iova + size - 1)
            return vdpad_fail(error, EEXIST, "%s: IOTLB update iova 0x%" PRIx64 " size 0x%" PRIx64
                              " overlaps the mapping at 0x%" PRIx64 " size 0x%" PRIx64,
                              DEV_NAME(s), iova, size, r->iova, r->size);
    }

    void *local = NULL;
    g_autoptr(GError) map_err = NULL;
    ret = s->mem->map(s->mem_opaque, pid, uaddr, size, (perm & VHOST_ACCESS_WO) != 0, &local,
                      &map_err);
    if (ret == -EOPNOTSUPP && !range_holds_guest_ram(iova, size)) {
        g_info("%s: IOVA 0x%" PRIx64 "+0x%" PRIx64 " is not shared memory (a ROM or video "
               "memory); the device cannot reach it", DEV_NAME(s), iova, size);
        struct mem_record rec = { .iova = iova, .size = size, .local = NULL };
        g_array_insert_val(s->maps, at, rec);
        return 0;
    }
    if (ret < 0) {
        g_autofree char *msg = g_strdup_printf("IOTLB update iova 0x%" PRIx64 " size 0x%" PRIx64
                                               " uaddr 0x%" PRIx64 ": %s", iova, size, uaddr,
                                               map_err->message);
        if (ret == -EOPNOTSUPP) {
            /* guest RAM without a shared backend: no device can work; say what to change */
            g_free(s->ram_unshared);
            s->ram_unshared = g_strdup_printf("guest RAM at IOVA 0x%" PRIx64 " is not shared "
                                              "memory (%s); " SHARED_RAM_HINT, iova,
                                              map_err->message);
            g_warning("%s: IOTLB update iova 0x%" PRIx64 " size 0x%" PRIx64 " uaddr 0x%" PRIx64
                      " refused: %s", DEV_NAME(s), iova, size, uaddr, s->ram_unshared);
            return vdpad_fail(error, EOPNOTSUPP, "%s: IOTLB update iova 0x%" PRIx64 " size 0x%"
                              PRIx64 " uaddr 0x%" PRIx64 ": %s", DEV_NAME(s), iova, size,
                              uaddr, s->ram_unshared);
        }
        return vdpad_fail(error, -ret, "%s: %s", DEV_NAME(s), msg);
    }

    mem_guard_add(local, size);
    if (s->relay)
        relay_lock(s->relay);
    ret = iova_map_add(s->iotlb, iova, size, local, perm, error);
    if (ret == 0) {
        ret = s->dev->ops->dma_map(s->dev, iova, size, local, perm, error);
        if (ret < 0)
            iova_map_remove(s->iotlb, iova, size);
    }
    if (s->relay) {
        relay_remap_locked(s->relay);
        relay_unlock(s->relay);
    }
    if (ret < 0) {
        unmap_client(s, local, size);
        return vdpad_prefix_error(error, "%s: IOTLB update iova 0x%" PRIx64 ": ", DEV_NAME(s),
                                  iova);
    }
    struct mem_record rec = { .iova = iova, .size = size, .local = local };
    g_array_insert_val(s->maps, at, rec);
    return 0;
}

int session_iotlb_invalidate(struct session *s, uint64_t iova, uint64_t size, GError **error)
{
    if (size == 0)
        return 0; /* an empty range: nothing to remove (the kernel accepts it too) */
    if (iova > UINT64_MAX - size + 1)
        return vdpad_fail(error, EINVAL, "%s: IOTLB invalidate iova 0x%" PRIx64 " size 0x%" PRIx64
                          " wraps", DEV_NAME(s), iova, size);
    /* the whole pages the range touches (every entry is made of whole pages) */
    uint64_t last = (iova + size - 1) | (page_size() - 1);
    iova &= ~(page_size() - 1);
    guint i = find_first_record_ending_after(s, iova);
    int ret = 0;

    /* Only a cut strictly inside one record adds an entry; refuse it on a full table
     * before changing anything. */
    if (i < s->maps->len && mappings_held(s) >= SESSION_MAX_IOTLB_ENTRIES) {
        const struct mem_record *r = &g_array_index(s->maps, struct mem_record, i);
        if (r->iova < iova && last < r->iova + r->size - 1)
            return vdpad_fail(error, ENOSPC, "%s: IOTLB invalidate iova 0x%" PRIx64 " size 0x%"
                              PRIx64 " would split an entry of a table at its maximum of %u "
                              "entries", DEV_NAME(s), iova, size, SESSION_MAX_IOTLB_ENTRIES);
    }
    /* Cut [iova, last] out of every record it touches: the device forgets the range
     * first, then the memory goes. Parts outside the range stay mapped. The relay does
     * not touch guest memory meanwhile. */
    if (s->relay)
        relay_lock(s->relay);
    while (i < s->maps->len && ret == 0) {
        struct mem_record r = g_array_index(s->maps, struct mem_record, i);
        if (r.iova > last)
            break;
        uint64_t cut_lo = MAX(r.iova, iova);
        uint64_t cut_hi = MIN(r.iova + r.size - 1, last);
        uint64_t cut_len = cut_hi - cut_lo + 1;
        if (r.local) {
            ret = s->dev->ops->dma_unmap(s->dev, cut_lo, cut_len, error);
            if (ret < 0) {
                vdpad_prefix_error(error, "%s: IOTLB invalidate iova 0x%" PRIx64 ": ",
                                   DEV_NAME(s), cut_lo);
                break;
            }
            iova_map_remove(s->iotlb, cut_lo, cut_len);
            struct mem_record gone = { cut_lo, cut_len, (uint8_t *)r.local + (cut_lo - r.iova) };
            if (s->in_batch && s->dev->ops->dma_batch_begin)
                g_array_append_val(s->unmap_at_batch_end, gone); /* still the device's */
            else
                unmap_client(s, gone.local, gone.size);
        }

        g_array_remove_index(s->maps, i);
        if (cut_lo > r.iova) {
            struct mem_record head = { r.iova, cut_lo - r.iova, r.local };
            g_array_insert_val(s->maps, i, head);
            i++;
        }
        if (cut_hi < r.iova + r.size - 1) {
            struct mem_record tail = { cut_hi + 1, r.iova + r.size - 1 - cut_hi,
                                       r.local ? (uint8_t *)r.local + (cut_hi + 1 - r.iova)
                                               : NULL };
            g_array_insert_val(s->maps, i, tail);
            i++;
        }
    }
    if (s->relay) {
        relay_remap_locked(s->relay);
        relay_unlock(s->relay);
    }
    return ret;
}

int session_iotlb_batch_begin(struct session *s, GError **error)
{
    if (s->in_batch)
        return 0;
    if (s->dev->ops->dma_batch_begin) {
        int ret = s->dev->ops->dma_batch_begin(s->dev, error);
        if (ret < 0)
            return ret;
    }
    s->in_batch = true;
    return 0;
}

int session_iotlb_batch_end(struct session *s, GError **error)
{
    if (!s->in_batch)
        return 0;
    s->in_batch = false;
    if (s->dev->ops->dma_batch_end) {
        int ret = s->dev->ops->dma_batch_end(s->dev, error);
        if (ret < 0)
            return ret; /* the device may still use that memory: keep it until reset */
    }
    release_deferred_unmaps(s);
    return 0;
}

uint64_t session_mapped_bytes(const struct session *s)
{
    uint64_t total = 0;

    for (guint i = 0; i < s->maps->len; i++) {
        const struct mem_record *r = &g_array_index(s->maps, struct mem_record, i);
        if (r->local)
            total += r->size;
    }
    return total;
}
