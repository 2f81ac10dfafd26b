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

/* A parsed control command. class/cmd are VIRTIO_NET_CTRL_* values. */
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
 * class/cmd; *why (static text) says which. Never reads past len. */
int net_ctrl_parse(const void *buf, size_t len, struct net_ctrl_cmd *cmd, const char **why);

/* Applies a parsed command as the device does. Returns VIRTIO_NET_OK or VIRTIO_NET_ERR
 * (*why says why: feature not negotiated, queue pairs out of [1, max_queue_pairs],
 * VLAN id >= 4096, offloads not negotiated...). On ERR the state is unchanged. */
uint8_t net_state_apply(struct net_state *st, const struct net_ctrl_cmd *cmd, uint64_t features,
                        uint16_t max_queue_pairs, const char **why);

/* Encodes a command into its wire form; returns its length, or 0 if cap is too small. */
size_t net_ctrl_encode(const struct net_ctrl_cmd *cmd, uint8_t *buf, size_t cap);

/* The commands that bring a freshly reset device (net_state_reset with the same mac and
 * features) to st, in an order a device accepts; only commands whose features are
 * negotiated. Returns the number written to cmds (at most max; NET_STATE_REPLAY_MAX is
 * always enough). */
#define NET_STATE_REPLAY_MAX (16 + NET_STATE_VLAN_MAX)
unsigned net_state_replay(const struct net_state *st, uint64_t features,
                          struct net_ctrl_cmd *cmds, unsigned max);

/* Whether a frame (starting at the Ethernet destination address, len bytes) passes the
 * receive filter under features. Frames shorter than 14 bytes never pass. */
bool net_state_accepts(const struct net_state *st, uint64_t features, const uint8_t *frame,
                       size_t len);

/* Field-by-field equality (for tests and migration checks). */
bool net_state_equal(const struct net_state *a, const struct net_state *b);
