/* net_state.h — the virtio-net device state a driver sets through the control queue.
 *
 * One model of that state, used by three parties:
 *   - the simulated NIC applies commands to it and filters received frames with it;
 *   - the relay shadows every control queue command into it, so vdpad knows the device
 *     state at every instant;
 *   - migration replays it into the destination device as a list of commands.
 *
 * Wire format and semantics: virtio 1.2 §5.1.6.5. Filtering follows QEMU's virtio-net
 * (the behaviour operators know): promiscuous accepts everything; with CTRL_VLAN
 * negotiated, tagged frames pass only for VLANs in the table; then broadcast (unless
 * nobcast), multicast (allmulti, or in the table, unless nomulti), unicast (alluni, the
 * device MAC, or in the table, unless nouni). A MAC table larger than we keep sets the
 * overflow flag of its kind, which accepts every address of that kind.
 *
 * Threads: plain data; the owner serialises access.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NET_STATE_MAC_TABLE_MAX 64 /* entries kept per kind (unicast, multicast) */
#define NET_STATE_VLAN_MAX 4096

/* The feature bits that are receive offloads the driver can switch with GUEST_OFFLOADS_SET:
 * GUEST_CSUM (1), GUEST_TSO4 (7), GUEST_TSO6 (8), GUEST_ECN (9), GUEST_UFO (10),
 * GUEST_USO4 (54), GUEST_USO6 (55) (virtio spec, "Offloads State Configuration"). */
#define NET_GUEST_OFFLOAD_FEATURES                                                          \
    ((1ull << 1) | (1ull << 7) | (1ull << 8) | (1ull << 9) | (1ull << 10) | (1ull << 54) | \
     (1ull << 55))

struct net_state {
    uint8_t mac[6];
    bool promisc, allmulti, alluni, nomulti, nouni, nobcast;
    bool uni_overflow, multi_overflow;
    unsigned n_uni, n_multi;
    uint8_t uni[NET_STATE_MAC_TABLE_MAX][6];
    uint8_t multi[NET_STATE_MAC_TABLE_MAX][6];
    uint32_t vlan[NET_STATE_VLAN_MAX / 32];
    uint16_t queue_pairs;    /* active pairs; 1 after reset */
    uint64_t guest_offloads; /* VIRTIO_NET_F_GUEST_* bits in effect */
};

/* A parsed control command. class/cmd are VIRTIO_NET_CTRL_* values. A MAC table list of
 * more than NET_STATE_MAC_TABLE_MAX entries keeps the first NET_STATE_MAC_TABLE_MAX
 * (n_* = the maximum) and sets its overflow flag. */
struct net_ctrl_cmd {
    uint8_t class;
    uint8_t cmd;
    union {
        bool on;              /* RX: PROMISC, ALLMULTI, ALLUNI, NOMULTI, NOUNI, NOBCAST */
        uint8_t mac[6];       /* MAC: ADDR_SET */
        struct {              /* MAC: TABLE_SET */
            unsigned n_uni, n_multi;
            bool uni_overflow, multi_overflow;
            uint8_t uni[NET_STATE_MAC_TABLE_MAX][6];
            uint8_t multi[NET_STATE_MAC_TABLE_MAX][6];
        } table;
        uint16_t vid;         /* VLAN: ADD, DEL */
        uint16_t queue_pairs; /* MQ: VQ_PAIRS_SET */
        uint64_t offloads;    /* GUEST_OFFLOADS: SET */
    } u;
};

/* The state after device reset: mac from config, one queue pair, broadcast and multicast
 * accepted (allmulti) until the driver says otherwise, empty tables, all VLANs passing
 * when CTRL_VLAN is not negotiated (see net_state_accepts). guest_offloads = the
 * negotiated guest offload features (the spec's default). */
void net_state_reset(struct net_state *st, const uint8_t mac[6], uint64_t features);

/* Parses the device-readable bytes of a control request (class, cmd, command data).
 * Returns 0, or -EINVAL for a malformed or truncated request, -EOPNOTSUPP for an unknown
 * class/cmd; *why (static text) says which. Never reads past len.
 * Strict: the command data must have exactly its size (no trailing bytes; a MAC table's
 * declared entries must all be present), and an RX mode value must be 0 or 1. Values are
 * not range-checked here (VLAN id, queue pairs): that is net_state_apply's job, as the
 * device answers those with VIRTIO_NET_ERR. *cmd is zeroed first. why may be NULL. */
int net_ctrl_parse(const void *buf, size_t len, struct net_ctrl_cmd *cmd, const char **why);

/* Applies a parsed command as the device does. Returns VIRTIO_NET_OK or VIRTIO_NET_ERR
 * (*why says why: feature not negotiated, queue pairs out of [1, max_queue_pairs],
 * VLAN id >= 4096, offloads not negotiated...). On ERR the state is unchanged.
 * Features required: PROMISC/ALLMULTI and MAC TABLE_SET: CTRL_RX; ALLUNI/NOMULTI/NOUNI/
 * NOBCAST: CTRL_RX_EXTRA; ADDR_SET: CTRL_MAC_ADDR; VLAN: CTRL_VLAN; VQ_PAIRS_SET: MQ;
 * GUEST_OFFLOADS_SET: CTRL_GUEST_OFFLOADS (offloads within the negotiated
 * NET_GUEST_OFFLOAD_FEATURES); ANNOUNCE_ACK: GUEST_ANNOUNCE (OK, no state: the device
 * clears its own VIRTIO_NET_S_ANNOUNCE). why may be NULL. */
uint8_t net_state_apply(struct net_state *st, const struct net_ctrl_cmd *cmd, uint64_t features,
                        uint16_t max_queue_pairs, const char **why);

/* Encodes a command into its wire form; returns its length, or 0 if cap is too small or
 * the class/cmd is not one net_ctrl_parse knows. An overflowing MAC list is written as its
 * kept entries padded to NET_STATE_MAC_TABLE_MAX + 1 with repeats of the last one, so
 * parse(encode(c)) equals c for every c that net_ctrl_parse produced. */
size_t net_ctrl_encode(const struct net_ctrl_cmd *cmd, uint8_t *buf, size_t cap);

/* Equality of the fields the command's class/cmd uses (for tests and round-trip checks). */
bool net_ctrl_cmd_equal(const struct net_ctrl_cmd *a, const struct net_ctrl_cmd *b);

/* The commands that bring a freshly reset device (net_state_reset with the same mac and
 * features) to st, in an order a device accepts; only commands whose features are
 * negotiated. Returns the number written to cmds (at most max; NET_STATE_REPLAY_MAX is
 * always enough). Order: MAC ADDR_SET (always when CTRL_MAC_ADDR is negotiated: the
 * destination's own config MAC may differ), VQ_PAIRS_SET, RX modes that differ from the
 * reset defaults, MAC TABLE_SET, one VLAN ADD per VLAN, GUEST_OFFLOADS_SET if the offloads
 * differ from the negotiated ones. An overflowed MAC table replays as its kept entries plus
 * the overflow (see net_ctrl_encode): the addresses beyond those were never kept. */
#define NET_STATE_REPLAY_MAX (16 + NET_STATE_VLAN_MAX)
unsigned net_state_replay(const struct net_state *st, uint64_t features,
                          struct net_ctrl_cmd *cmds, unsigned max);

/* Whether a frame (starting at the Ethernet destination address, len bytes) passes the
 * receive filter under features. Frames shorter than 14 bytes never pass. The VLAN check
 * (CTRL_VLAN negotiated) looks at an 802.1Q tag (TPID 0x8100) like QEMU; a tagged frame cut
 * before its VLAN id (under 16 bytes) does not pass. */
bool net_state_accepts(const struct net_state *st, uint64_t features, const uint8_t *frame,
                       size_t len);

/* Field-by-field equality (for tests and migration checks). */
bool net_state_equal(const struct net_state *a, const struct net_state *b);
