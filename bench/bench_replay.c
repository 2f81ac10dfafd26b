/* bench_replay — what replaying the device state costs a migration's destination, per
 * control command.
 *
 * For device states of growing size on a simulated NIC (2 queue pairs, every control
 * feature), the commands net_state_replay gives for the state are sent:
 *   replay:   by relay_cvq_command, through a relay that serves the control queue from a
 *             guest ring, one command at a time and each acknowledged before the next,
 *             as session_relay_after_driver_ok does on a destination;
 *   baseline: by a guest driver (vdrv_net_ctrl) straight to the control queue of a second
 *             simulated NIC, with no relay: what the same command costs the guest.
 * The two run interleaved, `reps` times each. Every command must be acknowledged
 * VIRTIO_NET_OK, or the run fails. The table gives, per state, the commands, the median
 * (min..max) microseconds per command of each, and the ratio replay/baseline.
 *
 * Usage: bench_replay [--reps R]
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <glib.h>
#include <linux/virtio_config.h>
#include <linux/virtio_net.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "backend/sim/sim.h"
#include "driver/virtio_driver.h"
#include "iova/iova_map.h"
#include "shadow_vq/relay.h"
#include "util/error.h"
#include "util/stats.h"
#include "virtio/net_state.h"
#include "virtio/split_ring.h"

#define F(bit) (1ull << (bit))
#define PAIRS 2
#define CVQ (2 * PAIRS)
#define CVQ_NUM 64
#define RING_IOVA 0x100000ull
#define RING_BYTES (64 * 1024)
#define ACK_TIMEOUT_MS 2000
#define MAX_REPS 1000

static const uint8_t dev_mac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };

static const uint64_t features =
    F(VIRTIO_F_VERSION_1) | F(VIRTIO_F_ACCESS_PLATFORM) | F(VIRTIO_NET_F_MAC) |
    F(VIRTIO_NET_F_CTRL_VQ) | F(VIRTIO_NET_F_MQ) | F(VIRTIO_NET_F_CTRL_RX) |
    F(VIRTIO_NET_F_CTRL_RX_EXTRA) | F(VIRTIO_NET_F_CTRL_VLAN) | F(VIRTIO_NET_F_CTRL_MAC_ADDR);

/* A device whose control queue a relay serves, as on a destination: the guest's control
 * ring (empty, base 0) in memory of our own. */
struct relayed_device {
    struct vdpa_device *dev;
    struct iova_map *ring_map;
    void *ring_mem;
    int kick_fd, call_fd;
    struct relay *relay;
};

static void relayed_device_free(struct relayed_device *d)
{
    if (d->relay) {
        d->dev->ops->reset(d->dev, NULL);
        relay_free(d->relay);
    }
    if (d->dev)
        vdpa_device_free(d->dev);
    if (d->ring_map)
        iova_map_free(d->ring_map);
    free(d->ring_mem);
    if (d->kick_fd >= 0)
        close(d->kick_fd);
    if (d->call_fd >= 0)
        close(d->call_fd);
    g_free(d);
}
typedef struct relayed_device relayed_device; /* for g_autoptr */
G_DEFINE_AUTOPTR_CLEANUP_FUNC(relayed_device, relayed_device_free)

static struct vdpa_device *new_nic(GError **error)
{
    struct sim_net_config cfg = { .name = "n0", .queue_pairs = PAIRS };

    memcpy(cfg.mac, dev_mac, 6);
    return sim_net_new(&cfg, error);
}

static struct relayed_device *relayed_device_new(GError **error)
{
    g_autoptr(relayed_device) d = g_new0(struct relayed_device, 1);
    const uint8_t st = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER;

    d->kick_fd = d->call_fd = -1;
    if (!(d->dev = new_nic(error)))
        return NULL;
    if (posix_memalign(&d->ring_mem, 4096, RING_BYTES) != 0)
        return vdpad_fail(error, ENOMEM, "no memory for the control ring"), NULL;
    memset(d->ring_mem, 0, RING_BYTES);
    d->ring_map = iova_map_new();
    if (iova_map_add(d->ring_map, RING_IOVA, RING_BYTES, d->ring_mem, IOVA_PERM_RW, error) < 0)
        return NULL;
    uint64_t desc = RING_IOVA, avail = desc + vring_desc_bytes(CVQ_NUM);
    uint64_t used = (avail + vring_avail_bytes(CVQ_NUM) + 4095) & ~4095ull;

    const struct vdpa_device_ops *ops = d->dev->ops;
    if (ops->set_status(d->dev, st, error) < 0 ||
        ops->set_driver_features(d->dev, features, error) < 0 ||
        ops->set_status(d->dev, st | VIRTIO_CONFIG_S_FEATURES_OK, error) < 0)
        return NULL;
    if (!(d->relay = relay_new(d->dev, d->ring_map, features, NULL, error)))
        return NULL;
    d->kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    d->call_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (d->kick_fd < 0 || d->call_fd < 0)
        return vdpad_fail(error, errno, "eventfd: %s", g_strerror(errno)), NULL;
    struct relay_queue_config q = {
        .idx = CVQ, .num = CVQ_NUM, .desc = desc, .avail = avail, .used = used,
        .guest_kick_fd = d->kick_fd, .guest_call_fd = d->call_fd, .control = true,
    };
    if (relay_add_queue(d->relay, &q, error) < 0 ||
        ops->set_vq_ready(d->dev, CVQ, true, error) < 0 ||
        ops->set_status(d->dev, st | VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK,
                        error) < 0)
        return NULL;
    return g_steal_pointer(&d);
}

/* ------------------------------------------------------------------ the states */

static void set_mac_entry(uint8_t mac[6], uint8_t first, unsigned i)
{
    const uint8_t e[6] = { first, 0x00, 0x5e, 0x10, (uint8_t)(i >> 8), (uint8_t)i };
    memcpy(mac, e, 6);
}

/* level 0: the MAC and the queue pairs; 1: + RX modes and 16+16 MAC table entries;
 * 2: + 8 VLANs; 3: + 256 VLANs */
static void make_state(struct net_state *st, unsigned level)
{
    static const uint8_t guest_mac[6] = { 0x52, 0x54, 0x00, 0xbb, 0x00, 0x02 };

    net_state_reset(st, dev_mac, features);
    memcpy(st->mac, guest_mac, 6);
    st->queue_pairs = PAIRS;
    if (level >= 1) {
        st->promisc = true;
        st->allmulti = false;
        st->nobcast = true;
        st->n_uni = st->n_multi = 16;
        for (unsigned i = 0; i < 16; i++) {
            set_mac_entry(st->uni[i], 0x02, i);
            set_mac_entry(st->multi[i], 0x01, i);
        }
    }
    unsigned vlans = level >= 3 ? 264 : level >= 2 ? 8 : 0;
    for (unsigned v = 1; v <= vlans; v++)
        st->vlan[v / 32] |= 1u << (v % 32);
}

/* ------------------------------------------------------------------ one timed pass */

static int replay_pass(struct relayed_device *d, const struct net_ctrl_cmd *cmds, unsigned n,
                       double *seconds, GError **error)
{
    gint64 t0 = g_get_monotonic_time();

    for (unsigned i = 0; i < n; i++) {
        uint8_t buf[2 + 2 * (4 + NET_STATE_MAC_TABLE_MAX * 6) + 8], ack = 0xff;
        size_t len = net_ctrl_encode(&cmds[i], buf, sizeof(buf));
        if (relay_cvq_command(d->relay, buf, len, ACK_TIMEOUT_MS, &ack, error) < 0)
            return vdpad_prefix_error(error, "replay, command %u of %u: ", i + 1, n);
        if (ack != VIRTIO_NET_OK)
            return vdpad_fail(error, EIO, "replay, command %u of %u (class %u cmd %u): the "
                              "device answered %u", i + 1, n, cmds[i].class, cmds[i].cmd, ack);
    }
    *seconds = (g_get_monotonic_time() - t0) / 1e6;
    return 0;
}

static int guest_pass(struct vdrv *drv, const struct net_ctrl_cmd *cmds, unsigned n,
                      double *seconds, GError **error)
{
    gint64 t0 = g_get_monotonic_time();

    for (unsigned i = 0; i < n; i++) {
        uint8_t ack = 0xff;
        if (vdrv_net_ctrl(drv, &cmds[i], &ack, error) < 0)
            return vdpad_prefix_error(error, "baseline, command %u of %u: ", i + 1, n);
        if (ack != VIRTIO_NET_OK)
            return vdpad_fail(error, EIO, "baseline, command %u of %u (class %u cmd %u): the "
                              "device answered %u", i + 1, n, cmds[i].class, cmds[i].cmd, ack);
    }
    *seconds = (g_get_monotonic_time() - t0) / 1e6;
    return 0;
}

static const char *const state_names[] = { "MAC, queue pairs", "+ RX modes, 16+16 MAC table",
                                           "+ 8 VLANs", "+ 264 VLANs" };

/* One warm-up pass on each device, then reps interleaved timed passes. */
static int time_passes(struct relayed_device *d, struct vdrv *drv,
                       const struct net_ctrl_cmd *cmds, unsigned n, unsigned reps,
                       double *replay_us, double *guest_us, GError **error)
{
    double s;

    if (replay_pass(d, cmds, n, &s, error) < 0 || guest_pass(drv, cmds, n, &s, error) < 0)
        return -1;
    for (unsigned r = 0; r < reps; r++) {
        if (replay_pass(d, cmds, n, &s, error) < 0)
            return -1;
        replay_us[r] = s * 1e6 / n;
        if (guest_pass(drv, cmds, n, &s, error) < 0)
            return -1;
        guest_us[r] = s * 1e6 / n;
    }
    return 0;
}

static int bench_level(unsigned level, unsigned reps, struct vdrv *drv,
                       struct relayed_device *d)
{
    g_autoptr(GError) err = NULL;
    g_autofree struct net_state *st = g_new0(struct net_state, 1);
    g_autofree struct net_ctrl_cmd *cmds = g_new(struct net_ctrl_cmd, NET_STATE_REPLAY_MAX);
    double replay_us[MAX_REPS], guest_us[MAX_REPS];

    make_state(st, level);
    unsigned n = net_state_replay(st, features, cmds, NET_STATE_REPLAY_MAX);
    if (time_passes(d, drv, cmds, n, reps, replay_us, guest_us, &err) < 0) {
        fprintf(stderr, "bench_replay: state \"%s\": %s\n", state_names[level], err->message);
        return -1;
    }
    struct sample_summary rs, gs;
    sample_summarize(replay_us, reps, &rs);
    sample_summarize(guest_us, reps, &gs);
    g_autofree char *rcol = g_strdup_printf("%.1f (%.1f..%.1f)", rs.median, rs.min, rs.max);
    g_autofree char *gcol = g_strdup_printf("%.1f (%.1f..%.1f)", gs.median, gs.min, gs.max);
    printf("%-30s %8u %-24s %-24s %9.3f %6.2f\n", state_names[level], n, rcol, gcol,
           rs.median * n / 1000, rs.median / gs.median);
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = { { "reps", required_argument, NULL, 'r' },
                                          { "help", no_argument, NULL, 'h' },
                                          { NULL, 0, NULL, 0 } };
    unsigned reps = 51;
    int c;

    while ((c = getopt_long(argc, argv, "r:h", opts, NULL)) != -1) {
        switch (c) {
        case 'r':
            reps = (unsigned)strtoul(optarg, NULL, 10);
            if (reps < 1 || reps > MAX_REPS) {
                fprintf(stderr, "bench_replay: --reps takes 1..%d\n", MAX_REPS);
                return 2;
            }
            break;
        default:
            fprintf(stderr, "usage: bench_replay [--reps R]\n");
            return c == 'h' ? 0 : 2;
        }
    }

    g_autoptr(GError) err = NULL;
    g_autoptr(relayed_device) d = relayed_device_new(&err);
    if (!d) {
        fprintf(stderr, "bench_replay: the relayed device: %s\n", err->message);
        return 1;
    }
    struct vdpa_device *guest_nic = new_nic(&err);
    if (!guest_nic) {
        fprintf(stderr, "bench_replay: the baseline device: %s\n", err->message);
        return 1;
    }
    struct vdrv_config dcfg = { .features = features, .timeout_ms = ACK_TIMEOUT_MS };
    struct vdrv *drv = vdrv_new(guest_nic, &dcfg, &err);
    if (!drv) {
        fprintf(stderr, "bench_replay: the baseline driver: %s\n", err->message);
        vdpa_device_free(guest_nic);
        return 1;
    }

    printf("state replay on a simulated NIC (%u queue pairs), %u repetitions, interleaved;\n"
           "microseconds per command, median (min..max)\n", PAIRS, reps);
    printf("%-30s %8s %-24s %-24s %9s %6s\n", "state", "commands", "replay us/cmd",
           "guest us/cmd (baseline)", "replay ms", "ratio");
    int ret = 0;
    for (unsigned level = 0; level < 4 && ret == 0; level++)
        ret = bench_level(level, reps, drv, d);
    vdrv_free(drv);
    vdpa_device_free(guest_nic);
    return ret == 0 ? 0 : 1;
}
