/* Unit tests: the split ring (virtio/split_ring.h), driver and device side against each
 * other on the same memory, the device side against hostile rings, and both sides in two
 * threads. */
#include "config.h"

#include <endian.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <cmocka.h>

#include "dirty_log/dirty_log.h"
#include "iova/iova_map.h"
#include "virtio/split_ring.h"

/* Guest memory as the tests map it:
 *   MEM_IOVA  .. +MEM_SIZE    RW, buffers and indirect tables
 *   MEM2_IOVA .. +MEM2_SIZE   RW, right after MEM in IOVA but elsewhere locally
 *   RO_IOVA   .. +PAGE        read-only
 *   WO_IOVA   .. +PAGE        write-only
 *   HOLE_IOVA                 unmapped
 *   BIG_IOVA  .. +BIG_SIZE    RW at a made-up local address, never touched: lengths only */
#define MEM_IOVA 0x100000ull
#define MEM_SIZE 0x100000ull
#define MEM2_IOVA (MEM_IOVA + MEM_SIZE)
#define MEM2_SIZE 0x1000ull
#define RO_IOVA 0x400000ull
#define WO_IOVA 0x500000ull
#define HOLE_IOVA 0x300000ull
#define PAGE 0x1000ull
#define BIG_IOVA 0x10000000000ull
#define BIG_SIZE 0x400000000ull
#define USED_IOVA 0x7000000ull

/* ------------------------------------------------------------------ dirty log spy
 * The ring library's calls to dirty_log_mark() are routed here (-Wl,--wrap, see
 * tests/unit/virtio.mk): each mark is recorded with the used->idx value that was in ring
 * memory at that moment, so the tests can check the order of marks and stores, and is then
 * made in the real log. */
struct mark {
    uint64_t gpa, len;
    uint16_t used_idx_in_memory;
};

static struct {
    const struct vring_used *used; /* NULL: not recording */
    unsigned n;
    struct mark m[64];
} spy;

void __real_dirty_log_mark(struct dirty_log *log, uint64_t gpa, uint64_t len);
void __wrap_dirty_log_mark(struct dirty_log *log, uint64_t gpa, uint64_t len);

void __wrap_dirty_log_mark(struct dirty_log *log, uint64_t gpa, uint64_t len)
{
    if (spy.used && spy.n < G_N_ELEMENTS(spy.m))
        spy.m[spy.n++] = (struct mark){ gpa, len, le16toh(spy.used->idx) };
    __real_dirty_log_mark(log, gpa, len);
}

static void spy_start(const struct vring_used *used)
{
    spy.used = used;
    spy.n = 0;
}

static bool page_marked(const uint64_t *words, uint64_t gpa)
{
    uint64_t page = gpa >> DIRTY_LOG_PAGE_SHIFT;

    return words[page / 64] >> (page % 64) & 1;
}

/* ------------------------------------------------------------------ fixture */

struct fix {
    unsigned num;
    void *ring_mem;
    uint8_t *mem, *mem2, *ro, *wo;
    struct iova_map *map;
    struct vring_dev dev;
    struct vring_drv drv;
    struct vring_elem *elem;
};

static struct vring_layout make_layout(void *mem, unsigned num)
{
    size_t avail_off = vring_desc_bytes(num);
    size_t used_off = (avail_off + vring_avail_bytes(num) + 3) & ~(size_t)3;

    return (struct vring_layout){ .num = num,
                                  .desc = mem,
                                  .avail = (void *)((uint8_t *)mem + avail_off),
                                  .used = (void *)((uint8_t *)mem + used_off) };
}

static struct fix *fix_new(unsigned num, uint16_t base, bool event_idx, bool indirect)
{
    struct fix *f = g_new0(struct fix, 1);
    size_t ring_bytes = vring_desc_bytes(num) + vring_avail_bytes(num) + 4 +
                        vring_used_bytes(num);

    f->num = num;
    assert_int_equal(posix_memalign(&f->ring_mem, 4096, ring_bytes), 0);
    memset(f->ring_mem, 0, ring_bytes);
    f->mem = g_malloc0(MEM_SIZE);
    f->mem2 = g_malloc0(MEM2_SIZE);
    f->ro = g_malloc0(PAGE);
    f->wo = g_malloc0(PAGE);
    f->map = iova_map_new();
    assert_int_equal(iova_map_add(f->map, MEM_IOVA, MEM_SIZE, f->mem, IOVA_PERM_RW, NULL), 0);
    assert_int_equal(iova_map_add(f->map, MEM2_IOVA, MEM2_SIZE, f->mem2, IOVA_PERM_RW, NULL),
                     0);
    assert_int_equal(iova_map_add(f->map, RO_IOVA, PAGE, f->ro, IOVA_PERM_READ, NULL), 0);
    assert_int_equal(iova_map_add(f->map, WO_IOVA, PAGE, f->wo, IOVA_PERM_WRITE, NULL), 0);
    assert_int_equal(iova_map_add(f->map, BIG_IOVA, BIG_SIZE, (void *)(uintptr_t)0x1000000000ull,
                                  IOVA_PERM_RW, NULL),
                     0);
    assert_int_equal(iova_map_count(f->map), 5); /* MEM and MEM2 are not contiguous */

    f->drv.ring = make_layout(f->ring_mem, num);
    f->drv.event_idx = event_idx;
    f->drv.indirect = indirect;
    assert_int_equal(vring_drv_init(&f->drv, base), 0);

    f->dev.ring = make_layout(f->ring_mem, num);
    f->dev.mem = f->map;
    f->dev.event_idx = event_idx;
    f->dev.indirect = indirect;
    f->dev.used_iova = USED_IOVA;
    vring_dev_start(&f->dev, base);
    assert_false(f->dev.broken);
    f->elem = vring_elem_new(0);
    return f;
}

static void fix_free(struct fix *f)
{
    vring_elem_free(f->elem);
    vring_drv_destroy(&f->drv);
    iova_map_free(f->map);
    g_free(f->mem);
    g_free(f->mem2);
    g_free(f->ro);
    g_free(f->wo);
    free(f->ring_mem);
    g_free(f);
}

static uint64_t iova_of(const struct fix *f, const void *p)
{
    return MEM_IOVA + (uint64_t)((const uint8_t *)p - f->mem);
}

/* Raw ring writes, for hostile rings the driver side would never produce. */
static void raw_desc(struct fix *f, unsigned i, uint64_t addr, uint32_t len, uint16_t flags,
                     uint16_t next)
{
    struct vring_desc *d = &f->dev.ring.desc[i];

    d->addr = htole64(addr);
    d->len = htole32(len);
    d->flags = htole16(flags);
    d->next = htole16(next);
}

static void raw_table_desc(struct vring_desc *d, uint64_t addr, uint32_t len, uint16_t flags,
                           uint16_t next)
{
    d->addr = htole64(addr);
    d->len = htole32(len);
    d->flags = htole16(flags);
    d->next = htole16(next);
}

static void raw_avail(struct fix *f, uint16_t head)
{
    struct vring_avail *a = f->dev.ring.avail;
    uint16_t idx = le16toh(a->idx);

    a->ring[idx & (f->num - 1)] = htole16(head);
    a->idx = htole16((uint16_t)(idx + 1));
}

static uint16_t *used_event_of(struct fix *f)
{
    return &f->dev.ring.avail->ring[f->num];
}

static uint16_t *avail_event_of(struct fix *f)
{
    return (uint16_t *)&f->dev.ring.used->ring[f->num];
}

/* Pop must fail with err, break the queue, name every needle, and keep failing. */
static void expect_broken(struct fix *f, int err, const char *needle1, const char *needle2)
{
    int r = vring_dev_pop(&f->dev, f->elem);

    if (r != err || !strstr(f->dev.error, needle1) || (needle2 && !strstr(f->dev.error, needle2)))
        print_error("pop returned %d, error \"%s\"\n", r, f->dev.error);
    assert_int_equal(r, err);
    assert_true(f->dev.broken);
    assert_non_null(strstr(f->dev.error, needle1));
    if (needle2)
        assert_non_null(strstr(f->dev.error, needle2));
    assert_int_equal(vring_dev_pop(&f->dev, f->elem), err);
    assert_int_equal(vring_dev_avail_count(&f->dev), 0);
    /* a broken queue writes nothing more */
    uint16_t used_idx = le16toh(f->dev.ring.used->idx);

    vring_dev_push(&f->dev, 0, 0);
    assert_int_equal(le16toh(f->dev.ring.used->idx), used_idx);
    assert_false(vring_dev_need_notify(&f->dev));
}

/* ------------------------------------------------------------------ layout */

static void layout_sizes_follow_virtio(void **state)
{
    assert_int_equal(vring_desc_bytes(256), 4096);
    assert_int_equal(vring_avail_bytes(256), 4 + 512 + 2);
    assert_int_equal(vring_used_bytes(256), 4 + 2048 + 2);
    assert_int_equal(vring_used_bytes(1), 4 + 8 + 2);
    assert_true(vring_num_valid(1));
    assert_true(vring_num_valid(256));
    assert_true(vring_num_valid(32768));
    assert_false(vring_num_valid(0));
    assert_false(vring_num_valid(3));
    assert_false(vring_num_valid(65536));
}

static void bad_layout_breaks_queue_at_start(void **state)
{
    struct fix *f = fix_new(8, 0, false, false);
    struct vring_drv drv = { .ring = f->drv.ring };

    f->dev.ring.num = 12;
    vring_dev_start(&f->dev, 0);
    expect_broken(f, -EINVAL, "bad ring layout", "num 12");
    f->dev.ring.num = 8;
    f->dev.ring.used = (void *)((uint8_t *)f->dev.ring.used + 2);
    vring_dev_start(&f->dev, 0);
    assert_true(f->dev.broken);
    f->dev.ring.used = f->drv.ring.used;
    vring_dev_start(&f->dev, 0); /* restarting with a good layout clears it */
    assert_false(f->dev.broken);
    assert_int_equal(vring_dev_pop(&f->dev, f->elem), 0);

    drv.ring.num = 6;
    assert_int_equal(vring_drv_init(&drv, 0), -EINVAL);
    fix_free(f);
}

/* ------------------------------------------------------------------ round trips */

static void round_trip_moves_data_both_ways(void **state)
{
    struct fix *f = fix_new(256, 0, false, false);
    uint8_t *out1 = f->mem + 0x1000, *out2 = f->mem + 0x2000, *in = f->mem + 0x3000;
    struct vring_buf bufs[3] = {
        { iova_of(f, out1), 5 }, { iova_of(f, out2), 6 }, { iova_of(f, in), 64 } };
    int token;
    uint32_t len = 0;

    memcpy(out1, "hello", 5);
    memcpy(out2, " world", 6);
    assert_int_equal(vring_drv_add(&f->drv, bufs, 2, 1, &token), 0);
    assert_int_equal(f->drv.num_free, 253);
    assert_int_equal(vring_drv_in_flight(&f->drv), 1);
    /* not visible before publish */
    assert_int_equal(vring_dev_avail_count(&f->dev), 0);
    assert_int_equal(vring_dev_pop(&f->dev, f->elem), 0);
    assert_true(vring_drv_publish(&f->drv));
    assert_int_equal(vring_dev_avail_count(&f->dev), 1);

    assert_int_equal(vring_dev_pop(&f->dev, f->elem), 1);
    struct vring_elem *e = f->elem;

    assert_int_equal(e->n_out, 2);
    assert_int_equal(e->n_in, 1);
    assert_int_equal(e->out_bytes, 11);
    assert_int_equal(e->in_bytes, 64);
    assert_ptr_equal(e->seg[0].addr, out1);
    assert_int_equal(e->seg[0].iova, bufs[0].iova);
    assert_int_equal(e->seg[0].len, 5);
    assert_ptr_equal(e->seg[1].addr, out2);
    assert_ptr_equal(e->seg[2].addr, in);
    assert_int_equal(e->seg[2].len, 64);

    /* the device answers with the request reversed */
    char req[11];

    memcpy(req, e->seg[0].addr, 5);
    memcpy(req + 5, e->seg[1].addr, 6);
    for (int i = 0; i < 11; i++)
        ((uint8_t *)e->seg[2].addr)[i] = (uint8_t)req[10 - i];
    assert_int_equal(vring_drv_used_count(&f->drv), 0);
    vring_dev_push(&f->dev, e->head, 11);
    assert_true(vring_dev_need_notify(&f->dev));
    assert_int_equal(vring_dev_pop(&f->dev, f->elem), 0);

    assert_int_equal(vring_drv_used_count(&f->drv), 1);
    assert_ptr_equal(vring_drv_get_used(&f->drv, &len), &token);
    assert_int_equal(len, 11);
    assert_memory_equal(in, "dlrow olleh", 11);
    assert_null(vring_drv_get_used(&f->drv, &len));
    assert_int_equal(f->drv.num_free, 256);
    assert_int_equal(vring_drv_in_flight(&f->drv), 0);
    assert_false(f->drv.broken);
    fix_free(f);
}

static void indexes_wrap_past_65535(void **state)
{
    struct fix *f = fix_new(16, 65530, true, true);
    int tokens[64];
    unsigned sent = 0, got = 0;

    assert_int_equal(le16toh(f->drv.ring.avail->idx), 65530);
    assert_int_equal(le16toh(f->drv.ring.used->idx), 65530);
    for (int round = 0; round < 10; round++) {
        /* batches of 5, one indirect */
        for (int i = 0; i < 5; i++, sent++) {
            uint8_t *buf = f->mem + 0x1000 + sent * 64;
            struct vring_buf b[2] = { { iova_of(f, buf), 8 }, { iova_of(f, buf + 8), 32 } };

            memcpy(buf, &sent, sizeof(sent));
            if (i == 4)
                assert_int_equal(vring_drv_add_indirect(&f->drv, b, 1, 1, &tokens[sent],
                                                        (void *)(f->mem + 0x80000 + sent * 32),
                                                        MEM_IOVA + 0x80000 + sent * 32),
                                 0);
            else
                assert_int_equal(vring_drv_add(&f->drv, b, 1, 1, &tokens[sent]), 0);
        }
        vring_drv_publish(&f->drv);
        for (int i = 0; i < 5; i++) {
            assert_int_equal(vring_dev_pop(&f->dev, f->elem), 1);
            unsigned seq;

            memcpy(&seq, f->elem->seg[0].addr, sizeof(seq));
            assert_int_equal(seq, got + i);
            memcpy(f->elem->seg[1].addr, &seq, sizeof(seq));
            vring_dev_fill(&f->dev, (unsigned)i, f->elem->head, 4);
        }
        vring_dev_flush(&f->dev, 5);
        for (int i = 0; i < 5; i++, got++) {
            uint32_t len;

            assert_ptr_equal(vring_drv_get_used(&f->drv, &len), &tokens[got]);
            assert_int_equal(len, 4);
        }
    }
    assert_int_equal(got, 50);
    assert_int_equal(le16toh(f->drv.ring.avail->idx), (65530 + 50) & 0xffff);
    assert_int_equal(le16toh(f->drv.ring.used->idx), 44);
    assert_int_equal(f->dev.last_avail, 44);
    assert_int_equal(f->drv.num_free, 16);
    assert_false(f->drv.broken || f->dev.broken);
    fix_free(f);
}

static void full_ring_then_out_of_order_completion(void **state)
{
    struct fix *f = fix_new(8, 0, false, false);
    int tokens[8];
    uint16_t heads[8];
    struct vring_buf b = { MEM_IOVA, 16 };
    struct vring_buf two[2] = { { MEM_IOVA, 16 }, { MEM_IOVA + 16, 16 } };

    for (int i = 0; i < 7; i++)
        assert_int_equal(vring_drv_add(&f->drv, &b, 0, 1, &tokens[i]), 0);
    assert_int_equal(vring_drv_add(&f->drv, two, 1, 1, &tokens[7]), -ENOSPC);
    assert_int_equal(vring_drv_add(&f->drv, &b, 0, 1, &tokens[7]), 0);
    assert_int_equal(vring_drv_add(&f->drv, &b, 0, 1, &tokens[0]), -ENOSPC);
    assert_int_equal(f->drv.num_free, 0);
    vring_drv_publish(&f->drv);

    assert_int_equal(vring_dev_avail_count(&f->dev), 8);
    for (int i = 0; i < 8; i++) {
        assert_int_equal(vring_dev_pop(&f->dev, f->elem), 1);
        heads[i] = f->elem->head;
    }
    assert_int_equal(vring_dev_pop(&f->dev, f->elem), 0);
    /* complete in reverse */
    for (int i = 7; i >= 0; i--)
        vring_dev_push(&f->dev, heads[i], (uint32_t)i);
    for (int i = 7; i >= 0; i--) {
        uint32_t len;

        assert_ptr_equal(vring_drv_get_used(&f->drv, &len), &tokens[i]);
        assert_int_equal(len, (uint32_t)i);
    }
    assert_int_equal(f->drv.num_free, 8);
    /* the free list survived: one chain of all 8 descriptors */
    struct vring_buf eight[8];

    for (int i = 0; i < 8; i++)
        eight[i] = (struct vring_buf){ MEM_IOVA + i * 16u, 16 };
    assert_int_equal(vring_drv_add(&f->drv, eight, 3, 5, &tokens[0]), 0);
    vring_drv_publish(&f->drv);
    assert_int_equal(vring_dev_pop(&f->dev, f->elem), 1);
    assert_int_equal(f->elem->n_out, 3);
    assert_int_equal(f->elem->n_in, 5);
    for (int i = 0; i < 8; i++)
        assert_int_equal(f->elem->seg[i].iova, MEM_IOVA + i * 16u);
    fix_free(f);
}

static void indirect_chain_uses_one_ring_descriptor(void **state)
{
    struct fix *f = fix_new(4, 0, false, true);
    struct vring_desc *table = (void *)(f->mem + 0x8000);
    struct vring_buf b[4] = { { MEM_IOVA + 0x100, 10 }, { MEM_IOVA + 0x200, 20 },
                              { MEM_IOVA + 0x300, 30 }, { MEM_IOVA + 0x400, 40 } };
    int token;
    uint32_t len;

    assert_int_equal(vring_drv_add_indirect(&f->drv, b, 2, 2, &token, table, MEM_IOVA + 0x8000),
                     0);
    assert_int_equal(f->drv.num_free, 3);
    vring_drv_publish(&f->drv);
    assert_int_equal(vring_dev_pop(&f->dev, f->elem), 1);
    assert_int_equal(f->elem->n_out, 2);
    assert_int_equal(f->elem->n_in, 2);
    assert_int_equal(f->elem->out_bytes, 30);
    assert_int_equal(f->elem->in_bytes, 70);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(f->elem->seg[i].iova, b[i].iova);
        assert_ptr_equal(f->elem->seg[i].addr, f->mem + (b[i].iova - MEM_IOVA));
        assert_int_equal(f->elem->seg[i].len, b[i].len);
    }
    vring_dev_push(&f->dev, f->elem->head, 70);
    assert_ptr_equal(vring_drv_get_used(&f->drv, &len), &token);
    assert_int_equal(len, 70);
    assert_int_equal(f->drv.num_free, 4);

    /* the driver refuses indirect when it was not negotiated, and chains longer than num */
    struct vring_buf five[5] = { b[0], b[1], b[2], b[3], b[3] };

    assert_int_equal(vring_drv_add_indirect(&f->drv, five, 1, 4, &token, table, MEM_IOVA), -EINVAL);
    f->drv.indirect = false;
    assert_int_equal(vring_drv_add_indirect(&f->drv, b, 2, 2, &token, table, MEM_IOVA), -EINVAL);
    fix_free(f);
}

static void buffer_across_map_entries_yields_segment_per_entry(void **state)
{
    struct fix *f = fix_new(8, 0, false, false);
    struct vring_buf b = { MEM2_IOVA - 8, 24 };
    int token;

    assert_int_equal(vring_drv_add(&f->drv, &b, 0, 1, &token), 0);
    vring_drv_publish(&f->drv);
    assert_int_equal(vring_dev_pop(&f->dev, f->elem), 1);
    assert_int_equal(f->elem->n_in, 2);
    assert_int_equal(f->elem->in_bytes, 24);
    assert_ptr_equal(f->elem->seg[0].addr, f->mem + MEM_SIZE - 8);
    assert_int_equal(f->elem->seg[0].len, 8);
    assert_ptr_equal(f->elem->seg[1].addr, f->mem2);
    assert_int_equal(f->elem->seg[1].iova, MEM2_IOVA);
    assert_int_equal(f->elem->seg[1].len, 16);
    fix_free(f);
}

static void zero_length_descriptors_yield_no_segment(void **state)
{
    struct fix *f = fix_new(8, 0, false, false);

    /* the zero-length ones point at unmapped memory: their address is never looked at */
    raw_desc(f, 0, HOLE_IOVA, 0, VRING_DESC_F_NEXT, 1);
    raw_desc(f, 1, MEM_IOVA, 16, VRING_DESC_F_NEXT, 2);
    raw_desc(f, 2, HOLE_IOVA, 0, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 3);
    raw_desc(f, 3, MEM_IOVA + 64, 32, VRING_DESC_F_WRITE, 0);
    raw_avail(f, 0);
    raw_desc(f, 5, HOLE_IOVA, 0, 0, 0); /* a chain of one empty descriptor */
    raw_avail(f, 5);
    assert_int_equal(vring_dev_pop(&f->dev, f->elem), 1);
    assert_int_equal(f->elem->n_out, 1);
    assert_int_equal(f->elem->n_in, 1);
    assert_int_equal(f->elem->seg[0].iova, MEM_IOVA);
    assert_int_equal(f->elem->seg[1].iova, MEM_IOVA + 64);
    assert_int_equal(vring_dev_pop(&f->dev, f->elem), 1);
    assert_int_equal(f->elem->head, 5);
    assert_int_equal(f->elem->n_out + f->elem->n_in, 0);
    assert_int_equal(f->elem->out_bytes + f->elem->in_bytes, 0);
    fix_free(f);
}

static void chain_of_exactly_4GiB_is_accepted(void **state)
{
    struct fix *f = fix_new(8, 0, false, false);

    raw_desc(f, 0, BIG_IOVA, 0x80000000u, VRING_DESC_F_NEXT, 1);
    raw_desc(f, 1, BIG_IOVA, 0x80000000u, VRING_DESC_F_WRITE, 0);
    raw_avail(f, 0);
    assert_int_equal(vring_dev_pop(&f->dev, f->elem), 1);
    assert_int_equal(f->elem->out_bytes + f->elem->in_bytes, 1ull << 32);
    fix_free(f);
}

static void unpop_returns_chains_to_be_popped_again(void **state)
{
    struct fix *f = fix_new(8, 0, false, false);
    int tokens[3];
    uint16_t heads[3];

    for (int i = 0; i < 3; i++) {
        struct vring_buf b = { MEM_IOVA + i * 0x100u, 0x10 };

        assert_int_equal(vring_drv_add(&f->drv, &b, 1, 0, &tokens[i]), 0);
    }
    vring_drv_publish(&f->drv);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(vring_dev_pop(&f->dev, f->elem), 1);
        heads[i] = f->elem->head;
    }
    assert_int_equal(vring_dev_avail_count(&f->dev), 0);
    vring_dev_unpop(&f->dev, 2);
    assert_int_equal(vring_dev_avail_count(&f->dev), 2);
    assert_int_equal(vring_dev_pop(&f->dev, f->elem), 1);
    assert_int_equal(f->elem->head, heads[1]);
    assert_int_equal(f->elem->seg[0].iova, MEM_IOVA + 0x100);
    assert_int_equal(vring_dev_pop(&f->dev, f->elem), 1);
    assert_int_equal(f->elem->head, heads[2]);
    assert_int_equal(vring_dev_pop(&f->dev, f->elem), 0);
    fix_free(f);
}

/* ------------------------------------------------------------------ notifications */

static void add_one(struct fix *f, void *token)
{
    struct vring_buf b = { MEM_IOVA, 16 };

    assert_int_equal(vring_drv_add(&f->drv, &b, 0, 1, token), 0);
}

static void event_idx_used_notification_follows_used_event(void **state)
{
    struct fix *f = fix_new(8, 0, true, false);
    int token[8];
    uint32_t len;

    for (int i = 0; i < 4; i++)
        add_one(f, &token[i]);
    vring_drv_publish(&f->drv);
    assert_true(vring_drv_set_notify(&f->drv, true)); /* nothing used yet: may sleep */
    assert_int_equal(le16toh(*used_event_of(f)), 0);

    assert_int_equal(vring_dev_pop(&f->dev, f->elem), 1);
    vring_dev_push(&f->dev, f->elem->head, 0);
    assert_true(vring_dev_need_notify(&f->dev)); /* used_event 0 is in [0, 1) */
    assert_int_equal(vring_dev_pop(&f->dev, f->elem), 1);
    vring_dev_push(&f->dev, f->elem->head, 0);
    assert_false(vring_dev_need_notify(&f->dev)); /* the driver has not re-armed */

    /* used entries pending: enabling tells the driver to poll instead of sleeping */
    assert_false(vring_drv_set_notify(&f->drv, true));
    assert_non_null(vring_drv_get_used(&f->drv, &len));
    assert_non_null(vring_drv_get_used(&f->drv, &len));
    assert_true(vring_drv_set_notify(&f->drv, true));
    assert_int_equal(le16toh(*used_event_of(f)), 2);
    /* disabling with event idx writes nothing */
    vring_drv_set_notify(&f->drv, false);
    assert_int_equal(le16toh(*used_event_of(f)), 2);
    assert_int_equal(le16toh(f->drv.ring.avail->flags), 0);

    /* a batch of two crossing used_event notifies once */
    assert_int_equal(vring_dev_pop(&f->dev, f->elem), 1);
    vring_dev_fill(&f->dev, 0, f->elem->head, 0);
    assert_int_equal(vring_dev_pop(&f->dev, f->elem), 1);
    vring_dev_fill(&f->dev, 1, f->elem->head, 0);
    vring_dev_flush(&f->dev, 2);
    assert_true(vring_dev_need_notify(&f->dev));
    assert_false(vring_dev_need_notify(&f->dev)); /* nothing new since */
    fix_free(f);
}

static void event_idx_need_event_handles_16bit_wrap(void **state)
{
    static const struct {
        uint16_t used_event;
        bool notify;
    } cases[] = {
        { 65533, false }, /* before the window */
        { 65534, true },  /* its first entry (old) */
        { 65535, true },
        { 0, true },
        { 1, true },      /* its last entry (new - 1) */
        { 2, false },     /* new itself: not yet used */
        { 100, false },
    };

    for (size_t c = 0; c < G_N_ELEMENTS(cases); c++) {
        struct fix *f = fix_new(8, 65532, true, false);
        int token;

        /* first batch [65532, 65534) sets the decision point at 65534 */
        for (int i = 0; i < 2; i++) {
            add_one(f, &token);
            vring_drv_publish(&f->drv);
            assert_int_equal(vring_dev_pop(&f->dev, f->elem), 1);
            vring_dev_push(&f->dev, f->elem->head, 0);
        }
        assert_true(vring_dev_need_notify(&f->dev)); /* first decision: always */
        /* second batch [65534, 2): four entries across the wrap */
        for (int i = 0; i < 4; i++) {
            add_one(f, &token);
            vring_drv_publish(&f->drv);
            assert_int_equal(vring_dev_pop(&f->dev, f->elem), 1);
            vring_dev_fill(&f->dev, (unsigned)i, f->elem->head, 0);
        }
        vring_dev_flush(&f->dev, 4);
        *used_event_of(f) = htole16(cases[c].used_event);
        assert_int_equal(vring_dev_need_notify(&f->dev), cases[c].notify);
        fix_free(f);
    }
}

static void event_idx_window_over_65535_entries_forces_notification(void **state)
{
    struct fix *f = fix_new(8, 0, true, false);

    vring_dev_push(&f->dev, 0, 0);
    assert_true(vring_dev_need_notify(&f->dev)); /* decision point: used idx 1 */
    *used_event_of(f) = htole16(10);
    /* 65537 entries without a decision: the window [1, 65538) wraps onto itself, so
     * used_event can no longer be placed in it; the device must notify */
    for (unsigned i = 0; i < 65537; i++)
        vring_dev_fill(&f->dev, i, 0, 0);
    vring_dev_flush(&f->dev, 65535);
    vring_dev_flush(&f->dev, 2);
    assert_int_equal(f->dev.used_idx, 2);
    assert_true(vring_dev_need_notify(&f->dev));
    /* and then the normal rule again */
    vring_dev_push(&f->dev, 0, 0);
    assert_false(vring_dev_need_notify(&f->dev)); /* used_event 10 not in [2, 3) */
    fix_free(f);
}

static void event_idx_kick_follows_avail_event(void **state)
{
    struct fix *f = fix_new(16, 65535, true, false);
    int token[16];

    vring_dev_set_notify(&f->dev, true);
    assert_int_equal(le16toh(*avail_event_of(f)), 65535);
    add_one(f, &token[0]);
    assert_true(vring_drv_publish(&f->drv)); /* publishes index 65535 */
    add_one(f, &token[1]);
    assert_false(vring_drv_publish(&f->drv)); /* the device has not re-armed */
    assert_false(vring_drv_publish(&f->drv)); /* nothing new: no kick */

    assert_int_equal(vring_dev_pop(&f->dev, f->elem), 1);
    assert_int_equal(vring_dev_pop(&f->dev, f->elem), 1);
    assert_int_equal(vring_dev_pop(&f->dev, f->elem), 0);
    vring_dev_set_notify(&f->dev, true);
    assert_int_equal(le16toh(*avail_event_of(f)), 1);
    assert_int_equal(vring_dev_avail_count(&f->dev), 0);
    /* a batch [1, 4) that contains avail_event kicks once */
    for (int i = 2; i < 5; i++)
        add_one(f, &token[i]);
    assert_true(vring_drv_publish(&f->drv));

    /* disabling writes nothing */
    vring_dev_set_notify(&f->dev, false);
    assert_int_equal(le16toh(*avail_event_of(f)), 1);
    assert_int_equal(le16toh(f->dev.ring.used->flags), 0);

    /* avail_event before the batch [4, 6): no kick */
    *avail_event_of(f) = htole16(3);
    add_one(f, &token[5]);
    add_one(f, &token[6]);
    assert_false(vring_drv_publish(&f->drv));
    /* avail_event at the batch's end (index 7 is not yet published): no kick */
    *avail_event_of(f) = htole16(7);
    add_one(f, &token[7]);
    assert_false(vring_drv_publish(&f->drv));
    /* now index 7 is published: kick */
    add_one(f, &token[8]);
    assert_true(vring_drv_publish(&f->drv));
    fix_free(f);
}

/* A fresh driver ring at a non-zero base (the relay's shadow ring on a migration's
 * destination): the device has not armed avail_event yet, and the first buffer must kick. */
static void event_idx_first_buffer_kicks_at_a_non_zero_base(void **state)
{
    struct fix *f = fix_new(16, 7, true, false);
    int token[2];

    assert_int_equal(le16toh(*avail_event_of(f)), 7);
    add_one(f, &token[0]);
    assert_true(vring_drv_publish(&f->drv)); /* publishes index 7 */
    add_one(f, &token[1]);
    assert_false(vring_drv_publish(&f->drv)); /* the device has not re-armed */
    fix_free(f);
}

static void enable_then_recheck_catches_buffer_added_before(void **state)
{
    struct fix *f = fix_new(8, 0, true, false);
    int token;

    /* the driver publishes while the device still has kicks disabled */
    vring_dev_set_notify(&f->dev, false);
    assert_int_equal(vring_dev_avail_count(&f->dev), 0);
    add_one(f, &token);
    vring_drv_publish(&f->drv);
    /* then the device enables; no kick will come, so the re-check must see the buffer */
    vring_dev_set_notify(&f->dev, true);
    assert_int_equal(vring_dev_avail_count(&f->dev), 1);
    assert_int_equal(vring_dev_pop(&f->dev, f->elem), 1);
    fix_free(f);
}

static void flags_suppress_notifications_without_event_idx(void **state)
{
    struct fix *f = fix_new(8, 0, false, false);
    int token[4];

    vring_dev_set_notify(&f->dev, false);
    assert_int_equal(le16toh(f->dev.ring.used->flags), VRING_USED_F_NO_NOTIFY);
    add_one(f, &token[0]);
    assert_false(vring_drv_publish(&f->drv));
    vring_dev_set_notify(&f->dev, true);
    assert_int_equal(le16toh(f->dev.ring.used->flags), 0);
    add_one(f, &token[1]);
    assert_true(vring_drv_publish(&f->drv));

    assert_true(vring_drv_set_notify(&f->drv, false));
    assert_int_equal(le16toh(f->drv.ring.avail->flags), VRING_AVAIL_F_NO_INTERRUPT);
    assert_int_equal(vring_dev_pop(&f->dev, f->elem), 1);
    vring_dev_push(&f->dev, f->elem->head, 0);
    assert_false(vring_dev_need_notify(&f->dev));
    assert_false(vring_drv_set_notify(&f->drv, true)); /* one used entry pending */
    assert_int_equal(le16toh(f->drv.ring.avail->flags), 0);
    assert_int_equal(vring_dev_pop(&f->dev, f->elem), 1);
    vring_dev_push(&f->dev, f->elem->head, 0);
    assert_true(vring_dev_need_notify(&f->dev));
    fix_free(f);
}

/* ------------------------------------------------------------------ hostile rings */

static void hostile_avail_idx_too_far_ahead(void **state)
{
    struct fix *f = fix_new(256, 20, false, false);

    f->dev.ring.avail->idx = htole16(300);
    expect_broken(f, -EINVAL, "avail idx 300 is 280 ahead of last_avail 20 (num 256)", NULL);
    fix_free(f);

    /* behind last_avail is "ahead" by almost 2^16 */
    f = fix_new(8, 20, false, false);
    f->dev.ring.avail->idx = htole16(19);
    expect_broken(f, -EINVAL, "avail idx 19 is 65535 ahead of last_avail 20 (num 8)", NULL);
    fix_free(f);

    /* exactly num ahead is a full ring, not an error */
    f = fix_new(8, 0, false, false);
    f->dev.ring.avail->idx = htole16(8);
    assert_int_equal(vring_dev_avail_count(&f->dev), 8);
    assert_false(f->dev.broken);
    fix_free(f);
}

static void hostile_head_out_of_range(void **state)
{
    struct fix *f = fix_new(256, 0, false, false);

    raw_avail(f, 256);
    expect_broken(f, -EINVAL, "head 256 >= num 256", NULL);
    fix_free(f);
}

static void hostile_next_out_of_range(void **state)
{
    struct fix *f = fix_new(256, 0, false, false);

    raw_desc(f, 7, MEM_IOVA, 16, VRING_DESC_F_NEXT, 300);
    raw_avail(f, 7);
    expect_broken(f, -EINVAL, "descriptor 7 has next 300 >= num 256", NULL);
    fix_free(f);

    /* the first index past the end */
    f = fix_new(16, 0, false, false);
    raw_desc(f, 15, MEM_IOVA, 16, VRING_DESC_F_NEXT, 16);
    raw_avail(f, 15);
    expect_broken(f, -EINVAL, "descriptor 15 has next 16 >= num 16", NULL);
    fix_free(f);

    /* in an indirect table, the bound is the table's size */
    f = fix_new(16, 0, false, true);

    struct vring_desc *t = (void *)(f->mem + 0x4000);

    raw_table_desc(&t[0], MEM_IOVA, 16, VRING_DESC_F_NEXT, 1);
    raw_table_desc(&t[1], MEM_IOVA, 16, VRING_DESC_F_NEXT, 2);
    raw_desc(f, 0, MEM_IOVA + 0x4000, 32, VRING_DESC_F_INDIRECT, 0);
    raw_avail(f, 0);
    expect_broken(f, -EINVAL, "indirect entry 1 has next 2 >= table size 2", NULL);
    fix_free(f);
}

static void hostile_chain_loop(void **state)
{
    struct fix *f = fix_new(16, 0, false, false);

    /* 3 -> 4 -> 5 -> 3, buffers non-empty */
    raw_desc(f, 3, MEM_IOVA, 1, VRING_DESC_F_NEXT, 4);
    raw_desc(f, 4, MEM_IOVA, 1, VRING_DESC_F_NEXT, 5);
    raw_desc(f, 5, MEM_IOVA, 1, VRING_DESC_F_NEXT, 3);
    raw_avail(f, 3);
    expect_broken(f, -ELOOP, "head 3: chain is longer than num 16", NULL);
    fix_free(f);

    /* a self-loop of empty descriptors produces no segments: still caught */
    f = fix_new(16, 0, false, false);
    f->dev.max_segs = 1;
    raw_desc(f, 9, HOLE_IOVA, 0, VRING_DESC_F_NEXT, 9);
    raw_avail(f, 9);
    expect_broken(f, -ELOOP, "head 9: chain is longer than num 16", NULL);
    fix_free(f);

    /* a chain through every descriptor, once each, is not a loop */
    f = fix_new(16, 0, false, false);
    for (unsigned i = 0; i < 16; i++)
        raw_desc(f, i, MEM_IOVA + i * 16, 16, i < 15 ? VRING_DESC_F_NEXT : 0,
                 (uint16_t)(i + 1));
    raw_avail(f, 0);
    assert_int_equal(vring_dev_pop(&f->dev, f->elem), 1);
    assert_int_equal(f->elem->n_out, 16);
    fix_free(f);
}

static void hostile_indirect_table_loop(void **state)
{
    struct fix *f = fix_new(16, 0, false, true);
    struct vring_desc *t = (void *)(f->mem + 0x4000);

    raw_table_desc(&t[0], MEM_IOVA, 1, VRING_DESC_F_NEXT, 1);
    raw_table_desc(&t[1], MEM_IOVA, 1, VRING_DESC_F_NEXT, 0);
    raw_desc(f, 2, MEM_IOVA + 0x4000, 32, VRING_DESC_F_INDIRECT, 0);
    raw_avail(f, 2);
    expect_broken(f, -ELOOP, "head 2: chain in indirect table is longer than its 2 entries",
                  NULL);
    fix_free(f);
}

static void hostile_chain_over_max_segs(void **state)
{
    struct fix *f = fix_new(16, 0, false, false);

    f->dev.max_segs = 4;
    for (unsigned i = 0; i < 5; i++)
        raw_desc(f, i, MEM_IOVA + i * 16, 16, i < 4 ? VRING_DESC_F_NEXT : 0, (uint16_t)(i + 1));
    raw_avail(f, 0);
    expect_broken(f, -E2BIG, "head 0: chain needs more than max_segs 4 segments", NULL);
    fix_free(f);

    /* four descriptors fit exactly */
    f = fix_new(16, 0, false, false);
    f->dev.max_segs = 4;
    for (unsigned i = 0; i < 4; i++)
        raw_desc(f, i, MEM_IOVA + i * 16, 16, i < 3 ? VRING_DESC_F_NEXT : 0, (uint16_t)(i + 1));
    raw_avail(f, 0);
    assert_int_equal(vring_dev_pop(&f->dev, f->elem), 1);
    /* one descriptor over two map entries counts two segments: 4 + 1 descriptors, 5 segs */
    for (unsigned i = 0; i < 3; i++)
        raw_desc(f, i, MEM_IOVA + i * 16, 16, VRING_DESC_F_NEXT, (uint16_t)(i + 1));
    raw_desc(f, 3, MEM2_IOVA - 8, 16, 0, 0);
    raw_avail(f, 0);
    expect_broken(f, -E2BIG, "more than max_segs 4", NULL);
    fix_free(f);

    /* the element's capacity bounds a chain too */
    f = fix_new(16, 0, false, false);
    vring_elem_free(f->elem);
    f->elem = vring_elem_new(2);
    for (unsigned i = 0; i < 3; i++)
        raw_desc(f, i, MEM_IOVA, 16, i < 2 ? VRING_DESC_F_NEXT : 0, (uint16_t)(i + 1));
    raw_avail(f, 0);
    expect_broken(f, -E2BIG, "max_segs 2", NULL);
    fix_free(f);
}

static void hostile_indirect_with_next(void **state)
{
    struct fix *f = fix_new(16, 0, false, true);

    raw_table_desc((void *)(f->mem + 0x4000), MEM_IOVA, 16, 0, 0);
    raw_desc(f, 1, MEM_IOVA + 0x4000, 16, VRING_DESC_F_INDIRECT | VRING_DESC_F_NEXT, 2);
    raw_desc(f, 2, MEM_IOVA, 16, 0, 0);
    raw_avail(f, 1);
    expect_broken(f, -EINVAL, "descriptor 1 has both INDIRECT and NEXT (flags 0x5)", NULL);
    fix_free(f);
}

static void hostile_nested_indirect(void **state)
{
    struct fix *f = fix_new(16, 0, false, true);
    struct vring_desc *t = (void *)(f->mem + 0x4000);

    raw_table_desc(&t[0], MEM_IOVA, 16, VRING_DESC_F_NEXT, 1);
    raw_table_desc(&t[1], MEM_IOVA + 0x4000, 32, VRING_DESC_F_INDIRECT, 0);
    raw_desc(f, 0, MEM_IOVA + 0x4000, 32, VRING_DESC_F_INDIRECT, 0);
    raw_avail(f, 0);
    expect_broken(f, -EINVAL, "head 0: indirect entry 1 is itself indirect", NULL);
    fix_free(f);
}

static void hostile_indirect_not_negotiated(void **state)
{
    struct fix *f = fix_new(16, 0, false, false);

    raw_table_desc((void *)(f->mem + 0x4000), MEM_IOVA, 16, 0, 0);
    raw_desc(f, 4, MEM_IOVA + 0x4000, 16, VRING_DESC_F_INDIRECT, 0);
    raw_avail(f, 4);
    expect_broken(f, -EINVAL, "descriptor 4 is indirect", "not negotiated");
    fix_free(f);
}

static void hostile_indirect_table_length(void **state)
{
    static const struct {
        uint32_t len;
        int err;
        const char *needle;
    } cases[] = {
        { 0, -EINVAL, "indirect table length 0 is not a non-zero multiple of 16" },
        { 24, -EINVAL, "indirect table length 24 is not a non-zero multiple of 16" },
        { 15, -EINVAL, "indirect table length 15" },
        { 5 * 16, -E2BIG, "indirect table of 5 entries exceeds max_segs 4" },
    };

    for (size_t c = 0; c < G_N_ELEMENTS(cases); c++) {
        struct fix *f = fix_new(16, 0, false, true);

        f->dev.max_segs = 4;
        raw_desc(f, 0, MEM_IOVA + 0x4000, cases[c].len, VRING_DESC_F_INDIRECT, 0);
        raw_avail(f, 0);
        expect_broken(f, cases[c].err, cases[c].needle, NULL);
        fix_free(f);
    }
}

static void hostile_indirect_table_not_mapped(void **state)
{
    static const struct {
        uint64_t iova;
        const char *needle;
    } cases[] = {
        { HOLE_IOVA, "indirect table at iova 0x300000 len 32 is not in one readable mapping" },
        { WO_IOVA, "indirect table at iova 0x500000 len 32" },        /* not readable */
        { MEM2_IOVA - 16, "indirect table at iova 0x1ffff0 len 32" }, /* split locally */
        { RO_IOVA + PAGE - 16, "indirect table at iova 0x400ff0" },   /* runs into a hole */
        { UINT64_MAX - 15, "indirect table at iova 0xfffffffffffffff0" }, /* wraps */
    };

    for (size_t c = 0; c < G_N_ELEMENTS(cases); c++) {
        struct fix *f = fix_new(16, 0, false, true);

        raw_desc(f, 0, cases[c].iova, 32, VRING_DESC_F_INDIRECT, 0);
        raw_avail(f, 0);
        expect_broken(f, -EFAULT, cases[c].needle, NULL);
        fix_free(f);
    }

    /* a read-only table is fine, and need not be 16-byte aligned */
    struct fix *f = fix_new(16, 0, false, true);

    raw_table_desc((void *)(f->ro + 8), MEM_IOVA, 16, 0, 0);
    raw_desc(f, 0, RO_IOVA + 8, 16, VRING_DESC_F_INDIRECT | VRING_DESC_F_WRITE, 0);
    raw_avail(f, 0);
    assert_int_equal(vring_dev_pop(&f->dev, f->elem), 1);
    /* the WRITE flag on the descriptor naming the table is ignored */
    assert_int_equal(f->elem->n_out, 1);
    assert_int_equal(f->elem->seg[0].iova, MEM_IOVA);
    fix_free(f);
}

static void hostile_readable_after_writable(void **state)
{
    struct fix *f = fix_new(16, 0, false, true);

    raw_desc(f, 0, MEM_IOVA, 16, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 1);
    raw_desc(f, 1, MEM_IOVA, 16, 0, 0);
    raw_avail(f, 0);
    expect_broken(f, -EINVAL, "head 0: descriptor 1 is device-readable but follows a writable",
                  NULL);
    fix_free(f);

    f = fix_new(16, 0, false, true);

    struct vring_desc *t = (void *)(f->mem + 0x4000);

    raw_table_desc(&t[0], MEM_IOVA, 16, VRING_DESC_F_NEXT, 2);
    raw_table_desc(&t[2], MEM_IOVA, 16, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 1);
    raw_table_desc(&t[1], MEM_IOVA, 0, 0, 0); /* even an empty one */
    raw_desc(f, 6, MEM_IOVA + 0x4000, 48, VRING_DESC_F_INDIRECT, 0);
    raw_avail(f, 6);
    expect_broken(f, -EINVAL, "head 6: indirect entry 1 is device-readable", NULL);
    fix_free(f);
}

static void hostile_buffer_unmapped(void **state)
{
    struct fix *f = fix_new(16, 0, false, false);

    raw_desc(f, 0, MEM_IOVA, 16, VRING_DESC_F_NEXT, 1);
    raw_desc(f, 1, HOLE_IOVA + 0x10, 16, 0, 0);
    raw_avail(f, 0);
    expect_broken(f, -EFAULT,
                  "head 0: descriptor 1: buffer iova 0x300010 len 16: iova 0x300010 is not mapped",
                  NULL);
    fix_free(f);

    /* starts mapped, runs into the hole after MEM2: the message names where */
    f = fix_new(16, 0, false, false);
    raw_desc(f, 0, MEM2_IOVA + MEM2_SIZE - 4, 8, VRING_DESC_F_WRITE, 0);
    raw_avail(f, 0);
    expect_broken(f, -EFAULT, "len 8: iova 0x201000 is not mapped", NULL);
    fix_free(f);

    /* inside an indirect table */
    f = fix_new(16, 0, false, true);
    raw_table_desc((void *)(f->mem + 0x4000), HOLE_IOVA, 4, 0, 0);
    raw_desc(f, 0, MEM_IOVA + 0x4000, 16, VRING_DESC_F_INDIRECT, 0);
    raw_avail(f, 0);
    expect_broken(f, -EFAULT, "indirect entry 0: buffer iova 0x300000 len 4", NULL);
    fix_free(f);
}

static void hostile_buffer_wraps(void **state)
{
    struct fix *f = fix_new(16, 0, false, false);

    raw_desc(f, 0, UINT64_MAX - 0xfff, 0x2000, 0, 0);
    raw_avail(f, 0);
    expect_broken(f, -EFAULT, "buffer iova 0xfffffffffffff000 len 8192 wraps", NULL);
    fix_free(f);
}

static void hostile_buffer_lacks_permission(void **state)
{
    struct fix *f = fix_new(16, 0, false, false);

    /* device-readable buffer in write-only memory */
    raw_desc(f, 0, WO_IOVA + 0x20, 16, 0, 0);
    raw_avail(f, 0);
    expect_broken(f, -EACCES, "buffer iova 0x500020 len 16: iova 0x500020 is not readable",
                  NULL);
    fix_free(f);

    /* device-writable buffer in read-only memory */
    f = fix_new(16, 0, false, false);
    raw_desc(f, 0, RO_IOVA, 16, VRING_DESC_F_WRITE, 0);
    raw_avail(f, 0);
    expect_broken(f, -EACCES, "iova 0x400000 is not writable", NULL);
    fix_free(f);
}

static void hostile_total_length_over_4GiB(void **state)
{
    struct fix *f = fix_new(16, 0, false, false);

    raw_desc(f, 0, BIG_IOVA, 0x80000000u, VRING_DESC_F_NEXT, 1);
    raw_desc(f, 1, BIG_IOVA, 0x80000000u, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 2);
    raw_desc(f, 2, BIG_IOVA, 1, VRING_DESC_F_WRITE, 0);
    raw_avail(f, 0);
    expect_broken(f, -EOVERFLOW,
                  "head 0: descriptor 2 (len 1) takes the chain past 2^32 bytes (0x100000000",
                  NULL);
    fix_free(f);
}

static void hostile_ring_rewritten_after_pop_is_not_reread(void **state)
{
    struct fix *f = fix_new(8, 0, false, false);

    raw_desc(f, 0, MEM_IOVA, 16, 0, 0);
    raw_avail(f, 0);
    assert_int_equal(vring_dev_pop(&f->dev, f->elem), 1);
    /* the driver scribbles over what was popped: the element is a copy */
    raw_desc(f, 0, HOLE_IOVA, 0xffffffff, VRING_DESC_F_NEXT, 77);
    assert_int_equal(f->elem->seg[0].iova, MEM_IOVA);
    assert_int_equal(f->elem->seg[0].len, 16);
    assert_int_equal(vring_dev_pop(&f->dev, f->elem), 0);
    fix_free(f);
}

/* ------------------------------------------------------------------ the driver checks */

static void driver_rejects_bad_used_entries(void **state)
{
    static const struct {
        uint32_t id, len;
        const char *needle;
    } cases[] = {
        { 13, 0, "used entry 0 (used index 0) has id 13 >= num 8" },
        { 5, 0, "has id 5, which is not in flight" },
        { 0, 65, "len 65 for id 0 exceeds its 64 writable bytes" },
    };

    for (size_t c = 0; c < G_N_ELEMENTS(cases); c++) {
        struct fix *f = fix_new(8, 0, false, false);
        struct vring_buf b[2] = { { MEM_IOVA, 100 }, { MEM_IOVA + 0x100, 64 } };
        int token;
        uint32_t len = 1234;

        assert_int_equal(vring_drv_add(&f->drv, b, 1, 1, &token), 0); /* head 0 */
        vring_drv_publish(&f->drv);
        f->dev.ring.used->ring[0].id = htole32(cases[c].id);
        f->dev.ring.used->ring[0].len = htole32(cases[c].len);
        f->dev.ring.used->idx = htole16(1);
        assert_null(vring_drv_get_used(&f->drv, &len));
        assert_true(f->drv.broken);
        assert_non_null(strstr(f->drv.error, cases[c].needle));
        assert_int_equal(len, 1234);
        /* and stays broken */
        f->dev.ring.used->ring[0].id = 0;
        f->dev.ring.used->ring[0].len = 0;
        assert_null(vring_drv_get_used(&f->drv, &len));
        assert_int_equal(vring_drv_add(&f->drv, b, 1, 1, &token), -EIO);
        assert_false(vring_drv_publish(&f->drv));
        assert_int_equal(vring_drv_used_count(&f->drv), 0);
        fix_free(f);
    }

    /* exactly the writable size is fine */
    struct fix *f = fix_new(8, 0, false, false);
    struct vring_buf b[2] = { { MEM_IOVA, 100 }, { MEM_IOVA + 0x100, 64 } };
    int token;
    uint32_t len;

    assert_int_equal(vring_drv_add(&f->drv, b, 1, 1, &token), 0);
    vring_drv_publish(&f->drv);
    vring_dev_pop(&f->dev, f->elem);
    vring_dev_push(&f->dev, f->elem->head, 64);
    assert_ptr_equal(vring_drv_get_used(&f->drv, &len), &token);
    assert_int_equal(len, 64);
    fix_free(f);
}

static void driver_rejects_used_idx_beyond_in_flight(void **state)
{
    struct fix *f = fix_new(8, 100, false, false);
    int token[3];

    add_one(f, &token[0]);
    add_one(f, &token[1]);
    vring_drv_publish(&f->drv);
    add_one(f, &token[2]); /* not published: the device cannot have used it */
    f->dev.ring.used->idx = htole16(103);
    assert_int_equal(vring_drv_used_count(&f->drv), 0);
    assert_true(f->drv.broken);
    assert_non_null(strstr(f->drv.error, "used idx 103 is 3 ahead of last_used 100 with 2 chains "
                                         "in flight"));
    fix_free(f);
}

static void driver_add_checks_arguments(void **state)
{
    struct fix *f = fix_new(4, 0, false, false);
    struct vring_buf b[5] = { { MEM_IOVA, 1 }, { MEM_IOVA, 1 }, { MEM_IOVA, 1 },
                              { MEM_IOVA, 1 }, { MEM_IOVA, 1 } };
    struct vring_buf big[3] = { { BIG_IOVA, 0xffffffff }, { BIG_IOVA, 0xffffffff },
                                { BIG_IOVA, 2 } };
    int token;

    assert_int_equal(vring_drv_add(&f->drv, b, 1, 0, NULL), -EINVAL);
    assert_int_equal(vring_drv_add(&f->drv, b, 0, 0, &token), -EINVAL);
    assert_int_equal(vring_drv_add(&f->drv, b, 2, 3, &token), -EINVAL); /* more than num */
    /* writable total over UINT32_MAX; chain over 2^32 */
    assert_int_equal(vring_drv_add(&f->drv, big, 0, 2, &token), -EINVAL);
    assert_int_equal(vring_drv_add(&f->drv, big + 1, 1, 1, &token), -EINVAL);
    assert_int_equal(vring_drv_add(&f->drv, big, 1, 0, &token), 0);
    assert_int_equal(f->drv.num_free, 3);
    assert_int_equal(vring_drv_in_flight(&f->drv), 1);
    fix_free(f);
}

/* ------------------------------------------------------------------ dirty log */

static void used_ring_writes_are_logged_after_store_entries_before_publication(void **state)
{
    struct fix *f = fix_new(8, 0, true, false);
    uint64_t n_words = dirty_log_words_for(USED_IOVA + 0x10000);
    g_autofree uint64_t *words = g_new0(uint64_t, n_words);
    g_autoptr(dirty_log) log = dirty_log_new_local(words, n_words);
    int token[2];

    f->dev.log = log;
    spy_start(f->dev.ring.used);
    add_one(f, &token[0]);
    add_one(f, &token[1]);
    vring_drv_publish(&f->drv);
    assert_int_equal(vring_dev_pop(&f->dev, f->elem), 1);
    vring_dev_fill(&f->dev, 0, f->elem->head, 0);
    assert_int_equal(vring_dev_pop(&f->dev, f->elem), 1);
    vring_dev_fill(&f->dev, 1, f->elem->head, 0);
    assert_false(page_marked(words, MEM_IOVA)); /* popping logs nothing */
    vring_dev_flush(&f->dev, 2);
    vring_dev_set_notify(&f->dev, true);

    assert_int_equal(spy.n, 4);
    /* used->ring[0] and [1]: while used->idx in memory was still 0 */
    assert_int_equal(spy.m[0].gpa, USED_IOVA + 4);
    assert_int_equal(spy.m[0].len, 8);
    assert_int_equal(spy.m[0].used_idx_in_memory, 0);
    assert_int_equal(spy.m[1].gpa, USED_IOVA + 4 + 8);
    assert_int_equal(spy.m[1].len, 8);
    assert_int_equal(spy.m[1].used_idx_in_memory, 0);
    /* used->idx: right after its store, so the bit covers the new value */
    assert_int_equal(spy.m[2].gpa, USED_IOVA + 2);
    assert_int_equal(spy.m[2].len, 2);
    assert_int_equal(spy.m[2].used_idx_in_memory, 2);
    /* avail_event, after the used ring's 8 entries */
    assert_int_equal(spy.m[3].gpa, USED_IOVA + 4 + 8 * 8);
    assert_int_equal(spy.m[3].len, 2);
    /* and the real log has the used ring's page, nothing else */
    assert_true(page_marked(words, USED_IOVA));
    assert_false(page_marked(words, USED_IOVA - PAGE));
    assert_false(page_marked(words, USED_IOVA + PAGE));
    fix_free(f);

    /* without event idx, the flags word is what set_notify writes */
    f = fix_new(8, 0, false, false);
    f->dev.log = log;
    spy_start(f->dev.ring.used);
    vring_dev_set_notify(&f->dev, false);
    assert_int_equal(spy.n, 1);
    assert_int_equal(spy.m[0].gpa, USED_IOVA);
    assert_int_equal(spy.m[0].len, 2);
    spy.used = NULL;
    fix_free(f);
}

static void log_write_marks_written_part_of_writable_segments(void **state)
{
    struct fix *f = fix_new(8, 0, false, false);
    uint64_t n_words = dirty_log_words_for(MEM2_IOVA + MEM2_SIZE);
    g_autofree uint64_t *words = g_new0(uint64_t, n_words);
    g_autoptr(dirty_log) log = dirty_log_new_local(words, n_words);
    /* readable at page 0 of MEM, writable at page 1 (50 bytes) and across MEM -> MEM2 */
    struct vring_buf b[3] = { { MEM_IOVA, 100 }, { MEM_IOVA + 0x1000, 50 },
                              { MEM2_IOVA - 10, 40 } };
    int token;

    assert_int_equal(vring_drv_add(&f->drv, b, 1, 2, &token), 0);
    vring_drv_publish(&f->drv);
    assert_int_equal(vring_dev_pop(&f->dev, f->elem), 1);
    spy_start(f->dev.ring.used);
    vring_dev_log_write(&f->dev, f->elem, 70); /* no log: nothing happens */
    assert_int_equal(spy.n, 0);
    f->dev.log = log;
    vring_dev_log_write(&f->dev, f->elem, 70);
    /* 50 bytes of the first writable buffer, 10 + 10 of the second (it spans two entries) */
    assert_int_equal(spy.n, 3);
    assert_int_equal(spy.m[0].gpa, MEM_IOVA + 0x1000);
    assert_int_equal(spy.m[0].len, 50);
    assert_int_equal(spy.m[1].gpa, MEM2_IOVA - 10);
    assert_int_equal(spy.m[1].len, 10);
    assert_int_equal(spy.m[2].gpa, MEM2_IOVA);
    assert_int_equal(spy.m[2].len, 10);
    spy.used = NULL;
    assert_false(page_marked(words, MEM_IOVA)); /* readable: not written */
    assert_true(page_marked(words, MEM_IOVA + 0x1000));
    assert_false(page_marked(words, MEM_IOVA + 0x2000));
    assert_true(page_marked(words, MEM2_IOVA - 10));
    assert_true(page_marked(words, MEM2_IOVA));
    fix_free(f);
}

/* ------------------------------------------------------------------ two threads */

#define STRESS_BUFFERS 1000000u
#define STRESS_NUM 256u
#define STRESS_LEN 32u
#define STRESS_TIMEOUT_MS 20000

struct stress_slot {
    uint64_t seq;
    uint8_t *out, *in;
    struct vring_desc *table;
};

struct stress {
    struct fix *f;
    int kick_fd, call_fd;
    struct stress_slot slot[STRESS_NUM];
    uint64_t kicks, calls, driver_sleeps, device_sleeps;
    int stop;
    char failure[256];
};

static void stress_fail(struct stress *s, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

static void stress_fail(struct stress *s, const char *fmt, ...)
{
    if (!__atomic_exchange_n(&s->stop, 1, __ATOMIC_SEQ_CST)) {
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(s->failure, sizeof(s->failure), fmt, ap);
        va_end(ap);
    }
    /* wake the other side */
    uint64_t one = 1;

    (void)!write(s->kick_fd, &one, sizeof(one));
    (void)!write(s->call_fd, &one, sizeof(one));
}

static bool stress_stopped(struct stress *s)
{
    return __atomic_load_n(&s->stop, __ATOMIC_SEQ_CST);
}

/* Waits for a notification; false on timeout (a lost wake-up) or stop. */
static bool stress_wait(struct stress *s, int fd, const char *who)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };
    uint64_t v;

    if (poll(&p, 1, STRESS_TIMEOUT_MS) != 1) {
        stress_fail(s, "%s: no notification in %d ms (lost wake-up)", who, STRESS_TIMEOUT_MS);
        return false;
    }
    (void)!read(fd, &v, sizeof(v));
    return !stress_stopped(s);
}

static uint8_t pattern(uint64_t seq, unsigned i)
{
    return (uint8_t)(seq * 131 + i * 7 + (seq >> 8));
}

static void *stress_device(void *arg)
{
    struct stress *s = arg;
    struct vring_dev *dev = &s->f->dev;
    struct vring_elem *elem = vring_elem_new(0);
    uint64_t expect = 0;

    while (expect < STRESS_BUFFERS && !stress_stopped(s)) {
        unsigned n = 0;
        int r;

        while ((r = vring_dev_pop(dev, elem)) == 1) {
            uint8_t req[STRESS_LEN];
            size_t at = 0;

            if (elem->out_bytes != STRESS_LEN || elem->in_bytes != STRESS_LEN) {
                stress_fail(s, "device: chain of %" PRIu64 "+%" PRIu64 " bytes",
                            elem->out_bytes, elem->in_bytes);
                goto out;
            }
            for (unsigned i = 0; i < elem->n_out; i++) {
                memcpy(req + at, elem->seg[i].addr, elem->seg[i].len);
                at += elem->seg[i].len;
            }
            uint64_t seq;

            memcpy(&seq, req, sizeof(seq));
            if (seq != expect) {
                stress_fail(s, "device: got seq %" PRIu64 ", expected %" PRIu64, seq, expect);
                goto out;
            }
            for (unsigned i = 8; i < STRESS_LEN; i++) {
                if (req[i] != pattern(seq, i)) {
                    stress_fail(s, "device: seq %" PRIu64 " byte %u corrupt", seq, i);
                    goto out;
                }
            }
            /* answer: the request with every byte inverted */
            at = 0;
            for (unsigned i = elem->n_out; i < elem->n_out + elem->n_in; i++) {
                for (unsigned k = 0; k < elem->seg[i].len; k++)
                    ((uint8_t *)elem->seg[i].addr)[k] = (uint8_t)~req[at + k];
                at += elem->seg[i].len;
            }
            vring_dev_fill(dev, n++, elem->head, STRESS_LEN);
            expect++;
        }
        if (r < 0) {
            stress_fail(s, "device: pop: %d %s", r, dev->error);
            break;
        }
        if (n) {
            vring_dev_flush(dev, n);
            if (vring_dev_need_notify(dev)) {
                uint64_t one = 1;

                s->calls++;
                (void)!write(s->call_fd, &one, sizeof(one));
            }
            continue;
        }
        /* idle: ask for a kick, then look again before sleeping */
        vring_dev_set_notify(dev, true);
        if (vring_dev_avail_count(dev))
            continue;
        s->device_sleeps++;
        if (!stress_wait(s, s->kick_fd, "device"))
            break;
    }
out:
    vring_elem_free(elem);
    return NULL;
}

static void *stress_driver(void *arg)
{
    struct stress *s = arg;
    struct fix *f = s->f;
    struct vring_drv *drv = &f->drv;
    struct stress_slot *free_slots[STRESS_NUM];
    unsigned n_free = STRESS_NUM;
    uint64_t next_seq = 0, expect = 0;

    for (unsigned i = 0; i < STRESS_NUM; i++)
        free_slots[i] = &s->slot[i];
    while (expect < STRESS_BUFFERS && !stress_stopped(s)) {
        bool added = false;

        while (next_seq < STRESS_BUFFERS && n_free) {
            struct stress_slot *sl = free_slots[n_free - 1];
            int r;

            sl->seq = next_seq;
            memcpy(sl->out, &sl->seq, sizeof(sl->seq));
            for (unsigned i = 8; i < STRESS_LEN; i++)
                sl->out[i] = pattern(sl->seq, i);
            memset(sl->in, 0, STRESS_LEN);
            if (next_seq % 3 == 0) {
                /* indirect: two readable halves, one writable buffer */
                struct vring_buf b[3] = { { iova_of(f, sl->out), 16 },
                                          { iova_of(f, sl->out + 16), 16 },
                                          { iova_of(f, sl->in), STRESS_LEN } };

                r = vring_drv_add_indirect(drv, b, 2, 1, sl, sl->table, iova_of(f, sl->table));
            } else {
                /* direct: one readable buffer, two writable halves */
                struct vring_buf b[3] = { { iova_of(f, sl->out), STRESS_LEN },
                                          { iova_of(f, sl->in), 16 },
                                          { iova_of(f, sl->in + 16), 16 } };

                r = vring_drv_add(drv, b, 1, 2, sl);
            }
            if (r == -ENOSPC)
                break;
            if (r) {
                stress_fail(s, "driver: add: %d", r);
                return NULL;
            }
            n_free--;
            next_seq++;
            added = true;
        }
        if (added && vring_drv_publish(drv)) {
            uint64_t one = 1;

            s->kicks++;
            (void)!write(s->kick_fd, &one, sizeof(one));
        }

        struct stress_slot *sl;
        uint32_t len;
        bool got = false;

        while ((sl = vring_drv_get_used(drv, &len))) {
            if (sl->seq != expect || len != STRESS_LEN) {
                stress_fail(s, "driver: got seq %" PRIu64 " len %u, expected seq %" PRIu64,
                            sl->seq, len, expect);
                return NULL;
            }
            for (unsigned i = 0; i < STRESS_LEN; i++) {
                uint8_t want = (uint8_t)(0xffu ^ sl->out[i]);

                if (sl->in[i] != want) {
                    stress_fail(s, "driver: seq %" PRIu64 " reply byte %u corrupt", sl->seq, i);
                    return NULL;
                }
            }
            sl->seq = UINT64_MAX; /* a second return of this token would fail the check */
            free_slots[n_free++] = sl;
            expect++;
            got = true;
        }
        if (drv->broken) {
            stress_fail(s, "driver: %s", drv->error);
            return NULL;
        }
        if (got || added)
            continue;
        /* nothing to do: ask for a call, then look again before sleeping */
        if (!vring_drv_set_notify(drv, true))
            continue;
        s->driver_sleeps++;
        if (!stress_wait(s, s->call_fd, "driver"))
            return NULL;
    }
    return NULL;
}

static void two_threads_move_a_million_buffers_in_order(void **state)
{
    struct stress *s = g_new0(struct stress, 1);
    pthread_t dev_thread, drv_thread;

    s->f = fix_new(STRESS_NUM, 65000, true, true);
    s->kick_fd = eventfd(0, EFD_CLOEXEC);
    s->call_fd = eventfd(0, EFD_CLOEXEC);
    assert_true(s->kick_fd >= 0 && s->call_fd >= 0);
    for (unsigned i = 0; i < STRESS_NUM; i++) {
        uint8_t *base = s->f->mem + 0x10000 + i * 256;

        s->slot[i] = (struct stress_slot){ .out = base, .in = base + 64,
                                           .table = (void *)(base + 128) };
    }
    gint64 t0 = g_get_monotonic_time();

    assert_int_equal(pthread_create(&dev_thread, NULL, stress_device, s), 0);
    assert_int_equal(pthread_create(&drv_thread, NULL, stress_driver, s), 0);
    pthread_join(drv_thread, NULL);
    pthread_join(dev_thread, NULL);

    double secs = (double)(g_get_monotonic_time() - t0) / 1e6;

    print_message("    %u buffers in %.2f s (%.0f/s); kicks %" PRIu64 ", calls %" PRIu64
                  ", device sleeps %" PRIu64 ", driver sleeps %" PRIu64 "\n",
                  STRESS_BUFFERS, secs, STRESS_BUFFERS / secs, s->kicks, s->calls,
                  s->device_sleeps, s->driver_sleeps);
    if (s->failure[0])
        print_error("%s\n", s->failure);
    assert_string_equal(s->failure, "");
    assert_false(s->f->dev.broken || s->f->drv.broken);
    assert_int_equal(vring_drv_in_flight(&s->f->drv), 0);
    assert_int_equal(s->f->drv.num_free, STRESS_NUM);
    assert_int_equal(s->f->dev.used_idx, (uint16_t)(65000 + STRESS_BUFFERS));
    /* event idx kept notifications well below one per buffer */
    assert_true(s->kicks + s->calls < STRESS_BUFFERS);
    close(s->kick_fd);
    close(s->call_fd);
    fix_free(s->f);
    g_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(layout_sizes_follow_virtio),
        cmocka_unit_test(bad_layout_breaks_queue_at_start),
        cmocka_unit_test(round_trip_moves_data_both_ways),
        cmocka_unit_test(indexes_wrap_past_65535),
        cmocka_unit_test(full_ring_then_out_of_order_completion),
        cmocka_unit_test(indirect_chain_uses_one_ring_descriptor),
        cmocka_unit_test(buffer_across_map_entries_yields_segment_per_entry),
        cmocka_unit_test(zero_length_descriptors_yield_no_segment),
        cmocka_unit_test(chain_of_exactly_4GiB_is_accepted),
        cmocka_unit_test(unpop_returns_chains_to_be_popped_again),
        cmocka_unit_test(event_idx_used_notification_follows_used_event),
        cmocka_unit_test(event_idx_need_event_handles_16bit_wrap),
        cmocka_unit_test(event_idx_window_over_65535_entries_forces_notification),
        cmocka_unit_test(event_idx_kick_follows_avail_event),
        cmocka_unit_test(event_idx_first_buffer_kicks_at_a_non_zero_base),
        cmocka_unit_test(enable_then_recheck_catches_buffer_added_before),
        cmocka_unit_test(flags_suppress_notifications_without_event_idx),
        cmocka_unit_test(hostile_avail_idx_too_far_ahead),
        cmocka_unit_test(hostile_head_out_of_range),
        cmocka_unit_test(hostile_next_out_of_range),
        cmocka_unit_test(hostile_chain_loop),
        cmocka_unit_test(hostile_indirect_table_loop),
        cmocka_unit_test(hostile_chain_over_max_segs),
        cmocka_unit_test(hostile_indirect_with_next),
        cmocka_unit_test(hostile_nested_indirect),
        cmocka_unit_test(hostile_indirect_not_negotiated),
        cmocka_unit_test(hostile_indirect_table_length),
        cmocka_unit_test(hostile_indirect_table_not_mapped),
        cmocka_unit_test(hostile_readable_after_writable),
        cmocka_unit_test(hostile_buffer_unmapped),
        cmocka_unit_test(hostile_buffer_wraps),
        cmocka_unit_test(hostile_buffer_lacks_permission),
        cmocka_unit_test(hostile_total_length_over_4GiB),
        cmocka_unit_test(hostile_ring_rewritten_after_pop_is_not_reread),
        cmocka_unit_test(driver_rejects_bad_used_entries),
        cmocka_unit_test(driver_rejects_used_idx_beyond_in_flight),
        cmocka_unit_test(driver_add_checks_arguments),
        cmocka_unit_test(used_ring_writes_are_logged_after_store_entries_before_publication),
        cmocka_unit_test(log_write_marks_written_part_of_writable_segments),
        cmocka_unit_test(two_threads_move_a_million_buffers_in_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
