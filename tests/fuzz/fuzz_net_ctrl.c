/* fuzz_net_ctrl — control commands from hostile bytes through parse, apply, filter, replay.
 *
 * Input: [features lo][features hi][max queue pairs][n commands], then n times
 * [len lo][len hi][len bytes of a control request], then a frame (the rest).
 * Checks: parse never reads past len (ASan); parsed commands survive encode/parse; a
 * refused command leaves the state unchanged; replay rebuilds the state. */
#include "config.h"

#include <assert.h>
#include <errno.h>
#include <linux/virtio_net.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "virtio/net_state.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const unsigned feature_bits[] = {
    VIRTIO_NET_F_CTRL_RX, VIRTIO_NET_F_CTRL_RX_EXTRA, VIRTIO_NET_F_CTRL_VLAN,
    VIRTIO_NET_F_CTRL_MAC_ADDR, VIRTIO_NET_F_MQ, VIRTIO_NET_F_CTRL_GUEST_OFFLOADS,
    VIRTIO_NET_F_GUEST_ANNOUNCE, VIRTIO_NET_F_GUEST_CSUM, VIRTIO_NET_F_GUEST_TSO4,
    VIRTIO_NET_F_GUEST_TSO6, VIRTIO_NET_F_GUEST_ECN, VIRTIO_NET_F_GUEST_UFO, 54, 55,
    VIRTIO_NET_F_CTRL_VQ, VIRTIO_NET_F_MAC,
};

static struct net_ctrl_cmd replay[NET_STATE_REPLAY_MAX];
static uint8_t wire[2 + 2 * (4 + (NET_STATE_MAC_TABLE_MAX + 1) * 6)];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint8_t mac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };
    struct net_state st, before, fresh;
    struct net_ctrl_cmd cmd, back;
    uint64_t features = 0;
    uint16_t max_qp;
    unsigned ncmds;

    if (size < 4)
        return 0;
    for (unsigned i = 0; i < 16; i++)
        if ((data[0] | data[1] << 8) & (1u << i))
            features |= 1ull << feature_bits[i];
    max_qp = data[2];
    ncmds = data[3] % 8;
    data += 4;
    size -= 4;
    net_state_reset(&st, mac, features);

    for (unsigned k = 0; k < ncmds && size >= 2; k++) {
        size_t len = (size_t)(data[0] | data[1] << 8);
        data += 2;
        size -= 2;
        if (len > size)
            len = size;
        /* an exact-size copy so ASan catches a read past len */
        uint8_t *req = malloc(len ? len : 1);
        memcpy(req, data, len);
        int r = net_ctrl_parse(req, len, &cmd, NULL);
        free(req);
        data += len;
        size -= len;
        if (r < 0) {
            assert(r == -EINVAL || r == -EOPNOTSUPP);
            continue;
        }
        size_t n = net_ctrl_encode(&cmd, wire, sizeof(wire));
        assert(n >= 2);
        assert(net_ctrl_parse(wire, n, &back, NULL) == 0);
        assert(net_ctrl_cmd_equal(&cmd, &back));

        before = st;
        if (net_state_apply(&st, &cmd, features, max_qp, NULL) != VIRTIO_NET_OK)
            assert(memcmp(&st, &before, sizeof(st)) == 0);
    }

    net_state_reset(&fresh, mac, features);
    unsigned n = net_state_replay(&st, features, replay, NET_STATE_REPLAY_MAX);
    for (unsigned i = 0; i < n; i++)
        assert(net_state_apply(&fresh, &replay[i], features, max_qp, NULL) == VIRTIO_NET_OK);
    assert(net_state_equal(&st, &fresh));

    uint8_t *frame = malloc(size ? size : 1);
    memcpy(frame, data, size);
    bool ok = net_state_accepts(&st, features, frame, size);
    assert(!ok || size >= 14);
    assert(ok == net_state_accepts(&fresh, features, frame, size));
    free(frame);
    return 0;
}
