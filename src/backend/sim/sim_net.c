/* sim_net.c — the simulated NIC: a loopback that sends what pair i transmits back to
 * pair i's receive queue, through the receive filter a driver programs over the control
 * queue. Queue layout: rx0, tx0, rx1, tx1, ..., then the control queue (index
 * 2 * max_queue_pairs with MQ negotiated, 2 without, as virtio and mlx5_vdpa place it).
 *
 * Delivery rules (docs/adr/0004-simulator.md):
 *   - receive queue ready but out of buffers: the TX frame stays in its ring (it is put
 *     back) until the driver posts receive buffers and kicks; nothing is lost;
 *   - receive queue not running (not set up, or its pair is inactive): dropped, rx_drops;
 *   - rejected by the filter: dropped, rx_drops;
 *   - larger than the receive buffer: dropped, rx_overruns (the buffer stays available);
 *   - TX chain shorter than a net header and an Ethernet header: tx_errors.
 */
#include "config.h"

#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <linux/if_ether.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_net.h>
#include <linux/virtio_ring.h>
#include <string.h>

#include "backend/sim/sim.h"
#include "backend/sim/sim_core.h"
#include "backend/sim/sim_segs.h"
#include "util/error.h"
#include "virtio/net_state.h"

#define NET_HDR_LEN sizeof(struct virtio_net_hdr_v1)
/* Bytes of a frame the filter looks at (destination, source, 802.1Q tag). */
#define NET_FILTER_BYTES 64
/* Largest control request read (a full MAC table of each kind fits with room to spare);
 * a longer one is answered VIRTIO_NET_ERR. */
#define NET_CTRL_MAX 8192
#define NET_MAX_PAIRS 16

struct sim_net_vq_stats {
    uint64_t rx_pkts, rx_bytes, rx_drops, rx_overruns, rx_errors;
    uint64_t tx_pkts, tx_bytes, tx_errors;
    uint64_t requests, successes, errors; /* control queue */
};

struct sim_net {
    struct sim sim;
    uint16_t max_pairs;
    uint8_t mac[ETH_ALEN]; /* from creation; reset restores it */
    uint16_t mtu;
    struct net_state st;
    bool tx_blocked[NET_MAX_PAIRS]; /* a TX frame waits for a receive buffer */
    struct sim_net_vq_stats *vs;    /* per queue */
    struct net_ctrl_cmd cmd;        /* being applied (too large for the worker's stack) */
    uint8_t ctrl_buf[NET_CTRL_MAX];
};

enum net_queue_role { NET_Q_NONE, NET_Q_RX, NET_Q_TX, NET_Q_CTRL };

#define F(bit) (1ull << (bit))

uint64_t sim_net_supported_features(void)
{
    return F(VIRTIO_F_VERSION_1) | F(VIRTIO_F_ACCESS_PLATFORM) | F(VIRTIO_NET_F_MAC) |
           F(VIRTIO_NET_F_MTU) | F(VIRTIO_NET_F_STATUS) | F(VIRTIO_NET_F_CTRL_VQ) |
           F(VIRTIO_NET_F_MQ) | F(VIRTIO_NET_F_CTRL_RX) | F(VIRTIO_NET_F_CTRL_RX_EXTRA) |
           F(VIRTIO_NET_F_CTRL_VLAN) | F(VIRTIO_NET_F_CTRL_MAC_ADDR) |
           F(VIRTIO_NET_F_CTRL_GUEST_OFFLOADS) | F(VIRTIO_NET_F_GUEST_CSUM) |
           F(VIRTIO_RING_F_EVENT_IDX) | F(VIRTIO_RING_F_INDIRECT_DESC);
}

static struct sim_net *to_net(struct sim *s)
{
    return (struct sim_net *)s;
}

/* Features that decide the layout: negotiated ones once accepted, else the offered ones. */
static uint64_t net_layout_features(const struct sim *s)
{
    return (s->status & VIRTIO_CONFIG_S_FEATURES_OK) ? s->driver_features : s->device_features;
}

static unsigned net_pairs(const struct sim_net *n, uint64_t features)
{
    return (features & F(VIRTIO_NET_F_MQ)) ? n->max_pairs : 1;
}

static unsigned net_ctrl_idx(const struct sim_net *n, uint64_t features)
{
    return 2 * net_pairs(n, features);
}

static enum net_queue_role net_role(const struct sim_net *n, unsigned idx, uint64_t features)
{
    if (idx < 2 * net_pairs(n, features))
        return idx % 2 ? NET_Q_TX : NET_Q_RX;
    if ((features & F(VIRTIO_NET_F_CTRL_VQ)) && idx == net_ctrl_idx(n, features))
        return NET_Q_CTRL;
    return NET_Q_NONE;
}

/* ------------------------------------------------------------------ data path */

enum tx_verdict { TX_DONE, TX_BLOCKED };

/* Handles the TX chain in the TX queue's element: delivers it to pair p's receive queue,
 * drops it, or reports that it must wait for a receive buffer (nothing done then). */
static enum tx_verdict net_tx_one(struct sim_net *n, unsigned p, bool rx_ok, bool *rx_used)
{
    struct sim *s = &n->sim;
    unsigned rxi = 2 * p, txi = 2 * p + 1;
    struct sim_vq *txq = &s->vqs[txi], *rxq = &s->vqs[rxi];
    struct vring_elem *tx = txq->elem, *rx = rxq->elem;
    struct sim_net_vq_stats *txs = &n->vs[txi], *rxs = &n->vs[rxi];
    uint8_t eth[NET_FILTER_BYTES];
    struct virtio_net_hdr_v1 hdr = { .num_buffers = htole16(1) };
    uint64_t frame_len;
    int r;

    if (tx->out_bytes < NET_HDR_LEN + ETH_HLEN) {
        txs->tx_errors++;
        goto complete_tx;
    }
    frame_len = tx->out_bytes - NET_HDR_LEN;
    if (!rx_ok) {
        txs->tx_pkts++;
        txs->tx_bytes += frame_len;
        rxs->rx_drops++;
        goto complete_tx;
    }
    size_t peek = sim_segs_read(tx->seg, tx->n_out, NET_HDR_LEN, eth, sizeof(eth));
    if (!net_state_accepts(&n->st, s->driver_features, eth, peek)) {
        txs->tx_pkts++;
        txs->tx_bytes += frame_len;
        rxs->rx_drops++;
        goto complete_tx;
    }
    r = vring_dev_pop(&rxq->vr, rx);
    if (r < 0) {
        sim_vq_fail(s, rxi, "%s", rxq->vr.error);
        txs->tx_pkts++;
        txs->tx_bytes += frame_len;
        rxs->rx_drops++;
        goto complete_tx;
    }
    if (r == 0)
        return TX_BLOCKED;
    rxq->received_desc++;
    txs->tx_pkts++;
    txs->tx_bytes += frame_len;
    if (rx->in_bytes < NET_HDR_LEN + frame_len) {
        /* the buffer stays available for a frame that fits */
        vring_dev_unpop(&rxq->vr, 1);
        rxq->received_desc--;
        rxs->rx_overruns++;
        goto complete_tx;
    }
    const struct vring_seg *w = rx->seg + rx->n_out;
    sim_segs_write(w, rx->n_in, 0, &hdr, NET_HDR_LEN);
    sim_segs_copy(w, rx->n_in, NET_HDR_LEN, tx->seg, tx->n_out, NET_HDR_LEN, frame_len);
    vring_dev_push(&rxq->vr, rx->head, NET_HDR_LEN + frame_len);
    rxq->completed_desc++;
    rxs->rx_pkts++;
    rxs->rx_bytes += frame_len;
    *rx_used = true;

complete_tx:
    vring_dev_push(&txq->vr, tx->head, 0);
    txq->completed_desc++;
    return TX_DONE;
}

/* Moves up to SIM_BUDGET frames of pair p from TX to RX. */
static void net_process_pair(struct sim_net *n, unsigned p, unsigned active)
{
    struct sim *s = &n->sim;
    unsigned rxi = 2 * p, txi = 2 * p + 1;
    struct sim_vq *txq = &s->vqs[txi], *rxq = &s->vqs[rxi];
    bool rx_used = false, tx_used = false;
    unsigned done = 0;

    if (n->tx_blocked[p]) {
        /* receive buffers came: kicks for them are not needed until we block again */
        n->tx_blocked[p] = false;
        if (sim_vq_usable(s, rxi))
            vring_dev_set_notify(&rxq->vr, false);
    }
    vring_dev_set_notify(&txq->vr, false);
    for (;;) {
        bool rx_ok = sim_vq_usable(s, rxi) && p < active;
        int r;

        if (done >= SIM_BUDGET) {
            s->pending |= 1ull << txi; /* more next round, after the other queues */
            break;
        }
        r = vring_dev_pop(&txq->vr, txq->elem);
        if (r < 0) {
            sim_vq_fail(s, txi, "%s", txq->vr.error);
            break;
        }
        if (r == 0) {
            /* re-enable kicks, then look again: a frame added meanwhile did not kick */
            vring_dev_set_notify(&txq->vr, true);
            if (vring_dev_avail_count(&txq->vr) == 0)
                break;
            vring_dev_set_notify(&txq->vr, false);
            continue;
        }
        txq->received_desc++;
        if (net_tx_one(n, p, rx_ok, &rx_used) == TX_BLOCKED) {
            vring_dev_unpop(&txq->vr, 1);
            txq->received_desc--;
            /* wait for a receive kick; same race as above on the receive ring */
            vring_dev_set_notify(&rxq->vr, true);
            if (vring_dev_avail_count(&rxq->vr) > 0) {
                vring_dev_set_notify(&rxq->vr, false);
                continue;
            }
            n->tx_blocked[p] = true;
            break;
        }
        tx_used = true;
        done++;
    }
    if (tx_used)
        sim_vq_notify(s, txi);
    if (rx_used && sim_vq_usable(s, rxi))
        sim_vq_notify(s, rxi);
}

/* ------------------------------------------------------------------ control queue */

static void net_apply_side_effects(struct sim_net *n, const struct net_ctrl_cmd *cmd)
{
    struct sim *s = &n->sim;
    struct virtio_net_config *cfg = (struct virtio_net_config *)s->config;

    if (memcmp(cfg->mac, n->st.mac, ETH_ALEN) != 0) {
        /* devices show the MAC set through the control queue in config space */
        memcpy(cfg->mac, n->st.mac, ETH_ALEN);
        s->generation++;
    }
    if (cmd->class == VIRTIO_NET_CTRL_MQ) {
        /* pairs that became active or inactive: waiting frames look again */
        for (unsigned i = 0; i < 2u * n->max_pairs && i < s->nvqs; i++)
            s->pending |= 1ull << i;
    }
}

static void net_process_ctrl(struct sim_net *n, unsigned idx)
{
    struct sim *s = &n->sim;
    struct sim_vq *q = &s->vqs[idx];
    struct sim_net_vq_stats *qs = &n->vs[idx];
    struct vring_elem *e = q->elem;
    uint64_t features = s->driver_features;
    unsigned done = 0;
    bool used = false;

    vring_dev_set_notify(&q->vr, false);
    for (;;) {
        const char *why = "malformed request";
        uint8_t ack = VIRTIO_NET_ERR;
        int r;

        if (done >= SIM_BUDGET) {
            s->pending |= 1ull << idx;
            break;
        }
        r = vring_dev_pop(&q->vr, e);
        if (r < 0) {
            sim_vq_fail(s, idx, "%s", q->vr.error);
            break;
        }
        if (r == 0) {
            vring_dev_set_notify(&q->vr, true);
            if (vring_dev_avail_count(&q->vr) == 0)
                break;
            vring_dev_set_notify(&q->vr, false);
            continue;
        }
        q->received_desc++;
        qs->requests++;
        done++;
        used = true;
        if (e->in_bytes < 1) {
            /* no room for the ack: return the chain untouched */
            qs->errors++;
            g_debug("%s: control request without an ack byte", s->vdev.name);
            vring_dev_push(&q->vr, e->head, 0);
            q->completed_desc++;
            continue;
        }
        if (e->out_bytes > NET_CTRL_MAX) {
            why = "request longer than the device accepts";
        } else {
            size_t len = sim_segs_read(e->seg, e->n_out, 0, n->ctrl_buf, e->out_bytes);

            if (net_ctrl_parse(n->ctrl_buf, len, &n->cmd, &why) == 0)
                ack = net_state_apply(&n->st, &n->cmd, features, net_pairs(n, features), &why);
        }
        if (ack == VIRTIO_NET_OK) {
            qs->successes++;
            net_apply_side_effects(n, &n->cmd);
        } else {
            qs->errors++;
            g_debug("%s: control request refused: %s", s->vdev.name, why ? why : "?");
        }
        sim_segs_write(e->seg + e->n_out, e->n_in, 0, &ack, 1);
        vring_dev_push(&q->vr, e->head, 1);
        q->completed_desc++;
    }
    if (used)
        sim_vq_notify(s, idx);
}

/* ------------------------------------------------------------------ hooks */

static void net_process(struct sim *s)
{
    struct sim_net *n = to_net(s);
    uint64_t features = s->driver_features;
    unsigned pairs = net_pairs(n, features);
    unsigned ctrl = net_ctrl_idx(n, features);
    unsigned active = MIN(n->st.queue_pairs, pairs);
    uint64_t pending = s->pending;

    s->pending = 0;
    if ((features & F(VIRTIO_NET_F_CTRL_VQ)) && (pending & (1ull << ctrl)))
        net_process_ctrl(n, ctrl);
    /* the control queue may have changed the active pairs */
    active = MIN(n->st.queue_pairs, pairs);
    pending |= s->pending;
    s->pending &= 1ull << ctrl;
    for (unsigned p = 0; p < pairs; p++) {
        uint64_t rx = 1ull << (2 * p), tx = 1ull << (2 * p + 1);

        if (!(pending & (rx | tx)) || !sim_vq_usable(s, 2 * p + 1))
            continue;
        /* a receive kick matters only to a TX frame waiting for a buffer */
        if ((pending & tx) || n->tx_blocked[p])
            net_process_pair(n, p, active);
    }
}

static bool net_features_ok(struct sim *s, uint64_t f, const char **why)
{
    /* virtio 1.2 §5.1.3.1: these need the control queue */
    const uint64_t need_cvq = F(VIRTIO_NET_F_CTRL_RX) | F(VIRTIO_NET_F_CTRL_VLAN) |
                              F(VIRTIO_NET_F_MQ) | F(VIRTIO_NET_F_CTRL_MAC_ADDR) |
                              F(VIRTIO_NET_F_CTRL_GUEST_OFFLOADS) |
                              F(VIRTIO_NET_F_CTRL_RX_EXTRA);

    if ((f & need_cvq) && !(f & F(VIRTIO_NET_F_CTRL_VQ))) {
        *why = "a control-queue feature without CTRL_VQ";
        return false;
    }
    if ((f & F(VIRTIO_NET_F_CTRL_RX_EXTRA)) && !(f & F(VIRTIO_NET_F_CTRL_RX))) {
        *why = "CTRL_RX_EXTRA without CTRL_RX";
        return false;
    }
    return true;
}

static void net_fill_config(struct sim_net *n)
{
    struct virtio_net_config *cfg = (struct virtio_net_config *)n->sim.config;

    memset(cfg, 0, sizeof(*cfg));
    memcpy(cfg->mac, n->mac, ETH_ALEN);
    cfg->status = htole16(VIRTIO_NET_S_LINK_UP);
    cfg->max_virtqueue_pairs = htole16(n->max_pairs);
    cfg->mtu = htole16(n->mtu);
}

static void net_reset(struct sim *s)
{
    struct sim_net *n = to_net(s);

    net_fill_config(n);
    net_state_reset(&n->st, n->mac, 0);
    memset(n->tx_blocked, 0, sizeof(n->tx_blocked));
}

static void net_driver_ok(struct sim *s)
{
    struct sim_net *n = to_net(s);

    /* the filter state starts from the negotiated features (guest offloads) */
    net_state_reset(&n->st, n->mac, s->driver_features);
}

static void net_get_stats(struct sim *s, unsigned idx, struct vdpa_vq_stats *st)
{
    struct sim_net *n = to_net(s);
    const struct sim_net_vq_stats *v = &n->vs[idx];
    uint64_t ring_errors = s->vqs[idx].ring_errors;

    switch (net_role(n, idx, net_layout_features(s))) {
    case NET_Q_RX:
        vdpa_vq_stats_add(st, "rx_pkts", v->rx_pkts);
        vdpa_vq_stats_add(st, "rx_bytes", v->rx_bytes);
        vdpa_vq_stats_add(st, "rx_drops", v->rx_drops);
        vdpa_vq_stats_add(st, "rx_overruns", v->rx_overruns);
        vdpa_vq_stats_add(st, "rx_errors", v->rx_errors + ring_errors);
        break;
    case NET_Q_TX:
        vdpa_vq_stats_add(st, "tx_pkts", v->tx_pkts);
        vdpa_vq_stats_add(st, "tx_bytes", v->tx_bytes);
        vdpa_vq_stats_add(st, "tx_errors", v->tx_errors + ring_errors);
        break;
    case NET_Q_CTRL:
        vdpa_vq_stats_add(st, "requests", v->requests);
        vdpa_vq_stats_add(st, "successes", v->successes);
        vdpa_vq_stats_add(st, "errors", v->errors + ring_errors);
        break;
    case NET_Q_NONE:
        break;
    }
}

static void net_destroy(struct sim *s)
{
    g_free(to_net(s)->vs);
}

static const struct sim_type sim_net_type = {
    .device_id = VIRTIO_ID_NET,
    .features_ok = net_features_ok,
    .process = net_process,
    .reset = net_reset,
    .driver_ok = net_driver_ok,
    .get_stats = net_get_stats,
    .destroy = net_destroy,
};

struct vdpa_device *sim_net_new(const struct sim_net_config *cfg, GError **error)
{
    const uint64_t always = F(VIRTIO_F_VERSION_1) | F(VIRTIO_F_ACCESS_PLATFORM);
    uint64_t features = cfg->features ? cfg->features | always : sim_net_supported_features();
    unsigned num_max = cfg->vq_num_max ? cfg->vq_num_max : 256;
    const char *name = cfg->name ? cfg->name : "sim-net";
    struct sim_net *n;

    if (cfg->queue_pairs < 1 || cfg->queue_pairs > NET_MAX_PAIRS)
        return vdpad_fail(error, EINVAL, "%s: %u queue pairs (1..%d)", name, cfg->queue_pairs,
                          NET_MAX_PAIRS),
               NULL;
    if (cfg->mtu != 0 && cfg->mtu < 68)
        return vdpad_fail(error, EINVAL, "%s: MTU %u (68..65535)", name, cfg->mtu), NULL;
    if (features & ~sim_net_supported_features())
        return vdpad_fail(error, EINVAL,
                          "%s: features 0x%" PRIx64 " not supported (supported 0x%" PRIx64 ")",
                          name, features & ~sim_net_supported_features(),
                          sim_net_supported_features()),
               NULL;
    if (!vring_num_valid(num_max) || num_max > UINT16_MAX)
        return vdpad_fail(error, EINVAL, "%s: queue size %u (a power of two up to %u)", name,
                          num_max, VRING_MAX_NUM),
               NULL;

    n = g_new0(struct sim_net, 1);
    n->max_pairs = cfg->queue_pairs;
    memcpy(n->mac, cfg->mac, ETH_ALEN);
    n->mtu = cfg->mtu ? cfg->mtu : 1500;
    n->vs = g_new0(struct sim_net_vq_stats, 2 * n->max_pairs + 1);
    if (sim_init(&n->sim, &sim_net_type, &sim_ops, name, "sim-net", features,
                 sizeof(struct virtio_net_config), 2 * n->max_pairs + 1, (uint16_t)num_max,
                 VRING_MAX_SEGS, error) < 0) {
        sim_ops.free(&n->sim.vdev);
        return NULL;
    }
    sim_lock(&n->sim);
    net_reset(&n->sim);
    sim_unlock(&n->sim);
    return &n->sim.vdev;
}
