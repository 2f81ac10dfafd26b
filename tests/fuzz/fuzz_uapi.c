/* fuzz_uapi — hostile clients through the whole vhost-vdpa uAPI: uapi_ioctl/uapi_write on a
 * session over a live simulated device (a NIC with 2 pairs; a blk device in some runs),
 * with a fake peer and client memory (client_mem.h) of MEM_SIZE bytes at FAKE_UADDR.
 * The device's worker processes whatever rings the input builds: hostile rings reach it
 * the way a client's would.
 *
 * Input: [config] then operations [op][args...] until the input ends (missing bytes read
 * as 0). config % 4 == 3: blk device, else net. Operations (op % 11; "who" bit 0 picks
 * the caller, process A or B, bit 1 makes the argument address unwritable):
 *   0 table ioctl   [index][who][_IOC_SIZE argument bytes, for _IOC_WRITE commands]
 *   1 any ioctl     [cmd u32][who][up to 64 argument bytes, the rest zero]
 *   2 write         [len][who][len bytes]
 *   3 IOTLB message [who][version][type][iova page u16][pages][uaddr sel][perm]
 *                   (sel < 0xf0: page sel of client memory, past its end when sel is big;
 *                   0xf0..0xfe: unshareable memory; 0xff: a raw u64 follows)
 *   4 SET_OWNER     [who]
 *   5 queue setup   [queue][log2 num][desc page][avail/16][used/16][kick fd][call fd]
 *                   (by A: NUM, ADDR, KICK, CALL, ENABLE; avail and used are offsets
 *                   from desc, in 16-byte units)
 *   6 memory write  [offset/16 u16][len][len bytes] into client memory (rings, buffers)
 *   7 kick          [eventfd index]
 *   8 the session is freed and a new one opened (the client closed and reopened)
 *   9 start         [status] (by A: SET_FEATURES of all offered features, SET_STATUS)
 *  10 resize        [pages] the client shrinks or regrows the file behind its memory
 *                   (pages % 65): what the session mapped past the end must not kill the
 *                   device's worker (core/mem_guard.h)
 * Peer memory reads (GET/SET_CONFIG) are served from the input. The caller's fd numbers
 * 0..7 are eventfds the "client" holds (kicks write them), 8 is a pipe, 9 is refused
 * with EPERM, anything else is EBADF.
 * Checks: no crash, no hang; after each input the session is freed, and then the device
 * is reset, no client memory is mapped any more, and no fd is left open (count). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <glib.h>
#include <linux/vhost.h>
#include <linux/vhost_types.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "../unit/client_mem.h"
#include "backend/sim/sim.h"
#include "core/mem_guard.h"
#include "core/session.h"
#include "util/compat.h"
#include "vhost_vdpa/uapi.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MEM_SIZE (256u << 10)
#define FAKE_UADDR 0x7f1200000000ull
#define UNSHARED_UADDR 0x7f1300000000ull
#define PEER_BASE 0x7ffd00001000ull
#define TGID_A 4242
#define TGID_B 4343
#define N_EVENTFDS 8
#define FD_PIPE 8
#define FD_REFUSED 9
#define MAX_ARG 16384 /* _IOC_SIZE is at most 16383 */

/* Every command uapi.c dispatches (and a few it does not). */
static const unsigned table[] = {
    VHOST_GET_FEATURES, VHOST_SET_FEATURES, VHOST_GET_BACKEND_FEATURES,
    VHOST_SET_BACKEND_FEATURES, VHOST_SET_OWNER, VHOST_SET_LOG_BASE, VHOST_SET_LOG_FD,
    VHOST_SET_MEM_TABLE, VHOST_SET_VRING_NUM, VHOST_SET_VRING_ADDR, VHOST_SET_VRING_BASE,
    VHOST_GET_VRING_BASE, VHOST_SET_VRING_KICK, VHOST_SET_VRING_CALL, VHOST_SET_VRING_ERR,
    VHOST_SET_VRING_BUSYLOOP_TIMEOUT, VHOST_GET_VRING_BUSYLOOP_TIMEOUT,
    VHOST_VDPA_GET_DEVICE_ID, VHOST_VDPA_GET_STATUS, VHOST_VDPA_SET_STATUS,
    VHOST_VDPA_GET_CONFIG, VHOST_VDPA_SET_CONFIG, VHOST_VDPA_SET_VRING_ENABLE,
    VHOST_VDPA_GET_VRING_NUM, VHOST_VDPA_SET_CONFIG_CALL, VHOST_VDPA_GET_IOVA_RANGE,
    VHOST_VDPA_GET_CONFIG_SIZE, VHOST_VDPA_GET_VQS_COUNT, VHOST_VDPA_GET_GROUP_NUM,
    VHOST_VDPA_GET_AS_NUM, VHOST_VDPA_GET_VRING_GROUP, VHOST_VDPA_SET_GROUP_ASID,
    VHOST_VDPA_SUSPEND, VHOST_VDPA_RESUME, VHOST_RESET_OWNER, VHOST_GET_VRING_ENDIAN,
};

/* One input being run. */
struct run {
    const uint8_t *p;
    size_t left;
    struct vdpa_device *dev;
    struct session *s;
    int efd[N_EVENTFDS]; /* the client's eventfds */
    int pipe[2];
};

static struct vdpa_device *net_dev, *blk_dev;
static struct client_mem *mem;
static bool trace; /* FUZZ_UAPI_TRACE=1: print every request's outcome (to check seeds) */

static void die(const char *what)
{
    fprintf(stderr, "fuzz_uapi: %s\n", what);
    abort();
}

/* ------------------------------------------------------------------ input */

static uint8_t u8(struct run *r)
{
    if (!r->left)
        return 0;
    r->left--;
    return *r->p++;
}

static void take(struct run *r, void *buf, size_t n)
{
    size_t k = MIN(n, r->left);

    memcpy(buf, r->p, k);
    memset((uint8_t *)buf + k, 0, n - k);
    r->p += k;
    r->left -= k;
}

static uint16_t u16(struct run *r)
{
    uint16_t v;

    take(r, &v, sizeof(v));
    return v;
}

static uint64_t u64(struct run *r)
{
    uint64_t v;

    take(r, &v, sizeof(v));
    return v;
}

/* ------------------------------------------------------------------ the fake peer */

static int peer_read(void *opaque, pid_t tid, uint64_t addr, void *buf, size_t len)
{
    struct run *r = opaque;

    /* the caller's memory holds whatever the input says, if the input has that much */
    if (addr & 1 || len > r->left)
        return -EFAULT;
    take(r, buf, len);
    return 0;
}

static int peer_write(void *opaque, pid_t tid, uint64_t addr, const void *buf, size_t len)
{
    return addr & 1 ? -EFAULT : 0;
}

static int peer_take_fd(void *opaque, pid_t tgid, int fd)
{
    struct run *r = opaque;

    if (fd >= 0 && fd < N_EVENTFDS)
        return dup(r->efd[fd]);
    if (fd == FD_PIPE)
        return dup(r->pipe[0]);
    return fd == FD_REFUSED ? -EPERM : -EBADF;
}

static const struct uapi_peer_ops peer_ops = {
    .read_mem = peer_read, .write_mem = peer_write, .take_fd = peer_take_fd,
};

/* ------------------------------------------------------------------ requests */

static pid_t who_tgid(uint8_t who)
{
    return who & 1 ? TGID_B : TGID_A;
}

static void ioctl_as(struct run *r, uint8_t who, unsigned cmd, const void *arg)
{
    struct uapi_peer peer = { &peer_ops, r };
    struct uapi_caller caller = {
        .tid = who_tgid(who), .tgid = who_tgid(who), .arg = PEER_BASE + ((who >> 1) & 1),
    };
    size_t size = _IOC_SIZE(cmd);
    bool w = _IOC_DIR(cmd) & _IOC_WRITE, rd = _IOC_DIR(cmd) & _IOC_READ;
    static uint8_t out[MAX_ARG];
    GError *err = NULL;

    int ret = uapi_ioctl(r->s, &caller, &peer, cmd, w ? arg : NULL, w ? size : 0,
                         rd ? out : NULL, rd ? size : 0, &err);
    if (trace)
        fprintf(stderr, "ioctl %s (0x%08x) by %d: %d %s\n", uapi_ioctl_name(cmd) ?: "?", cmd,
                (int)caller.tgid, ret, err ? err->message : "");
    if (ret < 0 && (!err || err->code != -ret))
        die("an ioctl failed without an error of the same errno");
    g_clear_error(&err);
}

static void write_as(struct run *r, uint8_t who, const void *buf, size_t len)
{
    struct uapi_caller caller = { .tid = who_tgid(who), .tgid = who_tgid(who) };
    GError *err = NULL;

    ssize_t n = uapi_write(r->s, &caller, buf, len, &err);
    if (trace)
        fprintf(stderr, "write %zu by %d: %zd %s\n", len, (int)caller.tgid, n,
                err ? err->message : "");
    if (n < 0 && !err)
        die("a write failed without an error");
    if (n > (ssize_t)len)
        die("a write answered more bytes than were written (FUSE replies EIO)");
    if (n >= 0 && n != (ssize_t)MIN(len, 72u))
        die("an accepted IOTLB message did not answer min(len, 72)");
    g_clear_error(&err);
}

static void op_table_ioctl(struct run *r)
{
    static uint8_t arg[MAX_ARG];
    unsigned cmd = table[u8(r) % G_N_ELEMENTS(table)];
    uint8_t who = u8(r);

    if (_IOC_DIR(cmd) & _IOC_WRITE)
        take(r, arg, _IOC_SIZE(cmd));
    ioctl_as(r, who, cmd, arg);
}

static void op_any_ioctl(struct run *r)
{
    static uint8_t arg[MAX_ARG];
    unsigned cmd;

    take(r, &cmd, sizeof(cmd));
    uint8_t who = u8(r);
    memset(arg, 0, _IOC_SIZE(cmd));
    take(r, arg, MIN(_IOC_SIZE(cmd), 64u));
    ioctl_as(r, who, cmd, arg);
}

static void op_write(struct run *r)
{
    uint8_t buf[256];
    uint8_t len = u8(r), who = u8(r);

    take(r, buf, len);
    write_as(r, who, buf, len);
}

static void op_iotlb(struct run *r)
{
    uint8_t buf[72] = { 0 };
    uint8_t who = u8(r);
    uint32_t version = u8(r) % 4; /* 1 and 2 are valid */
    uint8_t type = u8(r) % 8;
    uint64_t iova = (uint64_t)u16(r) * 4096;
    uint64_t size = (uint64_t)u8(r) * 4096;
    uint8_t sel = u8(r);
    uint64_t uaddr = sel < 0xf0 ? FAKE_UADDR + (uint64_t)sel * 4096
                   : sel < 0xff ? UNSHARED_UADDR + (uint64_t)(sel - 0xf0) * 4096 : u64(r);
    struct vhost_iotlb_msg m = {
        .iova = iova, .size = size, .uaddr = uaddr, .perm = u8(r) % 5, .type = type,
    };

    memcpy(buf, &version, 4);
    memcpy(buf + 8, &m, sizeof(m));
    write_as(r, who, buf, sizeof(buf));
}

static void op_queue_setup(struct run *r)
{
    unsigned q = u8(r) % 8;
    struct vhost_vring_state num = { .index = q, .num = 1u << (u8(r) % 9) };
    uint64_t desc = (uint64_t)u8(r) * 4096;
    uint64_t avail = desc + (uint64_t)u8(r) * 16;
    struct vhost_vring_addr addr = {
        .index = q, .desc_user_addr = desc, .avail_user_addr = avail,
        .used_user_addr = desc + (uint64_t)u8(r) * 16,
    };
    struct vhost_vring_file kick = { .index = q, .fd = u8(r) % 12 };
    struct vhost_vring_file call = { .index = q, .fd = u8(r) % 12 };
    struct vhost_vring_state enable = { .index = q, .num = 1 };

    ioctl_as(r, 0, VHOST_SET_VRING_NUM, &num);
    ioctl_as(r, 0, VHOST_SET_VRING_ADDR, &addr);
    ioctl_as(r, 0, VHOST_SET_VRING_KICK, &kick);
    ioctl_as(r, 0, VHOST_SET_VRING_CALL, &call);
    ioctl_as(r, 0, VHOST_VDPA_SET_VRING_ENABLE, &enable);
}

/* Bytes of client memory the file still has (op 10 shrinks it). */
static uint64_t mem_now = MEM_SIZE;

static void op_mem_write(struct run *r)
{
    uint64_t off = (uint64_t)u16(r) * 16 % MEM_SIZE;
    uint8_t len = u8(r);
    uint8_t buf[256];

    take(r, buf, len);
    if (off < mem_now) /* the client writes only what it still has */
        memcpy(client_mem_ptr(mem, off), buf, MIN((uint64_t)len, mem_now - off));
}

static void resize(uint64_t size)
{
    if (ftruncate(mem->memfd, (off_t)size) < 0)
        die("ftruncate");
    mem_now = size;
}

static void op_kick(struct run *r)
{
    (void)eventfd_write(r->efd[u8(r) % N_EVENTFDS], 1);
    sched_yield(); /* let the worker look at it now and then */
    if (trace) {
        g_usleep(20000);
        fprintf(stderr, "kick: status 0x%x;", session_get_status(r->s));
        for (unsigned i = 0; i < session_vq_count(r->s); i++) {
            struct vdpa_vq_stats st;
            uint64_t done = 0;
            if (r->dev->ops->get_vq_stats(r->dev, i, &st, NULL) == 0 &&
                vdpa_vq_stats_get(&st, "completed_desc", &done))
                fprintf(stderr, " q%u completed %" PRIu64, i, done);
        }
        fprintf(stderr, "\n");
    }
}

static void open_session(struct run *r)
{
    GError *err = NULL;

    r->s = session_new(r->dev, TGID_A, &client_mem_ops, mem, &err);
    if (!r->s)
        die(err->message);
}

static void op_start(struct run *r)
{
    uint64_t features = session_get_features(r->s);
    uint8_t status = u8(r);

    ioctl_as(r, 0, VHOST_SET_FEATURES, &features);
    ioctl_as(r, 0, VHOST_VDPA_SET_STATUS, &status);
}

/* ------------------------------------------------------------------ driver */

static void quiet(const gchar *domain, GLogLevelFlags level, const gchar *msg, gpointer data)
{
}

static void setup_once(void)
{
    struct sim_net_config ncfg = { .name = "fz-net", .queue_pairs = 2,
                                   .mac = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 } };
    struct sim_blk_config bcfg = { .name = "fz-blk", .size_bytes = 1 << 20, .queues = 1 };
    GError *err = NULL;

    /* hostile input makes the device log every broken queue: keep the fuzzer fast */
    g_log_set_handler("vdpad", G_LOG_LEVEL_WARNING | G_LOG_LEVEL_MESSAGE | G_LOG_LEVEL_INFO |
                      G_LOG_LEVEL_DEBUG, quiet, NULL);
    net_dev = sim_net_new(&ncfg, &err);
    blk_dev = net_dev ? sim_blk_new(&bcfg, &err) : NULL;
    if (!blk_dev)
        die(err->message);
    mem = client_mem_new(MEM_SIZE, FAKE_UADDR);
    if (!mem)
        die("client memory");
    mem->unshared_lo = UNSHARED_UADDR;
    mem->unshared_hi = UNSHARED_UADDR + (16u << 12);
    trace = getenv("FUZZ_UAPI_TRACE") != NULL;
    if (trace)
        g_log_set_handler("vdpad", G_LOG_LEVEL_WARNING | G_LOG_LEVEL_MESSAGE | G_LOG_LEVEL_INFO,
                          g_log_default_handler, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct run r = { .p = data, .left = size };

    if (!mem)
        setup_once();
    /* counted per input: between inputs libFuzzer may open fds of its own (the
     * sanitizer's symbolizer) */
    unsigned fds_before = count_open_fds();
    unsigned guarded_before = mem_guard_ranges();
    r.dev = u8(&r) % 4 == 3 ? blk_dev : net_dev;
    for (unsigned i = 0; i < N_EVENTFDS; i++)
        if ((r.efd[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0)
            die("eventfd");
    if (pipe2(r.pipe, O_CLOEXEC) < 0)
        die("pipe");
    open_session(&r);

    while (r.left) {
        switch (u8(&r) % 11) {
        case 0: op_table_ioctl(&r); break;
        case 1: op_any_ioctl(&r); break;
        case 2: op_write(&r); break;
        case 3: op_iotlb(&r); break;
        case 4: {
            uint8_t who = u8(&r);
            ioctl_as(&r, who, VHOST_SET_OWNER, NULL);
            break;
        }
        case 5: op_queue_setup(&r); break;
        case 6: op_mem_write(&r); break;
        case 7: op_kick(&r); break;
        case 8:
            session_free(r.s);
            open_session(&r);
            break;
        case 9: op_start(&r); break;
        case 10: resize((uint64_t)(u8(&r) % 65) * 4096); break;
        }
    }

    session_free(r.s);
    resize(MEM_SIZE);
    /* the client is gone: nothing of it may be left in the device or in this process */
    if (r.dev->ops->get_status(r.dev) != 0)
        die("the device was not reset when the session ended");
    if (mem->live_bytes != 0)
        die("client memory still mapped after the session ended");
    if (mem_guard_ranges() != guarded_before)
        die("client memory still guarded after the session ended");
    for (unsigned i = 0; i < N_EVENTFDS; i++)
        close(r.efd[i]);
    close(r.pipe[0]);
    close(r.pipe[1]);
    if (count_open_fds() != fds_before) {
        fprintf(stderr, "fuzz_uapi: %u fds open, %u before\n", count_open_fds(), fds_before);
        abort();
    }
    return 0;
}
