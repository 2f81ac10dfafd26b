/* Unit tests: the uAPI dispatcher (src/vhost_vdpa/uapi.c) — every ioctl of its table with
 * good and bad arguments, ownership, and IOTLB write parsing — through uapi_ioctl and
 * uapi_write as the FUSE front calls them (exactly _IOC_SIZE bytes in each direction the
 * command has), with a fake peer: caller memory is a local buffer at PEER_BASE, and the
 * caller's fds are a small table (an eventfd, a pipe, nothing else). The errno values are
 * the kernel's (notes/uapi-research.md, "Implications" 6 and 7). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/vhost.h>
#include <linux/vhost_types.h>
#include <linux/virtio_config.h>
#include <linux/virtio_net.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <cmocka.h>

#include "backend/sim/sim.h"
#include "client_mem.h"
#include "core/session.h"
#include "shadow_vq/relay.h"
#include "util/compat.h"
#include "vhost_vdpa/uapi.h"

#define OWNER 1000
#define OTHER 2000
#define PEER_BASE 0x7f0000001000ull
#define PEER_SIZE 4096u
#define FD_EVENTFD 10 /* the caller's fd numbers the fake peer knows */
#define FD_PIPE 11
#define MSG_SIZE 72

static const uint8_t dev_mac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };

/* ------------------------------------------------------------------ the fake peer */

struct fake_peer {
    uint8_t mem[PEER_SIZE]; /* the caller's memory at PEER_BASE */
    int eventfd, pipe_rd, pipe_wr;
    unsigned fds_taken;
};

static uint8_t *peer_at(struct fake_peer *p, uint64_t addr, size_t len)
{
    if (addr < PEER_BASE || addr - PEER_BASE > PEER_SIZE || len > PEER_SIZE - (addr - PEER_BASE))
        return NULL;
    return p->mem + (addr - PEER_BASE);
}

static int peer_read(void *opaque, pid_t tid, uint64_t addr, void *buf, size_t len)
{
    uint8_t *at = peer_at(opaque, addr, len);

    if (!at)
        return -EFAULT;
    memcpy(buf, at, len);
    return 0;
}

static int peer_write(void *opaque, pid_t tid, uint64_t addr, const void *buf, size_t len)
{
    uint8_t *at = peer_at(opaque, addr, len);

    if (!at)
        return -EFAULT;
    memcpy(at, buf, len);
    return 0;
}

static int peer_take_fd(void *opaque, pid_t tgid, int fd)
{
    struct fake_peer *p = opaque;
    int ours = fd == FD_EVENTFD ? dup(p->eventfd) : fd == FD_PIPE ? dup(p->pipe_rd) : -1;

    if (ours < 0)
        return -EBADF;
    p->fds_taken++;
    return ours;
}

static const struct uapi_peer_ops fake_peer_ops = {
    .read_mem = peer_read, .write_mem = peer_write, .take_fd = peer_take_fd,
};

/* ------------------------------------------------------------------ fixture */

struct fixture {
    unsigned fds_at_start;
    struct vdpa_device *dev;
    struct client_mem *mem;
    struct session *s;
    struct fake_peer peer;
    struct uapi_peer uapi_peer;
    GError *err; /* of the last call */
};

static int setup(void **state)
{
    struct fixture *f = g_new0(struct fixture, 1);
    g_autoptr(GError) err = NULL;
    struct sim_net_config cfg = { .name = "u0", .queue_pairs = 1 };
    int p[2];

    f->fds_at_start = count_open_fds();
    memcpy(cfg.mac, dev_mac, 6);
    f->dev = sim_net_new(&cfg, &err);
    assert_non_null(f->dev);
    f->mem = client_mem_new(1 << 20, 0);
    assert_non_null(f->mem);
    f->s = session_new(f->dev, OWNER, &client_mem_ops, f->mem, &err);
    assert_non_null(f->s);
    f->peer.eventfd = eventfd(0, EFD_CLOEXEC);
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    f->peer.pipe_rd = p[0];
    f->peer.pipe_wr = p[1];
    f->uapi_peer = (struct uapi_peer){ &fake_peer_ops, &f->peer };
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    session_free(f->s);
    assert_int_equal(f->mem->live_bytes, 0);
    client_mem_free(f->mem);
    vdpa_device_free(f->dev);
    close(f->peer.eventfd);
    close(f->peer.pipe_rd);
    close(f->peer.pipe_wr);
    g_clear_error(&f->err);
    assert_int_equal(count_open_fds(), f->fds_at_start);
    g_free(f);
    return 0;
}

/* An ioctl as the FUSE front makes it: arg is the argument's bytes (_IOC_SIZE of them),
 * copied in for _IOC_WRITE and back for _IOC_READ; arg_addr is its address in the caller. */
static int ioctl_at(struct fixture *f, pid_t tgid, unsigned cmd, void *arg, uint64_t arg_addr)
{
    size_t size = _IOC_SIZE(cmd);
    bool w = _IOC_DIR(cmd) & _IOC_WRITE, r = _IOC_DIR(cmd) & _IOC_READ;
    g_autofree uint8_t *out = r ? g_malloc0(size) : NULL;
    struct uapi_caller caller = { .tid = tgid, .tgid = tgid, .arg = arg_addr };

    g_clear_error(&f->err);
    int ret = uapi_ioctl(f->s, &caller, &f->uapi_peer, cmd, w ? arg : NULL, w ? size : 0, out,
                         r ? size : 0, &f->err);
    if (ret >= 0 && r)
        memcpy(arg, out, size);
    if (ret < 0) {
        /* a refusal always says why, with the same errno */
        assert_non_null(f->err);
        assert_int_equal(f->err->code, -ret);
    }
    return ret;
}

static int do_ioctl(struct fixture *f, pid_t tgid, unsigned cmd, void *arg)
{
    return ioctl_at(f, tgid, cmd, arg, PEER_BASE);
}

#define EXPECT(f, want, call)                                                               \
    do {                                                                                    \
        int got_ = (call);                                                                  \
        if (got_ != (want))                                                                 \
            fail_msg("%s: %d (%s), expected %d", #call, got_,                               \
                     (f)->err ? (f)->err->message : "no error", (want));                    \
    } while (0)

static ssize_t do_write(struct fixture *f, pid_t tgid, const void *buf, size_t len)
{
    struct uapi_caller caller = { .tid = tgid, .tgid = tgid };

    g_clear_error(&f->err);
    return uapi_write(f->s, &caller, buf, len, &f->err);
}

static ssize_t iotlb(struct fixture *f, pid_t tgid, uint32_t version, uint8_t type,
                     uint64_t iova, uint64_t size, uint64_t uaddr, uint8_t perm)
{
    uint8_t buf[MSG_SIZE] = { 0 };
    struct vhost_iotlb_msg m = {
        .iova = iova, .size = size, .uaddr = uaddr, .perm = perm, .type = type,
    };

    memcpy(buf, &version, 4);
    memcpy(buf + 8, &m, sizeof(m));
    return do_write(f, tgid, buf, sizeof(buf));
}

static void own(struct fixture *f)
{
    EXPECT(f, 0, do_ioctl(f, OWNER, VHOST_SET_OWNER, NULL));
}

/* ------------------------------------------------------------------ the table */

struct ioctl_case {
    unsigned cmd;
    bool owner_only; /* the kernel checks the owner (per-queue ioctls, SET_MEM_TABLE) */
};

static const struct ioctl_case table[] = {
    { VHOST_GET_FEATURES, false },           { VHOST_SET_FEATURES, false },
    { VHOST_GET_BACKEND_FEATURES, false },   { VHOST_SET_BACKEND_FEATURES, false },
    { VHOST_SET_LOG_BASE, true },            { VHOST_SET_LOG_FD, false },
    { VHOST_SET_MEM_TABLE, true },           { VHOST_SET_VRING_NUM, true },
    { VHOST_SET_VRING_ADDR, true },          { VHOST_SET_VRING_BASE, true },
    { VHOST_GET_VRING_BASE, true },          { VHOST_SET_VRING_KICK, true },
    { VHOST_SET_VRING_CALL, true },          { VHOST_SET_VRING_ERR, true },
    { VHOST_SET_VRING_BUSYLOOP_TIMEOUT, true }, { VHOST_GET_VRING_BUSYLOOP_TIMEOUT, true },
    { VHOST_VDPA_GET_DEVICE_ID, false },     { VHOST_VDPA_GET_STATUS, false },
    { VHOST_VDPA_SET_STATUS, false },        { VHOST_VDPA_GET_CONFIG, false },
    { VHOST_VDPA_SET_CONFIG, false },        { VHOST_VDPA_SET_VRING_ENABLE, true },
    { VHOST_VDPA_GET_VRING_NUM, false },     { VHOST_VDPA_SET_CONFIG_CALL, false },
    { VHOST_VDPA_GET_IOVA_RANGE, false },    { VHOST_VDPA_GET_CONFIG_SIZE, false },
    { VHOST_VDPA_GET_VQS_COUNT, false },     { VHOST_VDPA_GET_GROUP_NUM, false },
    { VHOST_VDPA_GET_AS_NUM, false },        { VHOST_VDPA_GET_VRING_GROUP, true },
    { VHOST_VDPA_SET_GROUP_ASID, true },     { VHOST_VDPA_SUSPEND, false },
    { VHOST_VDPA_RESUME, false },
};

/* A harmless, valid argument for cmd (zeroes; fd -1; a 6-byte config header). */
static void good_arg(struct fixture *f, unsigned cmd, uint8_t arg[64])
{
    struct vhost_vdpa_config hdr = { .off = 0, .len = 6 };

    memset(arg, 0, 64);
    if (cmd == VHOST_VDPA_GET_CONFIG || cmd == VHOST_VDPA_SET_CONFIG) {
        memcpy(arg, &hdr, 8);
        memcpy(f->peer.mem, &hdr, 8);
    } else if (cmd == VHOST_SET_VRING_KICK || cmd == VHOST_SET_VRING_CALL ||
               cmd == VHOST_SET_VRING_ERR) {
        struct vhost_vring_file file = { .index = 0, .fd = -1 };
        memcpy(arg, &file, sizeof(file));
    } else if (cmd == VHOST_VDPA_SET_CONFIG_CALL || cmd == VHOST_SET_LOG_FD) {
        int fd = -1;
        memcpy(arg, &fd, sizeof(fd));
    } else if (cmd == VHOST_SET_VRING_NUM) {
        struct vhost_vring_state st = { .index = 0, .num = 64 };
        memcpy(arg, &st, sizeof(st));
    }
}

static void test_before_set_owner_only_owner_ioctls_are_eperm(void **state)
{
    struct fixture *f = *state;
    uint8_t arg[64];

    for (size_t i = 0; i < G_N_ELEMENTS(table); i++) {
        good_arg(f, table[i].cmd, arg);
        int ret = do_ioctl(f, OWNER, table[i].cmd, arg);
        if (table[i].owner_only && ret != -EPERM)
            fail_msg("%s before SET_OWNER: %d, expected -EPERM", uapi_ioctl_name(table[i].cmd),
                     ret);
        if (!table[i].owner_only && ret == -EPERM)
            fail_msg("%s before SET_OWNER: EPERM (%s)", uapi_ioctl_name(table[i].cmd),
                     f->err->message);
    }
    /* unknown ioctls and IOTLB messages need the owner too */
    EXPECT(f, -EPERM, do_ioctl(f, OWNER, _IO(VHOST_VIRTIO, 0x99), arg));
    EXPECT(f, -EFAULT, iotlb(f, OWNER, VHOST_IOTLB_MSG_V2, VHOST_IOTLB_UPDATE, 0, 0x1000,
                             client_mem_uaddr(f->mem, 0), VHOST_ACCESS_RW));
    assert_int_equal(f->err->code, EPERM);
    assert_int_equal(session_mapped_bytes(f->s), 0);
    /* the queries QEMU makes before SET_OWNER answer */
    uint64_t features = 0;
    EXPECT(f, 0, do_ioctl(f, OTHER, VHOST_GET_FEATURES, &features));
    assert_int_equal(features, session_get_features(f->s));
}

static void test_after_set_owner_another_process_gets_eperm_for_everything(void **state)
{
    struct fixture *f = *state;
    uint8_t arg[64];

    own(f);
    for (size_t i = 0; i < G_N_ELEMENTS(table); i++) {
        good_arg(f, table[i].cmd, arg);
        if (do_ioctl(f, OTHER, table[i].cmd, arg) != -EPERM)
            fail_msg("%s from another process after SET_OWNER: not EPERM",
                     uapi_ioctl_name(table[i].cmd));
    }
    EXPECT(f, -EPERM, do_ioctl(f, OTHER, VHOST_SET_OWNER, NULL));
    EXPECT(f, -EPERM, do_ioctl(f, OTHER, _IO(VHOST_VIRTIO, 0x99), arg));
    EXPECT(f, -EFAULT, iotlb(f, OTHER, VHOST_IOTLB_MSG_V2, VHOST_IOTLB_UPDATE, 0, 0x1000,
                             client_mem_uaddr(f->mem, 0), VHOST_ACCESS_RW));
    assert_int_equal(f->err->code, EPERM);
    EXPECT(f, -EFAULT, iotlb(f, OTHER, VHOST_IOTLB_MSG_V2, VHOST_IOTLB_BATCH_BEGIN, 0, 0, 0, 0));
    assert_int_equal(session_owner(f->s), OWNER);
    /* the owner is served; a second SET_OWNER from it is EBUSY */
    uint8_t status = 0xff;
    EXPECT(f, 0, do_ioctl(f, OWNER, VHOST_VDPA_GET_STATUS, &status));
    assert_int_equal(status, 0);
    EXPECT(f, -EBUSY, do_ioctl(f, OWNER, VHOST_SET_OWNER, NULL));
}

static void test_unknown_ioctls_are_enotty_for_the_owner(void **state)
{
    struct fixture *f = *state;
    uint8_t arg[64] = { 0 };
    static const unsigned unknown[] = {
        0, 0xdeadbeef, _IO(VHOST_VIRTIO, 0x99), TCGETS,
        _IOW(VHOST_VIRTIO, 0x10, uint32_t),       /* SET_VRING_NUM with the wrong size */
        _IOR(VHOST_VIRTIO, 0x00, uint32_t),       /* GET_FEATURES with the wrong size */
        VHOST_SET_VRING_ENDIAN, VHOST_GET_VRING_ENDIAN, VHOST_RESET_OWNER,
        VHOST_VDPA_GET_VRING_DESC_GROUP,
    };

    own(f);
    for (size_t i = 0; i < G_N_ELEMENTS(unknown); i++) {
        if (_IOC_SIZE(unknown[i]) > sizeof(arg))
            continue;
        int ret = do_ioctl(f, OWNER, unknown[i], arg);
        if (ret != -ENOTTY)
            fail_msg("ioctl 0x%08x: %d, expected -ENOTTY", unknown[i], ret);
    }
}

static void test_short_argument_is_efault(void **state)
{
    struct fixture *f = *state;
    struct uapi_caller caller = { .tid = OWNER, .tgid = OWNER };
    uint8_t buf[64] = { 0 };
    g_autoptr(GError) err = NULL;

    own(f);
    assert_int_equal(uapi_ioctl(f->s, &caller, &f->uapi_peer, VHOST_SET_VRING_ADDR, buf, 8,
                                NULL, 0, &err), -EFAULT);
    g_clear_error(&err);
    assert_int_equal(uapi_ioctl(f->s, &caller, &f->uapi_peer, VHOST_GET_FEATURES, NULL, 0, buf,
                                4, &err), -EFAULT);
}

/* ------------------------------------------------------------------ per ioctl */

static void test_device_queries(void **state)
{
    struct fixture *f = *state;
    uint32_t u32 = 0;
    uint16_t u16 = 0;
    uint64_t u64 = 0;
    struct vhost_vdpa_iova_range range = { 1, 1 };

    own(f);
    EXPECT(f, 0, do_ioctl(f, OWNER, VHOST_VDPA_GET_DEVICE_ID, &u32));
    assert_int_equal(u32, 1);
    EXPECT(f, 0, do_ioctl(f, OWNER, VHOST_VDPA_GET_VRING_NUM, &u16));
    assert_int_equal(u16, 256);
    EXPECT(f, 0, do_ioctl(f, OWNER, VHOST_VDPA_GET_IOVA_RANGE, &range));
    assert_int_equal(range.first, 0);
    /* the device's whole range but vdpad's shadow window at its top */
    uint64_t win_first, win_last;
    relay_shadow_window(f->dev, &win_first, &win_last);
    assert_true(win_last == UINT64_MAX);
    assert_true(range.last == win_first - 1);
    EXPECT(f, 0, do_ioctl(f, OWNER, VHOST_VDPA_GET_CONFIG_SIZE, &u32));
    assert_int_equal(u32, sizeof(struct virtio_net_config));
    EXPECT(f, 0, do_ioctl(f, OWNER, VHOST_VDPA_GET_VQS_COUNT, &u32));
    assert_int_equal(u32, 3);
    EXPECT(f, 0, do_ioctl(f, OWNER, VHOST_VDPA_GET_GROUP_NUM, &u32));
    assert_int_equal(u32, 1);
    EXPECT(f, 0, do_ioctl(f, OWNER, VHOST_VDPA_GET_AS_NUM, &u32));
    assert_int_equal(u32, 1);
    EXPECT(f, 0, do_ioctl(f, OWNER, VHOST_GET_FEATURES, &u64));
    assert_true(u64 & (1ull << VIRTIO_F_ACCESS_PLATFORM));
    EXPECT(f, -EOPNOTSUPP, do_ioctl(f, OWNER, VHOST_SET_MEM_TABLE, &u64));
    u64 = 0x10000; /* QEMU's log address: stored until dirty logging starts */
    EXPECT(f, 0, do_ioctl(f, OWNER, VHOST_SET_LOG_BASE, &u64));
    EXPECT(f, -ENOTTY, do_ioctl(f, OWNER, VHOST_SET_LOG_FD, &u32));
}

static void test_features_and_backend_features(void **state)
{
    struct fixture *f = *state;
    uint64_t offered = 0, bf = 0, v;
    uint8_t status;

    own(f);
    EXPECT(f, 0, do_ioctl(f, OWNER, VHOST_GET_FEATURES, &offered));
    EXPECT(f, 0, do_ioctl(f, OWNER, VHOST_GET_BACKEND_FEATURES, &bf));
    assert_true(bf & (1ull << VHOST_BACKEND_F_IOTLB_MSG_V2));
    assert_true(bf & (1ull << VHOST_BACKEND_F_IOTLB_BATCH));
    assert_true(bf & (1ull << VHOST_BACKEND_F_SUSPEND)); /* the simulator can suspend */
    assert_false(bf & (1ull << VHOST_BACKEND_F_IOTLB_ASID));
    v = bf | (1ull << VHOST_BACKEND_F_IOTLB_ASID);
    EXPECT(f, -EOPNOTSUPP, do_ioctl(f, OWNER, VHOST_SET_BACKEND_FEATURES, &v));
    v = 1ull << 63;
    EXPECT(f, -EOPNOTSUPP, do_ioctl(f, OWNER, VHOST_SET_BACKEND_FEATURES, &v));
    EXPECT(f, 0, do_ioctl(f, OWNER, VHOST_SET_BACKEND_FEATURES, &bf));
    assert_int_equal(session_acked_backend_features(f->s), bf);

    v = 1ull << 60; /* not offered: the device refuses */
    EXPECT(f, -EINVAL, do_ioctl(f, OWNER, VHOST_SET_FEATURES, &v));
    EXPECT(f, 0, do_ioctl(f, OWNER, VHOST_SET_FEATURES, &offered));
    status = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK;
    EXPECT(f, 0, do_ioctl(f, OWNER, VHOST_VDPA_SET_STATUS, &status));
    /* VHOST_F_LOG_ALL is offered (the simulator suspends); after FEATURES_OK only that
     * bit may change (QEMU's log start and stop), anything else is EBUSY */
    assert_true(offered & (1ull << VHOST_F_LOG_ALL));
    v = offered & ~(1ull << VHOST_F_LOG_ALL);
    EXPECT(f, 0, do_ioctl(f, OWNER, VHOST_SET_FEATURES, &v));
    v = offered & ~(1ull << VIRTIO_NET_F_MAC);
    EXPECT(f, -EBUSY, do_ioctl(f, OWNER, VHOST_SET_FEATURES, &v));
    /* backend features may still be set (QEMU does at log start) */
    EXPECT(f, 0, do_ioctl(f, OWNER, VHOST_SET_BACKEND_FEATURES, &bf));
}

static void test_status(void **state)
{
    struct fixture *f = *state;
    uint8_t status;

    own(f);
    status = 0x3;
    EXPECT(f, 0, do_ioctl(f, OWNER, VHOST_VDPA_SET_STATUS, &status));
    EXPECT(f, 0, do_ioctl(f, OWNER, VHOST_VDPA_SET_STATUS, &status));
    status = 0x1;
    EXPECT(f, -EINVAL, do_ioctl(f, OWNER, VHOST_VDPA_SET_STATUS, &status));
    EXPECT(f, 0, do_ioctl(f, OWNER, VHOST_VDPA_GET_STATUS, &status));
    assert_int_equal(status, 0x3);
    status = 0;
    EXPECT(f, 0, do_ioctl(f, OWNER, VHOST_VDPA_SET_STATUS, &status));
    status = 0xff;
    EXPECT(f, 0, do_ioctl(f, OWNER, VHOST_VDPA_GET_STATUS, &status));
    assert_int_equal(status, 0);
}

static void test_get_config_moves_the_payload_through_the_peer(void **state)
{
    struct fixture *f = *state;
    struct vhost_vdpa_config hdr = { .off = 0, .len = 6 }, out = { 0 };
    uint32_t size = sizeof(struct virtio_net_config);

    own(f);
    /* _IOR: the header is read from the caller, the payload written after it */
    memcpy(f->peer.mem, &hdr, 8);
    EXPECT(f, 0, do_ioctl(f, OWNER, VHOST_VDPA_GET_CONFIG, &out));
    assert_memory_equal(f->peer.mem + 8, dev_mac, 6);
    assert_int_equal(out.off, 0);
    assert_int_equal(out.len, 6);
    /* the payload at an offset: the MAC's last two bytes */
    hdr = (struct vhost_vdpa_config){ .off = 4, .len = 2 };
    memcpy(f->peer.mem + 100, &hdr, 8);
    EXPECT(f, 0, ioctl_at(f, OWNER, VHOST_VDPA_GET_CONFIG, &out, PEER_BASE + 100));
    assert_memory_equal(f->peer.mem + 108, dev_mac + 4, 2);

    static const struct vhost_vdpa_config bad[] = {
        { 0, 0 }, { 0, 64 }, { 30, 1 }, { 1, UINT32_MAX }, { UINT32_MAX, 1 },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        memcpy(f->peer.mem, &bad[i], 8);
        EXPECT(f, -EINVAL, do_ioctl(f, OWNER, VHOST_VDPA_GET_CONFIG, &out));
    }
    hdr = (struct vhost_vdpa_config){ .off = 0, .len = size };
    memcpy(f->peer.mem, &hdr, 8);
    EXPECT(f, 0, do_ioctl(f, OWNER, VHOST_VDPA_GET_CONFIG, &out));
    /* the header cannot be read; the payload cannot be written */
    EXPECT(f, -EFAULT, ioctl_at(f, OWNER, VHOST_VDPA_GET_CONFIG, &out, PEER_BASE - 8));
    memcpy(f->peer.mem + PEER_SIZE - 10, &hdr, 8);
    EXPECT(f, -EFAULT, ioctl_at(f, OWNER, VHOST_VDPA_GET_CONFIG, &out,
                                PEER_BASE + PEER_SIZE - 10));
}

static void test_set_config_reads_the_payload_through_the_peer(void **state)
{
    struct fixture *f = *state;
    struct vhost_vdpa_config hdr = { .off = 0, .len = 6 };

    own(f);
    memcpy(f->peer.mem + 8, "\x02\x00\x00\x00\x00\x07", 6);
    EXPECT(f, 0, do_ioctl(f, OWNER, VHOST_VDPA_SET_CONFIG, &hdr));
    hdr.len = 0;
    EXPECT(f, -EINVAL, do_ioctl(f, OWNER, VHOST_VDPA_SET_CONFIG, &hdr));
    hdr = (struct vhost_vdpa_config){ .off = 20, .len = 100 };
    EXPECT(f, -EINVAL, do_ioctl(f, OWNER, VHOST_VDPA_SET_CONFIG, &hdr));
    hdr = (struct vhost_vdpa_config){ .off = 0, .len = 6 };
    EXPECT(f, -EFAULT, ioctl_at(f, OWNER, VHOST_VDPA_SET_CONFIG, &hdr, PEER_BASE + PEER_SIZE - 8));
}

static void test_vring_ioctls(void **state)
{
    struct fixture *f = *state;
    struct vhost_vring_state st;
    struct vhost_vring_addr a;

    own(f);
    st = (struct vhost_vring_state){ .index = 0, .num = 64 };
    EXPECT(f, 0, do_ioctl(f, OWNER, VHOST_SET_VRING_NUM, &st));
    static const unsigned bad_num[] = { 0, 3, 0x10000, 100 };
    for (size_t i = 0; i < G_N_ELEMENTS(bad_num); i++) {
        st.num = bad_num[i];
        EXPECT(f, -EINVAL, do_ioctl(f, OWNER, VHOST_SET_VRING_NUM, &st));
    }
    st = (struct vhost_vring_state){ .index = 3, .num = 64 };
    EXPECT(f, -ENOBUFS, do_ioctl(f, OWNER, VHOST_SET_VRING_NUM, &st));
    st.index = UINT32_MAX;
    EXPECT(f, -ENOBUFS, do_ioctl(f, OWNER, VHOST_SET_VRING_NUM, &st));

    a = (struct vhost_vring_addr){ .index = 0, .desc_user_addr = 0x1000,
                                   .avail_user_addr = 0x2000, .used_user_addr = 0x3000 };
    EXPECT(f, 0, do_ioctl(f, OWNER, VHOST_SET_VRING_ADDR, &a));
    a.flags = 1u << VHOST_VRING_F_LOG; /* the log flag is accepted */
    EXPECT(f, 0, do_ioctl(f, OWNER, VHOST_SET_VRING_ADDR, &a));
    a.flags = 2;
    EXPECT(f, -EOPNOTSUPP, do_ioctl(f, OWNER, VHOST_SET_VRING_ADDR, &a));
    a.flags = 0;
    a.avail_user_addr = 0x2001;
    EXPECT(f, -EINVAL, do_ioctl(f, OWNER, VHOST_SET_VRING_ADDR, &a));
    a.avail_user_addr = 0x2000;
    a.used_user_addr = 0x3002;
    EXPECT(f, -EINVAL, do_ioctl(f, OWNER, VHOST_SET_VRING_ADDR, &a));
    a.index = 3;
    EXPECT(f, -ENOBUFS, do_ioctl(f, OWNER, VHOST_SET_VRING_ADDR, &a));

    st = (struct vhost_vring_state){ .index = 1, .num = 0x1234 };
    EXPECT(f, 0, do_ioctl(f, OWNER, VHOST_SET_VRING_BASE, &st));
    st.num = 0x10000;
    EXPECT(f, -EINVAL, do_ioctl(f, OWNER, VHOST_SET_VRING_BASE, &st));
    st = (struct vhost_vring_state){ .index = 1, .num = 0 };
    EXPECT(f, 0, do_ioctl(f, OWNER, VHOST_GET_VRING_BASE, &st));
    assert_int_equal(st.index, 1);
    assert_int_equal(st.num, 0x1234);
    st.index = 7;
    EXPECT(f, -ENOBUFS, do_ioctl(f, OWNER, VHOST_GET_VRING_BASE, &st));

    st = (struct vhost_vring_state){ .index = 2, .num = 1 };
    EXPECT(f, 0, do_ioctl(f, OWNER, VHOST_VDPA_SET_VRING_ENABLE, &st));
    st.index = 3;
    EXPECT(f, -ENOBUFS, do_ioctl(f, OWNER, VHOST_VDPA_SET_VRING_ENABLE, &st));

    st = (struct vhost_vring_state){ .index = 2, .num = 99 };
    EXPECT(f, 0, do_ioctl(f, OWNER, VHOST_VDPA_GET_VRING_GROUP, &st));
    assert_int_equal(st.num, 0);
    st.index = 3;
    EXPECT(f, -ENOBUFS, do_ioctl(f, OWNER, VHOST_VDPA_GET_VRING_GROUP, &st));
    st = (struct vhost_vring_state){ .index = 0, .num = 0 };
    EXPECT(f, 0, do_ioctl(f, OWNER, VHOST_VDPA_SET_GROUP_ASID, &st));
    st = (struct vhost_vring_state){ .index = 1, .num = 0 }; /* group 1 of 1 */
    EXPECT(f, -EINVAL, do_ioctl(f, OWNER, VHOST_VDPA_SET_GROUP_ASID, &st));
    st = (struct vhost_vring_state){ .index = 0, .num = 1 }; /* address space 1 of 1 */
    EXPECT(f, -EINVAL, do_ioctl(f, OWNER, VHOST_VDPA_SET_GROUP_ASID, &st));
    st = (struct vhost_vring_state){ .index = 3, .num = 0 };
    EXPECT(f, -ENOBUFS, do_ioctl(f, OWNER, VHOST_VDPA_SET_GROUP_ASID, &st));

    EXPECT(f, 0, do_ioctl(f, OWNER, VHOST_VDPA_SUSPEND, NULL));
    EXPECT(f, 0, do_ioctl(f, OWNER, VHOST_VDPA_RESUME, NULL));
}

/* GET_VRING_BUSYLOOP_TIMEOUT is _IOW in the uapi: FUSE gives no out buffer; the answer
 * goes to the caller's argument through the peer, as the kernel's copy_to_user. */
static void test_busyloop_timeout_answer_goes_to_the_callers_argument(void **state)
{
    struct fixture *f = *state;
    struct vhost_vring_state st = { .index = 1, .num = 50 }, got;

    own(f);
    EXPECT(f, 0, do_ioctl(f, OWNER, VHOST_SET_VRING_BUSYLOOP_TIMEOUT, &st));
    st.num = 0;
    memset(f->peer.mem, 0xee, sizeof(got));
    EXPECT(f, 0, do_ioctl(f, OWNER, VHOST_GET_VRING_BUSYLOOP_TIMEOUT, &st));
    memcpy(&got, f->peer.mem, sizeof(got));
    assert_int_equal(got.index, 1);
    assert_int_equal(got.num, 50);
    EXPECT(f, -EFAULT, ioctl_at(f, OWNER, VHOST_GET_VRING_BUSYLOOP_TIMEOUT, &st, 16));
    st.index = 3;
    EXPECT(f, -ENOBUFS, do_ioctl(f, OWNER, VHOST_SET_VRING_BUSYLOOP_TIMEOUT, &st));
    EXPECT(f, -ENOBUFS, do_ioctl(f, OWNER, VHOST_GET_VRING_BUSYLOOP_TIMEOUT, &st));
}

static void test_eventfd_arguments(void **state)
{
    struct fixture *f = *state;
    static const unsigned vring_cmds[] = { VHOST_SET_VRING_KICK, VHOST_SET_VRING_CALL,
                                           VHOST_SET_VRING_ERR };
    unsigned fds = count_open_fds();

    own(f);
    for (size_t i = 0; i < G_N_ELEMENTS(vring_cmds); i++) {
        unsigned cmd = vring_cmds[i];
        struct vhost_vring_file file = { .index = 0, .fd = FD_EVENTFD };

        EXPECT(f, 0, do_ioctl(f, OWNER, cmd, &file));
        EXPECT(f, 0, do_ioctl(f, OWNER, cmd, &file)); /* replacing is fine */
        file.fd = -1;
        EXPECT(f, 0, do_ioctl(f, OWNER, cmd, &file)); /* VHOST_FILE_UNBIND */
        file.fd = -5;
        EXPECT(f, -EBADF, do_ioctl(f, OWNER, cmd, &file));
        file.fd = 99;
        EXPECT(f, -EBADF, do_ioctl(f, OWNER, cmd, &file));
        file.fd = FD_PIPE;
        EXPECT(f, -EINVAL, do_ioctl(f, OWNER, cmd, &file));
        file = (struct vhost_vring_file){ .index = 3, .fd = FD_EVENTFD };
        EXPECT(f, -ENOBUFS, do_ioctl(f, OWNER, cmd, &file));
    }
    int fd = FD_EVENTFD;
    EXPECT(f, 0, do_ioctl(f, OWNER, VHOST_VDPA_SET_CONFIG_CALL, &fd));
    fd = 99;
    EXPECT(f, -EBADF, do_ioctl(f, OWNER, VHOST_VDPA_SET_CONFIG_CALL, &fd));
    fd = -2;
    EXPECT(f, -EBADF, do_ioctl(f, OWNER, VHOST_VDPA_SET_CONFIG_CALL, &fd));
    fd = FD_PIPE;
    EXPECT(f, -EINVAL, do_ioctl(f, OWNER, VHOST_VDPA_SET_CONFIG_CALL, &fd));
    fd = -1;
    EXPECT(f, 0, do_ioctl(f, OWNER, VHOST_VDPA_SET_CONFIG_CALL, &fd));
    /* every fd taken from the caller was closed or is held no more */
    assert_true(f->peer.fds_taken > 0);
    assert_int_equal(count_open_fds(), fds);
}

/* ------------------------------------------------------------------ IOTLB writes */

static void test_iotlb_v1_and_v2_messages_are_72_bytes(void **state)
{
    struct fixture *f = *state;
    uint64_t ua = client_mem_uaddr(f->mem, 0);

    own(f);
    assert_int_equal(iotlb(f, OWNER, VHOST_IOTLB_MSG, VHOST_IOTLB_UPDATE, 0x100000, 0x1000, ua,
                           VHOST_ACCESS_RW), MSG_SIZE);
    assert_int_equal(iotlb(f, OWNER, VHOST_IOTLB_MSG_V2, VHOST_IOTLB_UPDATE, 0x200000, 0x2000,
                           ua, VHOST_ACCESS_RO), MSG_SIZE);
    assert_int_equal(session_mapped_bytes(f->s), 0x3000);
    assert_int_equal(iotlb(f, OWNER, VHOST_IOTLB_MSG_V2, VHOST_IOTLB_BATCH_BEGIN, 0, 0, 0, 0),
                     MSG_SIZE);
    assert_int_equal(iotlb(f, OWNER, VHOST_IOTLB_MSG, VHOST_IOTLB_INVALIDATE, 0x100000, 0x1000,
                           0, 0), MSG_SIZE);
    assert_int_equal(iotlb(f, OWNER, VHOST_IOTLB_MSG_V2, VHOST_IOTLB_BATCH_END, 0, 0, 0, 0),
                     MSG_SIZE);
    assert_int_equal(session_mapped_bytes(f->s), 0x2000);
    /* without the ASID backend feature, v2's asid field is ignored */
    uint8_t buf[MSG_SIZE] = { 0 };
    uint32_t v2 = VHOST_IOTLB_MSG_V2, asid = 5;
    struct vhost_iotlb_msg m = { .iova = 0x300000, .size = 0x1000, .uaddr = ua,
                                 .perm = VHOST_ACCESS_RW, .type = VHOST_IOTLB_UPDATE };
    memcpy(buf, &v2, 4);
    memcpy(buf + 4, &asid, 4);
    memcpy(buf + 8, &m, sizeof(m));
    assert_int_equal(do_write(f, OWNER, buf, sizeof(buf)), MSG_SIZE);
    assert_int_equal(session_mapped_bytes(f->s), 0x3000);
    /* an empty invalidation, and DPDK's "everything" on what is left */
    assert_int_equal(iotlb(f, OWNER, VHOST_IOTLB_MSG_V2, VHOST_IOTLB_INVALIDATE, 0x5000, 0, 0,
                           0), MSG_SIZE);
    assert_int_equal(iotlb(f, OWNER, VHOST_IOTLB_MSG_V2, VHOST_IOTLB_INVALIDATE, 0, UINT64_MAX,
                           0, 0), MSG_SIZE);
    assert_int_equal(session_mapped_bytes(f->s), 0);
}

static void test_iotlb_write_lengths(void **state)
{
    struct fixture *f = *state;
    uint8_t buf[200] = { 0 };
    uint32_t v2 = VHOST_IOTLB_MSG_V2, v1 = VHOST_IOTLB_MSG;
    struct vhost_iotlb_msg m = { .iova = 0x100000, .size = 0x1000,
                                 .uaddr = client_mem_uaddr(f->mem, 0),
                                 .perm = VHOST_ACCESS_RW, .type = VHOST_IOTLB_UPDATE };

    own(f);
    memcpy(buf, &v2, 4);
    memcpy(buf + 8, &m, sizeof(m));
    /* shorter than the type, or than type + padding + the 32-byte message */
    static const size_t short_len[] = { 0, 1, 3, 4, 8, 39 };
    for (size_t i = 0; i < G_N_ELEMENTS(short_len); i++) {
        assert_int_equal(do_write(f, OWNER, buf, short_len[i]), -EINVAL);
        assert_int_equal(f->err->code, EINVAL);
    }
    memcpy(buf, &v1, 4);
    assert_int_equal(do_write(f, OWNER, buf, 39), -EINVAL);
    assert_int_equal(session_mapped_bytes(f->s), 0);
    /* 40 bytes hold the whole message: accepted; FUSE cannot reply more than was written */
    assert_int_equal(do_write(f, OWNER, buf, 40), 40);
    assert_int_equal(session_mapped_bytes(f->s), 0x1000);
    /* longer writes: the message is 72 bytes, the rest is ignored */
    m.iova = 0x200000;
    memcpy(buf + 8, &m, sizeof(m));
    assert_int_equal(do_write(f, OWNER, buf, sizeof(buf)), MSG_SIZE);
    assert_int_equal(session_mapped_bytes(f->s), 0x2000);
}

static void test_iotlb_malformed_is_einval_refused_is_efault(void **state)
{
    struct fixture *f = *state;
    uint64_t ua = client_mem_uaddr(f->mem, 0);
    uint8_t buf[MSG_SIZE] = { 0 };
    static const uint32_t bad_versions[] = { 0, 3, 0xffffffff };

    own(f);
    for (size_t i = 0; i < G_N_ELEMENTS(bad_versions); i++) {
        memcpy(buf, &bad_versions[i], 4);
        assert_int_equal(do_write(f, OWNER, buf, sizeof(buf)), -EINVAL);
    }
    /* malformed: an update of size 0 */
    assert_int_equal(iotlb(f, OWNER, 2, VHOST_IOTLB_UPDATE, 0x1000, 0, ua, 3), -EINVAL);
    assert_int_equal(f->err->code, EINVAL);
    /* well formed but refused: EFAULT, with the reason in the error */
    assert_int_equal(iotlb(f, OWNER, 2, VHOST_IOTLB_UPDATE, 0x1000, 0x1000, ua, 3), MSG_SIZE);
    assert_int_equal(iotlb(f, OWNER, 2, VHOST_IOTLB_UPDATE, 0x1000, 0x1000, ua, 3), -EFAULT);
    assert_int_equal(f->err->code, EEXIST);
    assert_int_equal(iotlb(f, OWNER, 2, VHOST_IOTLB_UPDATE, UINT64_MAX - 0xfff, 0x2000, ua, 3),
                     -EFAULT);
    assert_int_equal(f->err->code, EINVAL);
    assert_int_equal(iotlb(f, OWNER, 2, VHOST_IOTLB_UPDATE, 0x10000, 0x1000, ua, 0), -EFAULT);
    assert_int_equal(iotlb(f, OWNER, 2, VHOST_IOTLB_UPDATE, 0x10000, 0x1000, ua + 1, 3), -EFAULT);
    assert_int_equal(iotlb(f, OWNER, 2, VHOST_IOTLB_UPDATE, 0x10000, 0x1000, 0x1000, 3), -EFAULT);
    assert_int_equal(f->err->code, EFAULT);
    assert_int_equal(iotlb(f, OWNER, 2, 9, 0x10000, 0x1000, ua, 3), -EFAULT);
    assert_int_equal(iotlb(f, OWNER, 2, VHOST_IOTLB_MISS, 0x10000, 0x1000, ua, 3), -EFAULT);
    assert_int_equal(session_mapped_bytes(f->s), 0x1000);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_before_set_owner_only_owner_ioctls_are_eperm),
        T(test_after_set_owner_another_process_gets_eperm_for_everything),
        T(test_unknown_ioctls_are_enotty_for_the_owner),
        T(test_short_argument_is_efault),
        T(test_device_queries),
        T(test_features_and_backend_features),
        T(test_status),
        T(test_get_config_moves_the_payload_through_the_peer),
        T(test_set_config_reads_the_payload_through_the_peer),
        T(test_vring_ioctls),
        T(test_busyloop_timeout_answer_goes_to_the_callers_argument),
        T(test_eventfd_arguments),
        T(test_iotlb_v1_and_v2_messages_are_72_bytes),
        T(test_iotlb_write_lengths),
        T(test_iotlb_malformed_is_einval_refused_is_efault),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
