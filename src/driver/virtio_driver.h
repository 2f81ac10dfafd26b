/* virtio_driver.h — a small virtio driver that drives any backend through the ops table.
 *
 * It plays the guest: it owns "guest memory" (a memfd mapping of its own, DMA-mapped at
 * IOVA = offset from the start of the device's IOVA range), negotiates features, sets up
 * the rings with the driver side of the split-ring library, and moves traffic. Tests and
 * benchmarks use it against the simulator; over the kernel backend it becomes a traffic
 * client for any vhost-vdpa node.
 *
 * Net: every frame carries a run id, a sequence number and a pattern derived from both, so
 * the receiver detects loss, duplication and corruption. Receive buffers are posted by
 * vdrv_net_exchange (or vdrv_net_rx_fill), not at setup, so a test can observe the device
 * with empty receive rings. Like a fresh device, one queue pair is active until the driver
 * sends MQ_VQ_PAIRS_SET (vdrv_net_ctrl). Blk: one request at a time per call, with the
 * device's status returned.
 *
 * Threads: one thread uses a vdrv at a time (the device's worker runs concurrently), with
 * one exception: the per-pair net calls (vdrv_net_exchange, vdrv_net_run_begin, _tx,
 * _rx_fill, _collect, _run_result, _tx_pending) on DIFFERENT pairs may run concurrently,
 * one thread per pair, as each pair has its own rings, buffers, eventfds and run state.
 * Ownership: the vdrv borrows the device (it must outlive the vdrv) and owns its memory,
 * rings and eventfds; vdrv_free resets the device.
 */
#pragma once

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#include "backend/vdpa_device.h"
#include "virtio/net_state.h"
#include "virtio/split_ring.h"

struct vdrv;
typedef struct vdrv vdrv; /* for g_autoptr */

struct vdrv_config {
    /* guest memory; 0 = what the rings and buffers need, at least 32 MiB */
    uint64_t mem_bytes;
    unsigned vq_num;    /* ring size; 0 = the device's maximum, capped at 256 */
    /* Features to accept, intersected with the device's; 0 = all the driver knows. */
    uint64_t features;
    bool poll;          /* busy-poll used rings instead of waiting on call eventfds */
    /* blk: post data segments through an indirect table (when INDIRECT_DESC is
     * negotiated) instead of ring descriptors */
    bool indirect;
    unsigned timeout_ms; /* bound on control and blk request waits; 0 = 5000 */
};

/* Reset, ACKNOWLEDGE|DRIVER, features, FEATURES_OK, memory, every queue, DRIVER_OK. */
struct vdrv *vdrv_new(struct vdpa_device *dev, const struct vdrv_config *cfg, GError **error);
void vdrv_free(struct vdrv *drv);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(vdrv, vdrv_free)

/* Resets the device and sets everything up again as vdrv_new did (fresh memory, rings
 * and eventfds; a test uses it after breaking a queue). */
int vdrv_reset(struct vdrv *drv, GError **error);

uint64_t vdrv_features(const struct vdrv *drv);
struct vdpa_device *vdrv_device(const struct vdrv *drv);

/* Waits up to timeout_ms for the device's config eventfd; true when it was signalled
 * (consumes the signal). */
bool vdrv_config_signalled(struct vdrv *drv, unsigned timeout_ms);

/* Guest memory for a test's own buffers (zeroed; until the next reset or free); NULL when
 * guest memory is full. */
void *vdrv_alloc_scratch(struct vdrv *drv, size_t size, uint64_t *iova);
/* The whole guest memory: its local address, IOVA and size (for tests that remap it). */
void *vdrv_guest_memory(const struct vdrv *drv, uint64_t *iova, uint64_t *size);

/* Adds one chain with caller-chosen IOVAs and lengths to queue idx and kicks: for tests
 * that feed a device buffers it must refuse (unmapped, wrong direction...). */
int vdrv_post_raw(struct vdrv *drv, unsigned idx, const struct vring_buf *bufs, unsigned n_out,
                  unsigned n_in, GError **error);

/* ---- net */

struct vdrv_net_result {
    uint64_t sent, received, lost, duplicated, corrupted;
    uint64_t stray; /* intact frames of another run */
    double seconds;
};

/* Sends nframes frames of frame_len bytes (Ethernet header included, 60..MTU+14) to dst on
 * queue pair `pair`, keeping the receive queue supplied, and checks what comes back:
 * with expect_loopback every frame must come back exactly once and intact (else the
 * result says what went wrong and the call returns -EIO); without it, nothing may come
 * back (a filtered destination). Waits at most timeout_ms without progress. */
int vdrv_net_exchange(struct vdrv *drv, unsigned pair, uint64_t nframes, size_t frame_len,
                      const uint8_t dst[6], bool expect_loopback, unsigned timeout_ms,
                      struct vdrv_net_result *result, GError **error);

/* Runs vdrv_net_exchange (expecting loopback) on pairs 0..npairs-1 at once, one thread
 * each, started together. results (may be NULL) gets each pair's result; *seconds (may be
 * NULL) the wall time from the start until the last pair finished. Returns 0 when every
 * pair passed, else the first failure with *error naming the pair. */
int vdrv_net_exchange_pairs(struct vdrv *drv, unsigned npairs, uint64_t frames_per_pair,
                            size_t frame_len, const uint8_t dst[6], unsigned timeout_ms,
                            struct vdrv_net_result *results, double *seconds, GError **error);

/* Checks a dirty log (vhost's layout, as its reader collected it) against what the device
 * wrote: every page of a receive buffer that holds data (the driver never writes them) and
 * the used ring of every queue that returned buffers must be marked. *checked (may be
 * NULL) gets the pages checked. -EIO names the first page missing. */
int vdrv_net_check_dirty_log(struct vdrv *drv, const uint64_t *log, uint64_t n_words,
                             uint64_t *checked, GError **error);

/* Activates npairs queue pairs (MQ_VQ_PAIRS_SET on the control queue). */
int vdrv_net_set_pairs(struct vdrv *drv, unsigned npairs, GError **error);

/* Tags the frames sent from now on with an 802.1Q header for VLAN vid (0..4095); -1 sends
 * untagged frames (the default). The tag counts in frame_len. */
void vdrv_net_set_vlan(struct vdrv *drv, int vid);

/* The steps of an exchange, for tests that control the timing (backpressure, suspend):
 * run_begin starts a run of at most nframes frames; tx adds up to n of them to the TX ring
 * (as many as it has room for) and kicks; rx_fill posts up to n receive buffers and kicks;
 * collect takes what the device returned (TX completions, received frames, checked
 * against the run; their buffers are reposted when repost), waiting up to timeout_ms for
 * the first entry. tx, rx_fill and collect return a count or -errno (-EIO when the device
 * broke the ring protocol). */
int vdrv_net_run_begin(struct vdrv *drv, unsigned pair, uint64_t nframes, size_t frame_len,
                       const uint8_t dst[6], GError **error);
int vdrv_net_tx(struct vdrv *drv, unsigned pair, unsigned n, GError **error);
int vdrv_net_rx_fill(struct vdrv *drv, unsigned pair, unsigned n, GError **error);
int vdrv_net_collect(struct vdrv *drv, unsigned pair, unsigned timeout_ms, bool repost,
                     GError **error);
/* The run so far: lost = sent - received. */
void vdrv_net_run_result(const struct vdrv *drv, unsigned pair, struct vdrv_net_result *result);
/* TX frames the device has not completed yet. */
unsigned vdrv_net_tx_pending(const struct vdrv *drv, unsigned pair);

/* Sends one arbitrary frame (a net header is prepended) on pair and waits until the device
 * completed it; whatever comes back on the pair's receive queue is consumed and counted
 * in *received (may be NULL). For fuzzing. */
int vdrv_net_tx_raw(struct vdrv *drv, unsigned pair, const void *frame, size_t len,
                    unsigned *received, GError **error);

/* Sends one control command and returns the device's ack (VIRTIO_NET_OK/ERR). */
int vdrv_net_ctrl(struct vdrv *drv, const struct net_ctrl_cmd *cmd, uint8_t *ack,
                  GError **error);
/* Same with the request's bytes (class, cmd, data) as given, at most 16 KiB. */
int vdrv_net_ctrl_raw(struct vdrv *drv, const void *req, size_t len, uint8_t *ack,
                      GError **error);

/* The device MAC from config space. */
void vdrv_net_mac(struct vdrv *drv, uint8_t mac[6]);
/* Queue pairs the driver set up (max_virtqueue_pairs with MQ, else 1). */
unsigned vdrv_net_pairs(const struct vdrv *drv);

/* ---- blk */

/* One request of type VIRTIO_BLK_T_* on queue q. data is the payload: written for OUT,
 * read into for IN and GET_ID, the discard/write-zeroes segment array for those types.
 * *status gets the device's status byte (0xff if the device did not write it). Returns 0
 * when the device completed the request (whatever its status), or -errno when it did not
 * answer. len is at most 1 MiB. */
int vdrv_blk_request(struct vdrv *drv, unsigned q, uint32_t type, uint64_t sector, void *data,
                     size_t len, uint8_t *status, GError **error);
/* Same, with the payload split into descriptors of seg_len bytes (the last may be
 * shorter), placed apart in guest memory so that each is a separate buffer to the device;
 * vdrv_blk_request uses one. */
int vdrv_blk_request_segs(struct vdrv *drv, unsigned q, uint32_t type, uint64_t sector,
                          void *data, size_t len, size_t seg_len, uint8_t *status,
                          GError **error);

/* Capacity in 512-byte sectors, from config space. */
uint64_t vdrv_blk_capacity(struct vdrv *drv);
/* Request queues the driver set up (num_queues with MQ, else 1). */
unsigned vdrv_blk_queues(const struct vdrv *drv);
