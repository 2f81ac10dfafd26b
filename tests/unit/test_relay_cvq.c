/* Unit tests: the relay's own control commands (relay_cvq_command), as a migration's
 * destination sends them to replay the device state: a simulated NIC whose control queue
 * is relayed from a ring that starts at a non-zero base, as after a migration. */
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

static const uint8_t dev_mac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };
static const uint8_t new_mac[6] = { 0x52, 0x54, 0x00, 0x65, 0x43, 0x21 };

struct fixture {
    struct vdpa_device *dev;
    struct iova_map *ram_map;
    void *ram;
    int kick_fd, call_fd;
    struct relay *relay;
};

/* A started device whose control queue the relay serves from base (the guest's control
 * ring, in its RAM, has consumed base commands). */
static struct fixture *start(uint64_t features, uint16_t base)
{
    struct fixture *f = g_new0(struct fixture, 1);
    g_autoptr(GError) err = NULL;
    struct sim_net_config cfg = { .name = "n0", .queue_pairs = 1 };
    const uint8_t st = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER;

    memcpy(cfg.mac, dev_mac, 6);
    f->dev = sim_net_new(&cfg, &err);
    assert_non_null(f->dev);
    assert_int_equal(posix_memalign(&f->ram, 4096, RAM_SIZE), 0);
    memset(f->ram, 0, RAM_SIZE);
    f->ram_map = iova_map_new();
    assert_int_equal(iova_map_add(f->ram_map, RAM_IOVA, RAM_SIZE, f->ram, IOVA_PERM_RW, &err), 0);
    /* the guest's control ring: desc, avail, used, with both indexes at base */
    uint64_t desc = RAM_IOVA, avail = desc + vring_desc_bytes(NUM);
    uint64_t used = (avail + vring_avail_bytes(NUM) + 4095) & ~4095ull;
    uint16_t le_base = htole16(base);
    memcpy((uint8_t *)f->ram + (avail - RAM_IOVA) + 2, &le_base, 2);
    memcpy((uint8_t *)f->ram + (used - RAM_IOVA) + 2, &le_base, 2);

    const struct vdpa_device_ops *ops = f->dev->ops;
    assert_int_equal(ops->set_status(f->dev, st, &err), 0);
    assert_int_equal(ops->set_driver_features(f->dev, features, &err), 0);
    assert_int_equal(ops->set_status(f->dev, st | VIRTIO_CONFIG_S_FEATURES_OK, &err), 0);
    f->relay = relay_new(f->dev, f->ram_map, features, NULL, &err);
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
    assert_int_equal(ops->set_status(f->dev, st | VIRTIO_CONFIG_S_FEATURES_OK |
                                             VIRTIO_CONFIG_S_DRIVER_OK, &err), 0);
    return f;
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(own_commands_are_answered_on_a_fresh_ring),
        cmocka_unit_test(own_commands_are_answered_on_a_ring_started_at_a_migrated_base),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
