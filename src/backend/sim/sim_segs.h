/* sim_segs.h — copying between flat buffers and the segments of a popped chain
 * (internal to src/backend/sim/). Segments are local addresses already translated and
 * checked by the ring library; these helpers only walk them. Worker thread, lock held. */
#pragma once

#include <stddef.h>

#include "virtio/split_ring.h"

/* Reads up to len bytes starting off bytes into segs[0..n) into buf; returns bytes read. */
size_t sim_segs_read(const struct vring_seg *segs, unsigned n, size_t off, void *buf, size_t len);

/* Writes up to len bytes of buf starting off bytes into segs[0..n); returns bytes written. */
size_t sim_segs_write(const struct vring_seg *segs, unsigned n, size_t off, const void *buf,
                      size_t len);

/* Copies up to len bytes from src (from byte soff) to dst (from byte doff), segment to
 * segment without a bounce buffer; returns bytes copied. */
size_t sim_segs_copy(const struct vring_seg *dst, unsigned dn, size_t doff,
                     const struct vring_seg *src, unsigned sn, size_t soff, size_t len);
