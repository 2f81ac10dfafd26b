/* sim.h — the simulated vDPA devices: in-process backends behind the ops table
 * (backend/vdpa_device.h) that behave like the kernel's vdpa_sim_net and vdpa_sim_blk,
 * and are richer (real receive filtering, multiqueue, a full control queue, a RAM disk
 * with discard and write-zeroes, per-queue counters). Design: docs/adr/0004-simulator.md.
 *
 * Layout (like drivers/vdpa/vdpa_sim): a generic core (sim_core.c) owns features, status,
 * config space, queues, the IOMMU (an iova_map) and the worker thread; each device type
 * (sim_net.c, sim_blk.c) adds its config space, features and request processing.
 *
 * Threads: the ops are called from the control thread, one at a time (get_vq_stats from
 * any thread). Each device runs one worker thread that polls the queues' kick eventfds and
 * signals their call eventfds and the config eventfd; it takes the device lock while it
 * walks the rings, and so do the ops that change queues or mappings, so an op never races
 * with a ring walk (after suspend returns, no guest memory is touched until resume).
 * Ownership: the caller owns the device (vdpa_device_free); eventfds passed in stay the
 * caller's (the device keeps duplicates); dma_map'ed memory must stay mapped until unmapped,
 * reset or free.
 *
 * Semantics worth knowing (details in the ADR):
 *   - net queues: rx0, tx0, rx1, tx1, ..., control queue at 2 * queue_pairs (at 2 when MQ
 *     is not negotiated). TX of pair i comes back on RX of pair i through the receive
 *     filter. A TX frame waits (is not dropped) while its receive queue is ready but out
 *     of buffers; it is dropped and counted when that queue is not running or its pair is
 *     not active (one pair after reset, MQ_VQ_PAIRS_SET changes it).
 *   - a broken ring stops only its queue and sets DEVICE_NEEDS_RESET (config eventfd);
 *     reset recovers.
 *   - reset drops everything the driver set (features, status, queues, eventfds,
 *     mappings, filters); counters and the blk disk contents survive it.
 *   - counters (get_vq_stats): received_desc, completed_desc, then per role: net RX
 *     rx_pkts/rx_bytes/rx_drops/rx_overruns/rx_errors, TX tx_pkts/tx_bytes/tx_errors,
 *     control requests/successes/errors; blk requests/reads/writes/read_bytes/
 *     written_bytes/flushes/discards/write_zeroes/errors/unsupported.
 */
#pragma once

#include <glib.h>
#include <stdint.h>

#include "backend/vdpa_device.h"

struct sim_net_config {
    const char *name;     /* for messages; NULL = "sim-net" */
    uint8_t mac[6];
    unsigned queue_pairs; /* 1..16; a control queue is always present */
    uint16_t mtu;         /* 68..65535; 0 = 1500 */
    /* Features to offer: 0 offers all of sim_net_supported_features(); otherwise a subset of
     * it (VERSION_1 and ACCESS_PLATFORM cannot be masked). */
    uint64_t features;
    unsigned vq_num_max; /* 0 = 256 */
};

struct sim_blk_config {
    const char *name;    /* for messages and the serial ("vdpad-sim-<name>"); NULL = "sim-blk" */
    uint64_t size_bytes; /* multiple of 512, > 0; reserved, allocated as written */
    unsigned queues;     /* 1..16 */
    uint32_t seg_max;    /* 0 = 128 */
    uint32_t size_max;   /* 0 = 1 MiB */
    uint64_t features;   /* as for net: 0 = all supported */
    unsigned vq_num_max; /* 0 = 256 */
};

uint64_t sim_net_supported_features(void);
uint64_t sim_blk_supported_features(void);

/* Create a device; NULL with *error on bad configuration. Free with vdpa_device_free. */
struct vdpa_device *sim_net_new(const struct sim_net_config *cfg, GError **error);
struct vdpa_device *sim_blk_new(const struct sim_blk_config *cfg, GError **error);
