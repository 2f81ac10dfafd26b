/* Unit tests: the session (src/core/session.c) against the kernel's vhost-vdpa semantics
 * (notes/uapi-research.md, ADRs 0006 and 0007), over a live simulated NIC. The tests play
 * the client through the session API (client_net.h): memfd memory mapped through the
 * session's mem_ops, rings through the driver side of the split-ring library. */
#include "config.h"

#include <errno.h>
#include <linux/vhost_types.h>
#include <linux/virtio_config.h>
#include <linux/virtio_net.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <cmocka.h>

#include "backend/sim/sim.h"
#include "client_mem.h"
#include "client_net.h"
#include "core/mem_guard.h"
#include "core/session.h"
#include "util/fd.h"

#define TIMEOUT_MS 2000
#define MEM_SIZE (1u << 20)
#define IOVA 0x40000000ull /* where the tests map client memory (away from GPA 0 / 1 MiB) */
#define NUM 64

static const uint8_t dev_mac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };

struct fixture {
    unsigned fds_at_start;
    struct vdpa_device *dev;
    struct client_mem *mem;
    struct session *s;
    struct client_net c;
};

static int setup(void **state)
{
    struct fixture *f = g_new0(struct fixture, 1);
    g_autoptr(GError) err = NULL;
    struct sim_net_config cfg = { .name = "s0", .queue_pairs = 1 };

    f->fds_at_start = count_open_fds();
    memcpy(cfg.mac, dev_mac, 6);
    f->dev = sim_net_new(&cfg, &err);
    assert_non_null(f->dev);
    f->mem = client_mem_new(MEM_SIZE, 0);
    assert_non_null(f->mem);
    f->s = session_new(f->dev, getpid(), &client_mem_ops, f->mem, &err);
    if (!f->s)
        fail_msg("session_new: %s", err->message);
    client_net_init(&f->c, f->s, f->mem, IOVA, NUM);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    client_net_destroy(&f->c);
    session_free(f->s);
    /* everything the session mapped is unmapped, every fd it took is closed */
    assert_int_equal(f->mem->live_bytes, 0);
    assert_int_equal(mem_guard_ranges(), 0);
    client_mem_free(f->mem);
    vdpa_device_free(f->dev);
    assert_int_equal(count_open_fds(), f->fds_at_start);
    g_free(f);
    return 0;
}

/* ------------------------------------------------------------------ helpers */

#define ASSERT_FAILS(errnum, call)                                                      \
    do {                                                                                \
        g_autoptr(GError) err_ = NULL;                                                  \
        GError **error = &err_;                                                         \
        int ret_ = (call);                                                              \
        if (ret_ != -(errnum))                                                          \
            fail_msg("%s: returned %d (%s), expected -%s", #call, ret_,                 \
                     err_ ? err_->message : "no error", #errnum);                       \
        assert_non_null(err_);                                                          \
        assert_int_equal(err_->code, (errnum));                                         \
    } while (0)

#define ASSERT_OK(call)                                                                 \
    do {                                                                                \
        g_autoptr(GError) err_ = NULL;                                                  \
        GError **error = &err_;                                                         \
        int ret_ = (call);                                                              \
        if (ret_ != 0)                                                                  \
            fail_msg("%s: returned %d: %s", #call, ret_, err_ ? err_->message : "?");   \
    } while (0)

static void map_and_start(struct fixture *f)
{
    ASSERT_OK(client_net_map(&f->c, error));
    ASSERT_OK(client_net_start(&f->c, true, error));
}

/* Every one of n frames comes back intact. */
static void traffic_ok(struct fixture *f, unsigned n)
{
    g_autoptr(GError) err = NULL;
    int got = client_net_exchange(&f->c, n, TIMEOUT_MS, &err);

    if (got < 0)
        fail_msg("exchange: %s", err->message);
    assert_int_equal(got, n);
}

/* Waits until the device reports DEVICE_NEEDS_RESET (a queue was stopped). */
static bool wait_needs_reset(struct fixture *f, unsigned ms)
{
    int64_t deadline = g_get_monotonic_time() + ms * 1000;

    while (g_get_monotonic_time() < deadline) {
        if (session_get_status(f->s) & VIRTIO_CONFIG_S_NEEDS_RESET)
            return true;
        g_usleep(1000);
    }
    return false;
}

/* Posts one TX chain with the given IOVA and kicks. */
static void post_tx_at(struct fixture *f, uint64_t iova)
{
    struct vring_buf b = { iova, 12 + 64 };

    assert_int_equal(vring_drv_add(&f->c.q[CLIENT_NET_TX].vr, &b, 1, 0, (void *)1), 0);
    vring_drv_publish(&f->c.q[CLIENT_NET_TX].vr);
    assert_int_equal(eventfd_write(f->c.q[CLIENT_NET_TX].kick_fd, 1), 0);
}

static uint16_t vring_base(struct fixture *f, unsigned idx)
{
    uint16_t base = 0xdead;

    ASSERT_OK(session_get_vring_base(f->s, idx, &base, error));
    return base;
}

/* ------------------------------------------------------------------ owner, features */

static void test_second_set_owner_is_ebusy(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(session_owner(f->s), 0);
    /* pid 0: FUSE's answer for a caller outside our pid namespace */
    ASSERT_FAILS(EPERM, session_set_owner(f->s, 0, error));
    assert_int_equal(session_owner(f->s), 0);
    ASSERT_OK(session_set_owner(f->s, 100, error));
    assert_int_equal(session_owner(f->s), 100);
    ASSERT_FAILS(EBUSY, session_set_owner(f->s, 100, error));
    ASSERT_FAILS(EBUSY, session_set_owner(f->s, 200, error));
    assert_int_equal(session_owner(f->s), 100);
}

static void test_set_features_after_features_ok_is_ebusy(void **state)
{
    struct fixture *f = *state;
    uint64_t feat = f->c.features;

    ASSERT_OK(session_set_status(f->s, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER,
                                 error));
    ASSERT_OK(session_set_features(f->s, feat, error));
    ASSERT_OK(session_set_features(f->s, feat, error)); /* again, before FEATURES_OK */
    ASSERT_OK(session_set_status(f->s, 0x3 | VIRTIO_CONFIG_S_FEATURES_OK, error));
    /* the negotiated set again, with or without VHOST_F_LOG_ALL, is how QEMU turns dirty
     * logging on and off (and it aborts if that fails); any other change is EBUSY */
    ASSERT_OK(session_set_features(f->s, feat, error));
    ASSERT_OK(session_set_features(f->s, feat | (1ull << VHOST_F_LOG_ALL), error));
    assert_true(session_logging(f->s));
    ASSERT_OK(session_set_features(f->s, feat, error));
    assert_false(session_logging(f->s));
    ASSERT_FAILS(EBUSY, session_set_features(f->s, feat & ~(1ull << VIRTIO_NET_F_MAC), error));
    /* after a reset, features may be set again */
    ASSERT_OK(session_set_status(f->s, 0, error));
    ASSERT_OK(session_set_features(f->s, feat, error));
}

static void test_features_the_device_refuses_are_einval(void **state)
{
    struct fixture *f = *state;
    uint64_t offered = session_get_features(f->s);

    assert_true(offered & (1ull << VIRTIO_F_VERSION_1));
    ASSERT_FAILS(EINVAL, session_set_features(f->s, 1ull << 60, error));
    ASSERT_FAILS(EINVAL, session_set_features(f->s, offered | (1ull << 55), error));
    ASSERT_OK(session_set_features(f->s, offered, error));
}

/* ------------------------------------------------------------------ status, config */

static void test_config_range_errors_are_einval(void **state)
{
    struct fixture *f = *state;
    uint32_t size = (uint32_t)f->dev->ops->get_config_size(f->dev);
    uint8_t buf[64] = { 0 }, mac[6];

    assert_true(size > 6 && size <= sizeof(buf));
    static const struct { uint32_t off, len; } bad[] = {
        { 0, 0 }, { 5, 0 }, { 1, UINT32_MAX }, { UINT32_MAX, 1 }, { UINT32_MAX, UINT32_MAX },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        ASSERT_FAILS(EINVAL, session_get_config(f->s, bad[i].off, bad[i].len, buf, error));
        ASSERT_FAILS(EINVAL, session_set_config(f->s, bad[i].off, bad[i].len, buf, error));
    }
    ASSERT_FAILS(EINVAL, session_get_config(f->s, size, 1, buf, error));
    ASSERT_FAILS(EINVAL, session_get_config(f->s, size + 1, 1, buf, error));
    ASSERT_FAILS(EINVAL, session_get_config(f->s, 1, size, buf, error));
    ASSERT_FAILS(EINVAL, session_set_config(f->s, 0, size + 1, buf, error));
    /* the whole space, and the MAC */
    ASSERT_OK(session_get_config(f->s, 0, size, buf, error));
    ASSERT_OK(session_get_config(f->s, 0, 6, mac, error));
    assert_memory_equal(mac, dev_mac, 6);
    ASSERT_OK(session_get_config(f->s, size - 1, 1, buf, error));
}

static void test_clearing_status_bits_is_einval_rewriting_them_is_not(void **state)
{
    struct fixture *f = *state;

    ASSERT_OK(session_set_status(f->s, 0x3, error));
    ASSERT_OK(session_set_status(f->s, 0x3, error));
    ASSERT_FAILS(EINVAL, session_set_status(f->s, 0x1, error));
    ASSERT_FAILS(EINVAL, session_set_status(f->s, 0x2, error));
    ASSERT_FAILS(EINVAL, session_set_status(f->s, 0x8, error));
    assert_int_equal(session_get_status(f->s), 0x3);
    ASSERT_OK(client_net_map(&f->c, error));
    ASSERT_OK(client_net_start(&f->c, true, error));
    assert_int_equal(session_get_status(f->s), 0xf);
    /* QEMU's add_status rewrites FEATURES_OK while DRIVER_OK: the same value is fine */
    ASSERT_OK(session_set_status(f->s, 0xf, error));
    ASSERT_FAILS(EINVAL, session_set_status(f->s, 0x7, error));
    traffic_ok(f, 4);
    ASSERT_OK(session_set_status(f->s, 0, error));
    assert_int_equal(session_get_status(f->s), 0);
}

/* ------------------------------------------------------------------ virtqueues */

static void test_vring_num_not_a_power_of_two_up_to_65535_is_einval(void **state)
{
    struct fixture *f = *state;
    static const unsigned bad[] = { 0, 3, 100, 0x10000, 0x20000, UINT_MAX };

    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++)
        ASSERT_FAILS(EINVAL, session_set_vring_num(f->s, 0, bad[i], error));
    ASSERT_OK(session_set_vring_num(f->s, 0, 64, error));
    ASSERT_OK(session_set_vring_num(f->s, 0, 1, error));
}

static void test_queue_index_past_the_count_is_enobufs(void **state)
{
    struct fixture *f = *state;
    unsigned nvqs = session_vq_count(f->s);
    struct session_vq_info info;
    uint16_t base;

    assert_int_equal(nvqs, 3); /* rx, tx, control */
    unsigned fds = count_open_fds();
    for (unsigned idx = nvqs; idx < UINT_MAX / 2; idx = idx * 2 + 1000) {
        int efd = eventfd(0, EFD_CLOEXEC);

        ASSERT_FAILS(ENOBUFS, session_set_vring_num(f->s, idx, 64, error));
        ASSERT_FAILS(ENOBUFS, session_set_vring_addr(f->s, idx, 0, 0, 0, error));
        ASSERT_FAILS(ENOBUFS, session_set_vring_base(f->s, idx, 0, error));
        ASSERT_FAILS(ENOBUFS, session_get_vring_base(f->s, idx, &base, error));
        /* the fd is the session's even when refused: it must be closed */
        ASSERT_FAILS(ENOBUFS, session_set_vring_kick(f->s, idx, dup(efd), error));
        ASSERT_FAILS(ENOBUFS, session_set_vring_call(f->s, idx, dup(efd), error));
        ASSERT_FAILS(ENOBUFS, session_set_vring_enable(f->s, idx, true, error));
        assert_int_equal(session_set_vring_busyloop(f->s, idx, 5), -ENOBUFS);
        assert_int_equal(session_get_vq_info(f->s, idx, &info), -ENOBUFS);
        close(efd);
    }
    assert_int_equal(count_open_fds(), fds);
}

static void test_vring_addr_misaligned_is_einval(void **state)
{
    struct fixture *f = *state;

    ASSERT_FAILS(EINVAL, session_set_vring_addr(f->s, 0, 0x1000, 0x2001, 0x3000, error));
    ASSERT_FAILS(EINVAL, session_set_vring_addr(f->s, 0, 0x1000, 0x2000, 0x3002, error));
    ASSERT_FAILS(EINVAL, session_set_vring_base(f->s, 0, 0x10000, error));
}

static void test_running_queue_refusals_are_einval_same_address_is_accepted(void **state)
{
    struct fixture *f = *state;
    struct session_vq_info vi;

    map_and_start(f);
    assert_int_equal(session_get_vq_info(f->s, CLIENT_NET_TX, &vi), 0);
    /* QEMU re-sends the same addresses to toggle dirty logging on a running queue */
    ASSERT_OK(session_set_vring_addr(f->s, CLIENT_NET_TX, vi.desc, vi.avail, vi.used, error));
    traffic_ok(f, 8);
    /* what the device refuses on a running queue is EINVAL, as the kernel reports it,
     * and the error says the same (ASSERT_FAILS checks the error's code) */
    ASSERT_FAILS(EINVAL, session_set_vring_addr(f->s, CLIENT_NET_TX, vi.desc + 0x1000,
                                                vi.avail, vi.used, error));
    ASSERT_FAILS(EINVAL, session_set_vring_base(f->s, CLIENT_NET_TX, 3, error));
    traffic_ok(f, 8);
}

static void test_replaced_eventfds_are_closed(void **state)
{
    struct fixture *f = *state;
    unsigned fds = count_open_fds();

    for (int i = 0; i < 5; i++) {
        ASSERT_OK(session_set_vring_kick(f->s, 0, eventfd(0, EFD_CLOEXEC), error));
        ASSERT_OK(session_set_vring_call(f->s, 0, eventfd(0, EFD_CLOEXEC), error));
        ASSERT_OK(session_set_config_call(f->s, eventfd(0, EFD_CLOEXEC), error));
    }
    /* the session holds one of each, the device one duplicate of each */
    assert_int_equal(count_open_fds(), fds + 6);
    ASSERT_OK(session_set_vring_kick(f->s, 0, -1, error));
    ASSERT_OK(session_set_vring_call(f->s, 0, -1, error));
    ASSERT_OK(session_set_config_call(f->s, -1, error));
    assert_int_equal(count_open_fds(), fds);
}

/* ------------------------------------------------------------------ IOTLB */

static void test_iotlb_overlap_is_eexist_and_leaves_the_map_unchanged(void **state)
{
    struct fixture *f = *state;
    uint64_t ua = client_mem_uaddr(f->mem, 0);

    ASSERT_OK(client_net_map(&f->c, error));
    uint64_t maps = f->mem->maps, bytes = session_mapped_bytes(f->s);
    assert_int_equal(bytes, MEM_SIZE);
    ASSERT_FAILS(EEXIST, session_iotlb_update(f->s, IOVA, 0x1000, ua, VHOST_ACCESS_RW,
                                              getpid(), error));
    ASSERT_FAILS(EEXIST, session_iotlb_update(f->s, IOVA + MEM_SIZE - 0x1000, 0x2000, ua,
                                              VHOST_ACCESS_RW, getpid(), error));
    ASSERT_FAILS(EEXIST, session_iotlb_update(f->s, IOVA - 0x1000, 0x2000, ua,
                                              VHOST_ACCESS_RW, getpid(), error));
    ASSERT_FAILS(EEXIST, session_iotlb_update(f->s, IOVA - 0x1000, MEM_SIZE + 0x2000, ua,
                                              VHOST_ACCESS_RW, getpid(), error));
    /* nothing was mapped for the refused updates, and the old mapping still serves */
    assert_int_equal(f->mem->maps, maps);
    assert_int_equal(session_mapped_bytes(f->s), bytes);
    ASSERT_OK(client_net_start(&f->c, true, error));
    traffic_ok(f, 8);
    /* right next to it is fine */
    ASSERT_OK(session_iotlb_update(f->s, IOVA + MEM_SIZE, 0x1000, ua, VHOST_ACCESS_RO,
                                   getpid(), error));
    assert_int_equal(session_mapped_bytes(f->s), MEM_SIZE + 0x1000);
}

static struct vdpa_iova_range narrow_range(struct vdpa_device *dev)
{
    return (struct vdpa_iova_range){ .first = 0x1000, .last = 0xffffffff };
}

static void test_iotlb_outside_the_iova_range_is_einval(void **state)
{
    struct fixture *f = *state;
    uint64_t ua = client_mem_uaddr(f->mem, 0);
    pid_t me = getpid();

    /* ranges that wrap or are empty, against the simulator's whole 64-bit range */
    ASSERT_FAILS(EINVAL, session_iotlb_update(f->s, UINT64_MAX - 0xfff, 0x2000, ua, 3, me, error));
    ASSERT_FAILS(EINVAL, session_iotlb_update(f->s, 0x1000, 0, ua, 3, me, error));
    ASSERT_FAILS(EINVAL, session_iotlb_update(f->s, 0x1000, UINT64_MAX, ua, 3, me, error));
    /* bad permissions */
    ASSERT_FAILS(EINVAL, session_iotlb_update(f->s, 0x1000, 0x1000, ua, 0, me, error));
    ASSERT_FAILS(EINVAL, session_iotlb_update(f->s, 0x1000, 0x1000, ua, 4, me, error));

    /* a device with a narrower range (as GET_IOVA_RANGE reports it) */
    struct vdpa_device_ops narrow = *f->dev->ops;
    const struct vdpa_device_ops *saved = f->dev->ops;
    narrow.get_iova_range = narrow_range;
    f->dev->ops = &narrow;
    ASSERT_FAILS(EINVAL, session_iotlb_update(f->s, 0, 0x1000, ua, 3, me, error));
    ASSERT_FAILS(EINVAL, session_iotlb_update(f->s, 0xfffff000, 0x2000, ua, 3, me, error));
    ASSERT_FAILS(EINVAL, session_iotlb_update(f->s, 0x100000000ull, 0x1000, ua, 3, me, error));
    ASSERT_OK(session_iotlb_update(f->s, 0x1000, 0x1000, ua, 3, me, error));
    /* the top of the range is the relay's shadow window (ADR 0008) */
    ASSERT_FAILS(EINVAL, session_iotlb_update(f->s, 0xfffff000, 0x1000, ua, 3, me, error));
    ASSERT_OK(session_iotlb_update(f->s, 0xdffff000, 0x1000, ua, 3, me, error));
    f->dev->ops = saved;
    assert_int_equal(session_mapped_bytes(f->s), 0x2000);
    assert_int_equal(f->mem->maps, 2);
}

static void test_partial_invalidation_splits_and_the_rest_stays_reachable(void **state)
{
    struct fixture *f = *state;
    /* the RX ring lies below the hole, the TX ring and all buffers above it */
    const uint64_t hole = 0x2000;

    assert_true(vring_desc_bytes(NUM) + vring_avail_bytes(NUM) + vring_used_bytes(NUM) + 4 <=
                hole);
    map_and_start(f);
    traffic_ok(f, 8);
    ASSERT_OK(session_iotlb_invalidate(f->s, IOVA + hole, 0x1000, error));
    assert_int_equal(session_mapped_bytes(f->s), MEM_SIZE - 0x1000);
    assert_int_equal(f->mem->live_bytes, MEM_SIZE - 0x1000);
    /* both remaining parts serve the running device */
    traffic_ok(f, 8);
    traffic_ok(f, 32);
    assert_int_equal(session_get_status(f->s) & VIRTIO_CONFIG_S_NEEDS_RESET, 0);
    /* invalidating the hole again, or a range around it, changes nothing else */
    ASSERT_OK(session_iotlb_invalidate(f->s, IOVA + hole, 0x1000, error));
    assert_int_equal(session_mapped_bytes(f->s), MEM_SIZE - 0x1000);
    /* the hole itself is gone for the device: a buffer there stops the queue */
    post_tx_at(f, IOVA + hole);
    assert_true(wait_needs_reset(f, TIMEOUT_MS));
    /* the parts are separate entries: a reset, then the same rings, work again */
    ASSERT_OK(session_set_status(f->s, 0, error));
    ASSERT_OK(client_net_start(&f->c, false, error));
    traffic_ok(f, 8);
}

static void test_iotlb_works_in_whole_pages(void **state)
{
    struct fixture *f = *state;
    uint64_t ua = client_mem_uaddr(f->mem, 0);

    ASSERT_FAILS(EINVAL, session_iotlb_update(f->s, IOVA + 0x800, 0x1000, ua, 3, getpid(), error));
    ASSERT_FAILS(EINVAL, session_iotlb_update(f->s, IOVA, 0x1800, ua, 3, getpid(), error));
    ASSERT_FAILS(EINVAL, session_iotlb_update(f->s, IOVA, 0x1000, ua + 8, 3, getpid(), error));
    assert_int_equal(f->mem->maps, 0);
    ASSERT_OK(client_net_map(&f->c, error));
    /* a range inside one page takes that page; one across a page boundary, both pages */
    ASSERT_OK(session_iotlb_invalidate(f->s, IOVA + 0x20800, 0x10, error));
    assert_int_equal(session_mapped_bytes(f->s), MEM_SIZE - 0x1000);
    ASSERT_OK(session_iotlb_batch_begin(f->s, error));
    ASSERT_OK(session_iotlb_invalidate(f->s, IOVA + 0x40ff0, 0x20, error));
    ASSERT_OK(session_iotlb_batch_end(f->s, error));
    assert_int_equal(session_mapped_bytes(f->s), MEM_SIZE - 0x3000);
    assert_int_equal(f->mem->live_bytes, MEM_SIZE - 0x3000);
    /* the pages around are still the device's */
    ASSERT_OK(client_net_start(&f->c, true, error));
    traffic_ok(f, 8);
}

static void test_invalidate_everything_on_an_empty_table_succeeds(void **state)
{
    struct fixture *f = *state;

    /* DPDK starts every memory table with INVALIDATE(0, SIZE_MAX) */
    ASSERT_OK(session_iotlb_batch_begin(f->s, error));
    ASSERT_OK(session_iotlb_invalidate(f->s, 0, UINT64_MAX, error));
    ASSERT_OK(session_iotlb_batch_end(f->s, error));
    ASSERT_OK(client_net_map(&f->c, error));
    ASSERT_OK(session_iotlb_invalidate(f->s, 0, UINT64_MAX, error));
    assert_int_equal(session_mapped_bytes(f->s), 0);
    assert_int_equal(f->mem->live_bytes, 0);
    assert_int_equal(f->mem->unmaps, 1);
    /* an empty range removes nothing */
    ASSERT_OK(client_net_map(&f->c, error));
    ASSERT_OK(session_iotlb_invalidate(f->s, IOVA, 0, error));
    assert_int_equal(session_mapped_bytes(f->s), MEM_SIZE);
}

static void test_iotlb_batch_is_applied_at_batch_end(void **state)
{
    struct fixture *f = *state;

    ASSERT_OK(session_iotlb_batch_end(f->s, error)); /* without begin: nothing to end */
    ASSERT_OK(session_iotlb_batch_begin(f->s, error));
    ASSERT_OK(session_iotlb_batch_begin(f->s, error)); /* nested: still one batch */
    ASSERT_OK(client_net_map(&f->c, error));
    ASSERT_OK(session_iotlb_invalidate(f->s, IOVA + MEM_SIZE - 0x1000, 0x1000, error));
    ASSERT_OK(session_iotlb_batch_end(f->s, error));
    ASSERT_OK(client_net_start(&f->c, true, error));
    traffic_ok(f, 16);
    /* runtime batches (QEMU sends them while DRIVER_OK) */
    ASSERT_OK(session_iotlb_batch_begin(f->s, error));
    ASSERT_OK(session_iotlb_update(f->s, IOVA + MEM_SIZE, 0x1000,
                                   client_mem_uaddr(f->mem, 0), VHOST_ACCESS_RO, getpid(),
                                   error));
    ASSERT_OK(session_iotlb_batch_end(f->s, error));
    traffic_ok(f, 16);
}

/* The device keeps using the mappings it has until BATCH_END: memory invalidated inside
 * a batch must stay mapped until then, or the device's worker touches unmapped memory. */
static void test_invalidation_inside_a_batch_keeps_memory_until_batch_end(void **state)
{
    struct fixture *f = *state;
    unsigned tx_done = 0;

    map_and_start(f);
    traffic_ok(f, 8);
    ASSERT_OK(session_iotlb_batch_begin(f->s, error));
    ASSERT_OK(session_iotlb_invalidate(f->s, 0, UINT64_MAX, error));
    assert_int_equal(session_mapped_bytes(f->s), 0);
    assert_int_equal(f->mem->live_bytes, MEM_SIZE); /* still the device's */
    /* the device still runs on the old map: frames move, nothing crashes */
    ASSERT_OK(client_net_send(&f->c, 8, error));
    {
        g_autoptr(GError) err = NULL;
        assert_int_equal(client_net_collect(&f->c, 8, TIMEOUT_MS, &tx_done, &err), 8);
    }
    ASSERT_OK(session_iotlb_batch_end(f->s, error));
    assert_int_equal(f->mem->live_bytes, 0);
    /* now the rings are gone for the device: the next kick stops the queue */
    post_tx_at(f, IOVA + CLIENT_NET_BUFS_OFF);
    assert_true(wait_needs_reset(f, TIMEOUT_MS));
}

static void test_reset_inside_a_batch_keeps_the_batch_open(void **state)
{
    struct fixture *f = *state;

    ASSERT_OK(session_iotlb_batch_begin(f->s, error));
    ASSERT_OK(client_net_map(&f->c, error));
    ASSERT_OK(session_set_status(f->s, 0, error)); /* in_batch survives, as in the kernel */
    ASSERT_OK(session_iotlb_batch_end(f->s, error));
    ASSERT_OK(client_net_start(&f->c, true, error));
    traffic_ok(f, 8);
}

static void test_iotlb_holds_at_most_2048_entries(void **state)
{
    struct fixture *f = *state;
    uint64_t ua = client_mem_uaddr(f->mem, 0);

    /* one page of client memory at 2048 IOVAs: 2048 mappings in vdpad */
    for (uint64_t i = 0; i < 2048; i++)
        ASSERT_OK(session_iotlb_update(f->s, i * 0x4000, 0x1000, ua, VHOST_ACCESS_RW, getpid(),
                                       error));
    ASSERT_FAILS(ENOSPC, session_iotlb_update(f->s, 0x10000000, 0x1000, ua, VHOST_ACCESS_RW,
                                              getpid(), error));
    assert_int_equal(f->mem->maps, 2048);
    /* a cut inside an entry would add one: refused, nothing changed */
    ASSERT_OK(session_iotlb_invalidate(f->s, 0, 0x1000, error));
    ASSERT_OK(session_iotlb_update(f->s, 0, 0x3000, client_mem_uaddr(f->mem, 0x2000),
                                   VHOST_ACCESS_RW, getpid(), error));
    ASSERT_FAILS(ENOSPC, session_iotlb_invalidate(f->s, 0x1000, 0x1000, error));
    assert_int_equal(session_mapped_bytes(f->s), 2047 * 0x1000 + 0x3000);
    /* cuts at an edge, and whole entries, are fine */
    ASSERT_OK(session_iotlb_invalidate(f->s, 0x2000, 0x1000, error));
    ASSERT_OK(session_iotlb_invalidate(f->s, 0, UINT64_MAX, error));
    assert_int_equal(f->mem->live_bytes, 0);
}

static void test_invalidated_memory_kept_for_batch_end_counts_against_the_cap(void **state)
{
    struct fixture *f = *state;
    uint64_t ua = client_mem_uaddr(f->mem, 0);

    /* map and invalidate the same page over and over inside one batch: the memory waits
     * for BATCH_END, and counts */
    ASSERT_OK(session_iotlb_batch_begin(f->s, error));
    for (unsigned i = 0; i < 2048; i++) {
        ASSERT_OK(session_iotlb_update(f->s, 0x1000, 0x1000, ua, VHOST_ACCESS_RW, getpid(),
                                       error));
        ASSERT_OK(session_iotlb_invalidate(f->s, 0x1000, 0x1000, error));
    }
    ASSERT_FAILS(ENOSPC, session_iotlb_update(f->s, 0x1000, 0x1000, ua, VHOST_ACCESS_RW,
                                              getpid(), error));
    assert_int_equal(f->mem->live_bytes, 2048 * 0x1000);
    ASSERT_OK(session_iotlb_batch_end(f->s, error));
    assert_int_equal(f->mem->live_bytes, 0);
    ASSERT_OK(session_iotlb_update(f->s, 0x1000, 0x1000, ua, VHOST_ACCESS_RW, getpid(), error));
}

/* ------------------------------------------------------------------ unshareable memory */

static void make_unshared_window(struct fixture *f, uint64_t *ua)
{
    /* client addresses that the mem_ops refuses as anonymous (like QEMU's ROM blocks) */
    f->mem->unshared_lo = 0x10000000;
    f->mem->unshared_hi = 0x20000000;
    *ua = f->mem->unshared_lo;
}

static void test_unshareable_rom_is_accepted_as_unreachable(void **state)
{
    struct fixture *f = *state;
    uint64_t ua;

    make_unshared_window(f, &ua);
    /* the BIOS at 4 GiB - 256 KiB, the VGA ROM at 768 KiB */
    ASSERT_OK(session_iotlb_update(f->s, 0xfffc0000, 0x40000, ua, VHOST_ACCESS_RO, getpid(),
                                   error));
    ASSERT_OK(session_iotlb_update(f->s, 0xc0000, 0x20000, ua + 0x40000, VHOST_ACCESS_RO,
                                   getpid(), error));
    assert_int_equal(session_mapped_bytes(f->s), 0);
    assert_int_equal(f->mem->maps, 0);
    /* an unreachable range still occupies its IOVAs */
    ASSERT_FAILS(EEXIST, session_iotlb_update(f->s, 0xfffc0000, 0x1000,
                                              client_mem_uaddr(f->mem, 0), VHOST_ACCESS_RW,
                                              getpid(), error));
    map_and_start(f);
    traffic_ok(f, 8);
    /* a buffer in the ROM stops its queue, nothing else */
    post_tx_at(f, 0xfffc0000);
    assert_true(wait_needs_reset(f, TIMEOUT_MS));
    ASSERT_OK(session_iotlb_invalidate(f->s, 0xfffc0000, 0x40000, error));
    ASSERT_OK(session_iotlb_invalidate(f->s, 0xc0000, 0x20000, error));
}

static void test_unshareable_ram_is_refused_and_so_is_driver_ok(void **state)
{
    struct fixture *f = *state;
    g_autoptr(GError) err = NULL;
    uint64_t ua;

    make_unshared_window(f, &ua);
    /* RAM at guest-physical 0, and a range across 1 MiB */
    assert_true(session_iotlb_update(f->s, 0, 0xa0000, ua, VHOST_ACCESS_RW, getpid(), &err) <
                0);
    assert_non_null(strstr(err->message, "memoryBacking"));
    g_clear_error(&err);
    assert_true(session_iotlb_update(f->s, 0xf0000, 0x20000, ua, VHOST_ACCESS_RW, getpid(),
                                     &err) < 0);
    assert_non_null(strstr(err->message, "memoryBacking"));
    g_clear_error(&err);
    assert_int_equal(session_mapped_bytes(f->s), 0);
    /* the device could never reach the guest's buffers: DRIVER_OK says why */
    ASSERT_OK(client_net_map(&f->c, error));
    assert_true(client_net_start(&f->c, true, &err) < 0);
    assert_non_null(strstr(err->message, "memoryBacking"));
    assert_int_equal(session_get_status(f->s) & VIRTIO_CONFIG_S_DRIVER_OK, 0);
}

/* A client may shrink the file behind its memory while the device runs: the device's
 * worker must not die of SIGBUS (mem_guard.h); the memory reads as zeros, which breaks at
 * most that client's queues, and mapping it again recovers. */
static void test_client_shrinking_its_memory_does_not_kill_the_worker(void **state)
{
    struct fixture *f = *state;
    uint64_t replaced = mem_guard_pages_replaced();

    map_and_start(f);
    traffic_ok(f, 8);
    assert_int_equal(ftruncate(f->mem->memfd, 0), 0);
    /* kicks only write eventfds: the client does not touch its (now missing) memory */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(eventfd_write(f->c.q[CLIENT_NET_TX].kick_fd, 1), 0);
        assert_int_equal(eventfd_write(f->c.q[CLIENT_NET_RX].kick_fd, 1), 0);
        g_usleep(50000);
    }
    assert_true(mem_guard_pages_replaced() > replaced);
    /* the memory comes back, the client maps it again and starts over */
    assert_int_equal(ftruncate(f->mem->memfd, MEM_SIZE), 0);
    ASSERT_OK(session_set_status(f->s, 0, error));
    ASSERT_OK(session_iotlb_invalidate(f->s, 0, UINT64_MAX, error));
    ASSERT_OK(client_net_map(&f->c, error));
    ASSERT_OK(client_net_start(&f->c, false, error));
    traffic_ok(f, 8);
}

/* ------------------------------------------------------------------ reset, ring bases */

static void test_iotlb_and_eventfds_persist_across_reset(void **state)
{
    struct fixture *f = *state;

    map_and_start(f);
    traffic_ok(f, 8);
    for (int round = 0; round < 3; round++) {
        ASSERT_OK(session_set_status(f->s, 0, error));
        assert_int_equal(session_get_status(f->s), 0);
        assert_int_equal(session_mapped_bytes(f->s), MEM_SIZE);
        /* no IOTLB update, no SET_VRING_KICK/CALL: the session kept them */
        ASSERT_OK(client_net_start(&f->c, false, error));
        traffic_ok(f, 8);
    }
    assert_int_equal(f->mem->maps, 1);
}

static void test_get_vring_base_after_reset_is_the_base_at_reset(void **state)
{
    struct fixture *f = *state;

    map_and_start(f);
    traffic_ok(f, 10);
    traffic_ok(f, 7);
    ASSERT_OK(session_set_status(f->s, 0, error));
    /* ADR 0007: QEMU 7.2 resets before it asks; the answer is the base at the reset */
    assert_int_equal(vring_base(f, CLIENT_NET_RX), 17);
    assert_int_equal(vring_base(f, CLIENT_NET_TX), 17);
    assert_int_equal(vring_base(f, CLIENT_NET_TX), 17); /* asking twice changes nothing */
    ASSERT_OK(session_set_vring_base(f->s, CLIENT_NET_TX, 5, error));
    assert_int_equal(vring_base(f, CLIENT_NET_TX), 5);
    assert_int_equal(vring_base(f, CLIENT_NET_RX), 17);
    /* a new start forgets the saved bases */
    ASSERT_OK(client_net_start(&f->c, false, error));
    traffic_ok(f, 3);
    assert_int_equal(vring_base(f, CLIENT_NET_RX), 3);
    assert_int_equal(vring_base(f, CLIENT_NET_TX), 3);
}

static void test_get_vring_base_on_a_running_device_quiesces_it(void **state)
{
    struct fixture *f = *state;
    g_autoptr(GError) err = NULL;
    unsigned tx_done = 99;

    map_and_start(f);
    traffic_ok(f, 10);
    assert_int_equal(vring_base(f, CLIENT_NET_TX), 10);
    /* the answer stays true: new buffers are not taken until the reset */
    ASSERT_OK(client_net_send(&f->c, 4, error));
    assert_int_equal(client_net_collect(&f->c, 4, 300, &tx_done, &err), 0);
    assert_int_equal(tx_done, 0);
    assert_int_equal(vring_base(f, CLIENT_NET_TX), 10);
    assert_int_equal(vring_base(f, CLIENT_NET_RX), 10);
    ASSERT_OK(session_set_status(f->s, 0, error));
    ASSERT_OK(client_net_start(&f->c, false, error));
    traffic_ok(f, 10);
}

static void test_suspend_stops_the_device_and_resume_restarts_it(void **state)
{
    struct fixture *f = *state;
    g_autoptr(GError) err = NULL;
    unsigned tx_done = 99;

    assert_true(session_get_backend_features(f->s) & (1ull << VHOST_BACKEND_F_SUSPEND));
    map_and_start(f);
    traffic_ok(f, 4);
    ASSERT_OK(session_suspend(f->s, error));
    ASSERT_OK(client_net_send(&f->c, 4, error));
    assert_int_equal(client_net_collect(&f->c, 4, 200, &tx_done, &err), 0);
    assert_int_equal(tx_done, 0);
    ASSERT_OK(session_resume(f->s, error));
    assert_int_equal(client_net_collect(&f->c, 4, TIMEOUT_MS, &tx_done, &err), 4);
    assert_int_equal(tx_done, 4);
}

static void test_free_resets_the_device_and_releases_everything(void **state)
{
    struct fixture *f = *state;
    unsigned fds = count_open_fds();

    map_and_start(f);
    ASSERT_OK(session_set_config_call(f->s, eventfd(0, EFD_CLOEXEC), error));
    traffic_ok(f, 8);
    assert_true(count_open_fds() > fds);
    assert_true(f->mem->live_bytes > 0);
    session_free(f->s);
    f->s = NULL;
    assert_int_equal(f->dev->ops->get_status(f->dev), 0);
    assert_int_equal(f->mem->live_bytes, 0);
    assert_int_equal(count_open_fds(), fds);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_second_set_owner_is_ebusy),
        T(test_set_features_after_features_ok_is_ebusy),
        T(test_features_the_device_refuses_are_einval),
        T(test_config_range_errors_are_einval),
        T(test_clearing_status_bits_is_einval_rewriting_them_is_not),
        T(test_vring_num_not_a_power_of_two_up_to_65535_is_einval),
        T(test_queue_index_past_the_count_is_enobufs),
        T(test_vring_addr_misaligned_is_einval),
        T(test_running_queue_refusals_are_einval_same_address_is_accepted),
        T(test_replaced_eventfds_are_closed),
        T(test_iotlb_overlap_is_eexist_and_leaves_the_map_unchanged),
        T(test_iotlb_outside_the_iova_range_is_einval),
        T(test_partial_invalidation_splits_and_the_rest_stays_reachable),
        T(test_iotlb_works_in_whole_pages),
        T(test_invalidate_everything_on_an_empty_table_succeeds),
        T(test_iotlb_batch_is_applied_at_batch_end),
        T(test_invalidation_inside_a_batch_keeps_memory_until_batch_end),
        T(test_reset_inside_a_batch_keeps_the_batch_open),
        T(test_iotlb_holds_at_most_2048_entries),
        T(test_invalidated_memory_kept_for_batch_end_counts_against_the_cap),
        T(test_unshareable_rom_is_accepted_as_unreachable),
        T(test_unshareable_ram_is_refused_and_so_is_driver_ok),
        T(test_client_shrinking_its_memory_does_not_kill_the_worker),
        T(test_iotlb_and_eventfds_persist_across_reset),
        T(test_get_vring_base_after_reset_is_the_base_at_reset),
        T(test_get_vring_base_on_a_running_device_quiesces_it),
        T(test_suspend_stops_the_device_and_resume_restarts_it),
        T(test_free_resets_the_device_and_releases_everything),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
