/* fuzz_sim_net_cvq — hostile control requests and TX frames against a live simulated NIC,
 * through the test driver.
 *
 * Input: records [op][len lo][len hi][len bytes], from a freshly reset device (2 pairs):
 *   op % 3 == 0: the bytes are one control request (class, cmd, data);
 *   op % 3 == 1: the bytes are one TX frame on pair (op / 3) % 2 (a net header is
 *                prepended; clipped to the buffer size);
 *   op % 3 == 2: 8 numbered frames to broadcast on pair (op / 3) % 2, with VLAN tag
 *                len % 4096 (len 0: untagged); all or none must come back, intact, once.
 * Checks: no crash (ASan/UBSan); every request is answered with VIRTIO_NET_OK or _ERR;
 * every frame is completed; the device never needs a reset (the driver's rings are well
 * formed, so nothing may break a queue); at the end a control command still answers. */
#include "config.h"

#include <glib.h>
#include <linux/virtio_config.h>
#include <linux/virtio_net.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/sim/sim.h"
#include "driver/virtio_driver.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct vdpa_device *dev;
static struct vdrv *drv;

static void die(const char *what, GError *err)
{
    fprintf(stderr, "fuzz_sim_net_cvq: %s: %s\n", what, err ? err->message : "");
    abort();
}

static void setup(void)
{
    struct sim_net_config cfg = { .name = "fz", .queue_pairs = 2,
                                  .mac = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 } };
    struct vdrv_config dcfg = { .timeout_ms = 2000 };
    GError *err = NULL;

    dev = sim_net_new(&cfg, &err);
    if (!dev)
        die("sim_net_new", err);
    drv = vdrv_new(dev, &dcfg, &err);
    if (!drv)
        die("vdrv_new", err);
}

static void check_device_healthy(const char *after)
{
    uint8_t status = dev->ops->get_status(dev);

    if ((status & (VIRTIO_CONFIG_S_NEEDS_RESET | VIRTIO_CONFIG_S_FAILED)) ||
        !(status & VIRTIO_CONFIG_S_DRIVER_OK)) {
        fprintf(stderr, "fuzz_sim_net_cvq: status 0x%x after %s\n", status, after);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint8_t bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
    static const uint8_t promisc_off[3] = { VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_PROMISC, 0 };
    GError *err = NULL;
    uint8_t ack;

    if (!dev)
        setup();
    else if (vdrv_reset(drv, &err) < 0)
        die("vdrv_reset", err);

    while (size >= 3) {
        uint8_t op = data[0];
        size_t len = MIN((size_t)(data[1] | data[2] << 8), size - 3);
        const uint8_t *p = data + 3;
        unsigned pair = (op / 3) % 2;

        data += 3 + len;
        size -= 3 + len;
        switch (op % 3) {
        case 0:
            if (vdrv_net_ctrl_raw(drv, p, len, &ack, &err) < 0)
                die("control request not answered", err);
            if (ack != VIRTIO_NET_OK && ack != VIRTIO_NET_ERR) {
                fprintf(stderr, "fuzz_sim_net_cvq: ack %u\n", ack);
                abort();
            }
            check_device_healthy("a control request");
            break;
        case 1:
            if (vdrv_net_tx_raw(drv, pair, p, MIN(len, 1500u), NULL, &err) < 0)
                die("TX frame not completed", err);
            check_device_healthy("a TX frame");
            break;
        case 2: {
            struct vdrv_net_result r;
            int64_t deadline = g_get_monotonic_time() + 2 * G_USEC_PER_SEC;

            vdrv_net_set_vlan(drv, len ? (int)(len % 4096) : -1);
            if (vdrv_net_run_begin(drv, pair, 8, 64, bcast, &err) < 0 ||
                vdrv_net_rx_fill(drv, pair, UINT_MAX, &err) < 0 ||
                vdrv_net_tx(drv, pair, 8, &err) != 8)
                die("exchange start", err);
            /* the simulator completes a TX frame after delivering it: once every TX frame
             * is back, whatever passed the filter is in the receive ring */
            while (vdrv_net_tx_pending(drv, pair) && g_get_monotonic_time() < deadline)
                if (vdrv_net_collect(drv, pair, 100, true, &err) < 0)
                    die("exchange", err);
            if (vdrv_net_collect(drv, pair, 0, true, &err) < 0)
                die("exchange", err);
            vdrv_net_run_result(drv, pair, &r);
            /* the filter passes all 8 identical-destination frames or none */
            if ((r.received != 0 && r.received != 8) || r.duplicated || r.corrupted ||
                r.stray || vdrv_net_tx_pending(drv, pair)) {
                fprintf(stderr, "fuzz_sim_net_cvq: exchange: received %llu dup %llu corrupt "
                        "%llu stray %llu pending %u\n", (unsigned long long)r.received,
                        (unsigned long long)r.duplicated, (unsigned long long)r.corrupted,
                        (unsigned long long)r.stray, vdrv_net_tx_pending(drv, pair));
                abort();
            }
            vdrv_net_set_vlan(drv, -1);
            check_device_healthy("an exchange");
            break;
        }
        }
    }
    if (vdrv_net_ctrl_raw(drv, promisc_off, sizeof(promisc_off), &ack, &err) < 0)
        die("final control request", err);
    check_device_healthy("the input");
    return 0;
}
