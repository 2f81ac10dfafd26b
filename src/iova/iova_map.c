/* iova_map.c — a sorted array of disjoint IOVA ranges, kept in canonical form.
 *
 * Entries store [first, last] (inclusive) so that a range ending at 2^64 - 1 needs no
 * 65-bit arithmetic. Adds merge with contiguous neighbours and removals only cut, so
 * the array is always the fewest entries that describe the mapping (except that a merge
 * which would cover all 2^64 IOVAs is skipped: its size would not fit in a uint64_t).
 */
#include "config.h"

#include <inttypes.h>
#include <string.h>

#include "iova/iova_map.h"
#include "util/error.h"

struct iova_entry {
    uint64_t first;
    uint64_t last; /* inclusive */
    uintptr_t addr;
    uint32_t perm;
};

struct iova_map {
    struct iova_entry *e;
    unsigned n;
    unsigned cap;
};

struct iova_map *iova_map_new(void)
{
    return g_new0(struct iova_map, 1);
}

void iova_map_free(struct iova_map *map)
{
    if (!map)
        return;
    g_free(map->e);
    g_free(map);
}

void iova_map_clear(struct iova_map *map)
{
    map->n = 0;
}

/* Index of the first entry whose last >= iova (map->n when there is none). */
static unsigned lower_bound(const struct iova_map *map, uint64_t iova)
{
    unsigned lo = 0, hi = map->n;

    while (lo < hi) {
        unsigned mid = lo + (hi - lo) / 2;

        if (map->e[mid].last < iova)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static void insert_at(struct iova_map *map, unsigned i, const struct iova_entry *ent)
{
    if (map->n == map->cap) {
        map->cap = map->cap ? map->cap * 2 : 16;
        map->e = g_renew(struct iova_entry, map->e, map->cap);
    }
    memmove(&map->e[i + 1], &map->e[i], (map->n - i) * sizeof(*map->e));
    map->e[i] = *ent;
    map->n++;
}

static void erase(struct iova_map *map, unsigned i, unsigned count)
{
    memmove(&map->e[i], &map->e[i + count], (map->n - i - count) * sizeof(*map->e));
    map->n -= count;
}

static bool mergeable(const struct iova_entry *a, const struct iova_entry *b)
{
    uintptr_t a_addr_last = a->addr + (uintptr_t)(a->last - a->first);

    return a->last != UINT64_MAX && a->last + 1 == b->first && a->perm == b->perm &&
           a_addr_last != UINTPTR_MAX && a_addr_last + 1 == b->addr &&
           !(a->first == 0 && b->last == UINT64_MAX);
}

/* Merges entry i into entry i - 1 when they are contiguous; returns the surviving index. */
static unsigned merge_with_prev(struct iova_map *map, unsigned i)
{
    if (i == 0 || !mergeable(&map->e[i - 1], &map->e[i]))
        return i;
    map->e[i - 1].last = map->e[i].last;
    erase(map, i, 1);
    return i - 1;
}

int iova_map_add(struct iova_map *map, uint64_t iova, uint64_t size, void *addr,
                 uint32_t perm, GError **error)
{
    if (size == 0)
        return vdpad_fail(error, EINVAL, "iova map: add at 0x%" PRIx64 " has size 0", iova);
    if (iova > UINT64_MAX - (size - 1))
        return vdpad_fail(error, EINVAL,
                          "iova map: range 0x%" PRIx64 " size 0x%" PRIx64 " wraps past 2^64",
                          iova, size);
    if (size - 1 > UINTPTR_MAX || (uintptr_t)addr > UINTPTR_MAX - (uintptr_t)(size - 1))
        return vdpad_fail(error, EINVAL,
                          "iova map: local range %p size 0x%" PRIx64 " wraps", addr, size);
    if (perm == 0 || (perm & ~IOVA_PERM_RW))
        return vdpad_fail(error, EINVAL, "iova map: bad perm 0x%x for 0x%" PRIx64, perm, iova);

    uint64_t last = iova + (size - 1);
    unsigned i = lower_bound(map, iova);

    if (i < map->n && map->e[i].first <= last)
        return vdpad_fail(error, EEXIST,
                          "iova map: 0x%" PRIx64 "-0x%" PRIx64
                          " overlaps mapped 0x%" PRIx64 "-0x%" PRIx64,
                          iova, last, map->e[i].first, map->e[i].last);

    struct iova_entry ent = { .first = iova, .last = last, .addr = (uintptr_t)addr,
                              .perm = perm };

    insert_at(map, i, &ent);
    i = merge_with_prev(map, i);
    if (i + 1 < map->n)
        merge_with_prev(map, i + 1);
    return 0;
}

int64_t iova_map_remove(struct iova_map *map, uint64_t iova, uint64_t size)
{
    if (size == 0 || iova > UINT64_MAX - (size - 1))
        return -EINVAL;

    uint64_t last = iova + (size - 1);
    uint64_t removed = 0;
    unsigned i = lower_bound(map, iova);

    if (i == map->n || map->e[i].first > last)
        return 0;

    struct iova_entry *head = &map->e[i];

    if (head->first < iova) {
        if (head->last > last) {
            /* the range lies strictly inside one entry: cut it in two */
            struct iova_entry tail = *head;

            tail.first = last + 1;
            tail.addr += (uintptr_t)(tail.first - head->first);
            head->last = iova - 1;
            insert_at(map, i + 1, &tail);
            return size > INT64_MAX ? INT64_MAX : (int64_t)size;
        }
        removed += head->last - iova + 1;
        head->last = iova - 1;
        i++;
    }

    unsigned j = i;

    while (j < map->n && map->e[j].last <= last) {
        removed += map->e[j].last - map->e[j].first + 1;
        j++;
    }
    if (j < map->n && map->e[j].first <= last) {
        struct iova_entry *tail = &map->e[j];

        removed += last - tail->first + 1;
        tail->addr += (uintptr_t)(last + 1 - tail->first);
        tail->first = last + 1;
    }
    erase(map, i, j - i);
    return removed > INT64_MAX ? INT64_MAX : (int64_t)removed;
}

static void to_region(const struct iova_entry *ent, struct iova_region *out)
{
    out->iova = ent->first;
    out->size = ent->last - ent->first + 1;
    out->addr = (void *)ent->addr;
    out->perm = ent->perm;
}

bool iova_map_lookup(const struct iova_map *map, uint64_t iova, struct iova_region *out)
{
    unsigned i = lower_bound(map, iova);

    if (i == map->n || map->e[i].first > iova)
        return false;
    if (out)
        to_region(&map->e[i], out);
    return true;
}

int iova_map_first_seg(const struct iova_map *map, uint64_t iova, uint64_t len, uint32_t perm,
                       struct iova_seg *seg)
{
    if (len == 0)
        return -EINVAL;
    if (iova > UINT64_MAX - (len - 1))
        return -EFAULT;

    unsigned i = lower_bound(map, iova);

    if (i == map->n || map->e[i].first > iova)
        return -EFAULT;

    const struct iova_entry *ent = &map->e[i];
    uint64_t last = iova + (len - 1);

    if ((ent->perm & perm) != perm)
        return -EACCES;
    if (last > ent->last)
        last = ent->last;
    seg->iova = iova;
    seg->addr = (void *)(ent->addr + (uintptr_t)(iova - ent->first));
    seg->len = last - iova + 1;
    return 0;
}

int iova_map_translate(const struct iova_map *map, uint64_t iova, uint64_t len, uint32_t perm,
                       struct iova_seg *segs, unsigned max_segs)
{
    if (len == 0)
        return 0;
    if (iova > UINT64_MAX - (len - 1))
        return -EFAULT;

    uint64_t last = iova + (len - 1);
    uint64_t cur = iova;
    unsigned nseg = 0;

    for (unsigned i = lower_bound(map, iova);; i++) {
        if (i == map->n || map->e[i].first > cur)
            return -EFAULT;

        const struct iova_entry *ent = &map->e[i];

        if ((ent->perm & perm) != perm)
            return -EACCES;
        if (nseg == max_segs)
            return -ENOBUFS;

        uint64_t end = ent->last < last ? ent->last : last;

        segs[nseg].iova = cur;
        segs[nseg].addr = (void *)(ent->addr + (uintptr_t)(cur - ent->first));
        segs[nseg].len = end - cur + 1;
        nseg++;
        if (end == last)
            return (int)nseg;
        cur = end + 1;
    }
}

void *iova_map_ptr(const struct iova_map *map, uint64_t iova, uint64_t len, uint32_t perm)
{
    if (len == 0 || iova > UINT64_MAX - (len - 1))
        return NULL;

    unsigned i = lower_bound(map, iova);

    if (i == map->n)
        return NULL;

    const struct iova_entry *ent = &map->e[i];

    if (ent->first > iova || iova + (len - 1) > ent->last || (ent->perm & perm) != perm)
        return NULL;
    return (void *)(ent->addr + (uintptr_t)(iova - ent->first));
}

unsigned iova_map_count(const struct iova_map *map)
{
    return map->n;
}

bool iova_map_nth(const struct iova_map *map, unsigned n, struct iova_region *out)
{
    if (n >= map->n)
        return false;
    to_region(&map->e[n], out);
    return true;
}

uint64_t iova_map_end(const struct iova_map *map)
{
    if (map->n == 0)
        return 0;

    uint64_t last = map->e[map->n - 1].last;

    return last == UINT64_MAX ? UINT64_MAX : last + 1;
}
