/* Unit tests: the simulated block device (src/backend/sim/sim_blk.c), through the test
 * driver and the ops table. */
#include "config.h"

#include <endian.h>
#include <errno.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_ring.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include "backend/sim/sim.h"
#include "driver/virtio_driver.h"

#define F(bit) (1ull << (bit))
#define SECTOR 512u
#define DISK_BYTES (64ull << 20)

static struct vdpa_device *blk_new(const char *name, unsigned queues, uint32_t seg_max,
                                   uint32_t size_max, uint64_t features)
{
    g_autoptr(GError) err = NULL;
    struct sim_blk_config cfg = {
        .name = name,
        .size_bytes = DISK_BYTES,
        .queues = queues,
        .seg_max = seg_max,
        .size_max = size_max,
        .features = features,
    };
    struct vdpa_device *dev = sim_blk_new(&cfg, &err);

    if (!dev)
        fail_msg("sim_blk_new: %s", err->message);
    return dev;
}

static struct vdrv *drv_new(struct vdpa_device *dev, uint64_t features, bool indirect)
{
    g_autoptr(GError) err = NULL;
    struct vdrv_config cfg = { .features = features, .indirect = indirect, .timeout_ms = 2000 };
    struct vdrv *drv = vdrv_new(dev, &cfg, &err);

    if (!drv)
        fail_msg("vdrv_new: %s", err->message);
    return drv;
}

static uint64_t stat(struct vdpa_device *dev, unsigned idx, const char *name)
{
    struct vdpa_vq_stats st;
    uint64_t v = 0;

    assert_int_equal(dev->ops->get_vq_stats(dev, idx, &st, NULL), 0);
    if (!vdpa_vq_stats_get(&st, name, &v))
        fail_msg("queue %u has no counter %s", idx, name);
    return v;
}

/* A request that must complete; returns the status. */
static uint8_t req(struct vdrv *drv, unsigned q, uint32_t type, uint64_t sector, void *data,
                   size_t len)
{
    g_autoptr(GError) err = NULL;
    uint8_t status = 0xee;

    if (vdrv_blk_request(drv, q, type, sector, data, len, &status, &err) < 0)
        fail_msg("request type %u sector %llu: %s", type, (unsigned long long)sector,
                 err->message);
    return status;
}

static uint8_t req_segs(struct vdrv *drv, unsigned q, uint32_t type, uint64_t sector,
                        void *data, size_t len, size_t seg)
{
    g_autoptr(GError) err = NULL;
    uint8_t status = 0xee;

    if (vdrv_blk_request_segs(drv, q, type, sector, data, len, seg, &status, &err) < 0)
        fail_msg("request type %u sector %llu: %s", type, (unsigned long long)sector,
                 err->message);
    return status;
}

/* Sector contents that name the sector and a generation. */
static void fill_sector(uint8_t *p, uint64_t sector, uint32_t gen)
{
    for (unsigned i = 0; i < SECTOR; i += 16) {
        uint64_t a = sector, b = (uint64_t)gen << 32 | i;

        memcpy(p + i, &a, 8);
        memcpy(p + i + 8, &b, 8);
    }
}

static bool is_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return false;
    return true;
}

static struct virtio_blk_discard_write_zeroes range(uint64_t sector, uint32_t n)
{
    return (struct virtio_blk_discard_write_zeroes){ .sector = htole64(sector),
                                                     .num_sectors = htole32(n) };
}

/* ------------------------------------------------------------------ */

static void config_space_and_features(void **state)
{
    g_autoptr(vdpa_device) dev = blk_new("b0", 2, 0, 0, 0);
    struct virtio_blk_config c;

    assert_int_equal(dev->ops->get_device_id(dev), VIRTIO_ID_BLOCK);
    assert_int_equal(dev->ops->get_device_features(dev), sim_blk_supported_features());
    assert_int_equal(dev->ops->get_vq_count(dev), 2);
    assert_int_equal(dev->ops->get_config_size(dev), sizeof(c));
    dev->ops->get_config(dev, 0, &c, sizeof(c));
    assert_int_equal(le64toh(c.capacity), DISK_BYTES / SECTOR);
    assert_int_equal(le32toh(c.seg_max), 128);
    assert_int_equal(le32toh(c.size_max), 1u << 20);
    assert_int_equal(le32toh(c.blk_size), 512);
    assert_int_equal(le16toh(c.num_queues), 2);
    assert_true(le32toh(c.max_discard_sectors) > 0);
    assert_true(le32toh(c.max_discard_seg) > 0);
    assert_true(le32toh(c.max_write_zeroes_sectors) > 0);
    assert_int_equal(c.write_zeroes_may_unmap, 1);
    assert_false(sim_blk_supported_features() & F(26));
}

static void create_refuses_bad_sizes_and_queue_counts(void **state)
{
    struct sim_blk_config cfg = { .name = "bad", .size_bytes = 1000, .queues = 1 };
    g_autoptr(GError) e1 = NULL, e2 = NULL, e3 = NULL;

    assert_null(sim_blk_new(&cfg, &e1));
    assert_int_equal(e1->code, EINVAL);
    cfg.size_bytes = 4096;
    cfg.queues = 0;
    assert_null(sim_blk_new(&cfg, &e2));
    cfg.queues = 1;
    cfg.features = F(VIRTIO_BLK_F_RO); /* not supported */
    assert_null(sim_blk_new(&cfg, &e3));
}

static void write_then_read_back_across_sectors_and_queues(void **state)
{
    g_autoptr(vdpa_device) dev = blk_new("b0", 2, 0, 0, 0);
    g_autoptr(vdrv) drv = drv_new(dev, 0, false);
    uint8_t buf[SECTOR], back[SECTOR];
    const uint64_t cap = DISK_BYTES / SECTOR;

    assert_int_equal(vdrv_blk_queues(drv), 2);
    assert_int_equal(vdrv_blk_capacity(drv), cap);
    /* single sectors spread over the disk, alternating queues */
    for (uint64_t i = 0; i < 500; i++) {
        uint64_t s = (i * 2654435761u) % cap;

        fill_sector(buf, s, 1);
        assert_int_equal(req(drv, i % 2, VIRTIO_BLK_T_OUT, s, buf, SECTOR), VIRTIO_BLK_S_OK);
    }
    for (uint64_t i = 0; i < 500; i++) {
        uint64_t s = (i * 2654435761u) % cap;

        fill_sector(buf, s, 1);
        assert_int_equal(req(drv, (i + 1) % 2, VIRTIO_BLK_T_IN, s, back, SECTOR),
                         VIRTIO_BLK_S_OK);
        assert_memory_equal(back, buf, SECTOR);
    }
    /* large multi-segment requests, including the last sectors of the disk */
    g_autofree uint8_t *big = g_malloc(256 * 1024), *big_back = g_malloc(256 * 1024);
    for (unsigned k = 0; k < 512; k++)
        fill_sector(big + k * SECTOR, 1000 + k, 2);
    assert_int_equal(req_segs(drv, 0, VIRTIO_BLK_T_OUT, 1000, big, 256 * 1024, 4096),
                     VIRTIO_BLK_S_OK);
    assert_int_equal(req_segs(drv, 1, VIRTIO_BLK_T_IN, 1000, big_back, 256 * 1024, 3000),
                     VIRTIO_BLK_S_OK);
    assert_memory_equal(big, big_back, 256 * 1024);
    assert_int_equal(req(drv, 1, VIRTIO_BLK_T_OUT, cap - 8, big, 8 * SECTOR), VIRTIO_BLK_S_OK);
    assert_int_equal(req(drv, 0, VIRTIO_BLK_T_IN, cap - 8, big_back, 8 * SECTOR),
                     VIRTIO_BLK_S_OK);
    assert_memory_equal(big, big_back, 8 * SECTOR);
    /* counters */
    assert_int_equal(stat(dev, 0, "writes") + stat(dev, 1, "writes"), 502);
    assert_int_equal(stat(dev, 0, "reads") + stat(dev, 1, "reads"), 502);
    assert_int_equal(stat(dev, 0, "written_bytes") + stat(dev, 1, "written_bytes"),
                     500 * SECTOR + 256 * 1024 + 8 * SECTOR);
    assert_int_equal(stat(dev, 0, "read_bytes") + stat(dev, 1, "read_bytes"),
                     500 * SECTOR + 256 * 1024 + 8 * SECTOR);
    assert_int_equal(stat(dev, 0, "requests") + stat(dev, 1, "requests"), 1004);
    assert_int_equal(stat(dev, 0, "errors") + stat(dev, 1, "errors"), 0);
    assert_int_equal(stat(dev, 0, "completed_desc") + stat(dev, 1, "completed_desc"), 1004);
}

static void indirect_descriptors_carry_requests_too(void **state)
{
    g_autoptr(vdpa_device) dev = blk_new("b0", 1, 0, 0, 0);
    g_autoptr(vdrv) drv = drv_new(dev, 0, true);
    g_autofree uint8_t *buf = g_malloc(64 * SECTOR), *back = g_malloc(64 * SECTOR);

    assert_true(vdrv_features(drv) & F(VIRTIO_RING_F_INDIRECT_DESC));
    for (unsigned k = 0; k < 64; k++)
        fill_sector(buf + k * SECTOR, 77 + k, 3);
    assert_int_equal(req_segs(drv, 0, VIRTIO_BLK_T_OUT, 77, buf, 64 * SECTOR, SECTOR),
                     VIRTIO_BLK_S_OK);
    assert_int_equal(req_segs(drv, 0, VIRTIO_BLK_T_IN, 77, back, 64 * SECTOR, 1024),
                     VIRTIO_BLK_S_OK);
    assert_memory_equal(buf, back, 64 * SECTOR);
}

static void get_id_returns_the_serial_padded_or_truncated(void **state)
{
    g_autoptr(vdpa_device) dev = blk_new("d0", 1, 0, 0, 0);
    g_autoptr(vdrv) drv = drv_new(dev, 0, false);
    g_autoptr(vdpa_device) dev2 = blk_new("a-rather-long-name", 1, 0, 0, 0);
    g_autoptr(vdrv) drv2 = drv_new(dev2, 0, false);
    char id[VIRTIO_BLK_ID_BYTES];
    const char want[VIRTIO_BLK_ID_BYTES] = "vdpad-sim-d0";

    memset(id, 'x', sizeof(id));
    assert_int_equal(req(drv, 0, VIRTIO_BLK_T_GET_ID, 0, id, sizeof(id)), VIRTIO_BLK_S_OK);
    assert_memory_equal(id, want, sizeof(id)); /* NUL-padded */
    assert_int_equal(req(drv2, 0, VIRTIO_BLK_T_GET_ID, 0, id, sizeof(id)), VIRTIO_BLK_S_OK);
    assert_memory_equal(id, "vdpad-sim-a-rather-l", sizeof(id)); /* 20 bytes, no NUL */
}

static void flush_completes_and_is_counted(void **state)
{
    g_autoptr(vdpa_device) dev = blk_new("b0", 1, 0, 0, 0);
    g_autoptr(vdrv) drv = drv_new(dev, 0, false);

    assert_int_equal(req(drv, 0, VIRTIO_BLK_T_FLUSH, 0, NULL, 0), VIRTIO_BLK_S_OK);
    assert_int_equal(req(drv, 0, VIRTIO_BLK_T_FLUSH, 0, NULL, 0), VIRTIO_BLK_S_OK);
    assert_int_equal(stat(dev, 0, "flushes"), 2);
}

static void discard_and_write_zeroes_read_back_zeroes_exactly_in_range(void **state)
{
    g_autoptr(vdpa_device) dev = blk_new("b0", 1, 0, 0, 0);
    g_autoptr(vdrv) drv = drv_new(dev, 0, false);
    const unsigned n = 200; /* sectors 0..199 span several pages */
    g_autofree uint8_t *buf = g_malloc(n * SECTOR), *back = g_malloc(n * SECTOR);
    struct virtio_blk_discard_write_zeroes r[2];

    for (unsigned k = 0; k < n; k++)
        fill_sector(buf + k * SECTOR, k, 4);
    assert_int_equal(req(drv, 0, VIRTIO_BLK_T_OUT, 0, buf, n * SECTOR), VIRTIO_BLK_S_OK);
    /* unaligned ranges: partial pages at both ends, whole pages inside */
    r[0] = range(3, 50);   /* 3..52 */
    r[1] = range(100, 17); /* 100..116 */
    assert_int_equal(req(drv, 0, VIRTIO_BLK_T_DISCARD, 0, r, sizeof(r)), VIRTIO_BLK_S_OK);
    r[0] = range(150, 9);
    assert_int_equal(req(drv, 0, VIRTIO_BLK_T_WRITE_ZEROES, 0, r, sizeof(r[0])),
                     VIRTIO_BLK_S_OK);
    assert_int_equal(req(drv, 0, VIRTIO_BLK_T_IN, 0, back, n * SECTOR), VIRTIO_BLK_S_OK);
    for (unsigned k = 0; k < n; k++) {
        bool zeroed = (k >= 3 && k < 53) || (k >= 100 && k < 117) || (k >= 150 && k < 159);

        if (zeroed)
            assert_true(is_zero(back + k * SECTOR, SECTOR));
        else
            assert_memory_equal(back + k * SECTOR, buf + k * SECTOR, SECTOR);
    }
    assert_int_equal(stat(dev, 0, "discards"), 1);
    assert_int_equal(stat(dev, 0, "write_zeroes"), 1);
    /* a discarded range can be written again */
    assert_int_equal(req(drv, 0, VIRTIO_BLK_T_OUT, 10, buf, SECTOR), VIRTIO_BLK_S_OK);
    assert_int_equal(req(drv, 0, VIRTIO_BLK_T_IN, 10, back, SECTOR), VIRTIO_BLK_S_OK);
    assert_memory_equal(back, buf, SECTOR);
}

static void out_of_range_requests_are_ioerr_and_touch_nothing(void **state)
{
    g_autoptr(vdpa_device) dev = blk_new("b0", 1, 0, 0, 0);
    g_autoptr(vdrv) drv = drv_new(dev, 0, false);
    const uint64_t cap = DISK_BYTES / SECTOR;
    uint8_t last[SECTOR], two[2 * SECTOR], back[SECTOR];
    struct virtio_blk_discard_write_zeroes r[2];

    fill_sector(last, cap - 1, 5);
    assert_int_equal(req(drv, 0, VIRTIO_BLK_T_OUT, cap - 1, last, SECTOR), VIRTIO_BLK_S_OK);
    /* crossing the end */
    memset(two, 0x55, sizeof(two));
    assert_int_equal(req(drv, 0, VIRTIO_BLK_T_OUT, cap - 1, two, sizeof(two)),
                     VIRTIO_BLK_S_IOERR);
    assert_int_equal(req(drv, 0, VIRTIO_BLK_T_IN, cap - 1, two, sizeof(two)),
                     VIRTIO_BLK_S_IOERR);
    assert_int_equal(req(drv, 0, VIRTIO_BLK_T_IN, cap, back, SECTOR), VIRTIO_BLK_S_IOERR);
    assert_int_equal(req(drv, 0, VIRTIO_BLK_T_OUT, UINT64_MAX / 256, last, SECTOR),
                     VIRTIO_BLK_S_IOERR);
    /* a discard whose second range is out of range applies neither */
    r[0] = range(cap - 1, 1);
    r[1] = range(cap, 1);
    assert_int_equal(req(drv, 0, VIRTIO_BLK_T_DISCARD, 0, r, sizeof(r)), VIRTIO_BLK_S_IOERR);
    assert_int_equal(req(drv, 0, VIRTIO_BLK_T_IN, cap - 1, back, SECTOR), VIRTIO_BLK_S_OK);
    assert_memory_equal(back, last, SECTOR);
    assert_int_equal(stat(dev, 0, "errors"), 5);
    assert_false(dev->ops->get_status(dev) & VIRTIO_CONFIG_S_NEEDS_RESET);
}

static void unknown_and_unnegotiated_types_are_unsupp(void **state)
{
    g_autoptr(vdpa_device) dev = blk_new("b0", 1, 0, 0, 0);
    g_autoptr(vdrv) drv = drv_new(dev, sim_blk_supported_features() &
                                           ~(F(VIRTIO_BLK_F_DISCARD) |
                                             F(VIRTIO_BLK_F_WRITE_ZEROES)),
                                  false);
    struct virtio_blk_discard_write_zeroes r = range(0, 1);
    uint8_t buf[SECTOR];

    assert_int_equal(req(drv, 0, 0x7f, 0, NULL, 0), VIRTIO_BLK_S_UNSUPP);
    assert_int_equal(req(drv, 0, VIRTIO_BLK_T_DISCARD, 0, &r, sizeof(r)), VIRTIO_BLK_S_UNSUPP);
    assert_int_equal(req(drv, 0, VIRTIO_BLK_T_WRITE_ZEROES, 0, &r, sizeof(r)),
                     VIRTIO_BLK_S_UNSUPP);
    assert_int_equal(stat(dev, 0, "unsupported"), 3);
    assert_int_equal(req(drv, 0, VIRTIO_BLK_T_IN, 0, buf, SECTOR), VIRTIO_BLK_S_OK);
}

static void seg_max_and_size_max_are_honoured(void **state)
{
    g_autoptr(vdpa_device) dev = blk_new("b0", 1, 4, 4096, 0);
    g_autoptr(vdrv) drv = drv_new(dev, 0, false);
    g_autofree uint8_t *buf = g_malloc0(8192);
    struct virtio_blk_config c;

    dev->ops->get_config(dev, 0, &c, sizeof(c));
    assert_int_equal(le32toh(c.seg_max), 4);
    assert_int_equal(le32toh(c.size_max), 4096);
    /* 4 data segments: fine; 5: refused */
    assert_int_equal(req_segs(drv, 0, VIRTIO_BLK_T_OUT, 0, buf, 4 * SECTOR, SECTOR),
                     VIRTIO_BLK_S_OK);
    assert_int_equal(req_segs(drv, 0, VIRTIO_BLK_T_OUT, 0, buf, 5 * SECTOR, SECTOR),
                     VIRTIO_BLK_S_IOERR);
    /* a 4096-byte segment is fine, an 8192-byte one is not */
    assert_int_equal(req_segs(drv, 0, VIRTIO_BLK_T_IN, 0, buf, 4096, 4096), VIRTIO_BLK_S_OK);
    assert_int_equal(req_segs(drv, 0, VIRTIO_BLK_T_IN, 0, buf, 8192, 8192), VIRTIO_BLK_S_IOERR);
    assert_int_equal(req_segs(drv, 0, VIRTIO_BLK_T_IN, 0, buf, 8192, 4096), VIRTIO_BLK_S_OK);
    assert_int_equal(stat(dev, 0, "errors"), 2);
}

static void hostile_request_breaks_only_its_queue(void **state)
{
    g_autoptr(vdpa_device) dev = blk_new("b0", 2, 0, 0, 0);
    g_autoptr(vdrv) drv = drv_new(dev, 0, false);
    uint64_t iova, size;
    uint8_t buf[SECTOR];

    vdrv_guest_memory(drv, &iova, &size);
    struct vring_buf bad[2] = { { iova + size + 4096, 16 }, { iova, 1 } };
    assert_int_equal(vdrv_post_raw(drv, 0, bad, 1, 1, NULL), 0);
    assert_true(vdrv_config_signalled(drv, 2000));
    assert_true(dev->ops->get_status(dev) & VIRTIO_CONFIG_S_NEEDS_RESET);
    assert_int_equal(stat(dev, 0, "errors"), 1);
    assert_int_equal(req(drv, 1, VIRTIO_BLK_T_IN, 0, buf, SECTOR), VIRTIO_BLK_S_OK);
    assert_int_equal(vdrv_reset(drv, NULL), 0);
    assert_int_equal(req(drv, 0, VIRTIO_BLK_T_IN, 0, buf, SECTOR), VIRTIO_BLK_S_OK);
}

static void reset_keeps_the_disk_and_clears_the_device_state(void **state)
{
    g_autoptr(vdpa_device) dev = blk_new("b0", 1, 0, 0, 0);
    g_autoptr(vdrv) drv = drv_new(dev, 0, false);
    uint8_t buf[SECTOR], back[SECTOR];
    struct vdpa_vq_state st;

    fill_sector(buf, 9, 6);
    assert_int_equal(req(drv, 0, VIRTIO_BLK_T_OUT, 9, buf, SECTOR), VIRTIO_BLK_S_OK);
    assert_int_equal(dev->ops->reset(dev, NULL), 0);
    assert_int_equal(dev->ops->get_status(dev), 0);
    assert_false(dev->ops->get_vq_ready(dev, 0));
    assert_int_equal(dev->ops->get_vq_state(dev, 0, &st, NULL), 0);
    assert_int_equal(st.avail_index, 0);
    assert_int_equal(stat(dev, 0, "writes"), 1); /* counters survive */
    assert_int_equal(vdrv_reset(drv, NULL), 0);
    assert_int_equal(req(drv, 0, VIRTIO_BLK_T_IN, 9, back, SECTOR), VIRTIO_BLK_S_OK);
    assert_memory_equal(back, buf, SECTOR);
}

static void suspend_holds_requests_until_resume(void **state)
{
    g_autoptr(vdpa_device) dev = blk_new("b0", 1, 0, 0, 0);
    g_autoptr(GError) err = NULL;
    struct vdrv_config cfg = { .timeout_ms = 150 };
    g_autoptr(vdrv) drv = vdrv_new(dev, &cfg, &err);
    struct vdpa_vq_state st;
    uint8_t buf[SECTOR], status;

    assert_non_null(drv);
    assert_int_equal(req(drv, 0, VIRTIO_BLK_T_IN, 0, buf, SECTOR), VIRTIO_BLK_S_OK);
    assert_int_equal(dev->ops->suspend(dev, NULL), 0);
    /* the device does not take the request while suspended */
    assert_int_equal(vdrv_blk_request(drv, 0, VIRTIO_BLK_T_IN, 0, buf, SECTOR, &status, &err),
                     -ETIMEDOUT);
    assert_int_equal(dev->ops->get_vq_state(dev, 0, &st, NULL), 0);
    assert_int_equal(st.avail_index, 1);
    assert_int_equal(stat(dev, 0, "requests"), 1);
    /* after resume it does, although the kick came while suspended */
    assert_int_equal(dev->ops->resume(dev, NULL), 0);
    for (int i = 0; i < 200 && stat(dev, 0, "requests") < 2; i++)
        g_usleep(5000);
    assert_int_equal(stat(dev, 0, "requests"), 2);
    assert_int_equal(dev->ops->get_vq_state(dev, 0, &st, NULL), 0);
    assert_int_equal(st.avail_index, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(config_space_and_features),
        cmocka_unit_test(create_refuses_bad_sizes_and_queue_counts),
        cmocka_unit_test(write_then_read_back_across_sectors_and_queues),
        cmocka_unit_test(indirect_descriptors_carry_requests_too),
        cmocka_unit_test(get_id_returns_the_serial_padded_or_truncated),
        cmocka_unit_test(flush_completes_and_is_counted),
        cmocka_unit_test(discard_and_write_zeroes_read_back_zeroes_exactly_in_range),
        cmocka_unit_test(out_of_range_requests_are_ioerr_and_touch_nothing),
        cmocka_unit_test(unknown_and_unnegotiated_types_are_unsupp),
        cmocka_unit_test(seg_max_and_size_max_are_honoured),
        cmocka_unit_test(hostile_request_breaks_only_its_queue),
        cmocka_unit_test(reset_keeps_the_disk_and_clears_the_device_state),
        cmocka_unit_test(suspend_holds_requests_until_resume),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
