/* vdrv_internal.h — the test driver's internals, shared by its files (src/driver/ only).
 * Threads: as virtio_driver.h says; a vdrv_pair is touched only by the thread driving it. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "driver/virtio_driver.h"
#include "virtio/split_ring.h"

#define VDRV_NET_HDR_LEN 12u /* struct virtio_net_hdr_v1 */
#define VDRV_CTRL_MAX 16384u /* above the simulator's limit, so tests can exceed it */
#define VDRV_BLK_MAX_DATA (1u << 20)
#define VDRV_BLK_MAX_SEGS VRING_MAX_SEGS

/* Guest memory handed out by the bump allocator. */
struct vdrv_mem {
    void *ptr;
    uint64_t iova;
};

struct vdrv_vq {
    unsigned idx;
    bool wanted;  /* the driver uses this queue (set by the type's setup) */
    bool used;    /* its ring exists (vr initialised) */
    struct vring_drv vr;
    struct vdrv_mem ring;
    int kick_fd, call_fd;
};

/* One net queue pair: its rings, buffers and the run in progress. */
struct vdrv_pair {
    unsigned index;
    struct vdrv *drv;
    struct vdrv_vq *rx, *tx;
    unsigned buf_size;     /* bytes per buffer: net header + largest frame */
    struct vdrv_mem rx_bufs, tx_bufs;
    unsigned *tx_free;     /* stack of free TX slots */
    unsigned n_tx_free;
    unsigned *rx_idle;     /* stack of RX slots not posted */
    unsigned n_rx_idle;
    int vlan;              /* tag for new frames, or -1 */

    /* run */
    uint32_t run_id;
    uint32_t next_run;
    uint64_t nframes, next_seq;
    size_t frame_len;
    uint8_t dst[6];
    uint8_t *seen;         /* bitmap of received sequence numbers */
    struct vdrv_net_result res;
    int64_t t_start;
    unsigned raw_received; /* frames that came back during vdrv_net_tx_raw */
};

struct vdrv {
    struct vdpa_device *dev;
    struct vdrv_config cfg;
    uint32_t device_id;
    uint64_t features;
    unsigned timeout_ms;

    /* guest memory */
    int memfd;
    uint8_t *mem;
    uint64_t mem_size, mem_used, iova_base;
    bool mapped;

    unsigned nvqs;          /* device queues */
    struct vdrv_vq *vqs;
    unsigned vq_num;
    int config_fd;

    /* net */
    unsigned pairs;
    unsigned ctrl_idx;      /* or UINT_MAX without CTRL_VQ */
    struct vdrv_pair *pair;
    uint16_t mtu;
    struct vdrv_mem ctrl_buf; /* request, then ack at VDRV_CTRL_MAX */

    /* blk */
    unsigned blk_queues;
    struct vdrv_mem *blk_buf;   /* per queue: header, data, status */
    struct vdrv_mem *blk_table; /* per queue: indirect table */
};

/* ---- virtio_driver.c */

/* Takes size bytes of guest memory aligned to align; zeroed. */
bool vdrv_alloc(struct vdrv *drv, uint64_t size, uint64_t align, struct vdrv_mem *out);
/* Kicks the queue if the device asked for it after publishing. */
void vdrv_vq_publish(struct vdrv_vq *vq);
/* Waits until one of the queues has used entries, or timeout_ms pass (busy-polls when
 * cfg.poll). Returns true if some queue has entries. */
bool vdrv_wait_used(struct vdrv *drv, struct vdrv_vq *const *vqs, unsigned n,
                    unsigned timeout_ms);
/* One synchronous request on a queue: adds the chain, publishes, waits for its completion.
 * Returns 0 and the used length, or -errno. */
int vdrv_vq_roundtrip(struct vdrv *drv, struct vdrv_vq *vq, const struct vring_buf *bufs,
                      unsigned n_out, unsigned n_in, struct vring_desc *table,
                      uint64_t table_iova, uint32_t *used_len, GError **error);
/* The error of a queue the driver side found broken. */
int vdrv_vq_broken(struct vdrv *drv, struct vdrv_vq *vq, GError **error);

/* ---- vdrv_net.c / vdrv_blk.c: per type setup inside vdrv_new, and teardown */
int vdrv_net_setup(struct vdrv *drv, GError **error);
void vdrv_net_teardown(struct vdrv *drv);
int vdrv_blk_setup(struct vdrv *drv, GError **error);
void vdrv_blk_teardown(struct vdrv *drv);

/* memory each type needs besides the rings */
uint64_t vdrv_net_mem_needed(const struct vdrv *drv);
uint64_t vdrv_blk_mem_needed(const struct vdrv *drv);
