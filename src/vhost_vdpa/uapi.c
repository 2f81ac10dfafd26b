#include "config.h"

#include <inttypes.h>
#include <linux/vhost.h>
#include <linux/vhost_types.h>
#include <string.h>
#include <sys/ioctl.h>

#include "util/compat.h"
#include "util/error.h"
#include "util/fd.h"
#include "vhost_vdpa/uapi.h"

/* Everything a handler needs about one request. */
struct request {
    struct session *s;
    const struct uapi_caller *caller;
    const struct uapi_peer *peer;
    unsigned cmd;
    const void *in;
    void *out;
    GError **error;
};

#define DEV(r) (session_device((r)->s)->name)

/* Copies the request's input argument (checked to be sizeof(T) by the table). */
#define IN(r, type) (*(const type *)(r)->in)
#define OUT(r, type) ((type *)(r)->out)

/* --- helpers */

/* Takes the caller's eventfd number fd as our own fd, in *out (-1 for VHOST_FILE_UNBIND). */
static int take_eventfd(struct request *r, const char *what, int fd, int *out)
{
    *out = -1;
    if (fd == VHOST_FILE_UNBIND)
        return 0;
    if (fd < 0)
        return vdpad_fail(r->error, EBADF, "%s: %s: fd %d is not a file descriptor", DEV(r),
                          what, fd);
    g_auto(vdpad_fd) ours = r->peer->ops->take_fd(r->peer->opaque, r->caller->tgid, fd);
    if (ours < 0)
        return vdpad_fail(r->error, -ours, "%s: %s: cannot take fd %d of pid %d: %s", DEV(r),
                          what, fd, (int)r->caller->tgid, g_strerror(-ours));
    if (!vdpad_fd_is_eventfd(ours))
        return vdpad_fail(r->error, EINVAL, "%s: %s: fd %d of pid %d is not an eventfd", DEV(r),
                          what, fd, (int)r->caller->tgid);
    *out = vdpad_steal_fd(&ours);
    return 0;
}

/* --- handlers, one per ioctl; each returns 0 or -errno */

static int do_get_features(struct request *r)
{
    *OUT(r, uint64_t) = session_get_features(r->s);
    return 0;
}

static int do_set_features(struct request *r)
{
    return session_set_features(r->s, IN(r, uint64_t), r->error);
}

static int do_get_backend_features(struct request *r)
{
    *OUT(r, uint64_t) = session_get_backend_features(r->s);
    return 0;
}

static int do_set_backend_features(struct request *r)
{
    return session_set_backend_features(r->s, IN(r, uint64_t), r->error);
}

static int do_set_owner(struct request *r)
{
    return session_set_owner(r->s, r->caller->tgid, r->error);
}

static int do_set_log_base(struct request *r)
{
    return session_set_log_base(r->s, IN(r, uint64_t), r->error);
}

static int do_set_log_fd(struct request *r)
{
    return vdpad_fail(r->error, ENOTTY, "%s: SET_LOG_FD: vhost-vdpa has no log fd", DEV(r));
}

static int do_set_mem_table(struct request *r)
{
    return vdpad_fail(r->error, EOPNOTSUPP, "%s: SET_MEM_TABLE: vhost-vdpa takes guest memory "
                      "through IOTLB messages", DEV(r));
}

static int do_get_device_id(struct request *r)
{
    struct vdpa_device *dev = session_device(r->s);

    *OUT(r, uint32_t) = dev->ops->get_device_id(dev);
    return 0;
}

static int do_get_status(struct request *r)
{
    *OUT(r, uint8_t) = session_get_status(r->s);
    return 0;
}

static int do_set_status(struct request *r)
{
    return session_set_status(r->s, IN(r, uint8_t), r->error);
}

/* GET_CONFIG/SET_CONFIG: the transport moves only the 8-byte header; the payload sits
 * right after it in the caller's memory. */
#define CONFIG_HDR_SIZE offsetof(struct vhost_vdpa_config, buf)

static int do_get_config(struct request *r)
{
    struct vhost_vdpa_config hdr;
    int ret = r->peer->ops->read_mem(r->peer->opaque, r->caller->tid, r->caller->arg, &hdr,
                                     CONFIG_HDR_SIZE);
    if (ret < 0)
        return vdpad_fail(r->error, EFAULT, "%s: GET_CONFIG: cannot read the header at 0x%" PRIx64
                          " in thread %d: %s", DEV(r), r->caller->arg, (int)r->caller->tid,
                          g_strerror(-ret));
    g_autofree uint8_t *buf = NULL;
    size_t size = session_device(r->s)->ops->get_config_size(session_device(r->s));
    if (hdr.len <= size)
        buf = g_malloc0(hdr.len ? hdr.len : 1);
    ret = session_get_config(r->s, hdr.off, hdr.len, buf, r->error);
    if (ret < 0)
        return ret;
    ret = r->peer->ops->write_mem(r->peer->opaque, r->caller->tid,
                                  r->caller->arg + CONFIG_HDR_SIZE, buf, hdr.len);
    if (ret < 0)
        return vdpad_fail(r->error, EFAULT, "%s: GET_CONFIG: cannot write %u bytes at 0x%" PRIx64
                          " in thread %d: %s", DEV(r), hdr.len, r->caller->arg + CONFIG_HDR_SIZE,
                          (int)r->caller->tid, g_strerror(-ret));
    memcpy(r->out, &hdr, CONFIG_HDR_SIZE); /* copied back unchanged */
    return 0;
}

static int do_set_config(struct request *r)
{
    struct vhost_vdpa_config hdr;

    memcpy(&hdr, r->in, CONFIG_HDR_SIZE);
    size_t size = session_device(r->s)->ops->get_config_size(session_device(r->s));
    if (hdr.len == 0 || hdr.off > size || hdr.len > size - hdr.off)
        return session_set_config(r->s, hdr.off, hdr.len, NULL, r->error); /* its error */
    g_autofree uint8_t *buf = g_malloc(hdr.len);
    int ret = r->peer->ops->read_mem(r->peer->opaque, r->caller->tid,
                                     r->caller->arg + CONFIG_HDR_SIZE, buf, hdr.len);
    if (ret < 0)
        return vdpad_fail(r->error, EFAULT, "%s: SET_CONFIG: cannot read %u bytes at 0x%" PRIx64
                          " in thread %d: %s", DEV(r), hdr.len, r->caller->arg + CONFIG_HDR_SIZE,
                          (int)r->caller->tid, g_strerror(-ret));
    return session_set_config(r->s, hdr.off, hdr.len, buf, r->error);
}

static int do_get_config_size(struct request *r)
{
    struct vdpa_device *dev = session_device(r->s);

    *OUT(r, uint32_t) = (uint32_t)dev->ops->get_config_size(dev);
    return 0;
}

static int do_set_config_call(struct request *r)
{
    int fd;
    int ret = take_eventfd(r, "SET_CONFIG_CALL", IN(r, int), &fd);

    if (ret < 0)
        return ret;
    return session_set_config_call(r->s, fd, r->error);
}

static int do_get_vring_num(struct request *r)
{
    struct vdpa_device *dev = session_device(r->s);

    *OUT(r, uint16_t) = dev->ops->get_vq_num_max(dev);
    return 0;
}

static int do_get_iova_range(struct request *r)
{
    struct vdpa_iova_range range = session_get_iova_range(r->s);

    *OUT(r, struct vhost_vdpa_iova_range) =
        (struct vhost_vdpa_iova_range){ .first = range.first, .last = range.last };
    return 0;
}

static int do_get_vqs_count(struct request *r)
{
    *OUT(r, uint32_t) = session_vq_count(r->s);
    return 0;
}

static int do_get_one(struct request *r)
{
    /* GET_GROUP_NUM, GET_AS_NUM: one virtqueue group, one address space */
    *OUT(r, uint32_t) = 1;
    return 0;
}

static int do_suspend(struct request *r)
{
    return session_suspend(r->s, r->error);
}

static int do_resume(struct request *r)
{
    return session_resume(r->s, r->error);
}

/* --- per-queue ioctls: the index comes first in every argument */

static int check_index(struct request *r, unsigned idx)
{
    if (idx >= session_vq_count(r->s))
        return vdpad_fail(r->error, ENOBUFS, "%s: %s: queue %u, the device has %u",
                          DEV(r), uapi_ioctl_name(r->cmd), idx, session_vq_count(r->s));
    return 0;
}

static int do_set_vring_num(struct request *r)
{
    const struct vhost_vring_state *st = r->in;
    int ret = check_index(r, st->index);

    return ret < 0 ? ret : session_set_vring_num(r->s, st->index, st->num, r->error);
}

static int do_set_vring_base(struct request *r)
{
    const struct vhost_vring_state *st = r->in;
    int ret = check_index(r, st->index);

    return ret < 0 ? ret : session_set_vring_base(r->s, st->index, st->num, r->error);
}

static int do_get_vring_base(struct request *r)
{
    const struct vhost_vring_state *st = r->in;
    struct vhost_vring_state *out = r->out;
    uint16_t base;
    int ret = check_index(r, st->index);

    if (ret < 0 || (ret = session_get_vring_base(r->s, st->index, &base, r->error)) < 0)
        return ret;
    out->index = st->index;
    out->num = base;
    return 0;
}

static int do_set_vring_addr(struct request *r)
{
    const struct vhost_vring_addr *a = r->in;
    int ret = check_index(r, a->index);

    if (ret < 0)
        return ret;
    if (a->flags & ~(1u << VHOST_VRING_F_LOG))
        return vdpad_fail(r->error, EOPNOTSUPP, "%s: queue %u: SET_VRING_ADDR flags 0x%x",
                          DEV(r), a->index, a->flags);
    return session_set_vring_addr(r->s, a->index, a->desc_user_addr, a->avail_user_addr,
                                  a->used_user_addr, r->error);
}

static int do_set_vring_kick(struct request *r)
{
    const struct vhost_vring_file *f = r->in;
    int fd;
    int ret = check_index(r, f->index);

    if (ret < 0 || (ret = take_eventfd(r, "SET_VRING_KICK", f->fd, &fd)) < 0)
        return ret;
    return session_set_vring_kick(r->s, f->index, fd, r->error);
}

static int do_set_vring_call(struct request *r)
{
    const struct vhost_vring_file *f = r->in;
    int fd;
    int ret = check_index(r, f->index);

    if (ret < 0 || (ret = take_eventfd(r, "SET_VRING_CALL", f->fd, &fd)) < 0)
        return ret;
    return session_set_vring_call(r->s, f->index, fd, r->error);
}

static int do_set_vring_err(struct request *r)
{
    /* vDPA devices report no ring errors through this eventfd; accept and drop it. */
    const struct vhost_vring_file *f = r->in;
    g_auto(vdpad_fd) fd = -1;
    int ret = check_index(r, f->index);

    return ret < 0 ? ret : take_eventfd(r, "SET_VRING_ERR", f->fd, &fd);
}

static int do_set_vring_busyloop(struct request *r)
{
    const struct vhost_vring_state *st = r->in;
    int ret = check_index(r, st->index);

    return ret < 0 ? ret : session_set_vring_busyloop(r->s, st->index, st->num);
}

static int do_get_vring_busyloop(struct request *r)
{
    /* _IOW in the uapi (a quirk): the transport moves nothing back, so the answer goes
     * into the caller's argument directly, where the kernel's copy_to_user puts it */
    const struct vhost_vring_state *st = r->in;
    int ret = check_index(r, st->index);

    if (ret < 0)
        return ret;
    struct vhost_vring_state answer = {
        .index = st->index, .num = session_get_vring_busyloop(r->s, st->index),
    };
    ret = r->peer->ops->write_mem(r->peer->opaque, r->caller->tid, r->caller->arg, &answer,
                                  sizeof(answer));
    if (ret < 0)
        return vdpad_fail(r->error, EFAULT, "%s: GET_VRING_BUSYLOOP_TIMEOUT: cannot write the "
                          "answer at 0x%" PRIx64 " in thread %d: %s", DEV(r), r->caller->arg,
                          (int)r->caller->tid, g_strerror(-ret));
    return 0;
}

static int do_set_vring_enable(struct request *r)
{
    const struct vhost_vring_state *st = r->in;
    int ret = check_index(r, st->index);

    return ret < 0 ? ret : session_set_vring_enable(r->s, st->index, st->num != 0, r->error);
}

static int do_get_vring_group(struct request *r)
{
    const struct vhost_vring_state *st = r->in;
    struct vhost_vring_state *out = r->out;
    int ret = check_index(r, st->index);

    if (ret < 0)
        return ret;
    out->index = st->index;
    out->num = 0;
    return 0;
}

static int do_set_group_asid(struct request *r)
{
    const struct vhost_vring_state *st = r->in;
    int ret = check_index(r, st->index);

    if (ret < 0)
        return ret;
    if (st->index != 0)
        return vdpad_fail(r->error, EINVAL, "%s: SET_GROUP_ASID: group %u, the device has 1",
                          DEV(r), st->index);
    if (st->num != 0)
        return vdpad_fail(r->error, EINVAL, "%s: SET_GROUP_ASID: address space %u, the device "
                          "has 1", DEV(r), st->num);
    return 0;
}

/* --- the table */

/* Which requests need the owner, as in the kernel: the per-queue ioctls and SET_MEM_TABLE go
 * through vhost_dev_ioctl's owner check; device-level queries and settings do not. After
 * SET_OWNER vdpad refuses every request from another process (see uapi.h). */
enum { ANYONE = 0, OWNER = 1 };

struct ioctl_entry {
    unsigned cmd;
    const char *name;
    int (*handler)(struct request *r);
    int who;
};

#define ENTRY(c, h, w) { c, #c, h, w }
static const struct ioctl_entry ioctl_table[] = {
    ENTRY(VHOST_GET_FEATURES, do_get_features, ANYONE),
    ENTRY(VHOST_SET_FEATURES, do_set_features, ANYONE),
    ENTRY(VHOST_GET_BACKEND_FEATURES, do_get_backend_features, ANYONE),
    ENTRY(VHOST_SET_BACKEND_FEATURES, do_set_backend_features, ANYONE),
    ENTRY(VHOST_SET_OWNER, do_set_owner, ANYONE),
    ENTRY(VHOST_SET_LOG_BASE, do_set_log_base, OWNER),
    ENTRY(VHOST_SET_LOG_FD, do_set_log_fd, ANYONE),
    ENTRY(VHOST_SET_MEM_TABLE, do_set_mem_table, OWNER),
    ENTRY(VHOST_SET_VRING_NUM, do_set_vring_num, OWNER),
    ENTRY(VHOST_SET_VRING_ADDR, do_set_vring_addr, OWNER),
    ENTRY(VHOST_SET_VRING_BASE, do_set_vring_base, OWNER),
    ENTRY(VHOST_GET_VRING_BASE, do_get_vring_base, OWNER),
    ENTRY(VHOST_SET_VRING_KICK, do_set_vring_kick, OWNER),
    ENTRY(VHOST_SET_VRING_CALL, do_set_vring_call, OWNER),
    ENTRY(VHOST_SET_VRING_ERR, do_set_vring_err, OWNER),
    ENTRY(VHOST_SET_VRING_BUSYLOOP_TIMEOUT, do_set_vring_busyloop, OWNER),
    ENTRY(VHOST_GET_VRING_BUSYLOOP_TIMEOUT, do_get_vring_busyloop, OWNER),
    ENTRY(VHOST_VDPA_GET_DEVICE_ID, do_get_device_id, ANYONE),
    ENTRY(VHOST_VDPA_GET_STATUS, do_get_status, ANYONE),
    ENTRY(VHOST_VDPA_SET_STATUS, do_set_status, ANYONE),
    ENTRY(VHOST_VDPA_GET_CONFIG, do_get_config, ANYONE),
    ENTRY(VHOST_VDPA_SET_CONFIG, do_set_config, ANYONE),
    ENTRY(VHOST_VDPA_SET_VRING_ENABLE, do_set_vring_enable, OWNER),
    ENTRY(VHOST_VDPA_GET_VRING_NUM, do_get_vring_num, ANYONE),
    ENTRY(VHOST_VDPA_SET_CONFIG_CALL, do_set_config_call, ANYONE),
    ENTRY(VHOST_VDPA_GET_IOVA_RANGE, do_get_iova_range, ANYONE),
    ENTRY(VHOST_VDPA_GET_CONFIG_SIZE, do_get_config_size, ANYONE),
    ENTRY(VHOST_VDPA_GET_VQS_COUNT, do_get_vqs_count, ANYONE),
    ENTRY(VHOST_VDPA_GET_GROUP_NUM, do_get_one, ANYONE),
    ENTRY(VHOST_VDPA_GET_AS_NUM, do_get_one, ANYONE),
    ENTRY(VHOST_VDPA_GET_VRING_GROUP, do_get_vring_group, OWNER),
    ENTRY(VHOST_VDPA_SET_GROUP_ASID, do_set_group_asid, OWNER),
    ENTRY(VHOST_VDPA_SUSPEND, do_suspend, ANYONE),
    ENTRY(VHOST_VDPA_RESUME, do_resume, ANYONE),
};
#undef ENTRY

static const struct ioctl_entry *find_ioctl(unsigned cmd)
{
    for (size_t i = 0; i < G_N_ELEMENTS(ioctl_table); i++)
        if (ioctl_table[i].cmd == cmd)
            return &ioctl_table[i];
    return NULL;
}

const char *uapi_ioctl_name(unsigned cmd)
{
    const struct ioctl_entry *e = find_ioctl(cmd);

    return e ? e->name + strlen("VHOST_") : NULL;
}

/* The owner rule: after SET_OWNER only the owner's process; before it, only requests the
 * kernel serves without an owner. */
static int check_caller(struct session *s, const struct uapi_caller *caller, const char *what,
                        int who, GError **error)
{
    pid_t owner = session_owner(s);

    if (owner && caller->tgid != owner)
        return vdpad_fail(error, EPERM, "%s: %s from pid %d refused: the node is owned by pid %d",
                          session_device(s)->name, what, (int)caller->tgid, (int)owner);
    if (!owner && who == OWNER)
        return vdpad_fail(error, EPERM, "%s: %s from pid %d before SET_OWNER",
                          session_device(s)->name, what, (int)caller->tgid);
    return 0;
}

int uapi_ioctl(struct session *s, const struct uapi_caller *caller, const struct uapi_peer *peer,
               unsigned cmd, const void *in, size_t in_len, void *out, size_t out_len,
               GError **error)
{
    const struct ioctl_entry *e = find_ioctl(cmd);

    if (!e) {
        /* as the kernel: the owner check comes first, then "no such ioctl" */
        int ret = check_caller(s, caller, "unknown ioctl", OWNER, error);
        if (ret < 0)
            return ret;
        return vdpad_fail(error, ENOTTY, "%s: unknown ioctl 0x%08x", session_device(s)->name, cmd);
    }
    int ret = check_caller(s, caller, e->name, e->who, error);
    if (ret < 0)
        return ret;
    /* The transport moved exactly _IOC_SIZE bytes in each direction the command has. */
    size_t size = _IOC_SIZE(cmd);
    bool wants_in = _IOC_DIR(cmd) & _IOC_WRITE, wants_out = _IOC_DIR(cmd) & _IOC_READ;
    if ((wants_in && in_len < size) || (wants_out && out_len < size))
        return vdpad_fail(error, EFAULT, "%s: %s: argument of %zu/%zu bytes, expected %zu",
                          session_device(s)->name, e->name, in_len, out_len, size);
    if (wants_out)
        memset(out, 0, size);

    /* handlers see only the directions their command has (the transport passes no out
     * buffer for a command without _IOC_READ) */
    struct request r = {
        .s = s, .caller = caller, .peer = peer, .cmd = cmd, .in = wants_in ? in : NULL,
        .out = wants_out ? out : NULL, .error = error,
    };
    return e->handler(&r);
}

/* --- IOTLB messages */

static int handle_iotlb(struct session *s, const struct uapi_caller *caller,
                        const struct vhost_iotlb_msg *m, GError **error)
{
    switch (m->type) {
    case VHOST_IOTLB_UPDATE:
        return session_iotlb_update(s, m->iova, m->size, m->uaddr, m->perm, caller->tgid, error);
    case VHOST_IOTLB_INVALIDATE:
        return session_iotlb_invalidate(s, m->iova, m->size, error);
    case VHOST_IOTLB_BATCH_BEGIN:
        return session_iotlb_batch_begin(s, error);
    case VHOST_IOTLB_BATCH_END:
        return session_iotlb_batch_end(s, error);
    default:
        return vdpad_fail(error, EINVAL, "%s: IOTLB message type %u is not one a client sends",
                          session_device(s)->name, m->type);
    }
}

ssize_t uapi_write(struct session *s, const struct uapi_caller *caller, const void *buf,
                   size_t len, GError **error)
{
    const char *name = session_device(s)->name;
    uint32_t type;
    size_t msg_off, full;

    if (len < sizeof(type))
        return vdpad_fail(error, EINVAL, "%s: write of %zu bytes is no IOTLB message", name, len);
    memcpy(&type, buf, sizeof(type));
    switch (type) {
    case VHOST_IOTLB_MSG:
        msg_off = offsetof(struct vhost_msg, iotlb);
        full = sizeof(struct vhost_msg);
        break;
    case VHOST_IOTLB_MSG_V2:
        /* Without the ASID backend feature the asid field is ignored, as in the kernel. */
        msg_off = offsetof(struct vhost_msg_v2, iotlb);
        full = sizeof(struct vhost_msg_v2);
        break;
    default:
        return vdpad_fail(error, EINVAL, "%s: write with message type %u (expected %u or %u)",
                          name, type, VHOST_IOTLB_MSG, VHOST_IOTLB_MSG_V2);
    }
    struct vhost_iotlb_msg m;
    if (len < msg_off + sizeof(m))
        return vdpad_fail(error, EINVAL, "%s: IOTLB message of %zu bytes, need %zu", name, len,
                          msg_off + sizeof(m));
    memcpy(&m, (const uint8_t *)buf + msg_off, sizeof(m));
    /* as vhost_chr_write_iter: only an empty update is malformed */
    if (m.type == VHOST_IOTLB_UPDATE && m.size == 0)
        return vdpad_fail(error, EINVAL, "%s: IOTLB update of size 0 at iova 0x%" PRIx64, name,
                          (uint64_t)m.iova);

    int ret = check_caller(s, caller, "IOTLB message", OWNER, error);
    if (ret == 0)
        ret = handle_iotlb(s, caller, &m, error);
    if (ret < 0)
        return -EFAULT; /* the kernel reports every refused message as EFAULT */
    return (ssize_t)MIN(len, full);
}
