/* vdpa_device.h — the one interface every vDPA backend implements.
 *
 * Modelled on the kernel's struct vdpa_config_ops (include/linux/vdpa.h), plus DMA map and
 * unmap, in user space: kicks and interrupts are eventfds, and DMA addresses are local
 * virtual addresses of this process. Backends: the simulator (src/backend/sim/) and the
 * kernel uAPI client (src/backend/kernel/).
 *
 * Threads: all ops are called from the device's control thread (the daemon's main loop,
 * or a test), one at a time; the caller serialises. get_vq_stats may also be called from
 * any thread. A backend runs its own data-path threads, which signal the call and config
 * eventfds; they never call back into the caller.
 *
 * Ownership: the caller owns the device until vdpa_device_free(). File descriptors passed
 * to set_vq_kick/set_vq_call/set_config_call stay the caller's: the backend duplicates
 * what it keeps, and closes its copies on replacement, reset and free. Memory given to
 * dma_map must stay mapped until it is unmapped, the device is reset, or freed.
 *
 * Errors: ops that can fail return 0 or a negative errno, and set *error (when non-NULL)
 * with the device name, the queue and the values involved.
 */
#pragma once

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

struct vdpa_device;
typedef struct vdpa_device vdpa_device; /* for g_autoptr */

/* Split-ring queue state, as vhost's GET/SET_VRING_BASE carry it. */
struct vdpa_vq_state {
    uint16_t avail_index; /* next available entry the device will take */
};

/* Per-queue counters, like `vdpa dev vstats`: named vendor counters. */
#define VDPA_VQ_STATS_MAX 12
struct vdpa_vq_stats {
    unsigned n;
    struct {
        const char *name; /* static string, e.g. "received_desc", "tx_pkts" */
        uint64_t value;
    } entry[VDPA_VQ_STATS_MAX];
};

struct vdpa_iova_range {
    uint64_t first;
    uint64_t last;
};

struct vdpa_device_ops {
    /* --- identity and features */
    uint32_t (*get_device_id)(struct vdpa_device *dev);  /* VIRTIO_ID_* */
    uint32_t (*get_vendor_id)(struct vdpa_device *dev);
    uint64_t (*get_device_features)(struct vdpa_device *dev);
    /* Fails with -EINVAL for features the device does not offer, or when the status
     * already has FEATURES_OK. */
    int (*set_driver_features)(struct vdpa_device *dev, uint64_t features, GError **error);
    uint64_t (*get_driver_features)(struct vdpa_device *dev);

    /* --- status (VIRTIO_CONFIG_S_*) and lifecycle */
    uint8_t (*get_status)(struct vdpa_device *dev);
    /* Sets the status; 0 resets the device (like reset). Setting FEATURES_OK on features
     * the device cannot accept leaves the bit clear; DRIVER_OK starts the ready queues. */
    int (*set_status)(struct vdpa_device *dev, uint8_t status, GError **error);
    /* Back to the initial state: status 0, queues unready with their state zeroed, all
     * DMA mappings and eventfds dropped, device-specific state (MAC filters...) reset. */
    int (*reset)(struct vdpa_device *dev, GError **error);
    /* Stops processing queues and finishes what is in flight: after it returns the
     * device neither reads nor writes guest memory, and get_vq_state is exact. NULL when
     * unsupported. */
    int (*suspend)(struct vdpa_device *dev, GError **error);
    int (*resume)(struct vdpa_device *dev, GError **error);

    /* --- config space (device-specific layout, e.g. struct virtio_net_config) */
    size_t (*get_config_size)(struct vdpa_device *dev);
    /* Reads/writes [offset, offset + len) of config space; the caller checks the bounds
     * against get_config_size. */
    void (*get_config)(struct vdpa_device *dev, unsigned offset, void *buf, unsigned len);
    void (*set_config)(struct vdpa_device *dev, unsigned offset, const void *buf,
                       unsigned len);
    uint32_t (*get_generation)(struct vdpa_device *dev);
    /* Signalled when config space changes (link status...); -1 unbinds. */
    int (*set_config_call)(struct vdpa_device *dev, int eventfd, GError **error);

    /* --- virtqueues; idx < vq count */
    unsigned (*get_vq_count)(struct vdpa_device *dev);
    uint16_t (*get_vq_num_max)(struct vdpa_device *dev);
    uint16_t (*get_vq_num_min)(struct vdpa_device *dev);
    int (*set_vq_num)(struct vdpa_device *dev, unsigned idx, unsigned num, GError **error);
    /* desc_area, driver_area (avail), device_area (used): IOVAs. */
    int (*set_vq_address)(struct vdpa_device *dev, unsigned idx, uint64_t desc_area,
                          uint64_t driver_area, uint64_t device_area, GError **error);
    /* Only while the queue is not ready, or the device is suspended. */
    int (*set_vq_state)(struct vdpa_device *dev, unsigned idx,
                        const struct vdpa_vq_state *state, GError **error);
    int (*get_vq_state)(struct vdpa_device *dev, unsigned idx, struct vdpa_vq_state *state,
                        GError **error);
    int (*set_vq_ready)(struct vdpa_device *dev, unsigned idx, bool ready, GError **error);
    bool (*get_vq_ready)(struct vdpa_device *dev, unsigned idx);
    /* The device waits on kick (driver -> device) and signals call (device -> driver);
     * -1 unbinds. A kick eventfd is polled by the device, so the data path needs no one
     * in between. */
    int (*set_vq_kick)(struct vdpa_device *dev, unsigned idx, int eventfd, GError **error);
    int (*set_vq_call)(struct vdpa_device *dev, unsigned idx, int eventfd, GError **error);
    /* [any thread] */
    int (*get_vq_stats)(struct vdpa_device *dev, unsigned idx, struct vdpa_vq_stats *stats,
                        GError **error);

    /* --- DMA: IOVA -> local memory of this process */
    struct vdpa_iova_range (*get_iova_range)(struct vdpa_device *dev);
    /* perm: IOVA_PERM_READ/WRITE (iova/iova_map.h). -EEXIST on overlap. */
    int (*dma_map)(struct vdpa_device *dev, uint64_t iova, uint64_t size, void *vaddr,
                   uint32_t perm, GError **error);
    int (*dma_unmap)(struct vdpa_device *dev, uint64_t iova, uint64_t size, GError **error);
    /* Maps and unmaps between begin and end may be applied together at end (like the
     * IOTLB batch). Optional: NULL means each op applies at once. */
    int (*dma_batch_begin)(struct vdpa_device *dev, GError **error);
    int (*dma_batch_end)(struct vdpa_device *dev, GError **error);

    /* --- teardown: stop threads, release everything, free dev */
    void (*free)(struct vdpa_device *dev);
};

/* The common part of every device; a backend embeds it first in its own struct. */
struct vdpa_device {
    const struct vdpa_device_ops *ops;
    char *name;      /* owned; for messages: "dev0" */
    const char *backend; /* static: "sim-net", "sim-blk", "kernel" */
};

/* Sets up the common part (copies name). */
void vdpa_device_init(struct vdpa_device *dev, const struct vdpa_device_ops *ops,
                      const char *name, const char *backend);
/* Releases the common part; backends call it from their free op. */
void vdpa_device_cleanup(struct vdpa_device *dev);

/* Calls dev->ops->free; NULL is a no-op. */
void vdpa_device_free(struct vdpa_device *dev);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(vdpa_device, vdpa_device_free)

/* Appends a named counter to stats (ignored past VDPA_VQ_STATS_MAX). */
void vdpa_vq_stats_add(struct vdpa_vq_stats *stats, const char *name, uint64_t value);
/* A counter by name, or false. */
bool vdpa_vq_stats_get(const struct vdpa_vq_stats *stats, const char *name, uint64_t *value);
