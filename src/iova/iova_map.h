/* iova_map.h — the guest memory map: IOVA ranges to local addresses, with permissions.
 *
 * It is built from IOTLB updates and invalidations with the semantics of the kernel's
 * vhost-vdpa IOTLB:
 *   - an update that overlaps a mapped range fails with -EEXIST and changes nothing;
 *   - an invalidation removes exactly the range it names: entries that lie partly inside
 *     are split, and the parts outside stay mapped; unmapped parts are ignored;
 *   - adjacent entries with contiguous local addresses and equal permissions are merged.
 * Lookups are O(log n) (a sorted array, binary search). A translation that crosses an
 * entry boundary yields one segment per entry.
 * Ranges may end at the last IOVA (iova + size == 2^64); only a range that would pass it is
 * refused. Two entries are not merged if the result would cover all 2^64 IOVAs (its size
 * would not fit in iova_region.size).
 *
 * Threads: the map has no lock. Its owner serialises updates against every reader (the
 * device's worker, the relay) with a lock of its own; see the owner's header.
 * Ownership: the map never maps or unmaps memory; the local addresses belong to the caller.
 */
#pragma once

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

/* Permissions, the values of VHOST_ACCESS_RO/WO/RW. */
#define IOVA_PERM_READ 0x1u  /* device may read */
#define IOVA_PERM_WRITE 0x2u /* device may write */
#define IOVA_PERM_RW (IOVA_PERM_READ | IOVA_PERM_WRITE)

struct iova_map;
typedef struct iova_map iova_map; /* for g_autoptr */

/* One mapped range. */
struct iova_region {
    uint64_t iova;
    uint64_t size;
    void *addr;
    uint32_t perm;
};

/* One translated piece of a range. */
struct iova_seg {
    uint64_t iova;
    void *addr;
    uint64_t len;
};

struct iova_map *iova_map_new(void);
void iova_map_free(struct iova_map *map);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(iova_map, iova_map_free)

/* Maps [iova, iova + size) to [addr, addr + size). Returns 0, -EINVAL (size 0, IOVA range
 * or local range wraps, perm 0 or unknown bits) or -EEXIST (overlap; the map is unchanged),
 * with a message in *error. */
int iova_map_add(struct iova_map *map, uint64_t iova, uint64_t size, void *addr,
                 uint32_t perm, GError **error);

/* Unmaps [iova, iova + size), splitting entries at its edges. Returns the number of bytes
 * that were mapped inside the range (saturated at INT64_MAX), or -EINVAL (size 0, wraps). */
int64_t iova_map_remove(struct iova_map *map, uint64_t iova, uint64_t size);

/* Removes everything. */
void iova_map_clear(struct iova_map *map);

/* The entry containing iova, or false. */
bool iova_map_lookup(const struct iova_map *map, uint64_t iova, struct iova_region *out);

/* Translates [iova, iova + len) needing perm into at most max_segs segments.
 * Returns the number of segments, or -EFAULT (some byte unmapped, or the range wraps),
 * -EACCES (an entry lacks perm) or -ENOBUFS (more than max_segs segments needed).
 * The range is walked in IOVA order and the first problem met is the one returned.
 * len 0 yields 0 segments. */
int iova_map_translate(const struct iova_map *map, uint64_t iova, uint64_t len, uint32_t perm,
                       struct iova_seg *segs, unsigned max_segs);

/* The leading piece of [iova, iova + len) that lies in one entry: fills *seg (seg->len <=
 * len) and returns 0, or -EFAULT (iova unmapped, or the range wraps), -EACCES (no perm),
 * -EINVAL (len 0). For callers that build their own segment lists (the ring walker). */
int iova_map_first_seg(const struct iova_map *map, uint64_t iova, uint64_t len, uint32_t perm,
                       struct iova_seg *seg);

/* The local address of [iova, iova + len) when it lies inside one entry with perm, else
 * NULL (also for len 0). For rings, headers and indirect tables, which must be contiguous. */
void *iova_map_ptr(const struct iova_map *map, uint64_t iova, uint64_t len, uint32_t perm);

/* Entries, in IOVA order; the highest mapped IOVA + 1 (0 when empty; UINT64_MAX when the
 * last IOVA itself is mapped, as 2^64 does not fit). */
unsigned iova_map_count(const struct iova_map *map);
bool iova_map_nth(const struct iova_map *map, unsigned n, struct iova_region *out);
uint64_t iova_map_end(const struct iova_map *map);
