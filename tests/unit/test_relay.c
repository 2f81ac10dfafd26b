/* Unit tests: the relay (src/shadow_vq) on a simulated NIC, its guest rings in memory of
 * the test's own:
 *   - its own control commands (relay_cvq_command), as a migration's destination sends them
 *     to replay the device state, on a control ring that starts at a non-zero base as after
 *     a migration;
 *   - hostile guest rings on a relayed transmit queue (a descriptor loop, an address the
 *     guest never mapped, an avail index past the ring, a bad indirect table): the queue
 *     stops with an error that says why (queue_failed, its stats), and the relay goes on
 *     serving the other queues. */
#include "config.h"

#include <errno.h>
#include <glib.h>
#include <linux/virtio_config.h>
#include <linux/virtio_net.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <cmocka.h>

#include "backend/sim/sim.h"
#include "iova/iova_map.h"
#include "shadow_vq/relay.h"
#include "util/error.h"
#include "virtio/net_state.h"
#include "virtio/split_ring.h"

#define F(bit) (1ull << (bit))
#define RAM_IOVA 0x100000ull
#define RAM_SIZE (64 * 1024)
#define NUM 64
#define CVQ 2 /* one queue pair */
#define TXQ 1
#define TX_RING (RAM_IOVA + 0x4000) /* the transmit queue's guest ring */
#define TX_DATA (RAM_IOVA + 0x8000) /* a frame's bytes */

static const uint8_t dev_mac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };
static const uint8_t new_mac[6] = { 0x52, 0x54, 0x00, 0x65, 0x43, 0x21 };

struct fixture {
    struct vdpa_device *dev;
    struct iova_map *ram_map;
    void *ram;
    int kick_fd, call_fd;
    int tx_kick_fd, tx_call_fd; /* -1 without a transmit queue */
    struct relay *relay;
    GMutex lock;
    GCond failed_cond;
    int failed_queue;           /* -1 until queue_failed */
    char *failed_why;
};

static void on_queue_failed(void *opaque, unsigned idx, const char *why)
{
    struct fixture *f = opaque;

    g_mutex_lock(&f->lock);
    f->failed_queue = (int)idx;
    g_free(f->failed_why);
    f->failed_why = g_strdup(why);
    g_cond_signal(&f->failed_cond);
    g_mutex_unlock(&f->lock);
}

/* The guest's ring of a relayed queue, in its RAM at ring_iova. */
static void guest_ring(uint64_t ring_iova, uint64_t *desc, uint64_t *avail, uint64_t *used)
{
    *desc = ring_iova;
    *avail = *desc + vring_desc_bytes(NUM);
    *used = (*avail + vring_avail_bytes(NUM) + 4095) & ~4095ull;
}

/* A started device whose control queue the relay serves from base (the guest's control
 * ring, in its RAM, has consumed base commands), and with_tx its first transmit queue from
 * an empty ring at TX_RING. */
static struct fixture *start_with(uint64_t features, uint16_t base, bool with_tx)
{
    struct fixture *f = g_new0(struct fixture, 1);
    struct relay_hooks hooks = { .queue_failed = on_queue_failed, .opaque = f };
    g_autoptr(GError) err = NULL;
    struct sim_net_config cfg = { .name = "n0", .queue_pairs = 1 };
    const uint8_t st = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER;

    memcpy(cfg.mac, dev_mac, 6);
    g_mutex_init(&f->lock);
    g_cond_init(&f->failed_cond);
    f->failed_queue = -1;
    f->tx_kick_fd = f->tx_call_fd = -1;
    f->dev = sim_net_new(&cfg, &err);
    assert_non_null(f->dev);
    assert_int_equal(posix_memalign(&f->ram, 4096, RAM_SIZE), 0);
    memset(f->ram, 0, RAM_SIZE);
    f->ram_map = iova_map_new();
    assert_int_equal(iova_map_add(f->ram_map, RAM_IOVA, RAM_SIZE, f->ram, IOVA_PERM_RW, &err), 0);
    /* the guest's control ring: desc, avail, used, with both indexes at base */
    uint64_t desc, avail, used;
    guest_ring(RAM_IOVA, &desc, &avail, &used);
    uint16_t le_base = htole16(base);
    memcpy((uint8_t *)f->ram + (avail - RAM_IOVA) + 2, &le_base, 2);
    memcpy((uint8_t *)f->ram + (used - RAM_IOVA) + 2, &le_base, 2);

    const struct vdpa_device_ops *ops = f->dev->ops;
    assert_int_equal(ops->set_status(f->dev, st, &err), 0);
    assert_int_equal(ops->set_driver_features(f->dev, features, &err), 0);
    assert_int_equal(ops->set_status(f->dev, st | VIRTIO_CONFIG_S_FEATURES_OK, &err), 0);
    f->relay = relay_new(f->dev, f->ram_map, features, &hooks, &err);
    if (!f->relay)
        fail_msg("relay_new: %s", err->message);
    f->kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    f->call_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    struct relay_queue_config q = {
        .idx = CVQ, .num = NUM, .desc = desc, .avail = avail, .used = used, .base = base,
        .guest_kick_fd = f->kick_fd, .guest_call_fd = f->call_fd, .control = true,
    };
    if (relay_add_queue(f->relay, &q, &err) < 0)
        fail_msg("relay_add_queue: %s", err->message);
    assert_int_equal(ops->set_vq_ready(f->dev, CVQ, true, &err), 0);
    if (with_tx) {
        f->tx_kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        f->tx_call_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        struct relay_queue_config tq = { .idx = TXQ, .num = NUM, .guest_kick_fd = f->tx_kick_fd,
                                         .guest_call_fd = f->tx_call_fd };
        guest_ring(TX_RING, &tq.desc, &tq.avail, &tq.used);
        if (relay_add_queue(f->relay, &tq, &err) < 0)
            fail_msg("relay_add_queue (tx): %s", err->message);
        assert_int_equal(ops->set_vq_ready(f->dev, TXQ, true, &err), 0);
    }
    assert_int_equal(ops->set_status(f->dev, st | VIRTIO_CONFIG_S_FEATURES_OK |
                                             VIRTIO_CONFIG_S_DRIVER_OK, &err), 0);
    return f;
}

static struct fixture *start(uint64_t features, uint16_t base)
{
    return start_with(features, base, false);
}

static void stop(struct fixture *f)
{
    f->dev->ops->reset(f->dev, NULL);
    relay_free(f->relay);
    vdpa_device_free(f->dev);
    iova_map_free(f->ram_map);
    free(f->ram);
    close(f->kick_fd);
    close(f->call_fd);
    if (f->tx_kick_fd >= 0)
        close(f->tx_kick_fd);
    if (f->tx_call_fd >= 0)
        close(f->tx_call_fd);
    g_free(f->failed_why);
    g_cond_clear(&f->failed_cond);
    g_mutex_clear(&f->lock);
    g_free(f);
}

static int set_mac(struct fixture *f, const uint8_t mac[6], uint8_t *ack, gint64 *us,
                   GError **error)
{
    struct net_ctrl_cmd cmd = { .class = VIRTIO_NET_CTRL_MAC, .cmd = VIRTIO_NET_CTRL_MAC_ADDR_SET };
    uint8_t buf[64];

    memcpy(cmd.u.mac, mac, 6);
    size_t len = net_ctrl_encode(&cmd, buf, sizeof(buf));
    gint64 t0 = g_get_monotonic_time();
    int ret = relay_cvq_command(f->relay, buf, len, 2000, ack, error);
    *us = g_get_monotonic_time() - t0;
    return ret;
}

static void check_commands_are_answered(uint64_t features, uint16_t base)
{
    struct fixture *f = start(features, base);
    g_autoptr(GError) err = NULL;
    uint8_t ack = 0xff, mac[6];
    gint64 us;

    for (int i = 0; i < 3; i++) {
        const uint8_t *want = i % 2 ? dev_mac : new_mac;
        if (set_mac(f, want, &ack, &us, &err) < 0)
            fail_msg("base %u, command %d: %s (after %lld us)", base, i, err->message,
                     (long long)us);
        assert_int_equal(ack, VIRTIO_NET_OK);
        f->dev->ops->get_config(f->dev, offsetof(struct virtio_net_config, mac), mac, 6);
        assert_memory_equal(mac, want, 6);
    }
    struct relay_queue_stats stats;
    assert_int_equal(relay_queue_stats(f->relay, CVQ, &stats), 0);
    assert_int_equal(stats.completed, 3);
    assert_int_equal(stats.in_flight, 0);
    stop(f);
}

#define BASE_FEATURES                                                                       \
    (F(VIRTIO_F_VERSION_1) | F(VIRTIO_F_ACCESS_PLATFORM) | F(VIRTIO_NET_F_MAC) |            \
     F(VIRTIO_NET_F_CTRL_VQ) | F(VIRTIO_NET_F_CTRL_MAC_ADDR))

static void own_commands_are_answered_on_a_fresh_ring(void **state)
{
    check_commands_are_answered(BASE_FEATURES, 0);
}

/* a destination's control ring continues where the source's stopped */
static void own_commands_are_answered_on_a_ring_started_at_a_migrated_base(void **state)
{
    check_commands_are_answered(BASE_FEATURES, 8);
    check_commands_are_answered(BASE_FEATURES | F(VIRTIO_RING_F_EVENT_IDX), 8);
    check_commands_are_answered(BASE_FEATURES | F(VIRTIO_RING_F_EVENT_IDX), 65535);
}

/* ------------------------------------------------------------------ hostile guest rings */

static void *ram_at(struct fixture *f, uint64_t iova)
{
    return (uint8_t *)f->ram + (iova - RAM_IOVA);
}

static void put_desc(struct fixture *f, uint64_t table, unsigned i, uint64_t addr, uint32_t len,
                     uint16_t flags, uint16_t next)
{
    struct vring_desc d = { .addr = htole64(addr), .len = htole32(len),
                            .flags = htole16(flags), .next = htole16(next) };
    memcpy(ram_at(f, table + 16ull * i), &d, sizeof(d));
}

/* The guest offers head (avail entry 0) and says avail idx = idx, then kicks. */
static void offer(struct fixture *f, uint16_t head, uint16_t idx)
{
    uint64_t desc, avail, used;
    uint16_t le;

    guest_ring(TX_RING, &desc, &avail, &used);
    le = htole16(head);
    memcpy(ram_at(f, avail + 4), &le, 2);
    __atomic_thread_fence(__ATOMIC_RELEASE);
    le = htole16(idx);
    memcpy(ram_at(f, avail + 2), &le, 2);
    uint64_t one = 1;
    assert_int_equal(write(f->tx_kick_fd, &one, sizeof(one)), sizeof(one));
}

/* The transmit queue stopped with a reason that holds want; the relay still answers its
 * own control commands (the control queue and the relay thread run on). */
static void assert_only_tx_stopped(struct fixture *f, const char *want)
{
    gint64 deadline = g_get_monotonic_time() + 2 * G_USEC_PER_SEC;
    g_autoptr(GError) err = NULL;
    uint8_t ack = 0xff;
    gint64 us;

    g_mutex_lock(&f->lock);
    while (f->failed_queue < 0 && g_cond_wait_until(&f->failed_cond, &f->lock, deadline))
        ;
    int failed = f->failed_queue;
    g_autofree char *why = g_strdup(f->failed_why);
    g_mutex_unlock(&f->lock);
    if (failed < 0)
        fail_msg("no queue_failed for '%s'", want);
    assert_int_equal(failed, TXQ);
    if (!strstr(why, want))
        fail_msg("the reason '%s' does not say '%s'", why, want);
    struct relay_queue_stats stats;
    assert_int_equal(relay_queue_stats(f->relay, TXQ, &stats), 0);
    assert_true(stats.failed);
    assert_int_equal(stats.forwarded, 0);
    assert_int_equal(relay_queue_stats(f->relay, CVQ, &stats), 0);
    assert_false(stats.failed);
    if (set_mac(f, new_mac, &ack, &us, &err) < 0)
        fail_msg("the control queue after the transmit queue failed: %s", err->message);
    assert_int_equal(ack, VIRTIO_NET_OK);
}

#define HOSTILE_FEATURES (BASE_FEATURES | F(VIRTIO_RING_F_INDIRECT_DESC))

static void a_descriptor_loop_stops_only_its_queue(void **state)
{
    struct fixture *f = start_with(HOSTILE_FEATURES, 0, true);

    put_desc(f, TX_RING, 0, TX_DATA, 64, VRING_DESC_F_NEXT, 1);
    put_desc(f, TX_RING, 1, TX_DATA, 64, VRING_DESC_F_NEXT, 0); /* back to 0 */
    offer(f, 0, 1);
    assert_only_tx_stopped(f, "loop");
    stop(f);
}

static void an_address_the_guest_never_mapped_stops_only_its_queue(void **state)
{
    struct fixture *f = start_with(HOSTILE_FEATURES, 0, true);

    put_desc(f, TX_RING, 0, RAM_IOVA + RAM_SIZE + 0x1000, 64, 0, 0);
    offer(f, 0, 1);
    assert_only_tx_stopped(f, "is not mapped");
    stop(f);
}

static void an_avail_index_past_the_ring_stops_only_its_queue(void **state)
{
    struct fixture *f = start_with(HOSTILE_FEATURES, 0, true);

    put_desc(f, TX_RING, 0, TX_DATA, 64, 0, 0);
    offer(f, 0, NUM + 1); /* more entries than the ring holds */
    assert_only_tx_stopped(f, "ahead of last_avail");
    stop(f);
}

static void a_bad_indirect_table_stops_only_its_queue(void **state)
{
    struct fixture *f = start_with(HOSTILE_FEATURES, 0, true);

    put_desc(f, TX_RING, 0, TX_DATA, 24, VRING_DESC_F_INDIRECT, 0); /* not a multiple of 16 */
    offer(f, 0, 1);
    assert_only_tx_stopped(f, "indirect table length 24");
    stop(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(own_commands_are_answered_on_a_fresh_ring),
        cmocka_unit_test(own_commands_are_answered_on_a_ring_started_at_a_migrated_base),
        cmocka_unit_test(a_descriptor_loop_stops_only_its_queue),
        cmocka_unit_test(an_address_the_guest_never_mapped_stops_only_its_queue),
        cmocka_unit_test(an_avail_index_past_the_ring_stops_only_its_queue),
        cmocka_unit_test(a_bad_indirect_table_stops_only_its_queue),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
