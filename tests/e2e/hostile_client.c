/* hostile_client — good and misbehaving clients of a vhost-vdpa node, for tests/e2e/hostile.sh.
 *
 *   hostile_client good NODE [FRAMES]   a well-behaved client: our kernel backend (uAPI client)
 *                                       and the test driver; FRAMES (default 256) broadcast
 *                                       frames must all come back intact
 *   hostile_client hold NODE            opens NODE and keeps it open until stdin closes
 *   hostile_client open NODE            one open(); prints "open: ok" or "open: <errno name>"
 *   hostile_client stage NODE STAGE     sets up to STAGE, prints "stage STAGE reached", then
 *                                       waits to be killed. STAGE: owner (SET_OWNER), iotlb
 *                                       (memfd memory through an IOTLB v2 batch), driver_ok
 *                                       (rings and DRIVER_OK), traffic (an exchange done, then
 *                                       frames left in flight), busy (exchanges in a loop)
 *   hostile_client garbage NODE KIND    rings the device must refuse, then a kick; checks that
 *                                       the device reports DEVICE_NEEDS_RESET (GET_STATUS) and
 *                                       that SET_STATUS(0) clears it. KIND: unmapped (rings at
 *                                       unmapped IOVAs), readonly (the used ring mapped
 *                                       read-only), sealed (a write-sealed memfd: a writable
 *                                       mapping is refused, a read-only one holds the rings),
 *                                       loop (a descriptor table whose chains loop),
 *                                       truncate (after a frame went through, the client
 *                                       shrinks the memfd under the running device)
 *   hostile_client nonowner NODE        processes given the open file (by fork, by SCM_RIGHTS)
 *                                       are served before SET_OWNER as the kernel serves
 *                                       anyone, and get EPERM for everything after it
 *   hostile_client bogus NODE           unknown ioctls, wrong sizes, bad pointers, malformed
 *                                       IOTLB writes, read and mmap: each gets its errno
 *   hostile_client fusemem NODE DIR     serves a FUSE filesystem at DIR itself, maps a file of
 *                                       it shared, stops answering, and sends that memory in
 *                                       IOTLB updates: vdpad must not wait on the server
 *
 * Prints one "ok: ..." line per check; exits 0 when all hold, 1 (with "FAIL: ...") if not. */
#include "config.h"

#define FUSE_USE_VERSION 35
#include <fuse_lowlevel.h>

#include <errno.h>
#include <fcntl.h>
#include <glib.h>
#include <linux/vhost.h>
#include <linux/vhost_types.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backend/kernel/kernel_dev.h"
#include "driver/virtio_driver.h"
#include "util/compat.h"
#include "virtio/split_ring.h"

#define F(bit) (1ull << (bit))
#define MEM_SIZE (1u << 20)
#define MSG_SIZE 72

static const uint8_t bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
static int failures;

static void ok(const char *fmt, ...) G_GNUC_PRINTF(1, 2);
static void ok(const char *fmt, ...)
{
    va_list ap;

    printf("ok: ");
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
}

static void fail(const char *fmt, ...) G_GNUC_PRINTF(1, 2);
static void fail(const char *fmt, ...)
{
    va_list ap;

    printf("FAIL: ");
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
    failures++;
}

static G_NORETURN void die(const char *fmt, ...) G_GNUC_PRINTF(1, 2);
static G_NORETURN void die(const char *fmt, ...)
{
    va_list ap;

    printf("FAIL: ");
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
    exit(1);
}

static const char *errno_name(int e)
{
    switch (e) {
    case 0: return "0";
    case EPERM: return "EPERM";
    case EBADF: return "EBADF";
    case EFAULT: return "EFAULT";
    case EBUSY: return "EBUSY";
    case EINVAL: return "EINVAL";
    case ENOTTY: return "ENOTTY";
    case ENODEV: return "ENODEV";
    case ENOBUFS: return "ENOBUFS";
    case EOPNOTSUPP: return "EOPNOTSUPP";
    case EIO: return "EIO";
    default: return strerror(e);
    }
}

/* The errno of ioctl(fd, cmd, arg), or 0. */
static int ioctl_errno(int fd, unsigned long cmd, void *arg)
{
    return ioctl(fd, cmd, arg) < 0 ? errno : 0;
}

/* Checks that ioctl(fd, cmd, arg) gives errno want (0: success). */
static void expect_ioctl(const char *who, const char *what, int fd, unsigned long cmd, void *arg,
                         int want)
{
    int got = ioctl_errno(fd, cmd, arg);

    if (got == want)
        ok("%s: %s -> %s", who, what, want ? errno_name(want) : "ok");
    else
        fail("%s: %s -> %s, expected %s", who, what, errno_name(got), errno_name(want));
}

/* ------------------------------------------------------------------ a raw uAPI client */

struct raw {
    int fd;
    int memfd;
    uint8_t *mem;        /* MEM_SIZE bytes, mapped at IOVA 0 */
    int kick[3], call[3];
};

static void raw_open(struct raw *r, const char *node)
{
    uint64_t bf = 0;

    memset(r, 0, sizeof(*r));
    r->fd = open(node, O_RDWR | O_CLOEXEC);
    if (r->fd < 0)
        die("open %s: %s", node, strerror(errno));
    if (ioctl(r->fd, VHOST_SET_OWNER, NULL) < 0)
        die("SET_OWNER: %s", strerror(errno));
    if (ioctl(r->fd, VHOST_GET_BACKEND_FEATURES, &bf) < 0)
        die("GET_BACKEND_FEATURES: %s", strerror(errno));
    bf &= F(VHOST_BACKEND_F_IOTLB_MSG_V2) | F(VHOST_BACKEND_F_IOTLB_BATCH);
    if (ioctl(r->fd, VHOST_SET_BACKEND_FEATURES, &bf) < 0)
        die("SET_BACKEND_FEATURES: %s", strerror(errno));
    for (int i = 0; i < 3; i++) {
        r->kick[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        r->call[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    }
}

/* An IOTLB v2 message; returns 0 or the errno of the write (which must be all or nothing). */
static int raw_iotlb(struct raw *r, uint8_t type, uint64_t iova, uint64_t size,
                     const void *uaddr, uint8_t perm)
{
    struct vhost_msg_v2 msg = { .type = VHOST_IOTLB_MSG_V2 };

    msg.iotlb.type = type;
    msg.iotlb.iova = iova;
    msg.iotlb.size = size;
    msg.iotlb.uaddr = (uint64_t)(uintptr_t)uaddr;
    msg.iotlb.perm = perm;
    ssize_t n = write(r->fd, &msg, sizeof(msg));
    if (n < 0)
        return errno;
    if (n != MSG_SIZE)
        die("IOTLB write answered %zd bytes", n);
    return 0;
}

static uint8_t *memfd_memory(const char *name, size_t size, int *memfd, unsigned flags)
{
    *memfd = memfd_create(name, MFD_CLOEXEC | flags);
    if (*memfd < 0 || ftruncate(*memfd, (off_t)size) < 0)
        die("memfd: %s", strerror(errno));
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, *memfd, 0);
    if (p == MAP_FAILED)
        die("mmap: %s", strerror(errno));
    return p;
}

/* Client memory at IOVA 0, through one batch, as QEMU sends it. */
static void raw_map_memory(struct raw *r)
{
    int e;

    r->mem = memfd_memory("hostile-mem", MEM_SIZE, &r->memfd, 0);
    if ((e = raw_iotlb(r, VHOST_IOTLB_BATCH_BEGIN, 0, 0, NULL, 0)) ||
        (e = raw_iotlb(r, VHOST_IOTLB_UPDATE, 0, MEM_SIZE, r->mem, VHOST_ACCESS_RW)) ||
        (e = raw_iotlb(r, VHOST_IOTLB_BATCH_END, 0, 0, NULL, 0)))
        die("IOTLB batch: %s", strerror(e));
}

static uint8_t raw_status(struct raw *r)
{
    uint8_t st = 0;

    if (ioctl(r->fd, VHOST_VDPA_GET_STATUS, &st) < 0)
        die("GET_STATUS: %s", strerror(errno));
    return st;
}

static void raw_set_status(struct raw *r, uint8_t st)
{
    if (ioctl(r->fd, VHOST_VDPA_SET_STATUS, &st) < 0)
        die("SET_STATUS 0x%x: %s", st, strerror(errno));
}

static void raw_negotiate(struct raw *r)
{
    uint64_t f = F(VIRTIO_F_VERSION_1) | F(VIRTIO_F_ACCESS_PLATFORM);

    raw_set_status(r, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
    if (ioctl(r->fd, VHOST_SET_FEATURES, &f) < 0)
        die("SET_FEATURES: %s", strerror(errno));
    raw_set_status(r, 0x3 | VIRTIO_CONFIG_S_FEATURES_OK);
}

/* Queue q: NUM, ADDR, BASE 0, KICK, CALL, ENABLE. */
static void raw_queue(struct raw *r, unsigned q, unsigned num, uint64_t desc, uint64_t avail,
                      uint64_t used)
{
    struct vhost_vring_state st = { .index = q, .num = num };
    struct vhost_vring_addr a = { .index = q, .desc_user_addr = desc, .avail_user_addr = avail,
                                  .used_user_addr = used };
    struct vhost_vring_state base = { .index = q, .num = 0 };
    struct vhost_vring_file kick = { .index = q, .fd = r->kick[q] };
    struct vhost_vring_file call = { .index = q, .fd = r->call[q] };
    struct vhost_vring_state en = { .index = q, .num = 1 };

    if (ioctl(r->fd, VHOST_SET_VRING_NUM, &st) < 0 || ioctl(r->fd, VHOST_SET_VRING_ADDR, &a) < 0 ||
        ioctl(r->fd, VHOST_SET_VRING_BASE, &base) < 0 ||
        ioctl(r->fd, VHOST_SET_VRING_KICK, &kick) < 0 ||
        ioctl(r->fd, VHOST_SET_VRING_CALL, &call) < 0 ||
        ioctl(r->fd, VHOST_VDPA_SET_VRING_ENABLE, &en) < 0)
        die("queue %u setup: %s", q, strerror(errno));
}

/* Ring layout of a queue of num entries at IOVA (and offset) base. */
static uint64_t avail_at(uint64_t base, unsigned num) { return base + 16ull * num; }
static uint64_t used_at(uint64_t base, unsigned num)
{
    return (avail_at(base, num) + 6 + 2ull * num + 3) & ~3ull;
}

static void kick(struct raw *r, unsigned q)
{
    (void)eventfd_write(r->kick[q], 1);
}

/* Waits up to ms for DEVICE_NEEDS_RESET. */
static bool wait_needs_reset(struct raw *r, unsigned ms)
{
    for (unsigned t = 0; t < ms; t += 10) {
        if (raw_status(r) & VIRTIO_CONFIG_S_NEEDS_RESET)
            return true;
        g_usleep(10000);
    }
    return false;
}

/* ------------------------------------------------------------------ modes */

static int mode_good(const char *node, unsigned frames)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(vdpa_device) dev = kernel_dev_open("good", node, &err);

    if (!dev)
        die("kernel_dev_open: %s", err->message);
    struct vdrv_config cfg = { .timeout_ms = 5000 };
    g_autoptr(vdrv) drv = vdrv_new(dev, &cfg, &err);
    if (!drv)
        die("vdrv_new: %s", err->message);
    struct vdrv_net_result res;
    if (vdrv_net_exchange(drv, 0, frames, 256, bcast, true, 5000, &res, &err) < 0)
        die("exchange: %s", err->message);
    if (res.received != frames || res.lost || res.duplicated || res.corrupted)
        die("exchange: sent %" G_GUINT64_FORMAT " received %" G_GUINT64_FORMAT " lost %"
            G_GUINT64_FORMAT " dup %" G_GUINT64_FORMAT " corrupt %" G_GUINT64_FORMAT,
            res.sent, res.received, res.lost, res.duplicated, res.corrupted);
    printf("good: %u frames sent, %" G_GUINT64_FORMAT " received, 0 lost\n", frames,
           res.received);
    return 0;
}

static int mode_hold(const char *node)
{
    char c;
    int fd = open(node, O_RDWR | O_CLOEXEC);

    if (fd < 0)
        die("open %s: %s", node, strerror(errno));
    printf("held\n");
    fflush(stdout);
    while (read(STDIN_FILENO, &c, 1) > 0)
        ;
    close(fd);
    return 0;
}

static int mode_open(const char *node)
{
    int fd = open(node, O_RDWR | O_CLOEXEC);

    printf("open: %s\n", fd >= 0 ? "ok" : errno_name(errno));
    if (fd >= 0)
        close(fd);
    return fd >= 0 ? 0 : 1;
}

static G_NORETURN void reached(const char *stage)
{
    printf("stage %s reached\n", stage);
    fflush(stdout);
    for (;;)
        pause();
}

static int mode_stage(const char *node, const char *stage)
{
    if (g_str_equal(stage, "owner") || g_str_equal(stage, "iotlb")) {
        struct raw r;

        raw_open(&r, node);
        if (g_str_equal(stage, "iotlb"))
            raw_map_memory(&r);
        reached(stage);
    }
    g_autoptr(GError) err = NULL;
    g_autoptr(vdpa_device) dev = kernel_dev_open("hostile", node, &err);
    if (!dev)
        die("kernel_dev_open: %s", err->message);
    struct vdrv_config cfg = { .timeout_ms = 5000 };
    g_autoptr(vdrv) drv = vdrv_new(dev, &cfg, &err);
    if (!drv)
        die("vdrv_new: %s", err->message);
    if (g_str_equal(stage, "driver_ok"))
        reached(stage);
    struct vdrv_net_result res;
    if (vdrv_net_exchange(drv, 0, 64, 256, bcast, true, 5000, &res, &err) < 0)
        die("exchange: %s", err->message);
    if (g_str_equal(stage, "traffic")) {
        /* TX frames without receive buffers: the device holds them, in flight */
        if (vdrv_net_run_begin(drv, 0, 64, 256, bcast, &err) < 0 ||
            vdrv_net_tx(drv, 0, 64, &err) < 0)
            die("tx: %s", err->message);
        g_usleep(100000);
        printf("%u frames in flight\n", vdrv_net_tx_pending(drv, 0));
        reached(stage);
    }
    if (!g_str_equal(stage, "busy"))
        die("unknown stage %s", stage);
    printf("stage busy reached\n");
    fflush(stdout);
    for (;;)
        if (vdrv_net_exchange(drv, 0, 64, 256, bcast, true, 5000, &res, &err) < 0)
            die("exchange: %s", err->message);
}

static void write_desc(uint8_t *at, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
    struct vring_desc d = { .addr = addr, .len = len, .flags = flags, .next = next };

    memcpy(at, &d, sizeof(d));
}

/* avail ring at p: flags 0, idx n, ring[i] = heads[i] */
static void write_avail(uint8_t *p, const uint16_t *heads, uint16_t n)
{
    uint16_t zero = 0;

    memcpy(p, &zero, 2);
    memcpy(p + 2, &n, 2);
    memcpy(p + 4, heads, 2u * n);
}

static int mode_garbage(const char *node, const char *kind)
{
    const unsigned num = 16;
    struct raw r;
    uint64_t rx = 0x1000, tx = 0x2000; /* ring IOVAs (= offsets in the memory) */
    uint64_t tx_desc, tx_avail, tx_used;
    uint16_t heads[4] = { 0, 1, 2, 3 };

    raw_open(&r, node);
    raw_map_memory(&r);
    raw_negotiate(&r);
    tx_desc = tx;
    tx_avail = avail_at(tx, num);
    tx_used = used_at(tx, num);
    if (g_str_equal(kind, "unmapped")) {
        tx_desc = 0x40000000;
        tx_avail = avail_at(tx_desc, num);
        tx_used = used_at(tx_desc, num);
        ok("garbage unmapped: TX ring at IOVA 0x%" G_GINT64_MODIFIER "x, nothing mapped there",
           tx_desc);
    } else if (g_str_equal(kind, "readonly")) {
        int memfd;
        uint8_t *ro = memfd_memory("hostile-ro", 4096, &memfd, 0);
        int e = raw_iotlb(&r, VHOST_IOTLB_UPDATE, 0x100000, 4096, ro, VHOST_ACCESS_RO);
        if (e)
            die("IOTLB update of read-only memory: %s", strerror(e));
        tx_used = 0x100000;
        ok("garbage readonly: TX used ring in memory mapped read-only (perm RO)");
    } else if (g_str_equal(kind, "sealed")) {
        int memfd;
        uint8_t *sealed = memfd_memory("hostile-sealed", 8192, &memfd, MFD_ALLOW_SEALING);
        /* the rings, written before the seal: a descriptor and an avail entry */
        write_desc(sealed, 0x10000, 76, 0, 0);
        write_avail(sealed + avail_at(0, num), heads, 1);
        munmap(sealed, 8192);
        if (fcntl(memfd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW) < 0)
            die("F_ADD_SEALS: %s", strerror(errno));
        sealed = mmap(NULL, 8192, PROT_READ, MAP_SHARED, memfd, 0);
        if (sealed == MAP_FAILED)
            die("mmap of the sealed memfd: %s", strerror(errno));
        int e = raw_iotlb(&r, VHOST_IOTLB_UPDATE, 0x100000, 8192, sealed, VHOST_ACCESS_RW);
        if (e == EFAULT)
            ok("garbage sealed: a writable IOTLB mapping of a write-sealed memfd -> EFAULT");
        else
            fail("garbage sealed: writable mapping of a write-sealed memfd -> %s, expected "
                 "EFAULT", errno_name(e));
        e = raw_iotlb(&r, VHOST_IOTLB_UPDATE, 0x100000, 8192, sealed, VHOST_ACCESS_RO);
        if (e)
            die("read-only IOTLB mapping of the sealed memfd: %s", strerror(e));
        ok("garbage sealed: the same memory mapped read-only is accepted; the TX ring is there");
        tx_desc = 0x100000;
        tx_avail = avail_at(tx_desc, num);
        tx_used = used_at(tx_desc, num);
    } else if (g_str_equal(kind, "truncate")) {
        /* one frame through the loopback first, so the rings have a history */
        static const uint8_t frame[12 + 60] = { [12] = 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
        memcpy(r.mem + 0x10000, frame, sizeof(frame));
        write_desc(r.mem + tx, 0x10000, sizeof(frame), 0, 0);
        write_avail(r.mem + tx_avail, heads, 1);
        write_desc(r.mem + rx, 0x20000, 2048, VRING_DESC_F_WRITE, 0);
        write_avail(r.mem + avail_at(rx, num), heads, 1);
    } else if (g_str_equal(kind, "loop")) {
        /* every descriptor chains to the next, the last back to the first */
        for (unsigned i = 0; i < num; i++)
            write_desc(r.mem + tx + 16 * i, 0x10000, 64, VRING_DESC_F_NEXT, (i + 1) % num);
        write_avail(r.mem + tx_avail, heads, 4);
        ok("garbage loop: TX descriptor table whose chains loop, 4 heads available");
    } else {
        die("unknown kind %s", kind);
    }
    raw_queue(&r, 0, num, rx, avail_at(rx, num), used_at(rx, num));
    raw_queue(&r, 1, num, tx_desc, tx_avail, tx_used);
    raw_set_status(&r, 0xf);
    kick(&r, 1);
    kick(&r, 0);
    if (g_str_equal(kind, "truncate")) {
        uint16_t used_idx = 0;
        for (int t = 0; t < 300 && used_idx == 0; t++, g_usleep(10000))
            memcpy(&used_idx, r.mem + used_at(rx, num) + 2, 2);
        if (used_idx != 1)
            die("garbage truncate: the frame did not come back");
        ok("garbage truncate: a frame went through the loopback");
        munmap(r.mem, MEM_SIZE); /* our own view would fault too */
        if (ftruncate(r.memfd, 0) < 0)
            die("ftruncate: %s", strerror(errno));
        ok("garbage truncate: the client shrank its memfd to 0 under the running device");
        kick(&r, 1);
        kick(&r, 0);
    }
    if (wait_needs_reset(&r, 3000))
        ok("garbage %s: the device reports DEVICE_NEEDS_RESET (status 0x%x)", kind,
           raw_status(&r));
    else
        fail("garbage %s: status 0x%x, no DEVICE_NEEDS_RESET", kind, raw_status(&r));
    uint64_t features;
    expect_ioctl("garbage", "GET_FEATURES after the queue broke", r.fd, VHOST_GET_FEATURES,
                 &features, 0);
    raw_set_status(&r, 0);
    if (raw_status(&r) == 0)
        ok("garbage %s: SET_STATUS(0) resets the device (status 0)", kind);
    else
        fail("garbage %s: status 0x%x after reset", kind, raw_status(&r));
    close(r.fd);
    return failures ? 1 : 0;
}

/* ------------------------------------------------------------------ nonowner */

static int recv_fd(int sock)
{
    char byte;
    struct iovec iov = { &byte, 1 };
    union { struct cmsghdr h; char buf[CMSG_SPACE(sizeof(int))]; } u;
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
                          .msg_controllen = sizeof(u.buf) };

    if (recvmsg(sock, &msg, 0) <= 0)
        return -1;
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    if (!c || c->cmsg_type != SCM_RIGHTS)
        return -1;
    int fd;
    memcpy(&fd, CMSG_DATA(c), sizeof(fd));
    return fd;
}

static void send_fd(int sock, int fd)
{
    char byte = 'F';
    struct iovec iov = { &byte, 1 };
    union { struct cmsghdr h; char buf[CMSG_SPACE(sizeof(int))]; } u;
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
                          .msg_controllen = sizeof(u.buf) };
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);

    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof(fd));
    if (sendmsg(sock, &msg, 0) < 0)
        die("sendmsg: %s", strerror(errno));
}

/* What a process that is not the owner gets after SET_OWNER: EPERM for everything. */
static void nonowner_checks(const char *who, int fd)
{
    uint64_t u64 = 0;
    uint8_t u8 = 0;
    struct vhost_vring_state st = { .index = 0, .num = 64 };
    struct vhost_msg_v2 msg = { .type = VHOST_IOTLB_MSG_V2 };

    expect_ioctl(who, "GET_FEATURES", fd, VHOST_GET_FEATURES, &u64, EPERM);
    expect_ioctl(who, "GET_STATUS", fd, VHOST_VDPA_GET_STATUS, &u8, EPERM);
    expect_ioctl(who, "SET_STATUS 0", fd, VHOST_VDPA_SET_STATUS, &u8, EPERM);
    expect_ioctl(who, "SET_OWNER", fd, VHOST_SET_OWNER, NULL, EPERM);
    expect_ioctl(who, "SET_VRING_NUM", fd, VHOST_SET_VRING_NUM, &st, EPERM);
    expect_ioctl(who, "GET_VRING_BASE", fd, VHOST_GET_VRING_BASE, &st, EPERM);
    expect_ioctl(who, "an unknown ioctl", fd, _IO(VHOST_VIRTIO, 0x99), NULL, EPERM);
    msg.iotlb.type = VHOST_IOTLB_INVALIDATE;
    msg.iotlb.iova = 0;
    msg.iotlb.size = 4096;
    ssize_t n = write(fd, &msg, sizeof(msg));
    if (n < 0 && errno == EFAULT)
        ok("%s: IOTLB write -> EFAULT (refused, as the kernel reports it)", who);
    else
        fail("%s: IOTLB write -> %zd (%s), expected EFAULT", who, n, errno_name(errno));
}

static int wait_child(pid_t pid)
{
    int st;

    if (waitpid(pid, &st, 0) < 0)
        die("waitpid: %s", strerror(errno));
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int mode_nonowner(const char *node)
{
    int sv[2];

    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        die("socketpair: %s", strerror(errno));
    /* A: forked before the open; gets the file only through SCM_RIGHTS */
    pid_t a = fork();
    if (a == 0) {
        close(sv[0]);
        int fd = recv_fd(sv[1]);
        if (fd < 0)
            die("child A: no fd received");
        nonowner_checks("process A (fd by SCM_RIGHTS, after SET_OWNER)", fd);
        close(fd);
        _exit(failures ? 1 : 0);
    }
    close(sv[1]);
    int fd = open(node, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        die("open %s: %s", node, strerror(errno));

    /* B: inherits the open file before SET_OWNER: served like anyone by the kernel */
    pid_t b = fork();
    if (b == 0) {
        const char *who = "process B (fd inherited, before SET_OWNER)";
        uint64_t features = 0;
        struct vhost_vring_state st = { .index = 0, .num = 64 };

        expect_ioctl(who, "GET_FEATURES", fd, VHOST_GET_FEATURES, &features, 0);
        expect_ioctl(who, "SET_VRING_NUM (needs the owner)", fd, VHOST_SET_VRING_NUM, &st,
                     EPERM);
        close(fd);
        _exit(failures ? 1 : 0);
    }
    if (wait_child(b) != 0)
        fail("process B failed");
    expect_ioctl("owner", "SET_OWNER", fd, VHOST_SET_OWNER, NULL, 0);

    /* C: inherits the open file after SET_OWNER */
    pid_t c = fork();
    if (c == 0) {
        nonowner_checks("process C (fd inherited, after SET_OWNER)", fd);
        close(fd);
        _exit(failures ? 1 : 0);
    }
    if (wait_child(c) != 0)
        fail("process C failed");
    send_fd(sv[0], fd);
    if (wait_child(a) != 0)
        fail("process A failed");
    close(sv[0]);

    uint64_t features = 0;
    struct vhost_vring_state st = { .index = 0, .num = 64 };
    expect_ioctl("owner", "GET_FEATURES after the others were refused", fd, VHOST_GET_FEATURES,
                 &features, 0);
    expect_ioctl("owner", "SET_VRING_NUM", fd, VHOST_SET_VRING_NUM, &st, 0);
    expect_ioctl("owner", "SET_OWNER again", fd, VHOST_SET_OWNER, NULL, EBUSY);
    close(fd);
    return failures ? 1 : 0;
}

/* ------------------------------------------------------------------ bogus */

static void expect_write(struct raw *r, const char *what, const void *buf, size_t len,
                         ssize_t want_n, int want_errno)
{
    ssize_t n = write(r->fd, buf, len);
    int e = n < 0 ? errno : 0;

    char got[32];

    snprintf(got, sizeof(got), "%zd", n);
    if (n == want_n && e == want_errno)
        ok("bogus: write %s (%zu bytes) -> %s", what, len, n >= 0 ? got : errno_name(e));
    else
        fail("bogus: write %s (%zu bytes) -> %zd (%s), expected %zd (%s)", what, len, n,
             errno_name(e), want_n, errno_name(want_errno));
}

static int mode_bogus(const char *node)
{
    struct raw r;
    static uint8_t arg[16384];
    const char *who = "bogus";

    raw_open(&r, node);
    r.mem = memfd_memory("hostile-mem", MEM_SIZE, &r.memfd, 0);

    /* unknown numbers, and known ones with the wrong size or direction */
    expect_ioctl(who, "_IO(0xAF, 0x99)", r.fd, _IO(VHOST_VIRTIO, 0x99), arg, ENOTTY);
    expect_ioctl(who, "SET_VRING_NUM with a 4-byte argument", r.fd,
                 _IOW(VHOST_VIRTIO, 0x10, uint32_t), arg, ENOTTY);
    expect_ioctl(who, "GET_FEATURES with a 16-byte argument", r.fd,
                 _IOR(VHOST_VIRTIO, 0x00, struct vhost_vdpa_iova_range), arg, ENOTTY);
    expect_ioctl(who, "SET_FEATURES as _IOWR", r.fd, _IOWR(VHOST_VIRTIO, 0x00, uint64_t), arg,
                 ENOTTY);
    expect_ioctl(who, "_IOWR(0xAF, 0x90) of 16383 bytes", r.fd,
                 _IOC(_IOC_READ | _IOC_WRITE, VHOST_VIRTIO, 0x90, 16383), arg, ENOTTY);
    expect_ioctl(who, "GET_VRING_ENDIAN (not supported, as on Debian's kernel)", r.fd,
                 VHOST_GET_VRING_ENDIAN, arg, ENOTTY);
    expect_ioctl(who, "SET_LOG_FD", r.fd, VHOST_SET_LOG_FD, arg, ENOTTY);
    GRand *rand = g_rand_new_with_seed(0x5eed);
    unsigned refused = 0, tried = 0;
    for (int i = 0; i < 200; i++) {
        unsigned nr = 0x83 + g_rand_int_range(rand, 0, 0x7c); /* past every vhost number */
        unsigned dir = g_rand_int_range(rand, 0, 4), size = g_rand_int_range(rand, 0, 1024);
        unsigned cmd = _IOC(dir, VHOST_VIRTIO, nr, dir ? size : 0);

        tried++;
        if (ioctl_errno(r.fd, cmd, arg) == ENOTTY)
            refused++;
        else
            fail("bogus: random ioctl 0x%08x not refused with ENOTTY", cmd);
    }
    g_rand_free(rand);
    if (refused == tried)
        ok("bogus: %u random vhost ioctl numbers, sizes and directions -> ENOTTY", tried);

    /* arguments the kernel cannot copy */
    expect_ioctl(who, "SET_VRING_NUM with a NULL argument", r.fd, VHOST_SET_VRING_NUM, NULL,
                 EFAULT);
    expect_ioctl(who, "GET_FEATURES with a NULL argument", r.fd, VHOST_GET_FEATURES, NULL,
                 EFAULT);
    /* GET_CONFIG: a header vdpad reads with process_vm_readv, a payload it cannot write */
    uint8_t *pages = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    struct vhost_vdpa_config hdr = { .off = 0, .len = 6 };
    if (pages == MAP_FAILED || mprotect(pages + 4096, 4096, PROT_NONE) < 0)
        die("mmap: %s", strerror(errno));
    memcpy(pages + 4096 - 8, &hdr, 8);
    expect_ioctl(who, "GET_CONFIG whose payload lies in a PROT_NONE page", r.fd,
                 VHOST_VDPA_GET_CONFIG, pages + 4096 - 8, EFAULT);
    hdr.len = 0x10000;
    memcpy(pages, &hdr, 8);
    expect_ioctl(who, "GET_CONFIG of 64 KiB", r.fd, VHOST_VDPA_GET_CONFIG, pages, EINVAL);
    struct vhost_vring_state st = { .index = 99, .num = 64 };
    expect_ioctl(who, "SET_VRING_NUM for queue 99", r.fd, VHOST_SET_VRING_NUM, &st, ENOBUFS);
    struct vhost_vring_file file = { .index = 0, .fd = 1 }; /* stdout: not an eventfd */
    expect_ioctl(who, "SET_VRING_KICK with a non-eventfd", r.fd, VHOST_SET_VRING_KICK, &file,
                 EINVAL);
    file.fd = 999;
    expect_ioctl(who, "SET_VRING_KICK with a closed fd number", r.fd, VHOST_SET_VRING_KICK, &file,
                 EBADF);

    /* IOTLB writes */
    struct vhost_msg_v2 m = { .type = VHOST_IOTLB_MSG_V2 };
    m.iotlb = (struct vhost_iotlb_msg){ .iova = 0, .size = 4096,
                                        .uaddr = (uint64_t)(uintptr_t)r.mem,
                                        .perm = VHOST_ACCESS_RW, .type = VHOST_IOTLB_UPDATE };
    expect_write(&r, "of 3 bytes", &m, 3, -1, EINVAL);
    expect_write(&r, "of 39 bytes (shorter than a message)", &m, 39, -1, EINVAL);
    struct vhost_msg_v2 bad = m;
    bad.type = 7;
    expect_write(&r, "of message type 7", &bad, sizeof(bad), -1, EINVAL);
    bad = m;
    bad.iotlb.size = 0;
    expect_write(&r, "of an UPDATE of size 0", &bad, sizeof(bad), -1, EINVAL);
    bad = m;
    bad.iotlb.type = 9;
    expect_write(&r, "of IOTLB type 9", &bad, sizeof(bad), -1, EFAULT);
    bad = m;
    bad.iotlb.uaddr = 0x1000;
    expect_write(&r, "of an UPDATE of unmapped client memory", &bad, sizeof(bad), -1, EFAULT);
    bad = m;
    bad.iotlb.iova = UINT64_MAX - 0xfff;
    bad.iotlb.size = 0x2000;
    expect_write(&r, "of an UPDATE that wraps", &bad, sizeof(bad), -1, EFAULT);
    expect_write(&r, "of a good UPDATE", &m, sizeof(m), MSG_SIZE, 0);
    expect_write(&r, "of the same UPDATE again (overlap)", &m, sizeof(m), -1, EFAULT);
    bad = m;
    bad.iotlb.type = VHOST_IOTLB_INVALIDATE;
    bad.iotlb.size = 0;
    expect_write(&r, "of an INVALIDATE of size 0", &bad, sizeof(bad), MSG_SIZE, 0);
    uint8_t big[4096] = { 0 };
    memcpy(big, &m, sizeof(m));
    ((struct vhost_msg_v2 *)big)->iotlb.iova = 0x10000;
    expect_write(&r, "of a message followed by junk", big, sizeof(big), MSG_SIZE, 0);

    /* no read, no shared mmap */
    char c;
    if (read(r.fd, &c, 1) < 0 && errno == EINVAL)
        ok("bogus: read -> EINVAL");
    else
        fail("bogus: read did not fail with EINVAL (%s)", errno_name(errno));
    void *p = mmap(NULL, 4096, PROT_WRITE, MAP_SHARED, r.fd, 0);
    if (p == MAP_FAILED && errno == ENODEV)
        ok("bogus: shared mmap (doorbells) -> ENODEV");
    else
        fail("bogus: shared mmap -> %s", p == MAP_FAILED ? errno_name(errno) : "mapped");

    uint64_t features = 0;
    expect_ioctl(who, "GET_FEATURES after all that", r.fd, VHOST_GET_FEATURES, &features, 0);
    close(r.fd);
    return failures ? 1 : 0;
}

/* ------------------------------------------------------------------ fusemem */

/* A filesystem with one file, "ram", served by this process; once fs_stall is set it
 * answers nothing more, like a server that hangs whoever touches its files. */
#define FS_RAM_INO 2
#define FS_RAM_SIZE (64u << 10)
static atomic_bool fs_stall;

static void fs_attr(fuse_ino_t ino, struct stat *st)
{
    memset(st, 0, sizeof(*st));
    st->st_ino = ino;
    st->st_mode = ino == FUSE_ROOT_ID ? S_IFDIR | 0755 : S_IFREG | 0444;
    st->st_nlink = 1;
    st->st_size = ino == FUSE_ROOT_ID ? 0 : FS_RAM_SIZE;
}

static void fs_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    struct fuse_entry_param e = { .ino = FS_RAM_INO, .attr_timeout = 3600,
                                  .entry_timeout = 3600 };

    if (atomic_load(&fs_stall))
        return; /* never answered */
    if (parent != FUSE_ROOT_ID || strcmp(name, "ram") != 0) {
        fuse_reply_err(req, ENOENT);
        return;
    }
    fs_attr(FS_RAM_INO, &e.attr);
    fuse_reply_entry(req, &e);
}

static void fs_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct stat st;

    if (atomic_load(&fs_stall))
        return;
    fs_attr(ino, &st);
    fuse_reply_attr(req, &st, 3600);
}

static void fs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    if (atomic_load(&fs_stall))
        return;
    fi->keep_cache = 1;
    fuse_reply_open(req, fi);
}

static void fs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                    struct fuse_file_info *fi)
{
    static const char zeros[FS_RAM_SIZE];
    size_t left = (uint64_t)off < FS_RAM_SIZE ? FS_RAM_SIZE - (size_t)off : 0;

    if (atomic_load(&fs_stall))
        return;
    fuse_reply_buf(req, zeros, MIN(size, left));
}

static const struct fuse_lowlevel_ops fs_ops = {
    .lookup = fs_lookup, .getattr = fs_getattr, .open = fs_open, .read = fs_read,
};

static void *fs_loop(void *se)
{
    fuse_session_loop(se);
    return NULL;
}

static void expect_iotlb(struct raw *r, const char *what, uint64_t iova, const void *uaddr,
                         int want)
{
    int64_t t0 = g_get_monotonic_time();
    int e = raw_iotlb(r, VHOST_IOTLB_UPDATE, iova, FS_RAM_SIZE, uaddr, VHOST_ACCESS_RO);
    int64_t ms = (g_get_monotonic_time() - t0) / 1000;

    if (e == want && ms < 2000)
        ok("fusemem: %s -> %s in %" G_GINT64_FORMAT " ms", what, want ? errno_name(want) : "72",
           ms);
    else
        fail("fusemem: %s -> %s after %" G_GINT64_FORMAT " ms, expected %s at once", what,
             e ? errno_name(e) : "72", ms, want ? errno_name(want) : "72");
}

static int mode_fusemem(const char *node, const char *dir)
{
    char arg0[] = "hostile", arg1[] = "-o", arg2[] = "fsname=hostile,subtype=hostile";
    char *argv[] = { arg0, arg1, arg2, NULL };
    struct fuse_args args = FUSE_ARGS_INIT(3, argv);
    struct fuse_session *se = fuse_session_new(&args, &fs_ops, sizeof(fs_ops), NULL);
    pthread_t thread;

    if (!se || fuse_session_mount(se, dir) != 0)
        die("cannot serve a FUSE filesystem at %s", dir);
    if (pthread_create(&thread, NULL, fs_loop, se) != 0)
        die("pthread_create");
    g_autofree char *path = g_build_filename(dir, "ram", NULL);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        die("open %s: %s", path, strerror(errno));
    void *ram = mmap(NULL, FS_RAM_SIZE, PROT_READ, MAP_SHARED, fd, 0);
    if (ram == MAP_FAILED)
        die("mmap %s: %s", path, strerror(errno));
    close(fd); /* now, while the server answers: closing sends FLUSH (the mapping stays) */
    atomic_store(&fs_stall, true);
    ok("fusemem: %s mapped shared from our own FUSE server, which now answers nothing", path);

    struct raw r;
    raw_open(&r, node);
    /* at guest-physical 0 it would be guest RAM: refused, with the memoryBacking hint */
    expect_iotlb(&r, "IOTLB update of that memory at IOVA 0", 0, ram, EFAULT);
    /* elsewhere (a ROM would be there): accepted as unreachable, never opened */
    expect_iotlb(&r, "IOTLB update of that memory at IOVA 0x10000000", 0x10000000, ram, 0);
    uint64_t features = 0;
    expect_ioctl("fusemem", "GET_FEATURES afterwards", r.fd, VHOST_GET_FEATURES, &features, 0);
    close(r.fd);
    /* the kernel aborts our filesystem when this process exits (nothing waits on it: no
     * file of it is open); detach it now */
    umount2(dir, MNT_DETACH);
    fflush(stdout);
    _exit(failures ? 1 : 0);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s good|hold|open|stage|garbage|nonowner|bogus NODE [ARG]\n",
                argv[0]);
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char *mode = argv[1], *node = argv[2];
    if (g_str_equal(mode, "good"))
        return mode_good(node, argc > 3 ? (unsigned)atoi(argv[3]) : 256);
    if (g_str_equal(mode, "hold"))
        return mode_hold(node);
    if (g_str_equal(mode, "open"))
        return mode_open(node);
    if (g_str_equal(mode, "stage") && argc > 3)
        return mode_stage(node, argv[3]);
    if (g_str_equal(mode, "garbage") && argc > 3)
        return mode_garbage(node, argv[3]);
    if (g_str_equal(mode, "nonowner"))
        return mode_nonowner(node);
    if (g_str_equal(mode, "bogus"))
        return mode_bogus(node);
    if (g_str_equal(mode, "fusemem") && argc > 3)
        return mode_fusemem(node, argv[3]);
    fprintf(stderr, "%s: unknown mode %s\n", argv[0], mode);
    return 2;
}
