/* Unit tests: virtio-blk request parsing and the bounded data copies. Chains are built by
 * hand; every segment is its own exact-size allocation, so ASan sees any stray access. */
#include "config.h"

#include <glib.h>
#include <linux/virtio_blk.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include "virtio/blk_req.h"

#define F(bit) (1ull << (bit))
#define MAX_SEGS 128

struct chain {
    struct vring_elem elem;
    struct vring_seg seg[MAX_SEGS];
    uint64_t next_iova;
};

static struct chain *chain_new(void)
{
    struct chain *c = g_new0(struct chain, 1);

    c->elem.seg = c->seg;
    c->elem.max_segs = MAX_SEGS;
    c->next_iova = 0x100000;
    return c;
}

static void chain_free(struct chain *c)
{
    for (unsigned i = 0; i < c->elem.n_out + c->elem.n_in; i++)
        g_free(c->seg[i].addr);
    g_free(c);
}
typedef struct chain chain;
G_DEFINE_AUTOPTR_CLEANUP_FUNC(chain, chain_free)

/* Appends a segment (readable ones must come first). data may be NULL (zero-filled).
 * Segments get IOVAs that are not contiguous, unless contiguous is set. */
static uint8_t *add_seg(struct chain *c, bool writable, const void *data, uint32_t len,
                        bool contiguous)
{
    unsigned i = c->elem.n_out + c->elem.n_in;
    assert_true(i < MAX_SEGS);
    assert_true(writable || c->elem.n_in == 0);
    c->seg[i].addr = g_malloc0(len ? len : 1);
    if (data)
        memcpy(c->seg[i].addr, data, len);
    c->seg[i].len = len;
    if (!contiguous)
        c->next_iova += 0x10000;
    c->seg[i].iova = c->next_iova;
    c->next_iova += len;
    if (writable) {
        c->elem.n_in++;
        c->elem.in_bytes += len;
    } else {
        c->elem.n_out++;
        c->elem.out_bytes += len;
    }
    return c->seg[i].addr;
}

static uint8_t *out(struct chain *c, const void *data, uint32_t len)
{
    return add_seg(c, false, data, len, false);
}

static uint8_t *in(struct chain *c, uint32_t len)
{
    return add_seg(c, true, NULL, len, false);
}

static void le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void hdr(uint8_t h[16], uint32_t type, uint64_t sector)
{
    memset(h, 0, 16);
    le32(h, type);
    le32(h + 4, 0x5a5a5a5a); /* reserved (ioprio): ignored */
    le64(h + 8, sector);
}

static void range(uint8_t r[16], uint64_t sector, uint32_t num, uint32_t flags)
{
    le64(r, sector);
    le32(r + 8, num);
    le32(r + 12, flags);
}

static const struct blk_limits base_limits = {
    .capacity = 1000,
    .seg_max = 8,
    .size_max = 65536,
    .features = F(VIRTIO_BLK_F_FLUSH) | F(VIRTIO_BLK_F_DISCARD) | F(VIRTIO_BLK_F_WRITE_ZEROES) |
                F(VIRTIO_BLK_F_SEG_MAX) | F(VIRTIO_BLK_F_SIZE_MAX),
    .max_discard_sectors = 100,
    .max_discard_seg = 4,
    .max_write_zeroes_sectors = 200,
    .max_write_zeroes_seg = 4,
};

/* A chain: header (type, sector), one readable data segment of out_len (if any), one
 * writable data segment of in_len (if any), then a 1-byte status segment. */
static struct chain *simple(uint32_t type, uint64_t sector, uint32_t out_len, uint32_t in_len)
{
    struct chain *c = chain_new();
    uint8_t h[16];

    hdr(h, type, sector);
    out(c, h, 16);
    if (out_len)
        out(c, NULL, out_len);
    if (in_len)
        in(c, in_len);
    in(c, 1);
    return c;
}

static uint8_t parse(struct chain *c, const struct blk_limits *lim, struct blk_request *req)
{
    const char *why = NULL;
    uint8_t st = blk_req_parse(&c->elem, lim, req, &why);
    if (st != VIRTIO_BLK_S_OK)
        assert_non_null(why);
    return st;
}

/* ------------------------------------------------------------------ layouts */

static void read_request_points_at_writable_data_and_status(void **state)
{
    g_autoptr(chain) c = chain_new();
    struct blk_request req;
    uint8_t h[16];

    hdr(h, VIRTIO_BLK_T_IN, 7);
    out(c, h, 16);
    in(c, 512);
    in(c, 1024);
    uint8_t *status = in(c, 1);
    assert_int_equal(parse(c, &base_limits, &req), VIRTIO_BLK_S_OK);
    assert_int_equal(req.type, VIRTIO_BLK_T_IN);
    assert_int_equal(req.sector, 7);
    assert_int_equal(req.data_seg, 1);
    assert_int_equal(req.data_nseg, 2);
    assert_int_equal(req.data_off, 0);
    assert_int_equal(req.data_len, 1536);
    assert_ptr_equal(req.status, status);
}

static void write_request_points_at_readable_data(void **state)
{
    g_autoptr(chain) c = simple(VIRTIO_BLK_T_OUT, 0, 4096, 0);
    struct blk_request req;

    assert_int_equal(parse(c, &base_limits, &req), VIRTIO_BLK_S_OK);
    assert_int_equal(req.data_seg, 1);
    assert_int_equal(req.data_nseg, 1);
    assert_int_equal(req.data_len, 4096);
    assert_ptr_equal(req.status, c->seg[2].addr);
}

static void header_spanning_segments_and_sharing_one_with_data(void **state)
{
    g_autoptr(chain) c = chain_new();
    struct blk_request req;
    uint8_t h[16], tail[11 + 512];

    hdr(h, VIRTIO_BLK_T_OUT, 0x0102030405060708ull & 0x1ff);
    out(c, h, 3);
    out(c, h + 3, 2);
    memcpy(tail, h + 5, 11);
    for (int i = 0; i < 512; i++)
        tail[11 + i] = (uint8_t)i;
    out(c, tail, sizeof(tail));
    in(c, 1);
    assert_int_equal(parse(c, &base_limits, &req), VIRTIO_BLK_S_OK);
    assert_int_equal(req.type, VIRTIO_BLK_T_OUT);
    assert_int_equal(req.sector, 0x108);
    assert_int_equal(req.data_seg, 2);
    assert_int_equal(req.data_off, 11);
    assert_int_equal(req.data_nseg, 1);
    assert_int_equal(req.data_len, 512);
    uint8_t got[512];
    assert_int_equal(blk_req_copy_from(&c->elem, &req, 0, got, sizeof(got)), 512);
    assert_memory_equal(got, tail + 11, 512);
}

static void status_shares_the_last_segment_with_read_data(void **state)
{
    g_autoptr(chain) c = simple(VIRTIO_BLK_T_IN, 0, 0, 513);
    struct blk_request req;

    assert_int_equal(c->elem.n_in, 2);
    /* drop the separate status segment: the 513-byte one now ends with the status */
    g_free(c->seg[2].addr);
    c->elem.n_in = 1;
    assert_int_equal(parse(c, &base_limits, &req), VIRTIO_BLK_S_OK);
    assert_int_equal(req.data_len, 512);
    assert_int_equal(req.data_nseg, 1);
    assert_ptr_equal(req.status, (uint8_t *)c->seg[1].addr + 512);
}

static void missing_status_is_ioerr_with_null_status(void **state)
{
    g_autoptr(chain) c = chain_new();
    g_autoptr(chain) zero = chain_new();
    struct blk_request req;
    uint8_t h[16];

    hdr(h, VIRTIO_BLK_T_OUT, 0);
    out(c, h, 16);
    out(c, NULL, 512);
    assert_int_equal(parse(c, &base_limits, &req), VIRTIO_BLK_S_IOERR);
    assert_null(req.status);

    /* writable segments of length 0 hold no status either */
    out(zero, h, 16);
    in(zero, 0);
    assert_int_equal(parse(zero, &base_limits, &req), VIRTIO_BLK_S_IOERR);
    assert_null(req.status);
}

static void header_cut_off_is_ioerr_with_status(void **state)
{
    g_autoptr(chain) c = chain_new();
    struct blk_request req;
    uint8_t h[16];

    hdr(h, VIRTIO_BLK_T_IN, 0);
    out(c, h, 15);
    uint8_t *status = in(c, 1);
    assert_int_equal(parse(c, &base_limits, &req), VIRTIO_BLK_S_IOERR);
    assert_ptr_equal(req.status, status);

    g_autoptr(chain) none = chain_new();
    in(none, 513);
    assert_int_equal(parse(none, &base_limits, &req), VIRTIO_BLK_S_IOERR);
}

static void data_on_the_wrong_side_is_ioerr(void **state)
{
    struct blk_request req;
    g_autoptr(chain) read_with_out = simple(VIRTIO_BLK_T_IN, 0, 512, 512);
    g_autoptr(chain) write_with_in = simple(VIRTIO_BLK_T_OUT, 0, 512, 512);
    g_autoptr(chain) id_with_out = simple(VIRTIO_BLK_T_GET_ID, 0, 4, VIRTIO_BLK_ID_BYTES);

    assert_int_equal(parse(read_with_out, &base_limits, &req), VIRTIO_BLK_S_IOERR);
    assert_int_equal(parse(write_with_in, &base_limits, &req), VIRTIO_BLK_S_IOERR);
    assert_int_equal(parse(id_with_out, &base_limits, &req), VIRTIO_BLK_S_IOERR);
}

/* ------------------------------------------------------------------ types */

static void flush_needs_the_feature_and_ignores_data(void **state)
{
    struct blk_limits lim = base_limits;
    struct blk_request req;
    g_autoptr(chain) plain = simple(VIRTIO_BLK_T_FLUSH, 0, 0, 0);
    g_autoptr(chain) with_data = simple(VIRTIO_BLK_T_FLUSH, 99, 7, 3);

    assert_int_equal(parse(plain, &lim, &req), VIRTIO_BLK_S_OK);
    assert_int_equal(parse(with_data, &lim, &req), VIRTIO_BLK_S_OK);
    assert_int_equal(req.data_len, 0);
    lim.features &= ~F(VIRTIO_BLK_F_FLUSH);
    assert_int_equal(parse(plain, &lim, &req), VIRTIO_BLK_S_UNSUPP);
    assert_ptr_equal(req.status, plain->seg[1].addr);
}

static void get_id_needs_exactly_20_writable_bytes(void **state)
{
    struct blk_request req;
    g_autoptr(chain) ok = simple(VIRTIO_BLK_T_GET_ID, 0, 0, VIRTIO_BLK_ID_BYTES);
    g_autoptr(chain) shorter = simple(VIRTIO_BLK_T_GET_ID, 0, 0, VIRTIO_BLK_ID_BYTES - 1);
    g_autoptr(chain) longer = simple(VIRTIO_BLK_T_GET_ID, 0, 0, VIRTIO_BLK_ID_BYTES + 1);

    assert_int_equal(parse(ok, &base_limits, &req), VIRTIO_BLK_S_OK);
    assert_int_equal(req.data_len, VIRTIO_BLK_ID_BYTES);
    assert_int_equal(blk_req_copy_to(&ok->elem, &req, 0, "vdpad-sim-disk-00001", 20), 20);
    assert_memory_equal(ok->seg[1].addr, "vdpad-sim-disk-00001", 20);
    assert_int_equal(*(uint8_t *)ok->seg[2].addr, 0); /* status untouched */
    assert_int_equal(parse(shorter, &base_limits, &req), VIRTIO_BLK_S_IOERR);
    assert_int_equal(parse(longer, &base_limits, &req), VIRTIO_BLK_S_IOERR);
}

static void unknown_and_unsupported_types_are_unsupp(void **state)
{
    const uint32_t types[] = { VIRTIO_BLK_T_SCSI_CMD, 3, 5, 10 /* GET_LIFETIME */,
                               VIRTIO_BLK_T_SECURE_ERASE, 15, 16, 18, 0x80000000u | 1,
                               0xffffffffu };
    struct blk_request req;

    for (size_t i = 0; i < G_N_ELEMENTS(types); i++) {
        g_autoptr(chain) c = simple(types[i], 0, 0, 512);
        assert_int_equal(parse(c, &base_limits, &req), VIRTIO_BLK_S_UNSUPP);
        assert_non_null(req.status);
    }
}

static void read_only_device_refuses_writes_only(void **state)
{
    struct blk_limits lim = base_limits;
    struct blk_request req;
    uint8_t r[16];
    g_autoptr(chain) rd = simple(VIRTIO_BLK_T_IN, 0, 0, 512);
    g_autoptr(chain) wr = simple(VIRTIO_BLK_T_OUT, 0, 512, 0);
    g_autoptr(chain) dc = chain_new();

    lim.features |= F(VIRTIO_BLK_F_RO);
    assert_int_equal(parse(rd, &lim, &req), VIRTIO_BLK_S_OK);
    assert_int_equal(parse(wr, &lim, &req), VIRTIO_BLK_S_IOERR);
    hdr(r, VIRTIO_BLK_T_DISCARD, 0);
    out(dc, r, 16);
    range(r, 0, 8, 0);
    out(dc, r, 16);
    in(dc, 1);
    assert_int_equal(parse(dc, &base_limits, &req), VIRTIO_BLK_S_OK);
    assert_int_equal(parse(dc, &lim, &req), VIRTIO_BLK_S_IOERR);
}

/* ------------------------------------------------------------------ bounds */

static uint8_t rw(uint32_t type, uint64_t sector, uint32_t len, const struct blk_limits *lim)
{
    g_autoptr(chain) c = type == VIRTIO_BLK_T_IN ? simple(type, sector, 0, len)
                                                 : simple(type, sector, len, 0);
    struct blk_request req;
    return parse(c, lim, &req);
}

static void io_bounds_at_the_capacity_edge(void **state)
{
    const uint32_t types[] = { VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT };

    for (size_t t = 0; t < 2; t++) {
        uint32_t ty = types[t];
        assert_int_equal(rw(ty, 999, 512, &base_limits), VIRTIO_BLK_S_OK);
        assert_int_equal(rw(ty, 998, 1024, &base_limits), VIRTIO_BLK_S_OK);
        assert_int_equal(rw(ty, 999, 1024, &base_limits), VIRTIO_BLK_S_IOERR);
        assert_int_equal(rw(ty, 1000, 512, &base_limits), VIRTIO_BLK_S_IOERR);
        assert_int_equal(rw(ty, 1000, 0, &base_limits), VIRTIO_BLK_S_OK);
        assert_int_equal(rw(ty, 1001, 0, &base_limits), VIRTIO_BLK_S_IOERR);
        /* sectors whose sum with the length wraps around */
        assert_int_equal(rw(ty, UINT64_MAX, 512, &base_limits), VIRTIO_BLK_S_IOERR);
        assert_int_equal(rw(ty, UINT64_MAX - 1, 1024, &base_limits), VIRTIO_BLK_S_IOERR);
        assert_int_equal(rw(ty, UINT64_MAX, 0, &base_limits), VIRTIO_BLK_S_IOERR);
        /* not whole sectors */
        assert_int_equal(rw(ty, 0, 511, &base_limits), VIRTIO_BLK_S_IOERR);
        assert_int_equal(rw(ty, 0, 513, &base_limits), VIRTIO_BLK_S_IOERR);
    }
    struct blk_limits huge = base_limits;
    huge.capacity = UINT64_MAX;
    assert_int_equal(rw(VIRTIO_BLK_T_IN, UINT64_MAX - 1, 512, &huge), VIRTIO_BLK_S_OK);
    assert_int_equal(rw(VIRTIO_BLK_T_IN, UINT64_MAX - 2, 1024, &huge), VIRTIO_BLK_S_OK);
    assert_int_equal(rw(VIRTIO_BLK_T_IN, UINT64_MAX - 1, 1024, &huge), VIRTIO_BLK_S_IOERR);
}

static void seg_max_counts_data_descriptors(void **state)
{
    struct blk_limits lim = base_limits;
    struct blk_request req;
    uint8_t h[16];

    lim.seg_max = 2;
    hdr(h, VIRTIO_BLK_T_IN, 0);
    g_autoptr(chain) three = chain_new();
    out(three, h, 16);
    in(three, 512);
    in(three, 512);
    in(three, 512);
    in(three, 1);
    assert_int_equal(parse(three, &lim, &req), VIRTIO_BLK_S_IOERR);
    lim.seg_max = 3;
    assert_int_equal(parse(three, &lim, &req), VIRTIO_BLK_S_OK);
    lim.seg_max = 0; /* no limit */
    assert_int_equal(parse(three, &lim, &req), VIRTIO_BLK_S_OK);

    /* a piece continuing the previous one's IOVA is one descriptor split at a region
     * boundary: it does not count again */
    lim.seg_max = 2;
    g_autoptr(chain) split = chain_new();
    out(split, h, 16);
    in(split, 512);
    add_seg(split, true, NULL, 256, false);
    add_seg(split, true, NULL, 256, true);
    in(split, 1);
    assert_int_equal(parse(split, &lim, &req), VIRTIO_BLK_S_OK);
    assert_int_equal(req.data_nseg, 3);

    /* header and status pieces are not data segments */
    g_autoptr(chain) one = simple(VIRTIO_BLK_T_OUT, 0, 512, 0);
    lim.seg_max = 1;
    assert_int_equal(parse(one, &lim, &req), VIRTIO_BLK_S_OK);
}

static void size_max_bounds_each_data_segment(void **state)
{
    struct blk_limits lim = base_limits;
    struct blk_request req;
    g_autoptr(chain) c = simple(VIRTIO_BLK_T_OUT, 0, 4096, 0);

    lim.size_max = 4096;
    assert_int_equal(parse(c, &lim, &req), VIRTIO_BLK_S_OK);
    lim.size_max = 4095;
    assert_int_equal(parse(c, &lim, &req), VIRTIO_BLK_S_IOERR);
    lim.size_max = 0; /* no limit */
    assert_int_equal(parse(c, &lim, &req), VIRTIO_BLK_S_OK);

    /* only the data part of a segment that also holds the status counts */
    g_autoptr(chain) shared = simple(VIRTIO_BLK_T_IN, 0, 0, 513);
    g_free(shared->seg[2].addr);
    shared->elem.n_in = 1;
    lim.size_max = 512;
    assert_int_equal(parse(shared, &lim, &req), VIRTIO_BLK_S_OK);
}

/* ------------------------------------------------------------------ discard, write zeroes */

/* A discard/write-zeroes chain of n ranges, split so that ranges span segments. */
static struct chain *ranges(uint32_t type, const uint8_t (*r)[16], unsigned n, unsigned extra)
{
    struct chain *c = chain_new();
    g_autofree uint8_t *all = g_malloc0(16 + 16 * n + extra);
    uint8_t h[16];

    hdr(h, type, 0);
    memcpy(all, h, 16);
    memcpy(all + 16, r, 16 * n);
    /* 10 bytes, then 17-byte pieces: header and ranges straddle segments */
    size_t len = 16 + 16 * n + extra, pos = 0;
    out(c, all, (uint32_t)MIN(10, len));
    pos = MIN(10, len);
    while (pos < len) {
        size_t piece = MIN(17, len - pos);
        out(c, all + pos, (uint32_t)piece);
        pos += piece;
    }
    in(c, 1);
    return c;
}

static void discard_and_write_zeroes_ranges_parse_across_segments(void **state)
{
    uint8_t r[3][16];
    struct blk_request req;

    range(r[0], 0, 100, 0);
    range(r[1], 900, 100, 0);
    range(r[2], 5, 1, 0);
    g_autoptr(chain) dc = ranges(VIRTIO_BLK_T_DISCARD, (const uint8_t (*)[16])r, 3, 0);
    assert_int_equal(parse(dc, &base_limits, &req), VIRTIO_BLK_S_OK);
    assert_int_equal(req.n_ranges, 3);
    assert_int_equal(req.data_len, 48);
    assert_int_equal(req.range[1].sector, 900);
    assert_int_equal(req.range[1].num_sectors, 100);
    assert_int_equal(req.range[2].sector, 5);
    assert_int_equal(req.range[2].flags, 0);

    range(r[0], 800, 200, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP);
    g_autoptr(chain) wz = ranges(VIRTIO_BLK_T_WRITE_ZEROES, (const uint8_t (*)[16])r, 1, 0);
    assert_int_equal(parse(wz, &base_limits, &req), VIRTIO_BLK_S_OK);
    assert_int_equal(req.range[0].flags, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP);
}

static uint8_t one_range(uint32_t type, uint64_t sector, uint32_t num, uint32_t flags,
                         const struct blk_limits *lim)
{
    uint8_t r[1][16];
    struct blk_request req;

    range(r[0], sector, num, flags);
    g_autoptr(chain) c = ranges(type, (const uint8_t (*)[16])r, 1, 0);
    return parse(c, lim, &req);
}

static void range_limits_bounds_and_flags(void **state)
{
    const uint32_t D = VIRTIO_BLK_T_DISCARD, W = VIRTIO_BLK_T_WRITE_ZEROES;
    const struct blk_limits *l = &base_limits;

    assert_int_equal(one_range(D, 0, 100, 0, l), VIRTIO_BLK_S_OK);
    assert_int_equal(one_range(D, 0, 101, 0, l), VIRTIO_BLK_S_IOERR);   /* max_discard_sectors */
    assert_int_equal(one_range(W, 0, 200, 0, l), VIRTIO_BLK_S_OK);
    assert_int_equal(one_range(W, 0, 201, 0, l), VIRTIO_BLK_S_IOERR);
    assert_int_equal(one_range(D, 950, 50, 0, l), VIRTIO_BLK_S_OK);
    assert_int_equal(one_range(D, 950, 51, 0, l), VIRTIO_BLK_S_IOERR);  /* capacity */
    assert_int_equal(one_range(D, UINT64_MAX, 1, 0, l), VIRTIO_BLK_S_IOERR);
    assert_int_equal(one_range(W, UINT64_MAX - 10, 20, 0, l), VIRTIO_BLK_S_IOERR);
    /* virtio 1.2 and QEMU: unmap on discard and unknown flags are UNSUPP */
    assert_int_equal(one_range(D, 0, 1, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP, l),
                     VIRTIO_BLK_S_UNSUPP);
    assert_int_equal(one_range(D, 0, 1, 2, l), VIRTIO_BLK_S_UNSUPP);
    assert_int_equal(one_range(W, 0, 1, 2, l), VIRTIO_BLK_S_UNSUPP);
    assert_int_equal(one_range(W, 0, 1, 0x80000001u, l), VIRTIO_BLK_S_UNSUPP);
    /* bounds are checked before flags, as QEMU does */
    assert_int_equal(one_range(D, 2000, 1, 2, l), VIRTIO_BLK_S_IOERR);

    struct blk_limits nofeat = base_limits;
    nofeat.features &= ~(F(VIRTIO_BLK_F_DISCARD) | F(VIRTIO_BLK_F_WRITE_ZEROES));
    assert_int_equal(one_range(D, 0, 1, 0, &nofeat), VIRTIO_BLK_S_UNSUPP);
    assert_int_equal(one_range(W, 0, 1, 0, &nofeat), VIRTIO_BLK_S_UNSUPP);
}

static void range_counts_and_lengths(void **state)
{
    uint8_t r[70][16];
    struct blk_request req;
    struct blk_limits lim = base_limits;

    for (int i = 0; i < 70; i++)
        range(r[i], (uint64_t)i, 1, 0);
    g_autoptr(chain) none = ranges(VIRTIO_BLK_T_DISCARD, (const uint8_t (*)[16])r, 0, 0);
    assert_int_equal(parse(none, &lim, &req), VIRTIO_BLK_S_IOERR);
    g_autoptr(chain) odd = ranges(VIRTIO_BLK_T_DISCARD, (const uint8_t (*)[16])r, 1, 8);
    assert_int_equal(parse(odd, &lim, &req), VIRTIO_BLK_S_IOERR);
    g_autoptr(chain) four = ranges(VIRTIO_BLK_T_DISCARD, (const uint8_t (*)[16])r, 4, 0);
    assert_int_equal(parse(four, &lim, &req), VIRTIO_BLK_S_OK);
    g_autoptr(chain) five = ranges(VIRTIO_BLK_T_WRITE_ZEROES, (const uint8_t (*)[16])r, 5, 0);
    assert_int_equal(parse(five, &lim, &req), VIRTIO_BLK_S_IOERR); /* max_write_zeroes_seg */

    /* the device allows more than we handle: UNSUPP, not a driver error */
    lim.max_discard_seg = 100;
    g_autoptr(chain) many = ranges(VIRTIO_BLK_T_DISCARD, (const uint8_t (*)[16])r, 65, 0);
    assert_int_equal(parse(many, &lim, &req), VIRTIO_BLK_S_UNSUPP);
    g_autoptr(chain) max = ranges(VIRTIO_BLK_T_DISCARD, (const uint8_t (*)[16])r,
                                  BLK_REQ_MAX_RANGES, 0);
    assert_int_equal(parse(max, &lim, &req), VIRTIO_BLK_S_OK);
    assert_int_equal(req.n_ranges, BLK_REQ_MAX_RANGES);
    assert_int_equal(req.range[63].sector, 63);

    /* writable bytes besides the status */
    g_autoptr(chain) extra_in = ranges(VIRTIO_BLK_T_DISCARD, (const uint8_t (*)[16])r, 1, 0);
    in(extra_in, 1);
    assert_int_equal(parse(extra_in, &base_limits, &req), VIRTIO_BLK_S_IOERR);
}

/* ------------------------------------------------------------------ copies */

static void copies_cross_segment_boundaries_and_stop_at_data_end(void **state)
{
    g_autoptr(chain) c = chain_new();
    struct blk_request req;
    uint8_t h[16], pattern[1024], back[1024];

    for (int i = 0; i < 1024; i++)
        pattern[i] = (uint8_t)(i * 7 + 1);
    hdr(h, VIRTIO_BLK_T_IN, 0);
    out(c, h, 16);
    in(c, 3);
    in(c, 700);
    in(c, 0);
    in(c, 322); /* 321 data bytes, then the status */
    assert_int_equal(parse(c, &base_limits, &req), VIRTIO_BLK_S_OK);
    assert_int_equal(req.data_len, 1024);
    *req.status = 0xee;

    /* in three pieces at odd offsets */
    assert_int_equal(blk_req_copy_to(&c->elem, &req, 0, pattern, 2), 2);
    assert_int_equal(blk_req_copy_to(&c->elem, &req, 2, pattern + 2, 702), 702);
    assert_int_equal(blk_req_copy_to(&c->elem, &req, 704, pattern + 704, 4096), 320);
    assert_memory_equal(c->seg[1].addr, pattern, 3);
    assert_memory_equal(c->seg[2].addr, pattern + 3, 700);
    assert_memory_equal(c->seg[4].addr, pattern + 703, 321);
    assert_int_equal(*req.status, 0xee); /* the status byte is not data */
    assert_int_equal(blk_req_copy_to(&c->elem, &req, 1024, pattern, 1), 0);
    assert_int_equal(blk_req_copy_to(&c->elem, &req, UINT64_MAX, pattern, 1), 0);

    /* the device does not read what it writes: copy_from on a read request copies nothing */
    assert_int_equal(blk_req_copy_from(&c->elem, &req, 0, back, sizeof(back)), 0);
}

static void copy_from_reads_write_data_after_a_split_header(void **state)
{
    g_autoptr(chain) c = chain_new();
    struct blk_request req;
    uint8_t h[16], data[1024], back[1024];

    for (int i = 0; i < 1024; i++)
        data[i] = (uint8_t)(i ^ 0x5a);
    hdr(h, VIRTIO_BLK_T_OUT, 1);
    uint8_t first[20];
    memcpy(first, h, 16);
    memcpy(first + 16, data, 4);
    out(c, first, 20);
    out(c, data + 4, 1000);
    out(c, data + 1004, 20);
    in(c, 1);
    assert_int_equal(parse(c, &base_limits, &req), VIRTIO_BLK_S_OK);
    assert_int_equal(req.data_seg, 0);
    assert_int_equal(req.data_off, 16);
    assert_int_equal(req.data_nseg, 3);

    memset(back, 0, sizeof(back));
    assert_int_equal(blk_req_copy_from(&c->elem, &req, 0, back, 10), 10);
    assert_int_equal(blk_req_copy_from(&c->elem, &req, 10, back + 10, 2000), 1014);
    assert_memory_equal(back, data, 1024);
    assert_int_equal(blk_req_copy_from(&c->elem, &req, 1000, back, 100), 24);
    assert_memory_equal(back, data + 1000, 24);
    /* and the device never writes into a write request's buffers */
    assert_int_equal(blk_req_copy_to(&c->elem, &req, 0, back, 16), 0);
    assert_memory_equal((uint8_t *)c->seg[0].addr + 16, data, 4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(read_request_points_at_writable_data_and_status),
        cmocka_unit_test(write_request_points_at_readable_data),
        cmocka_unit_test(header_spanning_segments_and_sharing_one_with_data),
        cmocka_unit_test(status_shares_the_last_segment_with_read_data),
        cmocka_unit_test(missing_status_is_ioerr_with_null_status),
        cmocka_unit_test(header_cut_off_is_ioerr_with_status),
        cmocka_unit_test(data_on_the_wrong_side_is_ioerr),
        cmocka_unit_test(flush_needs_the_feature_and_ignores_data),
        cmocka_unit_test(get_id_needs_exactly_20_writable_bytes),
        cmocka_unit_test(unknown_and_unsupported_types_are_unsupp),
        cmocka_unit_test(read_only_device_refuses_writes_only),
        cmocka_unit_test(io_bounds_at_the_capacity_edge),
        cmocka_unit_test(seg_max_counts_data_descriptors),
        cmocka_unit_test(size_max_bounds_each_data_segment),
        cmocka_unit_test(discard_and_write_zeroes_ranges_parse_across_segments),
        cmocka_unit_test(range_limits_bounds_and_flags),
        cmocka_unit_test(range_counts_and_lengths),
        cmocka_unit_test(copies_cross_segment_boundaries_and_stop_at_data_end),
        cmocka_unit_test(copy_from_reads_write_data_after_a_split_header),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
