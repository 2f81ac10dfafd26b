/* Unit tests: the simulated NIC (src/backend/sim/sim_net.c and the core), driven through
 * the test driver and directly through the ops table. */
#include "config.h"

#include <endian.h>
#include <errno.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_net.h>
#include <linux/virtio_ring.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include "backend/sim/sim.h"
#include "driver/virtio_driver.h"
#include "iova/iova_map.h"

#define F(bit) (1ull << (bit))
#define TIMEOUT_MS 2000

static const uint8_t dev_mac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };
static const uint8_t other_mac[6] = { 0x52, 0x54, 0x00, 0xaa, 0xbb, 0xcc };
static const uint8_t new_mac[6] = { 0x52, 0x54, 0x00, 0x65, 0x43, 0x21 };
static const uint8_t bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
static const uint8_t mcast_a[6] = { 0x01, 0x00, 0x5e, 0x00, 0x00, 0x01 };
static const uint8_t mcast_b[6] = { 0x01, 0x00, 0x5e, 0x00, 0x00, 0x02 };

static struct vdpa_device *net_new(unsigned pairs, uint64_t features)
{
    g_autoptr(GError) err = NULL;
    struct sim_net_config cfg = {
        .name = "n0",
        .queue_pairs = pairs,
        .features = features,
    };
    struct vdpa_device *dev;

    memcpy(cfg.mac, dev_mac, 6);
    dev = sim_net_new(&cfg, &err);
    if (!dev)
        fail_msg("sim_net_new: %s", err->message);
    return dev;
}

static struct vdrv *drv_new(struct vdpa_device *dev, uint64_t features)
{
    g_autoptr(GError) err = NULL;
    struct vdrv_config cfg = { .features = features, .timeout_ms = TIMEOUT_MS };
    struct vdrv *drv = vdrv_new(dev, &cfg, &err);

    if (!drv)
        fail_msg("vdrv_new: %s", err->message);
    return drv;
}

static uint64_t stat(struct vdpa_device *dev, unsigned idx, const char *name)
{
    g_autoptr(GError) err = NULL;
    struct vdpa_vq_stats st;
    uint64_t v = 0;

    if (dev->ops->get_vq_stats(dev, idx, &st, &err) < 0)
        fail_msg("get_vq_stats %u: %s", idx, err->message);
    if (!vdpa_vq_stats_get(&st, name, &v))
        fail_msg("queue %u has no counter %s", idx, name);
    return v;
}

static uint8_t ctrl(struct vdrv *drv, const struct net_ctrl_cmd *cmd)
{
    g_autoptr(GError) err = NULL;
    uint8_t ack = 0xee;

    if (vdrv_net_ctrl(drv, cmd, &ack, &err) < 0)
        fail_msg("vdrv_net_ctrl: %s", err->message);
    return ack;
}

static uint8_t ctrl_rx(struct vdrv *drv, uint8_t which, bool on)
{
    struct net_ctrl_cmd cmd = { .class = VIRTIO_NET_CTRL_RX, .cmd = which, .u.on = on };

    return ctrl(drv, &cmd);
}

static uint8_t ctrl_pairs(struct vdrv *drv, uint16_t pairs)
{
    struct net_ctrl_cmd cmd = { .class = VIRTIO_NET_CTRL_MQ,
                                .cmd = VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET,
                                .u.queue_pairs = pairs };

    return ctrl(drv, &cmd);
}

/* Every frame comes back exactly once and intact. */
static void loopback_ok(struct vdrv *drv, unsigned pair, uint64_t n, size_t len,
                        const uint8_t dst[6])
{
    g_autoptr(GError) err = NULL;
    struct vdrv_net_result r;

    if (vdrv_net_exchange(drv, pair, n, len, dst, true, TIMEOUT_MS, &r, &err) < 0)
        fail_msg("exchange on pair %u: %s", pair, err->message);
    assert_int_equal(r.sent, n);
    assert_int_equal(r.received, n);
    assert_int_equal(r.lost + r.duplicated + r.corrupted + r.stray, 0);
}

/* No frame comes back (the filter drops them all). */
static void filtered(struct vdrv *drv, unsigned pair, uint64_t n, size_t len,
                     const uint8_t dst[6])
{
    g_autoptr(GError) err = NULL;
    struct vdrv_net_result r;

    if (vdrv_net_exchange(drv, pair, n, len, dst, false, 200, &r, &err) < 0)
        fail_msg("filtered exchange on pair %u: %s", pair, err->message);
    assert_int_equal(r.sent, n);
    assert_int_equal(r.received, 0);
}

/* ------------------------------------------------------------------ features and status */

static void features_offered_are_the_supported_set_or_the_creation_mask(void **state)
{
    const uint64_t base = F(VIRTIO_F_VERSION_1) | F(VIRTIO_F_ACCESS_PLATFORM);
    g_autoptr(vdpa_device) all = net_new(1, 0);
    g_autoptr(vdpa_device) masked = net_new(1, F(VIRTIO_NET_F_MAC) | F(VIRTIO_NET_F_CTRL_VQ));
    g_autoptr(GError) err = NULL;
    struct sim_net_config bad = { .name = "bad", .queue_pairs = 1, .features = F(26) };

    assert_int_equal(all->ops->get_device_features(all), sim_net_supported_features());
    assert_true(sim_net_supported_features() & F(VIRTIO_RING_F_EVENT_IDX));
    assert_true(sim_net_supported_features() & F(VIRTIO_RING_F_INDIRECT_DESC));
    assert_false(sim_net_supported_features() & F(26)); /* VHOST_F_LOG_ALL is not ours */
    /* VERSION_1 and ACCESS_PLATFORM cannot be masked away */
    assert_int_equal(masked->ops->get_device_features(masked),
                     base | F(VIRTIO_NET_F_MAC) | F(VIRTIO_NET_F_CTRL_VQ));
    assert_int_equal(all->ops->get_device_id(all), VIRTIO_ID_NET);
    /* a bit the simulator does not support is refused at creation */
    assert_null(sim_net_new(&bad, &err));
    assert_int_equal(err->code, EINVAL);
}

static void create_refuses_bad_pairs_and_mtu(void **state)
{
    struct sim_net_config cfg = { .name = "bad", .queue_pairs = 0 };
    g_autoptr(GError) e1 = NULL, e2 = NULL, e3 = NULL;

    assert_null(sim_net_new(&cfg, &e1));
    assert_int_equal(e1->code, EINVAL);
    cfg.queue_pairs = 17;
    assert_null(sim_net_new(&cfg, &e2));
    cfg.queue_pairs = 1;
    cfg.mtu = 67;
    assert_null(sim_net_new(&cfg, &e3));
    assert_non_null(e2);
    assert_non_null(e3);
}

static void set_driver_features_refuses_unoffered_bits_and_late_changes(void **state)
{
    g_autoptr(vdpa_device) dev = net_new(1, F(VIRTIO_NET_F_MAC));
    const struct vdpa_device_ops *ops = dev->ops;
    const uint64_t ok = F(VIRTIO_F_VERSION_1) | F(VIRTIO_F_ACCESS_PLATFORM);
    g_autoptr(GError) e1 = NULL, e2 = NULL;

    assert_int_equal(ops->set_driver_features(dev, ok | F(VIRTIO_NET_F_MQ), &e1), -EINVAL);
    assert_non_null(strstr(e1->message, "not offered"));
    assert_int_equal(ops->get_driver_features(dev), 0);
    assert_int_equal(ops->set_driver_features(dev, ok, NULL), 0);
    assert_int_equal(ops->set_status(dev, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
                                              VIRTIO_CONFIG_S_FEATURES_OK, NULL),
                     0);
    assert_true(ops->get_status(dev) & VIRTIO_CONFIG_S_FEATURES_OK);
    /* after FEATURES_OK the features are fixed */
    assert_int_equal(ops->set_driver_features(dev, ok | F(VIRTIO_NET_F_MAC), &e2), -EINVAL);
    assert_int_equal(ops->get_driver_features(dev), ok);
}

/* FEATURES_OK stays clear when the features are not acceptable. */
static bool features_ok_accepted(struct vdpa_device *dev, uint64_t features)
{
    const uint8_t st = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER;

    assert_int_equal(dev->ops->reset(dev, NULL), 0);
    assert_int_equal(dev->ops->set_status(dev, st, NULL), 0);
    assert_int_equal(dev->ops->set_driver_features(dev, features, NULL), 0);
    assert_int_equal(dev->ops->set_status(dev, st | VIRTIO_CONFIG_S_FEATURES_OK, NULL), 0);
    return dev->ops->get_status(dev) & VIRTIO_CONFIG_S_FEATURES_OK;
}

static void features_ok_refused_without_version_1_access_platform_or_cvq(void **state)
{
    g_autoptr(vdpa_device) dev = net_new(2, 0);
    const uint64_t v1 = F(VIRTIO_F_VERSION_1), ap = F(VIRTIO_F_ACCESS_PLATFORM);
    g_autoptr(GError) err = NULL;

    assert_true(features_ok_accepted(dev, v1 | ap));
    assert_false(features_ok_accepted(dev, ap | F(VIRTIO_NET_F_MAC)));
    assert_false(features_ok_accepted(dev, v1 | F(VIRTIO_NET_F_MAC)));
    /* MQ, CTRL_RX... need the control queue; CTRL_RX_EXTRA needs CTRL_RX */
    assert_false(features_ok_accepted(dev, v1 | ap | F(VIRTIO_NET_F_MQ)));
    assert_false(features_ok_accepted(dev, v1 | ap | F(VIRTIO_NET_F_CTRL_VQ) |
                                               F(VIRTIO_NET_F_CTRL_RX_EXTRA)));
    assert_true(features_ok_accepted(dev, v1 | ap | F(VIRTIO_NET_F_CTRL_VQ) |
                                              F(VIRTIO_NET_F_MQ)));
    /* DRIVER_OK cannot follow a refused FEATURES_OK */
    assert_false(features_ok_accepted(dev, ap));
    assert_int_equal(dev->ops->set_status(dev, VIRTIO_CONFIG_S_ACKNOWLEDGE |
                                                   VIRTIO_CONFIG_S_DRIVER |
                                                   VIRTIO_CONFIG_S_DRIVER_OK,
                                          &err),
                     -EINVAL);
    assert_false(dev->ops->get_status(dev) & VIRTIO_CONFIG_S_DRIVER_OK);
}

static void status_bits_cannot_be_cleared_and_zero_resets(void **state)
{
    g_autoptr(vdpa_device) dev = net_new(1, 0);
    const uint8_t ad = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER;
    g_autoptr(GError) err = NULL;

    assert_int_equal(dev->ops->get_status(dev), 0);
    assert_int_equal(dev->ops->set_status(dev, ad, NULL), 0);
    assert_int_equal(dev->ops->set_status(dev, VIRTIO_CONFIG_S_ACKNOWLEDGE, &err), -EINVAL);
    assert_int_equal(dev->ops->get_status(dev), ad);
    assert_int_equal(dev->ops->set_driver_features(
                         dev, F(VIRTIO_F_VERSION_1) | F(VIRTIO_F_ACCESS_PLATFORM), NULL),
                     0);
    assert_int_equal(dev->ops->set_status(dev, 0, NULL), 0);
    assert_int_equal(dev->ops->get_status(dev), 0);
    assert_int_equal(dev->ops->get_driver_features(dev), 0);
}

/* ------------------------------------------------------------------ config space and queues */

static void config_space_has_mac_link_pairs_and_mtu(void **state)
{
    g_autoptr(GError) err = NULL;
    struct sim_net_config cfg = { .name = "n1", .queue_pairs = 3, .mtu = 9000 };
    g_autoptr(vdpa_device) dev = NULL;
    struct virtio_net_config nc;

    memcpy(cfg.mac, dev_mac, 6);
    dev = sim_net_new(&cfg, &err);
    assert_non_null(dev);
    assert_int_equal(dev->ops->get_config_size(dev), sizeof(struct virtio_net_config));
    dev->ops->get_config(dev, 0, &nc, sizeof(nc));
    assert_memory_equal(nc.mac, dev_mac, 6);
    assert_int_equal(le16toh(nc.status), VIRTIO_NET_S_LINK_UP);
    assert_int_equal(le16toh(nc.max_virtqueue_pairs), 3);
    assert_int_equal(le16toh(nc.mtu), 9000);
    /* rx0 tx0 rx1 tx1 rx2 tx2 cvq */
    assert_int_equal(dev->ops->get_vq_count(dev), 7);
    assert_int_equal(dev->ops->get_vq_num_max(dev), 256);
    /* a read past the end yields zeroes, not memory */
    uint8_t tail[8];
    memset(tail, 0xaa, sizeof(tail));
    dev->ops->get_config(dev, (unsigned)sizeof(nc) - 4, tail, sizeof(tail));
    assert_int_equal(tail[7], 0);
    /* writes are ignored: the MAC is set through the control queue */
    dev->ops->set_config(dev, 0, other_mac, 6);
    dev->ops->get_config(dev, 0, &nc, sizeof(nc));
    assert_memory_equal(nc.mac, dev_mac, 6);
    /* default MTU */
    g_autoptr(vdpa_device) d2 = net_new(1, 0);
    d2->ops->get_config(d2, 0, &nc, sizeof(nc));
    assert_int_equal(le16toh(nc.mtu), 1500);
}

static void queue_ops_check_index_size_alignment_and_readiness(void **state)
{
    g_autoptr(vdpa_device) dev = net_new(1, 0);
    const struct vdpa_device_ops *ops = dev->ops;
    struct vdpa_vq_state st = { .avail_index = 7 };
    g_autoptr(GError) e1 = NULL, e2 = NULL, e3 = NULL, e4 = NULL, e5 = NULL;

    assert_int_equal(ops->set_vq_num(dev, 3, 64, &e1), -EINVAL); /* 3 queues: 0..2 */
    assert_int_equal(ops->set_vq_num(dev, 0, 100, &e2), -EINVAL);
    assert_int_equal(ops->set_vq_num(dev, 0, 512, NULL), -EINVAL);
    assert_int_equal(ops->set_vq_num(dev, 0, 64, NULL), 0);
    assert_int_equal(ops->set_vq_address(dev, 0, 8, 0x1000, 0x2000, &e3), -EINVAL);
    assert_int_equal(ops->set_vq_address(dev, 0, 0x1000, 0x2001, 0x3000, NULL), -EINVAL);
    assert_int_equal(ops->set_vq_address(dev, 0, 0x1000, 0x2000, 0x3002, NULL), -EINVAL);
    assert_int_equal(ops->set_vq_address(dev, 0, 0x1000, 0x2000, 0x3000, NULL), 0);
    assert_int_equal(ops->set_vq_state(dev, 0, &st, NULL), 0);
    st.avail_index = 0;
    assert_int_equal(ops->get_vq_state(dev, 0, &st, NULL), 0);
    assert_int_equal(st.avail_index, 7);
    assert_int_equal(ops->set_vq_ready(dev, 0, true, NULL), 0);
    assert_true(ops->get_vq_ready(dev, 0));
    /* before DRIVER_OK nothing walks a ready queue: it may still change (a relay
     * points it at a shadow ring then); a running queue may not (see below) */
    assert_int_equal(ops->set_vq_state(dev, 0, &st, &e4), 0);
    assert_int_equal(ops->set_vq_num(dev, 0, 32, &e5), 0);
    assert_int_equal(ops->set_vq_num(dev, 0, 64, NULL), 0);
    assert_int_equal(ops->set_vq_ready(dev, 0, false, NULL), 0);
    assert_int_equal(ops->set_vq_state(dev, 0, &st, NULL), 0);
    /* kick and call eventfds are duplicated; a bad fd is refused */
    assert_int_equal(ops->set_vq_kick(dev, 0, 1000000, NULL), -EBADF);
    assert_int_equal(ops->set_vq_kick(dev, 0, -1, NULL), 0);
    struct vdpa_iova_range r = ops->get_iova_range(dev);
    assert_int_equal(r.first, 0);
    assert_true(r.last == UINT64_MAX);
}

/* ------------------------------------------------------------------ traffic */

static void traffic_64_and_1500_bytes_exactly_once_on_one_pair(void **state)
{
    g_autoptr(vdpa_device) dev = net_new(1, 0);
    g_autoptr(vdrv) drv = drv_new(dev, 0);

    assert_int_equal(vdrv_net_pairs(drv), 1);
    loopback_ok(drv, 0, 5000, 64, dev_mac);
    loopback_ok(drv, 0, 3000, 1500, dev_mac);
    loopback_ok(drv, 0, 100, 1514, dev_mac); /* MTU-sized */
    /* counters match the traffic (frame bytes, without the net header) */
    assert_int_equal(stat(dev, 1, "tx_pkts"), 8100);
    assert_int_equal(stat(dev, 1, "tx_bytes"), 5000 * 64 + 3000 * 1500 + 100 * 1514);
    assert_int_equal(stat(dev, 0, "rx_pkts"), 8100);
    assert_int_equal(stat(dev, 0, "rx_bytes"), 5000 * 64 + 3000 * 1500 + 100 * 1514);
    assert_int_equal(stat(dev, 0, "rx_drops"), 0);
    assert_int_equal(stat(dev, 0, "rx_overruns"), 0);
    assert_int_equal(stat(dev, 1, "tx_errors"), 0);
    assert_int_equal(stat(dev, 1, "received_desc"), 8100);
    assert_int_equal(stat(dev, 1, "completed_desc"), 8100);
    assert_int_equal(stat(dev, 0, "completed_desc"), 8100);
}

static void traffic_without_event_idx_and_with_small_rings(void **state)
{
    g_autoptr(vdpa_device) dev = net_new(1, 0);
    g_autoptr(GError) err = NULL;
    struct vdrv_config cfg = {
        .features = sim_net_supported_features() & ~F(VIRTIO_RING_F_EVENT_IDX),
        .vq_num = 8,
        .timeout_ms = TIMEOUT_MS,
    };
    g_autoptr(vdrv) drv = vdrv_new(dev, &cfg, &err);

    assert_non_null(drv);
    assert_false(vdrv_features(drv) & F(VIRTIO_RING_F_EVENT_IDX));
    loopback_ok(drv, 0, 3000, 64, dev_mac);
    loopback_ok(drv, 0, 500, 1500, dev_mac);
}

static void traffic_on_two_pairs_after_mq_vq_pairs_set(void **state)
{
    g_autoptr(vdpa_device) dev = net_new(2, 0);
    g_autoptr(vdrv) drv = drv_new(dev, 0);

    assert_int_equal(vdrv_net_pairs(drv), 2);
    /* one pair is active after reset: pair 1's receive queue is not in use, frames drop */
    filtered(drv, 1, 50, 64, dev_mac);
    assert_int_equal(stat(dev, 2, "rx_drops"), 50);
    assert_int_equal(ctrl_pairs(drv, 2), VIRTIO_NET_OK);
    loopback_ok(drv, 0, 2000, 64, dev_mac);
    loopback_ok(drv, 1, 2000, 64, dev_mac);
    loopback_ok(drv, 1, 1000, 1500, dev_mac);
    loopback_ok(drv, 0, 1000, 1500, dev_mac);
    assert_int_equal(stat(dev, 0, "rx_pkts"), 3000);
    assert_int_equal(stat(dev, 2, "rx_pkts"), 3000);
    assert_int_equal(stat(dev, 3, "tx_pkts"), 3050);
    /* control queue: index 4 = 2 * max_queue_pairs */
    assert_int_equal(stat(dev, 4, "requests"), 1);
    assert_int_equal(stat(dev, 4, "successes"), 1);
    /* back to one pair: pair 1 drops again */
    assert_int_equal(ctrl_pairs(drv, 1), VIRTIO_NET_OK);
    filtered(drv, 1, 10, 64, dev_mac);
    assert_int_equal(stat(dev, 2, "rx_drops"), 60);
}

struct pair_run {
    struct vdrv *drv;
    unsigned pair;
    uint64_t frames;
    size_t len;
    int ret;
    struct vdrv_net_result r;
    char error[256];
};

static void *pair_run_thread(void *arg)
{
    struct pair_run *pr = arg;
    g_autoptr(GError) err = NULL;

    pr->ret = vdrv_net_exchange(pr->drv, pr->pair, pr->frames, pr->len, dev_mac, true,
                                TIMEOUT_MS, &pr->r, &err);
    if (pr->ret < 0)
        g_strlcpy(pr->error, err->message, sizeof(pr->error));
    return NULL;
}

static void pair_run_check(struct pair_run *pr)
{
    if (pr->ret < 0)
        fail_msg("pair %u: %s", pr->pair, pr->error);
    assert_int_equal(pr->r.received, pr->frames);
}

static void traffic_on_two_pairs_concurrently_from_two_threads(void **state)
{
    g_autoptr(vdpa_device) dev = net_new(2, 0);
    g_autoptr(vdrv) drv = drv_new(dev, 0);
    struct pair_run pr[2] = { { drv, 0, 20000, 64 }, { drv, 1, 20000, 1500 } };
    GThread *th[2];

    assert_int_equal(ctrl_pairs(drv, 2), VIRTIO_NET_OK);
    for (int i = 0; i < 2; i++)
        th[i] = g_thread_new("pair", pair_run_thread, &pr[i]);
    for (int i = 0; i < 2; i++)
        g_thread_join(th[i]);
    pair_run_check(&pr[0]);
    pair_run_check(&pr[1]);
    assert_int_equal(stat(dev, 0, "rx_pkts"), 20000);
    assert_int_equal(stat(dev, 2, "rx_bytes"), 20000 * 1500);
}

static void suspend_resume_cycles_under_traffic_lose_nothing(void **state)
{
    g_autoptr(vdpa_device) dev = net_new(1, 0);
    g_autoptr(vdrv) drv = drv_new(dev, 0);
    struct pair_run pr = { drv, 0, 100000, 64 };
    struct vdpa_vq_stats st;
    struct vdpa_vq_state vs1, vs2;
    GThread *th = g_thread_new("pair", pair_run_thread, &pr);
    unsigned cycles = 0;

    /* suspend and resume while the driver thread sends; the state read while suspended
     * does not move until resume */
    while (stat(dev, 1, "completed_desc") < 90000 && cycles < 2000) {
        assert_int_equal(dev->ops->suspend(dev, NULL), 0);
        assert_int_equal(dev->ops->get_vq_state(dev, 1, &vs1, NULL), 0);
        g_usleep(200);
        assert_int_equal(dev->ops->get_vq_state(dev, 1, &vs2, NULL), 0);
        assert_int_equal(vs1.avail_index, vs2.avail_index);
        assert_int_equal(dev->ops->get_vq_stats(dev, 0, &st, NULL), 0);
        assert_int_equal(dev->ops->resume(dev, NULL), 0);
        g_usleep(300);
        cycles++;
    }
    g_thread_join(th);
    pair_run_check(&pr);
    assert_true(cycles > 3);
    assert_int_equal(stat(dev, 1, "tx_pkts"), 100000);
}

static void without_mq_the_control_queue_is_index_2(void **state)
{
    g_autoptr(vdpa_device) dev = net_new(4, 0);
    g_autoptr(vdrv) drv = drv_new(dev, sim_net_supported_features() & ~F(VIRTIO_NET_F_MQ));

    assert_int_equal(vdrv_net_pairs(drv), 1);
    assert_int_equal(ctrl_rx(drv, VIRTIO_NET_CTRL_RX_PROMISC, true), VIRTIO_NET_OK);
    assert_int_equal(stat(dev, 2, "requests"), 1);
    loopback_ok(drv, 0, 100, 64, other_mac);
    /* MQ was not negotiated: the command is refused */
    assert_int_equal(ctrl_pairs(drv, 2), VIRTIO_NET_ERR);
}

/* ------------------------------------------------------------------ filtering */

static void frame_to_another_mac_is_dropped_and_counted(void **state)
{
    g_autoptr(vdpa_device) dev = net_new(1, 0);
    g_autoptr(vdrv) drv = drv_new(dev, 0);

    filtered(drv, 0, 100, 64, other_mac);
    assert_int_equal(stat(dev, 0, "rx_drops"), 100);
    assert_int_equal(stat(dev, 0, "rx_pkts"), 0);
    assert_int_equal(stat(dev, 1, "tx_pkts"), 100);
    loopback_ok(drv, 0, 100, 64, dev_mac);
}

static void mac_addr_set_changes_filter_and_config_mac(void **state)
{
    g_autoptr(vdpa_device) dev = net_new(1, 0);
    g_autoptr(vdrv) drv = drv_new(dev, 0);
    struct net_ctrl_cmd cmd = { .class = VIRTIO_NET_CTRL_MAC,
                                .cmd = VIRTIO_NET_CTRL_MAC_ADDR_SET };
    uint32_t gen = dev->ops->get_generation(dev);
    uint8_t mac[6];

    memcpy(cmd.u.mac, new_mac, 6);
    filtered(drv, 0, 20, 64, new_mac);
    assert_int_equal(ctrl(drv, &cmd), VIRTIO_NET_OK);
    vdrv_net_mac(drv, mac);
    assert_memory_equal(mac, new_mac, 6);
    assert_true(dev->ops->get_generation(dev) != gen);
    loopback_ok(drv, 0, 200, 64, new_mac);
    filtered(drv, 0, 20, 64, dev_mac);
    assert_int_equal(stat(dev, 0, "rx_drops"), 40);
}

static void promisc_receives_every_destination(void **state)
{
    g_autoptr(vdpa_device) dev = net_new(1, 0);
    g_autoptr(vdrv) drv = drv_new(dev, 0);

    assert_int_equal(ctrl_rx(drv, VIRTIO_NET_CTRL_RX_PROMISC, true), VIRTIO_NET_OK);
    loopback_ok(drv, 0, 100, 64, other_mac);
    loopback_ok(drv, 0, 100, 64, mcast_b);
    assert_int_equal(ctrl_rx(drv, VIRTIO_NET_CTRL_RX_PROMISC, false), VIRTIO_NET_OK);
    filtered(drv, 0, 10, 64, other_mac);
}

static void mac_table_set_accepts_listed_unicast_and_multicast(void **state)
{
    g_autoptr(vdpa_device) dev = net_new(1, 0);
    g_autoptr(vdrv) drv = drv_new(dev, 0);
    struct net_ctrl_cmd cmd = { .class = VIRTIO_NET_CTRL_MAC,
                                .cmd = VIRTIO_NET_CTRL_MAC_TABLE_SET };

    cmd.u.table.n_uni = 1;
    memcpy(cmd.u.table.uni[0], other_mac, 6);
    cmd.u.table.n_multi = 1;
    memcpy(cmd.u.table.multi[0], mcast_a, 6);
    assert_int_equal(ctrl(drv, &cmd), VIRTIO_NET_OK);
    /* multicast is accepted wholesale (allmulti) until the driver turns it off */
    assert_int_equal(ctrl_rx(drv, VIRTIO_NET_CTRL_RX_ALLMULTI, false), VIRTIO_NET_OK);
    loopback_ok(drv, 0, 50, 64, other_mac);
    loopback_ok(drv, 0, 50, 64, mcast_a);
    loopback_ok(drv, 0, 50, 64, dev_mac);
    filtered(drv, 0, 10, 64, mcast_b);
    filtered(drv, 0, 10, 64, new_mac);
    assert_int_equal(stat(dev, 0, "rx_drops"), 20);
}

static void broadcast_received_unless_nobcast(void **state)
{
    g_autoptr(vdpa_device) dev = net_new(1, 0);
    g_autoptr(vdrv) drv = drv_new(dev, 0);

    loopback_ok(drv, 0, 50, 64, bcast);
    assert_int_equal(ctrl_rx(drv, VIRTIO_NET_CTRL_RX_NOBCAST, true), VIRTIO_NET_OK);
    filtered(drv, 0, 10, 64, bcast);
    assert_int_equal(ctrl_rx(drv, VIRTIO_NET_CTRL_RX_NOBCAST, false), VIRTIO_NET_OK);
    loopback_ok(drv, 0, 50, 64, bcast);
}

static void vlan_filter_passes_only_listed_vlans(void **state)
{
    g_autoptr(vdpa_device) dev = net_new(1, 0);
    g_autoptr(vdrv) drv = drv_new(dev, 0);
    struct net_ctrl_cmd add = { .class = VIRTIO_NET_CTRL_VLAN, .cmd = VIRTIO_NET_CTRL_VLAN_ADD,
                                .u.vid = 100 };
    struct net_ctrl_cmd del = { .class = VIRTIO_NET_CTRL_VLAN, .cmd = VIRTIO_NET_CTRL_VLAN_DEL,
                                .u.vid = 100 };

    assert_true(vdrv_features(drv) & F(VIRTIO_NET_F_CTRL_VLAN));
    vdrv_net_set_vlan(drv, 100);
    filtered(drv, 0, 10, 64, dev_mac);
    assert_int_equal(ctrl(drv, &add), VIRTIO_NET_OK);
    loopback_ok(drv, 0, 100, 64, dev_mac);
    loopback_ok(drv, 0, 100, 1518, dev_mac); /* MTU + tag */
    vdrv_net_set_vlan(drv, 101);
    filtered(drv, 0, 10, 64, dev_mac);
    vdrv_net_set_vlan(drv, 100);
    assert_int_equal(ctrl(drv, &del), VIRTIO_NET_OK);
    filtered(drv, 0, 10, 64, dev_mac);
    /* untagged frames are not subject to the VLAN table */
    vdrv_net_set_vlan(drv, -1);
    loopback_ok(drv, 0, 10, 64, dev_mac);
    /* without CTRL_VLAN negotiated, tagged frames pass */
    g_autoptr(vdpa_device) d2 = net_new(1, 0);
    g_autoptr(vdrv) v2 = drv_new(d2, sim_net_supported_features() & ~F(VIRTIO_NET_F_CTRL_VLAN));
    vdrv_net_set_vlan(v2, 100);
    loopback_ok(v2, 0, 10, 64, dev_mac);
}

/* ------------------------------------------------------------------ control queue */

static void bad_control_commands_get_virtio_net_err(void **state)
{
    g_autoptr(vdpa_device) dev = net_new(2, 0);
    g_autoptr(vdrv) drv = drv_new(dev, 0);
    g_autoptr(GError) err = NULL;
    const uint8_t unknown[] = { 0x77, 0x01, 0x00 };
    const uint8_t short_mac[] = { VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_ADDR_SET, 1, 2 };
    const uint8_t promisc_no_data[] = { VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_PROMISC };
    struct net_ctrl_cmd vlan = { .class = VIRTIO_NET_CTRL_VLAN, .cmd = VIRTIO_NET_CTRL_VLAN_ADD,
                                 .u.vid = 4096 };
    g_autofree uint8_t *huge = g_malloc0(10000);
    uint8_t ack;

    assert_int_equal(vdrv_net_ctrl_raw(drv, unknown, sizeof(unknown), &ack, &err), 0);
    assert_int_equal(ack, VIRTIO_NET_ERR);
    assert_int_equal(vdrv_net_ctrl_raw(drv, short_mac, sizeof(short_mac), &ack, NULL), 0);
    assert_int_equal(ack, VIRTIO_NET_ERR);
    assert_int_equal(vdrv_net_ctrl_raw(drv, promisc_no_data, 2, &ack, NULL), 0);
    assert_int_equal(ack, VIRTIO_NET_ERR);
    assert_int_equal(vdrv_net_ctrl_raw(drv, NULL, 0, &ack, NULL), 0); /* only an ack buffer */
    assert_int_equal(ack, VIRTIO_NET_ERR);
    huge[0] = VIRTIO_NET_CTRL_MAC;
    huge[1] = VIRTIO_NET_CTRL_MAC_TABLE_SET;
    assert_int_equal(vdrv_net_ctrl_raw(drv, huge, 10000, &ack, NULL), 0); /* over 8 KiB */
    assert_int_equal(ack, VIRTIO_NET_ERR);
    assert_int_equal(ctrl_pairs(drv, 0), VIRTIO_NET_ERR);
    assert_int_equal(ctrl_pairs(drv, 3), VIRTIO_NET_ERR);
    assert_int_equal(ctrl(drv, &vlan), VIRTIO_NET_ERR);
    /* the device still answers, and good commands still work */
    assert_int_equal(ctrl_pairs(drv, 2), VIRTIO_NET_OK);
    assert_int_equal(stat(dev, 4, "requests"), 9);
    assert_int_equal(stat(dev, 4, "successes"), 1);
    assert_int_equal(stat(dev, 4, "errors"), 8);
    assert_false(dev->ops->get_status(dev) & VIRTIO_CONFIG_S_NEEDS_RESET);
    loopback_ok(drv, 1, 100, 64, dev_mac);
}

static void control_commands_need_their_features(void **state)
{
    g_autoptr(vdpa_device) dev = net_new(1, 0);
    g_autoptr(vdrv) drv = drv_new(dev, sim_net_supported_features() &
                                           ~(F(VIRTIO_NET_F_CTRL_RX) |
                                             F(VIRTIO_NET_F_CTRL_RX_EXTRA)));
    g_autoptr(vdpa_device) d2 = net_new(1, 0);
    g_autoptr(vdrv) nocvq = drv_new(d2, F(VIRTIO_F_VERSION_1) | F(VIRTIO_F_ACCESS_PLATFORM) |
                                            F(VIRTIO_NET_F_MAC));
    g_autoptr(GError) err = NULL;
    uint8_t ack;

    assert_int_equal(ctrl_rx(drv, VIRTIO_NET_CTRL_RX_PROMISC, true), VIRTIO_NET_ERR);
    filtered(drv, 0, 5, 64, other_mac);
    /* no control queue at all: the driver says so, traffic still flows */
    struct net_ctrl_cmd cmd = { .class = VIRTIO_NET_CTRL_RX, .cmd = VIRTIO_NET_CTRL_RX_PROMISC };
    assert_int_equal(vdrv_net_ctrl(nocvq, &cmd, &ack, &err), -ENOTSUP);
    loopback_ok(nocvq, 0, 100, 64, dev_mac);
}

/* ------------------------------------------------------------------ suspend, state, reset */

static void suspend_holds_kicks_until_resume_and_state_is_exact(void **state)
{
    g_autoptr(vdpa_device) dev = net_new(1, 0);
    g_autoptr(vdrv) drv = drv_new(dev, 0);
    struct vdpa_vq_state st;
    struct vdrv_net_result r;
    g_autoptr(GError) err = NULL;
    int64_t deadline;

    assert_int_equal(vdrv_net_run_begin(drv, 0, 100, 64, dev_mac, &err), 0);
    assert_int_equal(vdrv_net_rx_fill(drv, 0, UINT_MAX, NULL), 256);
    assert_int_equal(vdrv_net_tx(drv, 0, 10, NULL), 10);
    deadline = g_get_monotonic_time() + TIMEOUT_MS * 1000;
    do {
        assert_true(vdrv_net_collect(drv, 0, 100, true, NULL) >= 0);
        vdrv_net_run_result(drv, 0, &r);
    } while ((r.received < 10 || vdrv_net_tx_pending(drv, 0)) &&
             g_get_monotonic_time() < deadline);
    assert_int_equal(r.received, 10);

    assert_int_equal(dev->ops->suspend(dev, NULL), 0);
    assert_int_equal(vdrv_net_tx(drv, 0, 5, NULL), 5); /* kicks the suspended device */
    assert_int_equal(vdrv_net_collect(drv, 0, 200, true, NULL), 0);
    assert_int_equal(vdrv_net_tx_pending(drv, 0), 5);
    /* exact: 10 frames taken from TX, 10 buffers from RX */
    assert_int_equal(dev->ops->get_vq_state(dev, 1, &st, NULL), 0);
    assert_int_equal(st.avail_index, 10);
    assert_int_equal(dev->ops->get_vq_state(dev, 0, &st, NULL), 0);
    assert_int_equal(st.avail_index, 10);
    assert_int_equal(stat(dev, 1, "tx_pkts"), 10);
    /* suspended: the state may be set, to the same value here */
    st.avail_index = 10;
    assert_int_equal(dev->ops->set_vq_state(dev, 1, &st, NULL), 0);

    assert_int_equal(dev->ops->resume(dev, NULL), 0);
    deadline = g_get_monotonic_time() + TIMEOUT_MS * 1000;
    do {
        assert_true(vdrv_net_collect(drv, 0, 100, true, NULL) >= 0);
        vdrv_net_run_result(drv, 0, &r);
    } while ((r.received < 15 || vdrv_net_tx_pending(drv, 0)) &&
             g_get_monotonic_time() < deadline);
    assert_int_equal(r.received, 15);
    assert_int_equal(r.duplicated + r.corrupted + r.stray, 0);
    assert_int_equal(dev->ops->get_vq_state(dev, 1, &st, NULL), 0);
    assert_int_equal(st.avail_index, 15);
    /* running again: the state cannot be set */
    g_autoptr(GError) busy = NULL;
    assert_int_equal(dev->ops->set_vq_state(dev, 1, &st, &busy), -EBUSY);
}

static void rx_backpressure_keeps_tx_frames_until_buffers_are_posted(void **state)
{
    g_autoptr(vdpa_device) dev = net_new(1, 0);
    g_autoptr(vdrv) drv = drv_new(dev, 0);
    struct vdpa_vq_state st;
    struct vdrv_net_result r;
    int64_t deadline;

    assert_int_equal(vdrv_net_run_begin(drv, 0, 200, 64, dev_mac, NULL), 0);
    assert_int_equal(vdrv_net_tx(drv, 0, 200, NULL), 200);
    /* no receive buffer: nothing completes, nothing is dropped, nothing is taken */
    assert_int_equal(vdrv_net_collect(drv, 0, 200, false, NULL), 0);
    assert_int_equal(vdrv_net_tx_pending(drv, 0), 200);
    assert_int_equal(stat(dev, 0, "rx_drops"), 0);
    assert_int_equal(dev->ops->get_vq_state(dev, 1, &st, NULL), 0);
    assert_int_equal(st.avail_index, 0);
    /* a few buffers: exactly that many frames go through, the rest keep waiting */
    assert_int_equal(vdrv_net_rx_fill(drv, 0, 30, NULL), 30);
    deadline = g_get_monotonic_time() + TIMEOUT_MS * 1000;
    do {
        assert_true(vdrv_net_collect(drv, 0, 100, false, NULL) >= 0);
        vdrv_net_run_result(drv, 0, &r);
    } while (r.received < 30 && g_get_monotonic_time() < deadline);
    assert_int_equal(vdrv_net_collect(drv, 0, 100, false, NULL), 0);
    vdrv_net_run_result(drv, 0, &r);
    assert_int_equal(r.received, 30);
    assert_int_equal(vdrv_net_tx_pending(drv, 0), 170);
    /* the rest, once buffers keep coming */
    assert_true(vdrv_net_rx_fill(drv, 0, UINT_MAX, NULL) > 0);
    deadline = g_get_monotonic_time() + TIMEOUT_MS * 1000;
    do {
        assert_true(vdrv_net_collect(drv, 0, 100, true, NULL) >= 0);
        vdrv_net_run_result(drv, 0, &r);
    } while ((r.received < 200 || vdrv_net_tx_pending(drv, 0)) &&
             g_get_monotonic_time() < deadline);
    assert_int_equal(r.received, 200);
    assert_int_equal(r.lost + r.duplicated + r.corrupted, 0);
    assert_int_equal(stat(dev, 0, "rx_drops"), 0);
    assert_int_equal(stat(dev, 1, "received_desc"), 200);
}

static void frame_larger_than_rx_buffer_is_an_overrun(void **state)
{
    g_autoptr(vdpa_device) dev = net_new(1, 0);
    g_autoptr(vdrv) drv = drv_new(dev, 0);
    uint64_t iova;
    uint8_t *small = vdrv_alloc_scratch(drv, 128, &iova);
    struct vring_buf b = { .iova = iova, .len = 128 };
    struct vdrv_net_result r;

    assert_non_null(small);
    assert_int_equal(vdrv_post_raw(drv, 0, &b, 0, 1, NULL), 0);
    assert_int_equal(vdrv_net_run_begin(drv, 0, 2, 1500, dev_mac, NULL), 0);
    assert_int_equal(vdrv_net_tx(drv, 0, 1, NULL), 1);
    /* the frame is dropped, its TX buffer completes, the small buffer stays posted */
    for (int i = 0; i < 20 && vdrv_net_tx_pending(drv, 0); i++)
        vdrv_net_collect(drv, 0, 100, false, NULL);
    assert_int_equal(vdrv_net_tx_pending(drv, 0), 0);
    assert_int_equal(stat(dev, 0, "rx_overruns"), 1);
    assert_int_equal(stat(dev, 0, "rx_pkts"), 0);
    vdrv_net_run_result(drv, 0, &r);
    assert_int_equal(r.received, 0);
    /* a frame that fits takes the small buffer */
    assert_int_equal(vdrv_net_run_begin(drv, 0, 1, 100, dev_mac, NULL), 0);
    assert_int_equal(vdrv_net_tx(drv, 0, 1, NULL), 1);
    for (int i = 0; i < 20 && vdrv_net_tx_pending(drv, 0); i++)
        vdrv_net_collect(drv, 0, 100, false, NULL);
    assert_int_equal(stat(dev, 0, "rx_pkts"), 1);
    assert_int_equal(small[12], dev_mac[0]); /* frame after the 12-byte net header */
    assert_int_equal(small[10], 1);          /* num_buffers = 1 */
}

static void short_tx_chain_is_a_tx_error(void **state)
{
    g_autoptr(vdpa_device) dev = net_new(1, 0);
    g_autoptr(vdrv) drv = drv_new(dev, 0);
    uint64_t iova;
    void *p = vdrv_alloc_scratch(drv, 64, &iova);
    struct vring_buf b = { .iova = iova, .len = 20 }; /* header + 8 bytes */

    assert_non_null(p);
    assert_int_equal(vdrv_post_raw(drv, 1, &b, 1, 0, NULL), 0);
    for (int i = 0; i < 100 && stat(dev, 1, "completed_desc") < 1; i++)
        g_usleep(10000);
    assert_int_equal(stat(dev, 1, "tx_errors"), 1);
    assert_int_equal(stat(dev, 1, "tx_pkts"), 0);
    loopback_ok(drv, 0, 10, 64, dev_mac);
}

static void reset_returns_everything_to_the_initial_state(void **state)
{
    g_autoptr(vdpa_device) dev = net_new(2, 0);
    g_autoptr(vdrv) drv = drv_new(dev, 0);
    struct net_ctrl_cmd set = { .class = VIRTIO_NET_CTRL_MAC,
                                .cmd = VIRTIO_NET_CTRL_MAC_ADDR_SET };
    g_autoptr(GError) err = NULL;
    uint64_t iova, size;
    void *mem = vdrv_guest_memory(drv, &iova, &size);
    struct vdpa_vq_state st;
    uint8_t mac[6];

    memcpy(set.u.mac, new_mac, 6);
    assert_int_equal(ctrl(drv, &set), VIRTIO_NET_OK);
    assert_int_equal(ctrl_pairs(drv, 2), VIRTIO_NET_OK);
    assert_int_equal(ctrl_rx(drv, VIRTIO_NET_CTRL_RX_PROMISC, true), VIRTIO_NET_OK);
    loopback_ok(drv, 1, 100, 64, other_mac);
    /* the memory is mapped: mapping it again overlaps */
    g_autoptr(GError) overlap = NULL;
    assert_int_equal(dev->ops->dma_map(dev, iova, size, mem, IOVA_PERM_RW, &overlap), -EEXIST);

    assert_int_equal(dev->ops->reset(dev, NULL), 0);
    assert_int_equal(dev->ops->get_status(dev), 0);
    assert_int_equal(dev->ops->get_driver_features(dev), 0);
    dev->ops->get_config(dev, 0, mac, 6);
    assert_memory_equal(mac, dev_mac, 6);
    for (unsigned i = 0; i < dev->ops->get_vq_count(dev); i++) {
        assert_false(dev->ops->get_vq_ready(dev, i));
        assert_int_equal(dev->ops->get_vq_state(dev, i, &st, NULL), 0);
        assert_int_equal(st.avail_index, 0);
    }
    /* mappings are gone: the same range maps again */
    assert_int_equal(dev->ops->dma_map(dev, iova, size, mem, IOVA_PERM_RW, NULL), 0);
    assert_int_equal(dev->ops->dma_unmap(dev, iova, size, NULL), 0);
    /* counters survive reset, like vdpa_sim's vstats */
    assert_int_equal(stat(dev, 2, "rx_pkts"), 100);

    /* a driver starting over finds the initial filters: one pair, no promisc, old MAC */
    assert_int_equal(vdrv_reset(drv, &err), 0);
    filtered(drv, 0, 10, 64, other_mac);
    filtered(drv, 0, 10, 64, new_mac);
    filtered(drv, 1, 10, 64, dev_mac);
    loopback_ok(drv, 0, 100, 64, dev_mac);
}

/* ------------------------------------------------------------------ hostile rings, mappings */

static void hostile_descriptor_breaks_only_its_queue_until_reset(void **state)
{
    g_autoptr(vdpa_device) dev = net_new(2, 0);
    g_autoptr(vdrv) drv = drv_new(dev, 0);
    uint64_t iova, size;
    g_autoptr(GError) err = NULL;

    vdrv_guest_memory(drv, &iova, &size);
    assert_int_equal(ctrl_pairs(drv, 2), VIRTIO_NET_OK);
    loopback_ok(drv, 0, 10, 64, dev_mac);
    assert_false(vdrv_config_signalled(drv, 0));

    /* a TX descriptor pointing past guest memory */
    struct vring_buf bad = { .iova = iova + size + (1u << 20), .len = 64 };
    assert_int_equal(vdrv_post_raw(drv, 1, &bad, 1, 0, NULL), 0);
    assert_true(vdrv_config_signalled(drv, TIMEOUT_MS));
    assert_true(dev->ops->get_status(dev) & VIRTIO_CONFIG_S_NEEDS_RESET);
    assert_true(dev->ops->get_status(dev) & VIRTIO_CONFIG_S_DRIVER_OK);
    assert_int_equal(stat(dev, 1, "tx_errors"), 1);
    /* only that queue stopped: pair 1 and the control queue work */
    loopback_ok(drv, 1, 500, 64, dev_mac);
    assert_int_equal(ctrl_rx(drv, VIRTIO_NET_CTRL_RX_PROMISC, true), VIRTIO_NET_OK);
    /* pair 0 sends nothing any more */
    struct vdrv_net_result r;
    assert_true(vdrv_net_exchange(drv, 0, 5, 64, dev_mac, true, 200, &r, &err) < 0);
    assert_int_equal(r.received, 0);
    assert_int_equal(stat(dev, 1, "received_desc"), 10);

    /* after reset the device works again */
    assert_int_equal(vdrv_reset(drv, NULL), 0);
    assert_false(dev->ops->get_status(dev) & VIRTIO_CONFIG_S_NEEDS_RESET);
    loopback_ok(drv, 0, 500, 64, dev_mac);
}

static void unmapped_rx_buffer_breaks_the_rx_queue_and_drops_the_frame(void **state)
{
    g_autoptr(vdpa_device) dev = net_new(1, 0);
    g_autoptr(vdrv) drv = drv_new(dev, 0);
    uint64_t iova, size;

    vdrv_guest_memory(drv, &iova, &size);
    struct vring_buf bad = { .iova = iova + size, .len = 2048 };
    assert_int_equal(vdrv_post_raw(drv, 0, &bad, 0, 1, NULL), 0);
    /* the device only looks at RX buffers when a frame comes */
    assert_int_equal(vdrv_net_run_begin(drv, 0, 1, 64, dev_mac, NULL), 0);
    assert_int_equal(vdrv_net_tx(drv, 0, 1, NULL), 1);
    assert_true(vdrv_config_signalled(drv, TIMEOUT_MS));
    assert_int_equal(stat(dev, 0, "rx_errors"), 1);
    assert_true(dev->ops->get_status(dev) & VIRTIO_CONFIG_S_NEEDS_RESET);
    /* the TX frame was completed (dropped), not lost in the ring */
    for (int i = 0; i < 20 && vdrv_net_tx_pending(drv, 0); i++)
        vdrv_net_collect(drv, 0, 100, false, NULL);
    assert_int_equal(vdrv_net_tx_pending(drv, 0), 0);
    assert_int_equal(stat(dev, 0, "rx_drops"), 1);
}

static void unmapping_a_running_ring_stops_the_queue(void **state)
{
    g_autoptr(vdpa_device) dev = net_new(1, 0);
    g_autoptr(vdrv) drv = drv_new(dev, 0);
    uint64_t iova, size;
    void *mem = vdrv_guest_memory(drv, &iova, &size);

    assert_int_equal(dev->ops->dma_unmap(dev, iova, size, NULL), 0);
    assert_true(dev->ops->get_status(dev) & VIRTIO_CONFIG_S_NEEDS_RESET);
    assert_true(vdrv_config_signalled(drv, TIMEOUT_MS));
    assert_int_equal(dev->ops->dma_map(dev, iova, size, mem, IOVA_PERM_RW, NULL), 0);
    /* still stopped: a queue stopped by an error waits for reset */
    g_autoptr(GError) err = NULL;
    struct vdrv_net_result r;
    assert_true(vdrv_net_exchange(drv, 0, 5, 64, dev_mac, true, 200, &r, &err) < 0);
}

static void dma_batch_applies_unmap_and_map_at_once(void **state)
{
    g_autoptr(vdpa_device) dev = net_new(1, 0);
    g_autoptr(vdrv) drv = drv_new(dev, 0);
    uint64_t iova, size;
    void *mem = vdrv_guest_memory(drv, &iova, &size);
    g_autoptr(GError) e1 = NULL, e2 = NULL, e3 = NULL;

    loopback_ok(drv, 0, 100, 64, dev_mac);
    assert_int_equal(dev->ops->dma_batch_begin(dev, NULL), 0);
    assert_int_equal(dev->ops->dma_batch_begin(dev, &e1), -EBUSY);
    /* remap guest memory in two halves: in between nothing is mapped */
    assert_int_equal(dev->ops->dma_unmap(dev, iova, size, NULL), 0);
    assert_int_equal(dev->ops->dma_map(dev, iova, size / 2, mem, IOVA_PERM_RW, NULL), 0);
    /* overlaps are reported at once, inside the batch */
    assert_int_equal(dev->ops->dma_map(dev, iova, 4096, mem, IOVA_PERM_RW, &e2), -EEXIST);
    assert_int_equal(dev->ops->dma_map(dev, iova + size / 2, size / 2, (uint8_t *)mem + size / 2,
                                       IOVA_PERM_RW, NULL),
                     0);
    assert_int_equal(dev->ops->dma_batch_end(dev, NULL), 0);
    assert_int_equal(dev->ops->dma_batch_end(dev, &e3), -EINVAL);
    /* the queues never saw the gap */
    assert_false(dev->ops->get_status(dev) & VIRTIO_CONFIG_S_NEEDS_RESET);
    loopback_ok(drv, 0, 1000, 64, dev_mac);
}

static void read_only_mapping_of_rx_buffers_is_refused(void **state)
{
    g_autoptr(vdpa_device) dev = net_new(1, 0);
    g_autoptr(vdrv) drv = drv_new(dev, 0);
    uint64_t iova, size;
    uint8_t ro[4096] __attribute__((aligned(4096)));

    vdrv_guest_memory(drv, &iova, &size);
    /* map a page of ours read-only above guest memory and post it as an RX buffer */
    assert_int_equal(dev->ops->dma_map(dev, iova + size, sizeof(ro), ro, IOVA_PERM_READ, NULL),
                     0);
    struct vring_buf b = { .iova = iova + size, .len = 2048 };
    assert_int_equal(vdrv_post_raw(drv, 0, &b, 0, 1, NULL), 0);
    assert_int_equal(vdrv_net_run_begin(drv, 0, 1, 64, dev_mac, NULL), 0);
    assert_int_equal(vdrv_net_tx(drv, 0, 1, NULL), 1);
    assert_true(vdrv_config_signalled(drv, TIMEOUT_MS));
    assert_int_equal(stat(dev, 0, "rx_errors"), 1);
    assert_int_equal(dev->ops->dma_unmap(dev, iova + size, sizeof(ro), NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(features_offered_are_the_supported_set_or_the_creation_mask),
        cmocka_unit_test(create_refuses_bad_pairs_and_mtu),
        cmocka_unit_test(set_driver_features_refuses_unoffered_bits_and_late_changes),
        cmocka_unit_test(features_ok_refused_without_version_1_access_platform_or_cvq),
        cmocka_unit_test(status_bits_cannot_be_cleared_and_zero_resets),
        cmocka_unit_test(config_space_has_mac_link_pairs_and_mtu),
        cmocka_unit_test(queue_ops_check_index_size_alignment_and_readiness),
        cmocka_unit_test(traffic_64_and_1500_bytes_exactly_once_on_one_pair),
        cmocka_unit_test(traffic_without_event_idx_and_with_small_rings),
        cmocka_unit_test(traffic_on_two_pairs_after_mq_vq_pairs_set),
        cmocka_unit_test(traffic_on_two_pairs_concurrently_from_two_threads),
        cmocka_unit_test(suspend_resume_cycles_under_traffic_lose_nothing),
        cmocka_unit_test(without_mq_the_control_queue_is_index_2),
        cmocka_unit_test(frame_to_another_mac_is_dropped_and_counted),
        cmocka_unit_test(mac_addr_set_changes_filter_and_config_mac),
        cmocka_unit_test(promisc_receives_every_destination),
        cmocka_unit_test(mac_table_set_accepts_listed_unicast_and_multicast),
        cmocka_unit_test(broadcast_received_unless_nobcast),
        cmocka_unit_test(vlan_filter_passes_only_listed_vlans),
        cmocka_unit_test(bad_control_commands_get_virtio_net_err),
        cmocka_unit_test(control_commands_need_their_features),
        cmocka_unit_test(suspend_holds_kicks_until_resume_and_state_is_exact),
        cmocka_unit_test(rx_backpressure_keeps_tx_frames_until_buffers_are_posted),
        cmocka_unit_test(frame_larger_than_rx_buffer_is_an_overrun),
        cmocka_unit_test(short_tx_chain_is_a_tx_error),
        cmocka_unit_test(reset_returns_everything_to_the_initial_state),
        cmocka_unit_test(hostile_descriptor_breaks_only_its_queue_until_reset),
        cmocka_unit_test(unmapped_rx_buffer_breaks_the_rx_queue_and_drops_the_frame),
        cmocka_unit_test(unmapping_a_running_ring_stops_the_queue),
        cmocka_unit_test(dma_batch_applies_unmap_and_map_at_once),
        cmocka_unit_test(read_only_mapping_of_rx_buffers_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
