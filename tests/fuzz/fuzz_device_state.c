/* Fuzz target: the device state decoder. Any input is decoded or refused with a message;
 * a state it accepts is valid, re-encodes to a canonical text that decodes to the same
 * state, and replays into a reset device with every command accepted (what the destination
 * will do with it). */
#include "config.h"

#include <linux/virtio_net.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "migration/device_state.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct net_ctrl_cmd cmds[NET_STATE_REPLAY_MAX];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(device_state) st = device_state_decode((const char *)data, size, &err);

    if (!st) {
        if (!err || !err->message[0])
            __builtin_trap(); /* a refusal says why */
        return 0;
    }
    if (device_state_validate(st, NULL) < 0)
        __builtin_trap();
    size_t len;
    g_autofree char *text = device_state_encode(st, &len, NULL);
    if (!text)
        __builtin_trap();
    g_autoptr(device_state) again = device_state_decode(text, len, NULL);
    if (!again || !device_state_equal(st, again))
        __builtin_trap();
    g_autofree char *text2 = device_state_encode(again, NULL, NULL);
    if (!text2 || strcmp(text, text2) != 0)
        __builtin_trap();

    struct net_state dst;
    unsigned n = net_state_replay(&st->net.state, st->features, cmds, NET_STATE_REPLAY_MAX);
    net_state_reset(&dst, st->net.state.mac, st->features);
    for (unsigned i = 0; i < n; i++)
        if (net_state_apply(&dst, &cmds[i], st->features, st->net.max_queue_pairs, NULL) !=
            VIRTIO_NET_OK)
            __builtin_trap();
    if (!net_state_equal(&dst, &st->net.state))
        __builtin_trap();
    return 0;
}
