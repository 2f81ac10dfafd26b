/* kernel_dev.h — the backend for a real vDPA device: a client of any vhost-vdpa node
 * (the kernel's /dev/vhost-vdpa-N, or another vdpad's node) through the uAPI, behind the
 * same ops table as the simulator.
 *
 * DMA addresses are our own virtual addresses: the kernel pins the pages of the process
 * that writes the IOTLB, which is us. The kernel deletes whole IOTLB entries on a partial
 * invalidation, so a partial dma_unmap is emulated: invalidate the entries it touches,
 * then map again the parts outside the range.
 *
 * Threads: the ops table's rules; the kernel does the data path.
 */
#pragma once

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#include "backend/vdpa_device.h"

/* Opens path (O_RDWR), becomes its owner and negotiates backend features. */
struct vdpa_device *kernel_dev_open(const char *name, const char *path, GError **error);

/* Dirty logging, as QEMU starts and stops it during a migration: SET_LOG_BASE with the
 * address of a log in this process (vhost's layout, dirty_log.h), then SET_FEATURES with
 * VHOST_F_LOG_ALL added; off: SET_FEATURES without it. Only vdpad's nodes offer it. */
int kernel_dev_set_dirty_log(struct vdpa_device *dev, uint64_t *log, bool on, GError **error);
