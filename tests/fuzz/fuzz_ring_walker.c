/* Fuzz target: the split ring's device-side walker (and the driver's used-ring checks)
 * against arbitrary ring memory.
 *
 * Input layout (short inputs are zero-padded; see tests/fuzz/gen_ring_seeds.py):
 *   byte 0      num = 1 << (b % 8)                      (1 .. 128)
 *   byte 1      bit 0 event_idx, bit 1 indirect, bit 2 punch a hole in the RW region,
 *               bit 3 also run the driver side against the used ring, bit 4 unpop and
 *               re-pop every chain
 *   bytes 2-3   base (last_avail = used idx), little endian
 *   byte 4      max_segs (0 = VRING_MAX_SEGS)
 *   byte 5      used entries per flush (1 + b % 8)
 *   byte 6      chains the driver side adds (driver mode)
 *   byte 7      reserved
 *   then        descriptor table (16 * num), avail ring, used ring (virtio sizes), then up
 *               to DATA_SIZE bytes of buffer memory.
 *
 * Guest memory (IOVA -> local):
 *   0x10000 +0x800  RW  data[0, 0x800)      (bit 2: 0x10400 +0x100 unmapped)
 *   0x10800 +0x400  RO  data[0x800, 0xc00)
 *   0x10c00 +0x100  --  hole (data[0xc00, 0xd00) not mapped)
 *   0x10d00 +0x300  WO  data[0xd00, 0x1000)
 *   0x11000 +0x400  RW  data2 (adjacent IOVA, separate local buffer)
 *   2^64 - 0x100    RW  top[0, 0x100) (ends at the last IOVA)
 */
#include "config.h"

#include <endian.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dirty_log/dirty_log.h"
#include "iova/iova_map.h"
#include "virtio/split_ring.h"

#define HDR_SIZE 8
#define DATA_SIZE 0x1000
#define DATA_IOVA 0x10000ull
#define DATA2_SIZE 0x400
#define DATA2_IOVA 0x11000ull
#define TOP_SIZE 0x100
#define TOP_IOVA (UINT64_MAX - TOP_SIZE + 1)
#define USED_IOVA 0x80000000ull

#define CHECK(x)                                                                               \
    do {                                                                                       \
        if (!(x))                                                                              \
            abort();                                                                           \
    } while (0)

/* One local dirty log for the whole run, covering guest-physical [0, 4 GiB): marks of the
 * top region fall outside it and are dropped (with one rate-limited warning per run). */
#define LOG_WORDS (0x100000000ull / DIRTY_LOG_WORD_SPAN)

static struct dirty_log *the_log(void)
{
    static uint64_t words[LOG_WORDS];
    static struct dirty_log *log;

    if (!log)
        log = dirty_log_new_local(words, LOG_WORDS);
    return log;
}

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t size);

static uint8_t data[DATA_SIZE], data2[DATA2_SIZE], top[TOP_SIZE];

/* Every segment must lie inside one of the buffers mapped above. */
static void check_seg(const struct vring_seg *s)
{
    const uint8_t *p = s->addr;
    static const struct {
        const uint8_t *base;
        size_t size;
    } bufs[] = { { data, DATA_SIZE }, { data2, DATA2_SIZE }, { top, TOP_SIZE } };
    bool inside = false;

    CHECK(s->len > 0);
    for (size_t i = 0; i < sizeof(bufs) / sizeof(bufs[0]); i++)
        inside |= p >= bufs[i].base && p + s->len <= bufs[i].base + bufs[i].size;
    CHECK(inside);
}

static void touch(const struct vring_elem *e)
{
    uint64_t out = 0, in = 0;

    CHECK(e->n_out + e->n_in <= e->max_segs);
    for (unsigned i = 0; i < e->n_out + e->n_in; i++) {
        volatile uint8_t *p = e->seg[i].addr;

        check_seg(&e->seg[i]);
        if (i < e->n_out) {
            out += e->seg[i].len;
            (void)p[0];
            (void)p[e->seg[i].len - 1];
        } else {
            in += e->seg[i].len;
            p[0] = 0xa5;
            p[e->seg[i].len - 1] = 0x5a;
        }
    }
    CHECK(out == e->out_bytes && in == e->in_bytes);
    CHECK(out + in <= (1ull << 32));
}

static bool same_elem(const struct vring_elem *a, const struct vring_elem *b)
{
    if (a->head != b->head || a->n_out != b->n_out || a->n_in != b->n_in ||
        a->out_bytes != b->out_bytes || a->in_bytes != b->in_bytes)
        return false;
    for (unsigned i = 0; i < a->n_out + a->n_in; i++)
        if (a->seg[i].iova != b->seg[i].iova || a->seg[i].addr != b->seg[i].addr ||
            a->seg[i].len != b->seg[i].len)
            return false;
    return true;
}

static struct iova_map *make_map(bool hole)
{
    struct iova_map *map = iova_map_new();

    CHECK(iova_map_add(map, DATA_IOVA, 0x800, data, IOVA_PERM_RW, NULL) == 0);
    CHECK(iova_map_add(map, DATA_IOVA + 0x800, 0x400, data + 0x800, IOVA_PERM_READ, NULL) == 0);
    CHECK(iova_map_add(map, DATA_IOVA + 0xd00, 0x300, data + 0xd00, IOVA_PERM_WRITE, NULL) ==
          0);
    CHECK(iova_map_add(map, DATA2_IOVA, DATA2_SIZE, data2, IOVA_PERM_RW, NULL) == 0);
    CHECK(iova_map_add(map, TOP_IOVA, TOP_SIZE, top, IOVA_PERM_RW, NULL) == 0);
    if (hole)
        CHECK(iova_map_remove(map, DATA_IOVA + 0x400, 0x100) == 0x100);
    return map;
}

static void run_device(const struct vring_layout *ring, struct iova_map *map, const uint8_t *hdr)
{
    struct vring_dev dev = { .ring = *ring, .mem = map };
    struct vring_elem *elem = vring_elem_new(0), *again = vring_elem_new(0);
    unsigned batch = 1 + hdr[5] % 8, filled = 0, flushed = 0, pops = 0;
    uint16_t base = (uint16_t)(hdr[2] | hdr[3] << 8);

    dev.event_idx = hdr[1] & 1;
    dev.indirect = hdr[1] & 2;
    dev.max_segs = hdr[4];
    dev.log = the_log();

    struct dirty_log_stats before, after;

    dirty_log_get_stats(dev.log, &before);
    dev.used_iova = USED_IOVA;
    vring_dev_start(&dev, base);
    CHECK(!dev.broken);
    vring_dev_set_notify(&dev, false);
    for (;;) {
        int r = vring_dev_pop(&dev, elem);

        if (r == 0)
            break;
        if (r < 0) {
            CHECK(dev.broken && dev.error[0] && r == dev.broken_errno);
            CHECK(vring_dev_pop(&dev, elem) == r);
            CHECK(vring_dev_avail_count(&dev) == 0);
            break;
        }
        CHECK(r == 1 && !dev.broken);
        /* avail idx does not move here, so at most num chains can be taken */
        CHECK(++pops <= ring->num);
        if (hdr[1] & 0x10) {
            /* before touch(): writes into buffers may land on indirect tables */
            vring_dev_unpop(&dev, 1);
            CHECK(vring_dev_pop(&dev, again) == 1);
            CHECK(same_elem(elem, again));
        }
        touch(elem);
        vring_dev_log_write(&dev, elem, (uint32_t)(elem->in_bytes / 2));
        vring_dev_fill(&dev, filled++, elem->head, (uint32_t)(elem->in_bytes / 2));
        if (filled == batch) {
            vring_dev_flush(&dev, filled);
            flushed += filled;
            filled = 0;
            (void)vring_dev_need_notify(&dev);
        }
    }
    if (filled && !dev.broken) {
        vring_dev_flush(&dev, filled);
        flushed += filled;
        (void)vring_dev_need_notify(&dev);
    }
    vring_dev_set_notify(&dev, true);
    (void)vring_dev_avail_count(&dev);
    CHECK(dev.used_idx == (uint16_t)(base + flushed));
    /* the used ring's page was marked whenever something was published */
    dirty_log_get_stats(dev.log, &after);
    CHECK(!flushed || after.pages_marked > before.pages_marked);
    CHECK(dev.broken || dev.last_avail == (uint16_t)(base + pops));
    vring_elem_free(elem);
    vring_elem_free(again);
}

/* The driver side adds chains over zeroed rings, then reads a used ring from the input. */
static void run_driver(const struct vring_layout *ring, size_t ring_bytes, const uint8_t *used_in,
                       const uint8_t *hdr)
{
    struct vring_drv drv = { .ring = *ring };
    unsigned num = ring->num, want = hdr[6] % (num + 1);
    uint16_t base = (uint16_t)(hdr[2] | hdr[3] << 8);
    static uint8_t in_flight[VRING_MAX_NUM];
    uint8_t tokens[128];
    struct vring_desc tables[128][2];

    memset(ring->desc, 0, ring_bytes);
    drv.event_idx = hdr[1] & 1;
    drv.indirect = true;
    CHECK(vring_drv_init(&drv, base) == 0);
    memset(in_flight, 0, num);
    for (unsigned i = 0; i < want; i++) {
        struct vring_buf b[2] = { { DATA_IOVA + i * 8, 8 }, { DATA_IOVA + 0x100 + i * 4, i } };
        int r = i % 3 == 2 ? vring_drv_add_indirect(&drv, b, 1, 1, &tokens[i], tables[i],
                                                    DATA_IOVA + 0x400 + i * 32)
                           : vring_drv_add(&drv, b, i % 3, 2 - i % 3, &tokens[i]);

        if (r == -ENOSPC)
            break;
        CHECK(r == 0);
        in_flight[i] = 1;
    }
    (void)vring_drv_publish(&drv);
    /* the device's answer: the used ring from the input, idx included */
    memcpy(ring->used, used_in, vring_used_bytes(num));
    (void)vring_drv_set_notify(&drv, true);
    for (unsigned n = 0;; n++) {
        uint32_t len = 0;
        uint8_t *tok = vring_drv_get_used(&drv, &len);

        if (!tok)
            break;
        CHECK(n < num);
        unsigned i = (unsigned)(tok - tokens);

        CHECK(i < want && in_flight[i]);
        in_flight[i] = 0;
        /* writable bytes: both buffers for i % 3 == 0, the second one otherwise */
        CHECK(len <= (i % 3 == 0 ? 8 + i : i));
    }
    CHECK(!drv.broken || drv.error[0] != '\0');
    /* the free list still adds up */
    unsigned descs = 0;

    for (unsigned i = 0; i < want; i++)
        if (in_flight[i])
            descs += i % 3 == 2 ? 1 : 2;
    CHECK(drv.broken || drv.num_free + descs == num);
    vring_drv_destroy(&drv);
}

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t size)
{
    uint8_t hdr[HDR_SIZE] = { 0 };

    memcpy(hdr, in, size < HDR_SIZE ? size : HDR_SIZE);
    in += size < HDR_SIZE ? size : HDR_SIZE;
    size -= size < HDR_SIZE ? size : HDR_SIZE;

    unsigned num = 1u << (hdr[0] % 8);
    size_t desc_bytes = vring_desc_bytes(num), avail_bytes = vring_avail_bytes(num);
    size_t used_off = (desc_bytes + avail_bytes + 3) & ~(size_t)3;
    size_t ring_bytes = used_off + vring_used_bytes(num);
    size_t input_ring = desc_bytes + avail_bytes + vring_used_bytes(num);
    /* exactly sized, so ASan sees any access past the used ring */
    void *ring_alloc = NULL;

    CHECK(posix_memalign(&ring_alloc, 16, ring_bytes) == 0);

    uint8_t *ring_mem = ring_alloc;
    uint8_t *used_in = calloc(1, vring_used_bytes(num));

    CHECK(used_in);
    memset(ring_mem, 0, ring_bytes);
    /* desc, avail and used in input order, then the buffer memory */
    size_t take = size < desc_bytes + avail_bytes ? size : desc_bytes + avail_bytes;

    memcpy(ring_mem, in, take < desc_bytes ? take : desc_bytes);
    if (take > desc_bytes)
        memcpy(ring_mem + desc_bytes, in + desc_bytes, take - desc_bytes);
    if (size > desc_bytes + avail_bytes) {
        size_t u = size - desc_bytes - avail_bytes;

        if (u > vring_used_bytes(num))
            u = vring_used_bytes(num);
        memcpy(ring_mem + used_off, in + desc_bytes + avail_bytes, u);
        memcpy(used_in, in + desc_bytes + avail_bytes, u);
    }
    memset(data, 0, sizeof(data));
    if (size > input_ring)
        memcpy(data, in + input_ring,
               size - input_ring < DATA_SIZE ? size - input_ring : DATA_SIZE);

    struct vring_layout ring = { .num = num,
                                 .desc = (void *)ring_mem,
                                 .avail = (void *)(ring_mem + desc_bytes),
                                 .used = (void *)(ring_mem + used_off) };
    struct iova_map *map = make_map(hdr[1] & 4);

    run_device(&ring, map, hdr);
    if ((hdr[1] & 8) && num > 1)
        run_driver(&ring, ring_bytes, used_in, hdr);
    iova_map_free(map);
    free(used_in);
    free(ring_mem);
    return 0;
}
