/* Unit tests: the IOVA map (iova/iova_map.h).
 * Local addresses here are never dereferenced by the map, so most tests use made-up ones. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include "iova/iova_map.h"
#include "util/error.h"

#define A(x) ((void *)(uintptr_t)(x))
#define TOP UINT64_MAX

static void assert_region(const struct iova_map *map, unsigned n, uint64_t iova, uint64_t size,
                          uintptr_t addr, uint32_t perm)
{
    struct iova_region r;

    assert_true(iova_map_nth(map, n, &r));
    assert_int_equal(r.iova, iova);
    assert_int_equal(r.size, size);
    assert_int_equal((uintptr_t)r.addr, addr);
    assert_int_equal(r.perm, perm);
}

static void add_ok(struct iova_map *map, uint64_t iova, uint64_t size, uintptr_t addr,
                   uint32_t perm)
{
    g_autoptr(GError) err = NULL;

    assert_int_equal(iova_map_add(map, iova, size, A(addr), perm, &err), 0);
    assert_null(err);
}

static void add_then_lookup_returns_entry(void **state)
{
    g_autoptr(iova_map) map = iova_map_new();
    struct iova_region r;

    assert_int_equal(iova_map_count(map), 0);
    assert_int_equal(iova_map_end(map), 0);
    assert_false(iova_map_lookup(map, 0, &r));
    add_ok(map, 0x10000, 0x4000, 0x7000000, IOVA_PERM_RW);
    add_ok(map, 0x1000, 0x1000, 0x9000000, IOVA_PERM_READ);
    assert_int_equal(iova_map_count(map), 2);
    assert_int_equal(iova_map_end(map), 0x14000);

    assert_true(iova_map_lookup(map, 0x13fff, &r));
    assert_int_equal(r.iova, 0x10000);
    assert_int_equal(r.size, 0x4000);
    assert_ptr_equal(r.addr, A(0x7000000));
    assert_int_equal(r.perm, IOVA_PERM_RW);
    assert_true(iova_map_lookup(map, 0x1000, &r));
    assert_int_equal(r.perm, IOVA_PERM_READ);
    assert_false(iova_map_lookup(map, 0x14000, &r));
    assert_false(iova_map_lookup(map, 0x2000, &r));
    assert_false(iova_map_lookup(map, 0xfff, &r));
    /* entries come back in IOVA order */
    assert_region(map, 0, 0x1000, 0x1000, 0x9000000, IOVA_PERM_READ);
    assert_region(map, 1, 0x10000, 0x4000, 0x7000000, IOVA_PERM_RW);
    assert_false(iova_map_nth(map, 2, &r));

    iova_map_clear(map);
    assert_int_equal(iova_map_count(map), 0);
    assert_false(iova_map_lookup(map, 0x10000, &r));
}

static void add_rejects_size_zero_wrap_and_bad_perm(void **state)
{
    g_autoptr(iova_map) map = iova_map_new();
    g_autoptr(GError) err = NULL;

    assert_int_equal(iova_map_add(map, 0x1000, 0, A(0x1000), IOVA_PERM_RW, &err), -EINVAL);
    assert_int_equal(err->code, EINVAL);
    assert_non_null(strstr(err->message, "size 0"));
    g_clear_error(&err);

    /* iova + size passes 2^64 by one byte */
    assert_int_equal(iova_map_add(map, TOP - 0xfff, 0x1001, A(0x1000), IOVA_PERM_RW, &err),
                     -EINVAL);
    assert_non_null(strstr(err->message, "0xfffffffffffff000"));
    assert_non_null(strstr(err->message, "wraps"));
    g_clear_error(&err);
    assert_int_equal(iova_map_add(map, 2, TOP, A(0x1000), IOVA_PERM_RW, NULL), -EINVAL);

    /* the local range wraps */
    assert_int_equal(iova_map_add(map, 0, 0x2000, A(UINTPTR_MAX - 0xfff), IOVA_PERM_RW, NULL),
                     -EINVAL);

    assert_int_equal(iova_map_add(map, 0x1000, 0x1000, A(0x1000), 0, &err), -EINVAL);
    assert_non_null(strstr(err->message, "perm 0x0"));
    g_clear_error(&err);
    assert_int_equal(iova_map_add(map, 0x1000, 0x1000, A(0x1000), 0x4, NULL), -EINVAL);
    assert_int_equal(iova_map_count(map), 0);
}

static void ranges_reaching_the_last_iova_are_accepted(void **state)
{
    g_autoptr(iova_map) map = iova_map_new();
    struct iova_region r;
    struct iova_seg seg[2];

    /* ends exactly at 2^64 - 1 */
    add_ok(map, TOP - 0xfff, 0x1000, 0x5000, IOVA_PERM_RW);
    assert_true(iova_map_lookup(map, TOP, &r));
    assert_int_equal(r.iova, TOP - 0xfff);
    assert_int_equal(r.size, 0x1000);
    assert_int_equal(iova_map_end(map), UINT64_MAX); /* saturates: 2^64 does not fit */
    assert_int_equal(iova_map_translate(map, TOP, 1, IOVA_PERM_READ, seg, 2), 1);
    assert_ptr_equal(seg[0].addr, A(0x5fff));
    assert_ptr_equal(iova_map_ptr(map, TOP - 0xfff, 0x1000, IOVA_PERM_RW), A(0x5000));
    /* a translation that would run past the top is a fault, not a wrap to iova 0 */
    assert_int_equal(iova_map_translate(map, TOP, 2, IOVA_PERM_READ, seg, 2), -EFAULT);
    assert_null(iova_map_ptr(map, TOP, 2, IOVA_PERM_READ));
    assert_int_equal(iova_map_remove(map, TOP, 1), 1);
    assert_int_equal(iova_map_end(map), TOP);
    assert_int_equal(iova_map_remove(map, TOP - 0xfff, 0x1000), 0xfff);
    assert_int_equal(iova_map_count(map), 0);

    /* the largest size there is: 2^64 - 1 bytes from 0, and from 1 */
    add_ok(map, 0, TOP, 0, IOVA_PERM_READ);
    assert_true(iova_map_lookup(map, TOP - 1, &r));
    assert_int_equal(r.size, TOP);
    assert_false(iova_map_lookup(map, TOP, &r));
    assert_int_equal(iova_map_end(map), TOP);
    assert_int_equal(iova_map_translate(map, 0, TOP, IOVA_PERM_READ, seg, 2), 1);
    assert_int_equal(seg[0].len, TOP);
    /* removing everything reports a byte count that fits in int64 */
    assert_int_equal(iova_map_remove(map, 0, TOP), INT64_MAX);
    assert_int_equal(iova_map_count(map), 0);
    add_ok(map, 1, TOP, 0, IOVA_PERM_WRITE);
    assert_true(iova_map_lookup(map, TOP, &r));
    assert_int_equal(iova_map_remove(map, 0, 2), 1);
    assert_true(iova_map_lookup(map, 2, &r));
    assert_int_equal(r.iova, 2);
    assert_int_equal(r.size, TOP - 1);
    assert_ptr_equal(r.addr, A(1));
}

static void merge_never_covers_the_whole_64bit_space(void **state)
{
    g_autoptr(iova_map) map = iova_map_new();
    const uint64_t half = 1ull << 63;

    add_ok(map, 0, half, 0, IOVA_PERM_RW);
    add_ok(map, half, half, (uintptr_t)half, IOVA_PERM_RW);
    /* contiguous and equal, but one entry of size 2^64 cannot be described */
    assert_int_equal(iova_map_count(map), 2);
    assert_region(map, 0, 0, half, 0, IOVA_PERM_RW);
    assert_region(map, 1, half, half, (uintptr_t)half, IOVA_PERM_RW);
}

static void snapshot(const struct iova_map *map, struct iova_region *out, unsigned *n)
{
    *n = iova_map_count(map);
    for (unsigned i = 0; i < *n; i++)
        assert_true(iova_map_nth(map, i, &out[i]));
}

static void assert_same(const struct iova_region *a, const struct iova_region *b, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        assert_int_equal(a[i].iova, b[i].iova);
        assert_int_equal(a[i].size, b[i].size);
        assert_ptr_equal(a[i].addr, b[i].addr);
        assert_int_equal(a[i].perm, b[i].perm);
    }
}

static void overlapping_add_fails_eexist_and_changes_nothing(void **state)
{
    g_autoptr(iova_map) map = iova_map_new();
    struct iova_region before[8], after[8];
    unsigned nb, na;
    static const struct {
        uint64_t iova, size;
    } overlaps[] = {
        { 0x2000, 0x1000 }, /* same range */
        { 0x2800, 0x100 },  /* inside */
        { 0x1800, 0x1000 }, /* straddles the start */
        { 0x2fff, 0x2 },    /* straddles the end */
        { 0x0, 0x10000 },   /* covers both entries */
        { 0x3000, 0x2001 }, /* starts in the gap, reaches the second entry by one byte */
    };

    add_ok(map, 0x2000, 0x1000, 0x100000, IOVA_PERM_RW);
    add_ok(map, 0x5000, 0x1000, 0x300000, IOVA_PERM_READ);
    snapshot(map, before, &nb);
    for (size_t i = 0; i < G_N_ELEMENTS(overlaps); i++) {
        g_autoptr(GError) err = NULL;

        /* the local address would be contiguous with an entry: must not matter */
        assert_int_equal(iova_map_add(map, overlaps[i].iova, overlaps[i].size, A(0x101000),
                                      IOVA_PERM_RW, &err),
                         -EEXIST);
        assert_int_equal(err->code, EEXIST);
        assert_non_null(strstr(err->message, "overlaps"));
        snapshot(map, after, &na);
        assert_int_equal(na, nb);
        assert_same(after, before, nb);
    }
    /* the gap between them is still free */
    add_ok(map, 0x3000, 0x2000, 0x200000, IOVA_PERM_WRITE);
    assert_int_equal(iova_map_count(map), 3);
}

static void remove_in_the_middle_splits_entry(void **state)
{
    g_autoptr(iova_map) map = iova_map_new();
    struct iova_region r;

    add_ok(map, 0x10000, 0x10000, 0x400000, IOVA_PERM_RW);
    assert_int_equal(iova_map_remove(map, 0x14000, 0x2000), 0x2000);
    assert_int_equal(iova_map_count(map), 2);
    assert_region(map, 0, 0x10000, 0x4000, 0x400000, IOVA_PERM_RW);
    assert_region(map, 1, 0x16000, 0xa000, 0x406000, IOVA_PERM_RW);
    assert_false(iova_map_lookup(map, 0x14000, &r));
    assert_false(iova_map_lookup(map, 0x15fff, &r));
    assert_true(iova_map_lookup(map, 0x13fff, &r));
    assert_true(iova_map_lookup(map, 0x16000, &r));
    /* putting the hole back merges the three again */
    add_ok(map, 0x14000, 0x2000, 0x404000, IOVA_PERM_RW);
    assert_int_equal(iova_map_count(map), 1);
    assert_region(map, 0, 0x10000, 0x10000, 0x400000, IOVA_PERM_RW);
}

static void remove_of_head_or_tail_trims_entry(void **state)
{
    g_autoptr(iova_map) map = iova_map_new();

    add_ok(map, 0x10000, 0x10000, 0x400000, IOVA_PERM_READ);
    /* head: starts before the entry, ends inside */
    assert_int_equal(iova_map_remove(map, 0xf000, 0x3000), 0x2000);
    assert_region(map, 0, 0x12000, 0xe000, 0x402000, IOVA_PERM_READ);
    /* tail: starts inside, ends after */
    assert_int_equal(iova_map_remove(map, 0x1f000, 0x5000), 0x1000);
    assert_region(map, 0, 0x12000, 0xd000, 0x402000, IOVA_PERM_READ);
    /* exact head and tail at entry edges */
    assert_int_equal(iova_map_remove(map, 0x12000, 0x1000), 0x1000);
    assert_int_equal(iova_map_remove(map, 0x1e000, 0x1000), 0x1000);
    assert_int_equal(iova_map_count(map), 1);
    assert_region(map, 0, 0x13000, 0xb000, 0x403000, IOVA_PERM_READ);
}

static void remove_spanning_several_entries_cuts_edges_drops_inner(void **state)
{
    g_autoptr(iova_map) map = iova_map_new();

    add_ok(map, 0x1000, 0x1000, 0x100000, IOVA_PERM_RW);
    add_ok(map, 0x3000, 0x1000, 0x200000, IOVA_PERM_RW);
    add_ok(map, 0x4000, 0x1000, 0x900000, IOVA_PERM_RW); /* adjacent, not contiguous */
    add_ok(map, 0x6000, 0x2000, 0x300000, IOVA_PERM_READ);
    add_ok(map, 0x9000, 0x1000, 0x400000, IOVA_PERM_RW);
    assert_int_equal(iova_map_count(map), 5);
    /* from the middle of the first to the middle of the fourth; holes count nothing */
    assert_int_equal(iova_map_remove(map, 0x1800, 0x5000), 0x800 + 0x1000 + 0x1000 + 0x800);
    assert_int_equal(iova_map_count(map), 3);
    assert_region(map, 0, 0x1000, 0x800, 0x100000, IOVA_PERM_RW);
    assert_region(map, 1, 0x6800, 0x1800, 0x300800, IOVA_PERM_READ);
    assert_region(map, 2, 0x9000, 0x1000, 0x400000, IOVA_PERM_RW);
    /* a range over holes only */
    assert_int_equal(iova_map_remove(map, 0x2000, 0x4000), 0);
    assert_int_equal(iova_map_remove(map, 0xa000, 0x1000), 0);
    assert_int_equal(iova_map_count(map), 3);
    /* everything */
    assert_int_equal(iova_map_remove(map, 0, TOP), 0x800 + 0x1800 + 0x1000);
    assert_int_equal(iova_map_count(map), 0);
}

static void remove_rejects_size_zero_and_wrap(void **state)
{
    g_autoptr(iova_map) map = iova_map_new();

    add_ok(map, 0x1000, 0x1000, 0x100000, IOVA_PERM_RW);
    assert_int_equal(iova_map_remove(map, 0x1000, 0), -EINVAL);
    assert_int_equal(iova_map_remove(map, TOP, 2), -EINVAL);
    assert_int_equal(iova_map_remove(map, 2, TOP), -EINVAL);
    assert_int_equal(iova_map_count(map), 1);
}

static void adjacent_contiguous_entries_merge(void **state)
{
    g_autoptr(iova_map) map = iova_map_new();

    add_ok(map, 0x2000, 0x1000, 0x102000, IOVA_PERM_RW);
    add_ok(map, 0x3000, 0x1000, 0x103000, IOVA_PERM_RW); /* after */
    assert_int_equal(iova_map_count(map), 1);
    add_ok(map, 0x1000, 0x1000, 0x101000, IOVA_PERM_RW); /* before */
    assert_int_equal(iova_map_count(map), 1);
    assert_region(map, 0, 0x1000, 0x3000, 0x101000, IOVA_PERM_RW);
    add_ok(map, 0x5000, 0x1000, 0x105000, IOVA_PERM_RW);
    assert_int_equal(iova_map_count(map), 2);
    add_ok(map, 0x4000, 0x1000, 0x104000, IOVA_PERM_RW); /* fills the gap: three become one */
    assert_int_equal(iova_map_count(map), 1);
    assert_region(map, 0, 0x1000, 0x5000, 0x101000, IOVA_PERM_RW);
}

static void adjacent_entries_stay_apart_when_addr_or_perm_differs(void **state)
{
    g_autoptr(iova_map) map = iova_map_new();
    struct iova_seg seg[4];

    add_ok(map, 0x1000, 0x1000, 0x101000, IOVA_PERM_RW);
    add_ok(map, 0x2000, 0x1000, 0x202000, IOVA_PERM_RW);  /* addr not contiguous */
    add_ok(map, 0x3000, 0x1000, 0x203000, IOVA_PERM_READ); /* contiguous, perm differs */
    add_ok(map, 0x4000, 0x1000, 0x204000, IOVA_PERM_READ); /* merges with the previous */
    add_ok(map, 0x5000, 0x1000, 0x204000, IOVA_PERM_READ); /* addr goes backwards */
    assert_int_equal(iova_map_count(map), 4);
    assert_region(map, 0, 0x1000, 0x1000, 0x101000, IOVA_PERM_RW);
    assert_region(map, 1, 0x2000, 0x1000, 0x202000, IOVA_PERM_RW);
    assert_region(map, 2, 0x3000, 0x2000, 0x203000, IOVA_PERM_READ);
    assert_region(map, 3, 0x5000, 0x1000, 0x204000, IOVA_PERM_READ);
    assert_int_equal(iova_map_translate(map, 0x1000, 0x5000, IOVA_PERM_READ, seg, 4), 4);
}

static void translate_across_boundaries_yields_one_segment_per_entry(void **state)
{
    g_autoptr(iova_map) map = iova_map_new();
    struct iova_seg seg[4];

    add_ok(map, 0x1000, 0x1000, 0xa000, IOVA_PERM_RW);
    add_ok(map, 0x2000, 0x1000, 0xc000, IOVA_PERM_RW);
    add_ok(map, 0x3000, 0x1000, 0xe000, IOVA_PERM_READ);
    memset(seg, 0xee, sizeof(seg));
    assert_int_equal(iova_map_translate(map, 0x1800, 0x2000, IOVA_PERM_READ, seg, 4), 3);
    assert_int_equal(seg[0].iova, 0x1800);
    assert_ptr_equal(seg[0].addr, A(0xa800));
    assert_int_equal(seg[0].len, 0x800);
    assert_int_equal(seg[1].iova, 0x2000);
    assert_ptr_equal(seg[1].addr, A(0xc000));
    assert_int_equal(seg[1].len, 0x1000);
    assert_int_equal(seg[2].iova, 0x3000);
    assert_ptr_equal(seg[2].addr, A(0xe000));
    assert_int_equal(seg[2].len, 0x800);
    /* exactly as many segments as allowed is fine */
    assert_int_equal(iova_map_translate(map, 0x1800, 0x2000, IOVA_PERM_READ, seg, 3), 3);
    /* within one entry */
    assert_int_equal(iova_map_translate(map, 0x2010, 0x10, IOVA_PERM_RW, seg, 1), 1);
    assert_ptr_equal(seg[0].addr, A(0xc010));
    assert_int_equal(seg[0].len, 0x10);
    /* len 0: nothing, not even a check */
    assert_int_equal(iova_map_translate(map, 0x99999, 0, IOVA_PERM_RW, seg, 0), 0);
}

static void translate_fails_on_hole_perm_capacity_and_wrap(void **state)
{
    g_autoptr(iova_map) map = iova_map_new();
    struct iova_seg seg[4];

    add_ok(map, 0x1000, 0x1000, 0xa000, IOVA_PERM_RW);
    add_ok(map, 0x3000, 0x1000, 0xc000, IOVA_PERM_READ);
    add_ok(map, 0x4000, 0x1000, 0xf000, IOVA_PERM_WRITE);
    /* hole at 0x2000 */
    assert_int_equal(iova_map_translate(map, 0x1f00, 0x200, IOVA_PERM_READ, seg, 4), -EFAULT);
    assert_int_equal(iova_map_translate(map, 0x2000, 1, IOVA_PERM_READ, seg, 4), -EFAULT);
    assert_int_equal(iova_map_translate(map, 0x4fff, 2, IOVA_PERM_WRITE, seg, 4), -EFAULT);
    assert_int_equal(iova_map_translate(map, 0, 1, 0, seg, 4), -EFAULT);
    /* perm: write into the read-only entry, read from the write-only one */
    assert_int_equal(iova_map_translate(map, 0x3000, 0x10, IOVA_PERM_WRITE, seg, 4), -EACCES);
    assert_int_equal(iova_map_translate(map, 0x3ff0, 0x20, IOVA_PERM_READ, seg, 4), -EACCES);
    assert_int_equal(iova_map_translate(map, 0x3ff0, 0x20, IOVA_PERM_RW, seg, 4), -EACCES);
    assert_int_equal(iova_map_translate(map, 0x3ff0, 0x20, 0, seg, 4), 2);
    /* capacity */
    assert_int_equal(iova_map_translate(map, 0x3ff0, 0x20, 0, seg, 1), -ENOBUFS);
    assert_int_equal(iova_map_translate(map, 0x3000, 1, 0, seg, 0), -ENOBUFS);
    /* wrap */
    assert_int_equal(iova_map_translate(map, TOP, 2, 0, seg, 4), -EFAULT);
    assert_int_equal(iova_map_translate(map, 0x1000, TOP, 0, seg, 4), -EFAULT);
}

static void first_seg_returns_leading_piece(void **state)
{
    g_autoptr(iova_map) map = iova_map_new();
    struct iova_seg seg;

    add_ok(map, 0x1000, 0x1000, 0xa000, IOVA_PERM_READ);
    assert_int_equal(iova_map_first_seg(map, 0x1f00, 0x400, IOVA_PERM_READ, &seg), 0);
    assert_int_equal(seg.iova, 0x1f00);
    assert_ptr_equal(seg.addr, A(0xaf00));
    assert_int_equal(seg.len, 0x100);
    assert_int_equal(iova_map_first_seg(map, 0x1100, 0x10, IOVA_PERM_READ, &seg), 0);
    assert_int_equal(seg.len, 0x10);
    assert_int_equal(iova_map_first_seg(map, 0x2000, 1, IOVA_PERM_READ, &seg), -EFAULT);
    assert_int_equal(iova_map_first_seg(map, 0x1000, 1, IOVA_PERM_WRITE, &seg), -EACCES);
    assert_int_equal(iova_map_first_seg(map, 0x1000, 0, IOVA_PERM_READ, &seg), -EINVAL);
    assert_int_equal(iova_map_first_seg(map, TOP, 2, 0, &seg), -EFAULT);
}

static void ptr_requires_one_entry_with_perm(void **state)
{
    g_autoptr(iova_map) map = iova_map_new();

    add_ok(map, 0x1000, 0x1000, 0xa000, IOVA_PERM_RW);
    add_ok(map, 0x2000, 0x1000, 0xb000, IOVA_PERM_RW); /* merges: contiguous */
    add_ok(map, 0x3000, 0x1000, 0xf000, IOVA_PERM_RW); /* adjacent, not contiguous */
    add_ok(map, 0x5000, 0x1000, 0x20000, IOVA_PERM_WRITE);
    assert_ptr_equal(iova_map_ptr(map, 0x1800, 0x1000, IOVA_PERM_READ), A(0xa800));
    assert_ptr_equal(iova_map_ptr(map, 0x1000, 0x2000, IOVA_PERM_RW), A(0xa000));
    assert_null(iova_map_ptr(map, 0x2800, 0x1000, IOVA_PERM_READ)); /* spans two entries */
    assert_ptr_equal(iova_map_ptr(map, 0x3000, 0x1000, IOVA_PERM_READ), A(0xf000));
    assert_null(iova_map_ptr(map, 0x3800, 0x1000, IOVA_PERM_READ)); /* runs into a hole */
    assert_null(iova_map_ptr(map, 0x4000, 0x10, IOVA_PERM_READ));   /* hole */
    assert_null(iova_map_ptr(map, 0x5000, 0x10, IOVA_PERM_READ));   /* write-only */
    assert_ptr_equal(iova_map_ptr(map, 0x5000, 0x10, IOVA_PERM_WRITE), A(0x20000));
    assert_null(iova_map_ptr(map, 0x1000, 0, IOVA_PERM_READ));
}

/* ------------------------------------------------------------ randomized vs. a byte model */

#define SPACE 256u
#define POOL 0x40000000u

struct model {
    uint64_t base;
    bool mapped[SPACE];
    uintptr_t addr[SPACE];
    uint32_t perm[SPACE];
};

static uint64_t rng_state;

static uint32_t rnd(uint32_t n)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state % n);
}

/* The canonical entries the model describes: maximal runs of contiguous, equal bytes. */
static unsigned model_entries(const struct model *m, struct iova_region *out)
{
    unsigned n = 0;

    for (unsigned b = 0; b < SPACE; b++) {
        if (!m->mapped[b])
            continue;
        if (n && out[n - 1].iova + out[n - 1].size == m->base + b &&
            (uintptr_t)out[n - 1].addr + out[n - 1].size == m->addr[b] &&
            out[n - 1].perm == m->perm[b]) {
            out[n - 1].size++;
            continue;
        }
        out[n++] = (struct iova_region){ m->base + b, 1, (void *)m->addr[b], m->perm[b] };
    }
    return n;
}

static void check_against_model(const struct iova_map *map, const struct model *m)
{
    struct iova_region want[SPACE], got;
    unsigned n = model_entries(m, want);

    assert_int_equal(iova_map_count(map), n);
    for (unsigned i = 0; i < n; i++) {
        assert_true(iova_map_nth(map, i, &got));
        assert_int_equal(got.iova, want[i].iova);
        assert_int_equal(got.size, want[i].size);
        assert_ptr_equal(got.addr, want[i].addr);
        assert_int_equal(got.perm, want[i].perm);
    }

    /* a few random translations, predicted from the entries */
    for (int q = 0; q < 4; q++) {
        unsigned off = rnd(SPACE), len = 1 + rnd(SPACE - off);
        uint32_t perm = rnd(4);
        unsigned max = rnd(4);
        struct iova_seg seg[4];
        int err = 0;
        unsigned segs = 0;
        bool over_capacity = false;

        /* walk in IOVA order like the map: hole, then perm, then capacity */
        for (unsigned b = off; b < off + len; b++) {
            if (!m->mapped[b]) {
                err = -EFAULT;
                break;
            }
            if ((m->perm[b] & perm) != perm) {
                err = -EACCES;
                break;
            }
            bool starts = b == off || !(m->mapped[b - 1] && m->addr[b - 1] + 1 == m->addr[b] &&
                                        m->perm[b - 1] == m->perm[b]);
            if (starts && ++segs > max)
                over_capacity = true;
        }
        int expect = over_capacity ? -ENOBUFS : err ? err : (int)segs;
        int r = iova_map_translate(map, m->base + off, len, perm, seg, max);

        assert_int_equal(r, expect);
        if (r > 0) {
            uint64_t at = off;

            for (int s = 0; s < r; s++) {
                assert_int_equal(seg[s].iova, m->base + at);
                assert_ptr_equal(seg[s].addr, (void *)m->addr[at]);
                at += seg[s].len;
            }
            assert_int_equal(at, off + len);
        }
        void *p = iova_map_ptr(map, m->base + off, len, perm);

        if (err == 0 && segs == 1)
            assert_ptr_equal(p, (void *)m->addr[off]);
        else
            assert_null(p);

        struct iova_region reg;
        bool hit = iova_map_lookup(map, m->base + off, &reg);

        assert_int_equal(hit, m->mapped[off]);
        if (hit)
            assert_true(reg.iova <= m->base + off && m->base + off - reg.iova < reg.size);
    }
}

static void random_ops_match_byte_model(uint64_t base, uint64_t seed)
{
    g_autoptr(iova_map) map = iova_map_new();
    struct model *m = g_new0(struct model, 1);
    unsigned adds = 0, eexist = 0, removes = 0;

    m->base = base;
    rng_state = seed;
    for (int op = 0; op < 20000; op++) {
        unsigned off = rnd(SPACE), len = 1 + rnd(rnd(2) ? 16 : SPACE - off);

        if (off + len > SPACE)
            len = SPACE - off;
        switch (rnd(10)) {
        case 0 ... 5: {
            /* mostly identity-like local addresses, so merges happen often */
            uintptr_t addr = rnd(3) ? POOL + off : POOL + 0x10000 + rnd(0x1000);
            uint32_t perm = rnd(4) ? IOVA_PERM_RW : 1 + rnd(3);
            bool overlap = false;

            for (unsigned b = off; b < off + len; b++)
                overlap |= m->mapped[b];
            int r = iova_map_add(map, base + off, len, (void *)addr, perm, NULL);

            assert_int_equal(r, overlap ? -EEXIST : 0);
            if (!overlap) {
                for (unsigned b = off; b < off + len; b++) {
                    m->mapped[b] = true;
                    m->addr[b] = addr + (b - off);
                    m->perm[b] = perm;
                }
                adds++;
            } else {
                eexist++;
            }
            break;
        }
        case 6 ... 8: {
            int64_t count = 0;

            for (unsigned b = off; b < off + len; b++) {
                count += m->mapped[b];
                m->mapped[b] = false;
            }
            assert_int_equal(iova_map_remove(map, base + off, len), count);
            removes++;
            break;
        }
        default:
            if (rnd(50) == 0) {
                iova_map_clear(map);
                memset(m->mapped, 0, sizeof(m->mapped));
            }
            break;
        }
        check_against_model(map, m);
    }
    /* the run exercised every path, not just one */
    assert_true(adds > 1000 && eexist > 1000 && removes > 1000);
    g_free(m);
}

static void random_ops_match_byte_model_low(void **state)
{
    random_ops_match_byte_model(0x1000, 0x9e3779b97f4a7c15ull);
}

static void random_ops_match_byte_model_at_top_of_space(void **state)
{
    random_ops_match_byte_model(UINT64_MAX - SPACE + 1, 0x2545f4914f6cdd1dull);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(add_then_lookup_returns_entry),
        cmocka_unit_test(add_rejects_size_zero_wrap_and_bad_perm),
        cmocka_unit_test(ranges_reaching_the_last_iova_are_accepted),
        cmocka_unit_test(merge_never_covers_the_whole_64bit_space),
        cmocka_unit_test(overlapping_add_fails_eexist_and_changes_nothing),
        cmocka_unit_test(remove_in_the_middle_splits_entry),
        cmocka_unit_test(remove_of_head_or_tail_trims_entry),
        cmocka_unit_test(remove_spanning_several_entries_cuts_edges_drops_inner),
        cmocka_unit_test(remove_rejects_size_zero_and_wrap),
        cmocka_unit_test(adjacent_contiguous_entries_merge),
        cmocka_unit_test(adjacent_entries_stay_apart_when_addr_or_perm_differs),
        cmocka_unit_test(translate_across_boundaries_yields_one_segment_per_entry),
        cmocka_unit_test(translate_fails_on_hole_perm_capacity_and_wrap),
        cmocka_unit_test(first_seg_returns_leading_piece),
        cmocka_unit_test(ptr_requires_one_entry_with_perm),
        cmocka_unit_test(random_ops_match_byte_model_low),
        cmocka_unit_test(random_ops_match_byte_model_at_top_of_space),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
