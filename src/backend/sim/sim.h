/* sim.h — the simulated vDPA devices: in-process backends behind the ops table
 * (backend/vdpa_device.h) that behave like the kernel's vdpa_sim_net and vdpa_sim_blk,
 * and are richer (real receive filtering, multiqueue, a full control queue, a RAM disk
 * with discard and write-zeroes, per-queue counters).
 *
 * Layout (like drivers/vdpa/vdpa_sim): a generic core (sim_core.c) owns features, status,
 * config space, queues, the IOMMU (an iova_map) and the worker thread; each device type
 * (sim_net.c, sim_blk.c) adds its config space, features and request processing.
 *
 * Threads: the ops are called from the control thread. Each device runs one worker thread
 * that polls the queues' kick eventfds and signals their call eventfds; it takes the
 * device lock while it walks the rings, and so do the ops that change queues or mappings.
 */
#pragma once

#include <glib.h>
#include <stdint.h>

#include "backend/vdpa_device.h"

struct sim_net_config {
    const char *name;
    uint8_t mac[6];
    unsigned queue_pairs; /* 1..16; a control queue is always present */
    uint16_t mtu;         /* 68..65535; 0 = 1500 */
    /* Features to offer: 0 offers all of sim_net_supported_features(); otherwise a subset of
     * it (VERSION_1 and ACCESS_PLATFORM cannot be masked). */
    uint64_t features;
    unsigned vq_num_max; /* 0 = 256 */
};

struct sim_blk_config {
    const char *name;
    uint64_t size_bytes; /* multiple of 512, > 0 */
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
