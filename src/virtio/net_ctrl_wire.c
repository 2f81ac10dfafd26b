/* net_ctrl_wire.c — control command wire format (virtio 1.2 §5.1.6.5): parse and encode.
 * Parsing is strict: exact lengths, RX values 0 or 1 (docs/adr/0003). */
#include "config.h"

#include "virtio/net_state.h"

#include <endian.h>
#include <errno.h>
#include <linux/virtio_net.h>
#include <string.h>

static int bad(const char **why, int err, const char *text)
{
    if (why)
        *why = text;
    return err;
}

static uint16_t ld16(const uint8_t *p)
{
    uint16_t v;

    memcpy(&v, p, sizeof(v));
    return le16toh(v);
}

static uint32_t ld32(const uint8_t *p)
{
    uint32_t v;

    memcpy(&v, p, sizeof(v));
    return le32toh(v);
}

static uint64_t ld64(const uint8_t *p)
{
    uint64_t v;

    memcpy(&v, p, sizeof(v));
    return le64toh(v);
}

/* One struct virtio_net_ctrl_mac at *p. Keeps the first NET_STATE_MAC_TABLE_MAX entries and
 * flags overflow beyond them; the declared bytes must be there all the same. The last list
 * must end the request exactly. */
static int parse_mac_list(const uint8_t **p, size_t *len, bool last, unsigned *n,
                          uint8_t (*out)[6], bool *overflow, const char **why)
{
    uint32_t entries;
    size_t bytes;

    if (*len < 4)
        return bad(why, -EINVAL, "MAC table: entries count cut off");
    entries = ld32(*p);
    *p += 4;
    *len -= 4;
    /* in 64 bits: a hostile count cannot wrap */
    if ((uint64_t)entries * 6 > *len)
        return bad(why, -EINVAL, "MAC table: more entries declared than bytes present");
    bytes = (size_t)entries * 6;
    if (last && bytes != *len)
        return bad(why, -EINVAL, "MAC table: trailing bytes after the multicast list");
    *overflow = entries > NET_STATE_MAC_TABLE_MAX;
    *n = *overflow ? NET_STATE_MAC_TABLE_MAX : entries;
    memcpy(out, *p, (size_t)*n * 6);
    *p += bytes;
    *len -= bytes;
    return 0;
}

static int want_len(size_t len, size_t exact, const char **why)
{
    if (len < exact)
        return bad(why, -EINVAL, "command data cut off");
    if (len > exact)
        return bad(why, -EINVAL, "trailing bytes after the command data");
    return 0;
}

int net_ctrl_parse(const void *buf, size_t len, struct net_ctrl_cmd *cmd, const char **why)
{
    const uint8_t *p = buf;
    int r;

    memset(cmd, 0, sizeof(*cmd));
    if (len < 2)
        return bad(why, -EINVAL, "shorter than the class/command header");
    cmd->class = p[0];
    cmd->cmd = p[1];
    p += 2;
    len -= 2;

    switch (cmd->class) {
    case VIRTIO_NET_CTRL_RX:
        if (cmd->cmd > VIRTIO_NET_CTRL_RX_NOBCAST)
            return bad(why, -EOPNOTSUPP, "unknown RX command");
        if ((r = want_len(len, 1, why)) < 0)
            return r;
        if (p[0] > 1)
            return bad(why, -EINVAL, "RX mode value is neither 0 nor 1");
        cmd->u.on = p[0] == 1;
        return 0;
    case VIRTIO_NET_CTRL_MAC:
        if (cmd->cmd == VIRTIO_NET_CTRL_MAC_ADDR_SET) {
            if ((r = want_len(len, 6, why)) < 0)
                return r;
            memcpy(cmd->u.mac, p, 6);
            return 0;
        }
        if (cmd->cmd != VIRTIO_NET_CTRL_MAC_TABLE_SET)
            return bad(why, -EOPNOTSUPP, "unknown MAC command");
        if ((r = parse_mac_list(&p, &len, false, &cmd->u.table.n_uni, cmd->u.table.uni,
                                &cmd->u.table.uni_overflow, why)) < 0)
            return r;
        return parse_mac_list(&p, &len, true, &cmd->u.table.n_multi, cmd->u.table.multi,
                              &cmd->u.table.multi_overflow, why);
    case VIRTIO_NET_CTRL_VLAN:
        if (cmd->cmd != VIRTIO_NET_CTRL_VLAN_ADD && cmd->cmd != VIRTIO_NET_CTRL_VLAN_DEL)
            return bad(why, -EOPNOTSUPP, "unknown VLAN command");
        if ((r = want_len(len, 2, why)) < 0)
            return r;
        cmd->u.vid = ld16(p); /* range is the device's call (apply) */
        return 0;
    case VIRTIO_NET_CTRL_ANNOUNCE:
        if (cmd->cmd != VIRTIO_NET_CTRL_ANNOUNCE_ACK)
            return bad(why, -EOPNOTSUPP, "unknown ANNOUNCE command");
        return want_len(len, 0, why);
    case VIRTIO_NET_CTRL_MQ:
        if (cmd->cmd != VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET)
            return bad(why, -EOPNOTSUPP, "unsupported MQ command (RSS/hash config)");
        if ((r = want_len(len, 2, why)) < 0)
            return r;
        cmd->u.queue_pairs = ld16(p);
        return 0;
    case VIRTIO_NET_CTRL_GUEST_OFFLOADS:
        if (cmd->cmd != VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET)
            return bad(why, -EOPNOTSUPP, "unknown GUEST_OFFLOADS command");
        if ((r = want_len(len, 8, why)) < 0)
            return r;
        cmd->u.offloads = ld64(p);
        return 0;
    default:
        return bad(why, -EOPNOTSUPP, "unknown class");
    }
}

/* A list as struct virtio_net_ctrl_mac. An overflowing list is written as its kept entries
 * padded to NET_STATE_MAC_TABLE_MAX + 1 with repeats of the last one (zeros if none), so
 * parsing it again gives the same kept entries and the overflow flag, and a device with a
 * bigger table learns no address that was not in ours. */
static size_t encode_mac_list(unsigned n, bool overflow, const uint8_t (*macs)[6], uint8_t *out,
                              size_t cap)
{
    uint32_t entries, le;
    static const uint8_t zero[6];

    if (n > NET_STATE_MAC_TABLE_MAX)
        n = NET_STATE_MAC_TABLE_MAX;
    entries = overflow ? NET_STATE_MAC_TABLE_MAX + 1 : n;
    if (cap < 4 + (size_t)entries * 6)
        return 0;
    le = htole32(entries);
    memcpy(out, &le, 4);
    for (uint32_t i = 0; i < entries; i++)
        memcpy(out + 4 + i * 6, i < n ? macs[i] : n ? macs[n - 1] : zero, 6);
    return 4 + (size_t)entries * 6;
}

size_t net_ctrl_encode(const struct net_ctrl_cmd *cmd, uint8_t *buf, size_t cap)
{
    size_t data = 0, a, b;
    uint16_t v16;
    uint64_t v64;

    if (cap < 2)
        return 0;
    buf[0] = cmd->class;
    buf[1] = cmd->cmd;
    uint8_t *p = buf + 2;
    size_t room = cap - 2;

    switch (cmd->class) {
    case VIRTIO_NET_CTRL_RX:
        if (cmd->cmd > VIRTIO_NET_CTRL_RX_NOBCAST || room < 1)
            return 0;
        p[0] = cmd->u.on ? 1 : 0;
        data = 1;
        break;
    case VIRTIO_NET_CTRL_MAC:
        if (cmd->cmd == VIRTIO_NET_CTRL_MAC_ADDR_SET) {
            if (room < 6)
                return 0;
            memcpy(p, cmd->u.mac, 6);
            data = 6;
            break;
        }
        if (cmd->cmd != VIRTIO_NET_CTRL_MAC_TABLE_SET)
            return 0;
        a = encode_mac_list(cmd->u.table.n_uni, cmd->u.table.uni_overflow,
                            (const uint8_t (*)[6])cmd->u.table.uni, p, room);
        if (!a)
            return 0;
        b = encode_mac_list(cmd->u.table.n_multi, cmd->u.table.multi_overflow,
                            (const uint8_t (*)[6])cmd->u.table.multi, p + a, room - a);
        if (!b)
            return 0;
        data = a + b;
        break;
    case VIRTIO_NET_CTRL_VLAN:
    case VIRTIO_NET_CTRL_MQ:
        if (cmd->class == VIRTIO_NET_CTRL_VLAN
                ? cmd->cmd != VIRTIO_NET_CTRL_VLAN_ADD && cmd->cmd != VIRTIO_NET_CTRL_VLAN_DEL
                : cmd->cmd != VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET)
            return 0;
        if (room < 2)
            return 0;
        v16 = htole16(cmd->class == VIRTIO_NET_CTRL_VLAN ? cmd->u.vid : cmd->u.queue_pairs);
        memcpy(p, &v16, 2);
        data = 2;
        break;
    case VIRTIO_NET_CTRL_ANNOUNCE:
        if (cmd->cmd != VIRTIO_NET_CTRL_ANNOUNCE_ACK)
            return 0;
        break;
    case VIRTIO_NET_CTRL_GUEST_OFFLOADS:
        if (cmd->cmd != VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET || room < 8)
            return 0;
        v64 = htole64(cmd->u.offloads);
        memcpy(p, &v64, 8);
        data = 8;
        break;
    default:
        return 0;
    }
    return 2 + data;
}

bool net_ctrl_cmd_equal(const struct net_ctrl_cmd *a, const struct net_ctrl_cmd *b)
{
    if (a->class != b->class || a->cmd != b->cmd)
        return false;
    switch (a->class) {
    case VIRTIO_NET_CTRL_RX:
        return a->u.on == b->u.on;
    case VIRTIO_NET_CTRL_MAC:
        if (a->cmd == VIRTIO_NET_CTRL_MAC_ADDR_SET)
            return memcmp(a->u.mac, b->u.mac, 6) == 0;
        if (a->cmd != VIRTIO_NET_CTRL_MAC_TABLE_SET)
            return true;
        if (a->u.table.n_uni != b->u.table.n_uni || a->u.table.n_multi != b->u.table.n_multi ||
            a->u.table.uni_overflow != b->u.table.uni_overflow ||
            a->u.table.multi_overflow != b->u.table.multi_overflow ||
            a->u.table.n_uni > NET_STATE_MAC_TABLE_MAX ||
            a->u.table.n_multi > NET_STATE_MAC_TABLE_MAX)
            return false;
        return memcmp(a->u.table.uni, b->u.table.uni, (size_t)a->u.table.n_uni * 6) == 0 &&
               memcmp(a->u.table.multi, b->u.table.multi, (size_t)a->u.table.n_multi * 6) == 0;
    case VIRTIO_NET_CTRL_VLAN:
        return a->u.vid == b->u.vid;
    case VIRTIO_NET_CTRL_MQ:
        return a->u.queue_pairs == b->u.queue_pairs;
    case VIRTIO_NET_CTRL_GUEST_OFFLOADS:
        return a->u.offloads == b->u.offloads;
    default:
        return true; /* no data (ANNOUNCE) or unknown */
    }
}
