/* virtio_driver.h — a small virtio driver that drives any backend through the ops table.
 *
 * It plays the guest: it owns "guest memory" (a memfd mapping of its own, DMA-mapped at
 * IOVA = offset from the start of the device's IOVA range), negotiates features, sets up
 * the rings with the driver side of the split-ring library, and moves traffic. Tests and
 * benchmarks use it against the simulator; over the kernel backend it becomes a traffic
 * client for any vhost-vdpa node.
 *
 * Net: every frame carries a run id, a sequence number and a pattern derived from both, so
 * the receiver detects loss, duplication and corruption. Blk: sector reads and writes, and
 * the other request types, with the device's status returned.
 *
 * Threads: one thread uses a vdrv at a time (the device's worker runs concurrently).
 * Ownership: the vdrv borrows the device (it must outlive the vdrv) and owns its memory,
 * rings and eventfds; vdrv_free resets the device.
 */
#pragma once

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#include "backend/vdpa_device.h"
#include "virtio/net_state.h"

struct vdrv;
typedef struct vdrv vdrv; /* for g_autoptr */

struct vdrv_config {
    uint64_t mem_bytes; /* guest memory; 0 = 32 MiB */
    unsigned vq_num;    /* ring size; 0 = the device's maximum, capped at 256 */
    /* Features to accept, intersected with the device's; 0 = all the driver knows. */
    uint64_t features;
    bool poll;          /* busy-poll used rings instead of waiting on call eventfds */
};

/* Reset, ACKNOWLEDGE|DRIVER, features, FEATURES_OK, memory, every queue, DRIVER_OK. */
struct vdrv *vdrv_new(struct vdpa_device *dev, const struct vdrv_config *cfg, GError **error);
void vdrv_free(struct vdrv *drv);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(vdrv, vdrv_free)

uint64_t vdrv_features(const struct vdrv *drv);
struct vdpa_device *vdrv_device(const struct vdrv *drv);

/* ---- net */

struct vdrv_net_result {
    uint64_t sent, received, lost, duplicated, corrupted;
    double seconds;
};

/* Sends nframes frames of frame_len bytes (Ethernet header included, 60..MTU+14) to dst on
 * queue pair `pair`, keeping the receive queue supplied, and checks what comes back:
 * with expect_loopback every frame must come back exactly once and intact (else the
 * result says what went wrong and the call returns -EIO); without it, nothing may come
 * back (a filtered destination). Waits at most timeout_ms for stragglers. */
int vdrv_net_exchange(struct vdrv *drv, unsigned pair, uint64_t nframes, size_t frame_len,
                      const uint8_t dst[6], bool expect_loopback, unsigned timeout_ms,
                      struct vdrv_net_result *result, GError **error);

/* Sends one control command and returns the device's ack (VIRTIO_NET_OK/ERR). */
int vdrv_net_ctrl(struct vdrv *drv, const struct net_ctrl_cmd *cmd, uint8_t *ack,
                  GError **error);

/* The device MAC from config space. */
void vdrv_net_mac(struct vdrv *drv, uint8_t mac[6]);

/* ---- blk */

/* One request of type VIRTIO_BLK_T_* on queue q. data is the payload: written for OUT,
 * read into for IN and GET_ID, the discard/write-zeroes segment array for those types.
 * *status gets the device's status byte. Returns 0 when the device completed the request
 * (whatever its status), or -errno when it did not answer. */
int vdrv_blk_request(struct vdrv *drv, unsigned q, uint32_t type, uint64_t sector, void *data,
                     size_t len, uint8_t *status, GError **error);

/* Capacity in 512-byte sectors, from config space. */
uint64_t vdrv_blk_capacity(struct vdrv *drv);
