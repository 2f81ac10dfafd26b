/* net_state.c — the virtio-net control state: apply, filter, replay, compare.
 * The wire format (parse/encode) is in net_ctrl_wire.c. Decisions: docs/adr/0003. */
#include "config.h"

#include "virtio/net_state.h"

#include <linux/virtio_net.h>
#include <string.h>

#define BIT(f) (1ull << (f))

static void set_why(const char **why, const char *text)
{
    if (why)
        *why = text;
}

void net_state_reset(struct net_state *st, const uint8_t mac[6], uint64_t features)
{
    memset(st, 0, sizeof(*st));
    memcpy(st->mac, mac, 6);
    /* Not QEMU's promisc=1: a device that filters should filter from the start. Multicast
     * stays open so IPv6 neighbour discovery works before the driver sets a table. */
    st->allmulti = true;
    st->queue_pairs = 1;
    st->guest_offloads = features & NET_GUEST_OFFLOAD_FEATURES;
}

static uint8_t apply_rx(struct net_state *st, const struct net_ctrl_cmd *cmd, uint64_t features,
                        const char **why)
{
    bool *flag;
    uint64_t need = VIRTIO_NET_F_CTRL_RX_EXTRA;

    switch (cmd->cmd) {
    case VIRTIO_NET_CTRL_RX_PROMISC: flag = &st->promisc; need = VIRTIO_NET_F_CTRL_RX; break;
    case VIRTIO_NET_CTRL_RX_ALLMULTI: flag = &st->allmulti; need = VIRTIO_NET_F_CTRL_RX; break;
    case VIRTIO_NET_CTRL_RX_ALLUNI: flag = &st->alluni; break;
    case VIRTIO_NET_CTRL_RX_NOMULTI: flag = &st->nomulti; break;
    case VIRTIO_NET_CTRL_RX_NOUNI: flag = &st->nouni; break;
    case VIRTIO_NET_CTRL_RX_NOBCAST: flag = &st->nobcast; break;
    default:
        set_why(why, "unknown RX command");
        return VIRTIO_NET_ERR;
    }
    if (!(features & BIT(need))) {
        set_why(why, need == VIRTIO_NET_F_CTRL_RX ? "RX mode command without CTRL_RX"
                                                  : "RX mode command without CTRL_RX_EXTRA");
        return VIRTIO_NET_ERR;
    }
    *flag = cmd->u.on;
    return VIRTIO_NET_OK;
}

static uint8_t apply_mac(struct net_state *st, const struct net_ctrl_cmd *cmd, uint64_t features,
                         const char **why)
{
    switch (cmd->cmd) {
    case VIRTIO_NET_CTRL_MAC_ADDR_SET:
        if (!(features & BIT(VIRTIO_NET_F_CTRL_MAC_ADDR))) {
            set_why(why, "MAC ADDR_SET without CTRL_MAC_ADDR");
            return VIRTIO_NET_ERR;
        }
        memcpy(st->mac, cmd->u.mac, 6);
        return VIRTIO_NET_OK;
    case VIRTIO_NET_CTRL_MAC_TABLE_SET:
        /* virtio 1.2 "Setting MAC Address Filtering": no MAC class command without CTRL_RX
         * (ADDR_SET has its own feature). QEMU does not check;
         * we do, like every other class (ADR 0003). */
        if (!(features & BIT(VIRTIO_NET_F_CTRL_RX))) {
            set_why(why, "MAC TABLE_SET without CTRL_RX");
            return VIRTIO_NET_ERR;
        }
        if (cmd->u.table.n_uni > NET_STATE_MAC_TABLE_MAX ||
            cmd->u.table.n_multi > NET_STATE_MAC_TABLE_MAX) {
            set_why(why, "MAC table command holds more entries than a table keeps");
            return VIRTIO_NET_ERR;
        }
        st->n_uni = cmd->u.table.n_uni;
        st->n_multi = cmd->u.table.n_multi;
        st->uni_overflow = cmd->u.table.uni_overflow;
        st->multi_overflow = cmd->u.table.multi_overflow;
        memset(st->uni, 0, sizeof(st->uni));
        memset(st->multi, 0, sizeof(st->multi));
        memcpy(st->uni, cmd->u.table.uni, (size_t)st->n_uni * 6);
        memcpy(st->multi, cmd->u.table.multi, (size_t)st->n_multi * 6);
        return VIRTIO_NET_OK;
    default:
        set_why(why, "unknown MAC command");
        return VIRTIO_NET_ERR;
    }
}

static uint8_t apply_vlan(struct net_state *st, const struct net_ctrl_cmd *cmd, uint64_t features,
                          const char **why)
{
    uint16_t vid = cmd->u.vid;

    if (cmd->cmd != VIRTIO_NET_CTRL_VLAN_ADD && cmd->cmd != VIRTIO_NET_CTRL_VLAN_DEL) {
        set_why(why, "unknown VLAN command");
        return VIRTIO_NET_ERR;
    }
    if (!(features & BIT(VIRTIO_NET_F_CTRL_VLAN))) {
        set_why(why, "VLAN command without CTRL_VLAN");
        return VIRTIO_NET_ERR;
    }
    if (vid >= NET_STATE_VLAN_MAX) {
        set_why(why, "VLAN id >= 4096");
        return VIRTIO_NET_ERR;
    }
    if (cmd->cmd == VIRTIO_NET_CTRL_VLAN_ADD)
        st->vlan[vid / 32] |= 1u << (vid % 32);
    else
        st->vlan[vid / 32] &= ~(1u << (vid % 32));
    return VIRTIO_NET_OK;
}

uint8_t net_state_apply(struct net_state *st, const struct net_ctrl_cmd *cmd, uint64_t features,
                        uint16_t max_queue_pairs, const char **why)
{
    switch (cmd->class) {
    case VIRTIO_NET_CTRL_RX:
        return apply_rx(st, cmd, features, why);
    case VIRTIO_NET_CTRL_MAC:
        return apply_mac(st, cmd, features, why);
    case VIRTIO_NET_CTRL_VLAN:
        return apply_vlan(st, cmd, features, why);
    case VIRTIO_NET_CTRL_ANNOUNCE:
        if (cmd->cmd != VIRTIO_NET_CTRL_ANNOUNCE_ACK) {
            set_why(why, "unknown ANNOUNCE command");
            return VIRTIO_NET_ERR;
        }
        /* Stateless here: the device clears its VIRTIO_NET_S_ANNOUNCE status bit. */
        if (!(features & BIT(VIRTIO_NET_F_GUEST_ANNOUNCE))) {
            set_why(why, "ANNOUNCE_ACK without GUEST_ANNOUNCE");
            return VIRTIO_NET_ERR;
        }
        return VIRTIO_NET_OK;
    case VIRTIO_NET_CTRL_MQ:
        if (cmd->cmd != VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET) {
            set_why(why, "unsupported MQ command");
            return VIRTIO_NET_ERR;
        }
        if (!(features & BIT(VIRTIO_NET_F_MQ))) {
            set_why(why, "VQ_PAIRS_SET without MQ");
            return VIRTIO_NET_ERR;
        }
        if (cmd->u.queue_pairs < VIRTIO_NET_CTRL_MQ_VQ_PAIRS_MIN ||
            cmd->u.queue_pairs > max_queue_pairs ||
            cmd->u.queue_pairs > VIRTIO_NET_CTRL_MQ_VQ_PAIRS_MAX) {
            set_why(why, "queue pairs out of [1, max_queue_pairs]");
            return VIRTIO_NET_ERR;
        }
        st->queue_pairs = cmd->u.queue_pairs;
        return VIRTIO_NET_OK;
    case VIRTIO_NET_CTRL_GUEST_OFFLOADS:
        if (cmd->cmd != VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET) {
            set_why(why, "unknown GUEST_OFFLOADS command");
            return VIRTIO_NET_ERR;
        }
        if (!(features & BIT(VIRTIO_NET_F_CTRL_GUEST_OFFLOADS))) {
            set_why(why, "GUEST_OFFLOADS_SET without CTRL_GUEST_OFFLOADS");
            return VIRTIO_NET_ERR;
        }
        if (cmd->u.offloads & ~(features & NET_GUEST_OFFLOAD_FEATURES)) {
            set_why(why, "offloads not negotiated");
            return VIRTIO_NET_ERR;
        }
        st->guest_offloads = cmd->u.offloads;
        return VIRTIO_NET_OK;
    default:
        set_why(why, "unknown class");
        return VIRTIO_NET_ERR;
    }
}

static bool in_table(const uint8_t (*table)[6], unsigned n, const uint8_t *addr)
{
    for (unsigned i = 0; i < n && i < NET_STATE_MAC_TABLE_MAX; i++)
        if (memcmp(table[i], addr, 6) == 0)
            return true;
    return false;
}

bool net_state_accepts(const struct net_state *st, uint64_t features, const uint8_t *frame,
                       size_t len)
{
    static const uint8_t bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };

    if (len < 14)
        return false;
    if (st->promisc)
        return true;
    /* 802.1Q only, like QEMU; without CTRL_VLAN every VLAN passes (virtio 1.2 "VLAN Filtering"). */
    if ((features & BIT(VIRTIO_NET_F_CTRL_VLAN)) && frame[12] == 0x81 && frame[13] == 0x00) {
        if (len < 16)
            return false; /* the tag is cut off: no VLAN id to admit */
        unsigned vid = ((unsigned)(frame[14] & 0x0f) << 8) | frame[15];
        if (!(st->vlan[vid / 32] & (1u << (vid % 32))))
            return false;
    }
    if (frame[0] & 1) {
        if (memcmp(frame, bcast, 6) == 0)
            return !st->nobcast;
        if (st->nomulti)
            return false;
        if (st->allmulti || st->multi_overflow)
            return true;
        return in_table((const uint8_t (*)[6])st->multi, st->n_multi, frame);
    }
    if (st->nouni)
        return false;
    if (st->alluni || st->uni_overflow)
        return true;
    if (memcmp(frame, st->mac, 6) == 0)
        return true;
    return in_table((const uint8_t (*)[6])st->uni, st->n_uni, frame);
}

/* Appends one command if there is room; counts it either way so the caller can tell. */
static void put(struct net_ctrl_cmd *cmds, unsigned max, unsigned *n, const struct net_ctrl_cmd *c)
{
    if (*n < max)
        cmds[*n] = *c;
    (*n)++;
}

static void put_rx(struct net_ctrl_cmd *cmds, unsigned max, unsigned *n, uint8_t which, bool on)
{
    struct net_ctrl_cmd c = { .class = VIRTIO_NET_CTRL_RX, .cmd = which, .u.on = on };

    put(cmds, max, n, &c);
}

unsigned net_state_replay(const struct net_state *st, uint64_t features,
                          struct net_ctrl_cmd *cmds, unsigned max)
{
    unsigned n = 0;
    struct net_ctrl_cmd c;

    /* Always, when negotiated: the destination's reset MAC comes from its own config space,
     * which may differ from the source's. */
    if (features & BIT(VIRTIO_NET_F_CTRL_MAC_ADDR)) {
        c = (struct net_ctrl_cmd){ .class = VIRTIO_NET_CTRL_MAC, .cmd = VIRTIO_NET_CTRL_MAC_ADDR_SET };
        memcpy(c.u.mac, st->mac, 6);
        put(cmds, max, &n, &c);
    }
    if ((features & BIT(VIRTIO_NET_F_MQ)) && st->queue_pairs != 1) {
        c = (struct net_ctrl_cmd){ .class = VIRTIO_NET_CTRL_MQ,
                                   .cmd = VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET,
                                   .u.queue_pairs = st->queue_pairs };
        put(cmds, max, &n, &c);
    }
    /* RX modes that differ from the reset defaults (all off but allmulti). */
    if (features & BIT(VIRTIO_NET_F_CTRL_RX)) {
        if (st->promisc)
            put_rx(cmds, max, &n, VIRTIO_NET_CTRL_RX_PROMISC, true);
        if (!st->allmulti)
            put_rx(cmds, max, &n, VIRTIO_NET_CTRL_RX_ALLMULTI, false);
    }
    if (features & BIT(VIRTIO_NET_F_CTRL_RX_EXTRA)) {
        if (st->alluni)
            put_rx(cmds, max, &n, VIRTIO_NET_CTRL_RX_ALLUNI, true);
        if (st->nomulti)
            put_rx(cmds, max, &n, VIRTIO_NET_CTRL_RX_NOMULTI, true);
        if (st->nouni)
            put_rx(cmds, max, &n, VIRTIO_NET_CTRL_RX_NOUNI, true);
        if (st->nobcast)
            put_rx(cmds, max, &n, VIRTIO_NET_CTRL_RX_NOBCAST, true);
    }
    if ((features & BIT(VIRTIO_NET_F_CTRL_RX)) &&
        (st->n_uni || st->n_multi || st->uni_overflow || st->multi_overflow)) {
        c = (struct net_ctrl_cmd){ .class = VIRTIO_NET_CTRL_MAC, .cmd = VIRTIO_NET_CTRL_MAC_TABLE_SET };
        c.u.table.n_uni = st->n_uni <= NET_STATE_MAC_TABLE_MAX ? st->n_uni : NET_STATE_MAC_TABLE_MAX;
        c.u.table.n_multi =
            st->n_multi <= NET_STATE_MAC_TABLE_MAX ? st->n_multi : NET_STATE_MAC_TABLE_MAX;
        c.u.table.uni_overflow = st->uni_overflow;
        c.u.table.multi_overflow = st->multi_overflow;
        memcpy(c.u.table.uni, st->uni, (size_t)c.u.table.n_uni * 6);
        memcpy(c.u.table.multi, st->multi, (size_t)c.u.table.n_multi * 6);
        put(cmds, max, &n, &c);
    }
    if (features & BIT(VIRTIO_NET_F_CTRL_VLAN)) {
        for (unsigned vid = 0; vid < NET_STATE_VLAN_MAX; vid++) {
            if (!(st->vlan[vid / 32] & (1u << (vid % 32))))
                continue;
            c = (struct net_ctrl_cmd){ .class = VIRTIO_NET_CTRL_VLAN,
                                       .cmd = VIRTIO_NET_CTRL_VLAN_ADD, .u.vid = (uint16_t)vid };
            put(cmds, max, &n, &c);
        }
    }
    if ((features & BIT(VIRTIO_NET_F_CTRL_GUEST_OFFLOADS)) &&
        st->guest_offloads != (features & NET_GUEST_OFFLOAD_FEATURES)) {
        c = (struct net_ctrl_cmd){ .class = VIRTIO_NET_CTRL_GUEST_OFFLOADS,
                                   .cmd = VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET,
                                   .u.offloads = st->guest_offloads };
        put(cmds, max, &n, &c);
    }
    return n < max ? n : max;
}

bool net_state_equal(const struct net_state *a, const struct net_state *b)
{
    if (memcmp(a->mac, b->mac, 6) != 0 || a->promisc != b->promisc ||
        a->allmulti != b->allmulti || a->alluni != b->alluni || a->nomulti != b->nomulti ||
        a->nouni != b->nouni || a->nobcast != b->nobcast ||
        a->uni_overflow != b->uni_overflow || a->multi_overflow != b->multi_overflow ||
        a->n_uni != b->n_uni || a->n_multi != b->n_multi || a->queue_pairs != b->queue_pairs ||
        a->guest_offloads != b->guest_offloads)
        return false;
    if (a->n_uni > NET_STATE_MAC_TABLE_MAX || a->n_multi > NET_STATE_MAC_TABLE_MAX)
        return false; /* not a state apply can produce */
    /* only the entries in use count */
    return memcmp(a->uni, b->uni, (size_t)a->n_uni * 6) == 0 &&
           memcmp(a->multi, b->multi, (size_t)a->n_multi * 6) == 0 &&
           memcmp(a->vlan, b->vlan, sizeof(a->vlan)) == 0;
}
