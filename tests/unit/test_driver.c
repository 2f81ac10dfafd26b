/* Unit tests: the test driver itself (src/driver/), against a deliberately faulty fake
 * device defined here. The test thread plays the device through the device side of the
 * ring library, so every fault is placed exactly. */
#include "config.h"

#include <endian.h>
#include <errno.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_net.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include "backend/vdpa_device.h"
#include "driver/virtio_driver.h"
#include "iova/iova_map.h"
#include "virtio/split_ring.h"

#define F(bit) (1ull << (bit))
#define FAKE_VQS 3

static const uint8_t mac[6] = { 0x52, 0x54, 0x00, 0x00, 0x00, 0x01 };

/* ------------------------------------------------------------------ the fake NIC */

struct fake_vq {
    unsigned num;
    uint64_t desc, avail, used;
    bool ready;
    struct vring_dev dev;
};

struct fake {
    struct vdpa_device vdev;
    uint64_t offered, features;
    uint8_t status;
    struct virtio_net_config cfg;
    struct iova_map *map;
    struct fake_vq vq[FAKE_VQS];
    struct vring_elem *elem[4];
};

static struct fake *to_fake(struct vdpa_device *d)
{
    return (struct fake *)d;
}

static uint32_t fake_id(struct vdpa_device *d) { return VIRTIO_ID_NET; }
static uint32_t fake_vendor(struct vdpa_device *d) { return 0; }
static uint64_t fake_dev_features(struct vdpa_device *d) { return to_fake(d)->offered; }
static uint64_t fake_drv_features(struct vdpa_device *d) { return to_fake(d)->features; }
static uint8_t fake_get_status(struct vdpa_device *d) { return to_fake(d)->status; }
static size_t fake_config_size(struct vdpa_device *d) { return sizeof(struct virtio_net_config); }
static uint32_t fake_generation(struct vdpa_device *d) { return 0; }
static unsigned fake_vq_count(struct vdpa_device *d) { return FAKE_VQS; }
static uint16_t fake_num_max(struct vdpa_device *d) { return 16; }
static uint16_t fake_num_min(struct vdpa_device *d) { return 1; }

static int fake_set_features(struct vdpa_device *d, uint64_t f, GError **e)
{
    to_fake(d)->features = f;
    return 0;
}

static int fake_reset(struct vdpa_device *d, GError **e)
{
    struct fake *f = to_fake(d);

    f->status = 0;
    f->features = 0;
    memset(f->vq, 0, sizeof(f->vq));
    iova_map_clear(f->map);
    return 0;
}

static int fake_set_status(struct vdpa_device *d, uint8_t s, GError **e)
{
    if (s == 0)
        return fake_reset(d, e);
    to_fake(d)->status = s;
    return 0;
}

static void fake_get_config(struct vdpa_device *d, unsigned off, void *buf, unsigned len)
{
    memcpy(buf, (uint8_t *)&to_fake(d)->cfg + off, len);
}

static void fake_set_config(struct vdpa_device *d, unsigned off, const void *buf, unsigned len)
{
}

static int fake_set_fd(struct vdpa_device *d, int fd, GError **e)
{
    return 0;
}

static int fake_set_vq_fd(struct vdpa_device *d, unsigned idx, int fd, GError **e)
{
    return 0;
}

static int fake_set_num(struct vdpa_device *d, unsigned idx, unsigned num, GError **e)
{
    to_fake(d)->vq[idx].num = num;
    return 0;
}

static int fake_set_addr(struct vdpa_device *d, unsigned idx, uint64_t desc, uint64_t avail,
                         uint64_t used, GError **e)
{
    struct fake_vq *vq = &to_fake(d)->vq[idx];

    vq->desc = desc;
    vq->avail = avail;
    vq->used = used;
    return 0;
}

static int fake_set_state(struct vdpa_device *d, unsigned idx, const struct vdpa_vq_state *s,
                          GError **e)
{
    return 0;
}

static int fake_get_state(struct vdpa_device *d, unsigned idx, struct vdpa_vq_state *s,
                          GError **e)
{
    s->avail_index = to_fake(d)->vq[idx].dev.last_avail;
    return 0;
}

static int fake_set_ready(struct vdpa_device *d, unsigned idx, bool ready, GError **e)
{
    to_fake(d)->vq[idx].ready = ready;
    return 0;
}

static bool fake_get_ready(struct vdpa_device *d, unsigned idx)
{
    return to_fake(d)->vq[idx].ready;
}

static int fake_stats(struct vdpa_device *d, unsigned idx, struct vdpa_vq_stats *s, GError **e)
{
    return -EOPNOTSUPP;
}

static struct vdpa_iova_range fake_range(struct vdpa_device *d)
{
    return (struct vdpa_iova_range){ 0x100000, UINT64_MAX };
}

static int fake_map(struct vdpa_device *d, uint64_t iova, uint64_t size, void *va, uint32_t perm,
                    GError **e)
{
    return iova_map_add(to_fake(d)->map, iova, size, va, perm, e);
}

static int fake_unmap(struct vdpa_device *d, uint64_t iova, uint64_t size, GError **e)
{
    return iova_map_remove(to_fake(d)->map, iova, size) < 0 ? -EINVAL : 0;
}

static void fake_free(struct vdpa_device *d)
{
    struct fake *f = to_fake(d);

    for (unsigned i = 0; i < G_N_ELEMENTS(f->elem); i++)
        vring_elem_free(f->elem[i]);
    iova_map_free(f->map);
    vdpa_device_cleanup(d);
    g_free(f);
}

static const struct vdpa_device_ops fake_ops = {
    .get_device_id = fake_id,
    .get_vendor_id = fake_vendor,
    .get_device_features = fake_dev_features,
    .set_driver_features = fake_set_features,
    .get_driver_features = fake_drv_features,
    .get_status = fake_get_status,
    .set_status = fake_set_status,
    .reset = fake_reset,
    .get_config_size = fake_config_size,
    .get_config = fake_get_config,
    .set_config = fake_set_config,
    .get_generation = fake_generation,
    .set_config_call = fake_set_fd,
    .get_vq_count = fake_vq_count,
    .get_vq_num_max = fake_num_max,
    .get_vq_num_min = fake_num_min,
    .set_vq_num = fake_set_num,
    .set_vq_address = fake_set_addr,
    .set_vq_state = fake_set_state,
    .get_vq_state = fake_get_state,
    .set_vq_ready = fake_set_ready,
    .get_vq_ready = fake_get_ready,
    .set_vq_kick = fake_set_vq_fd,
    .set_vq_call = fake_set_vq_fd,
    .get_vq_stats = fake_stats,
    .get_iova_range = fake_range,
    .dma_map = fake_map,
    .dma_unmap = fake_unmap,
    .free = fake_free,
};

static struct fake *fake_new(uint64_t offered)
{
    struct fake *f = g_new0(struct fake, 1);

    vdpa_device_init(&f->vdev, &fake_ops, "fake0", "fake");
    f->offered = offered;
    memcpy(f->cfg.mac, mac, 6);
    f->cfg.max_virtqueue_pairs = htole16(1);
    f->cfg.mtu = htole16(1500);
    f->map = iova_map_new();
    for (unsigned i = 0; i < G_N_ELEMENTS(f->elem); i++)
        f->elem[i] = vring_elem_new(16);
    return f;
}

/* The device side of queue idx, started on the rings the driver set up. */
static struct vring_dev *fake_ring(struct fake *f, unsigned idx)
{
    struct fake_vq *vq = &f->vq[idx];

    if (!vq->dev.ring.desc) {
        vq->dev.ring.num = vq->num;
        vq->dev.ring.desc = iova_map_ptr(f->map, vq->desc, vring_desc_bytes(vq->num),
                                         IOVA_PERM_READ);
        vq->dev.ring.avail = iova_map_ptr(f->map, vq->avail, vring_avail_bytes(vq->num),
                                          IOVA_PERM_READ);
        vq->dev.ring.used = iova_map_ptr(f->map, vq->used, vring_used_bytes(vq->num),
                                         IOVA_PERM_WRITE);
        vq->dev.mem = f->map;
        vq->dev.event_idx = f->features & F(VIRTIO_RING_F_EVENT_IDX);
        vring_dev_start(&vq->dev, 0);
        assert_false(vq->dev.broken);
    }
    return &vq->dev;
}

static const uint64_t fake_features = F(VIRTIO_F_VERSION_1) | F(VIRTIO_F_ACCESS_PLATFORM) |
                                      F(VIRTIO_NET_F_MAC) | F(VIRTIO_NET_F_MTU);

static struct vdrv *drv_on(struct vdpa_device *dev)
{
    g_autoptr(GError) err = NULL;
    struct vdrv_config cfg = { .timeout_ms = 200 };
    struct vdrv *drv = vdrv_new(dev, &cfg, &err);

    if (!drv)
        fail_msg("vdrv_new: %s", err->message);
    return drv;
}

/* Copies TX chain tx (after its 12-byte net header) into RX chain rx, with a header. */
static uint32_t fake_loop(const struct vring_elem *tx, const struct vring_elem *rx)
{
    const struct vring_seg *in = &rx->seg[rx->n_out];

    assert_int_equal(tx->n_out, 1);
    assert_true(in->len >= tx->seg[0].len);
    memset(in->addr, 0, 12);
    ((uint8_t *)in->addr)[10] = 1; /* num_buffers */
    memcpy((uint8_t *)in->addr + 12, (uint8_t *)tx->seg[0].addr + 12, tx->seg[0].len - 12);
    return tx->seg[0].len;
}

/* ------------------------------------------------------------------ tests */

static void driver_refuses_a_device_without_access_platform(void **state)
{
    struct fake *f = fake_new(F(VIRTIO_F_VERSION_1) | F(VIRTIO_NET_F_MAC));
    g_autoptr(vdpa_device) dev = &f->vdev;
    g_autoptr(GError) err = NULL;

    assert_null(vdrv_new(dev, NULL, &err));
    assert_int_equal(err->code, ENOTSUP);
    assert_non_null(strstr(err->message, "ACCESS_PLATFORM"));
}

static void driver_maps_guest_memory_at_the_start_of_the_iova_range(void **state)
{
    struct fake *f = fake_new(fake_features);
    g_autoptr(vdpa_device) dev = &f->vdev;
    g_autoptr(vdrv) drv = drv_on(dev);
    uint64_t iova, size;
    struct iova_region r;

    assert_non_null(vdrv_guest_memory(drv, &iova, &size));
    assert_int_equal(iova, 0x100000);
    assert_true(iova_map_lookup(f->map, 0x100000, &r));
    assert_int_equal(r.size, size);
    assert_int_equal(r.perm, IOVA_PERM_RW);
    assert_int_equal(vdrv_features(drv), fake_features);
    assert_true(f->status & VIRTIO_CONFIG_S_DRIVER_OK);
    assert_true(f->vq[0].ready && f->vq[1].ready);
    assert_false(f->vq[2].ready); /* no CTRL_VQ negotiated */
    assert_int_equal(f->vq[0].num, 16);
}

static void driver_detects_a_used_length_larger_than_the_buffer(void **state)
{
    struct fake *f = fake_new(fake_features);
    g_autoptr(vdpa_device) dev = &f->vdev;
    g_autoptr(vdrv) drv = drv_on(dev);
    g_autoptr(GError) err = NULL;
    struct vring_dev *tx;

    assert_int_equal(vdrv_net_run_begin(drv, 0, 1, 64, mac, NULL), 0);
    assert_int_equal(vdrv_net_tx(drv, 0, 1, NULL), 1);
    tx = fake_ring(f, 1);
    assert_int_equal(vring_dev_pop(tx, f->elem[0]), 1);
    /* a TX chain has no device-writable byte: any used length is a lie */
    vring_dev_push(tx, f->elem[0]->head, 100);
    assert_int_equal(vdrv_net_collect(drv, 0, 0, true, &err), -EIO);
    assert_non_null(strstr(err->message, "broke the ring"));
}

static void driver_detects_a_used_id_not_in_flight(void **state)
{
    struct fake *f = fake_new(fake_features);
    g_autoptr(vdpa_device) dev = &f->vdev;
    g_autoptr(vdrv) drv = drv_on(dev);
    g_autoptr(GError) err = NULL;
    struct vring_dev *rx;

    assert_int_equal(vdrv_net_rx_fill(drv, 0, 1, NULL), 1);
    rx = fake_ring(f, 0);
    assert_int_equal(vring_dev_pop(rx, f->elem[0]), 1);
    vring_dev_push(rx, (uint16_t)(f->elem[0]->head + 5), 0);
    assert_int_equal(vdrv_net_collect(drv, 0, 0, true, &err), -EIO);
}

static void driver_counts_corrupted_duplicated_and_stray_frames(void **state)
{
    struct fake *f = fake_new(fake_features);
    g_autoptr(vdpa_device) dev = &f->vdev;
    g_autoptr(vdrv) drv = drv_on(dev);
    struct vring_dev *tx, *rx;
    struct vdrv_net_result r;
    uint8_t old_frame[64 + 12];
    uint32_t len;

    assert_int_equal(vdrv_net_run_begin(drv, 0, 2, 64, mac, NULL), 0);
    assert_int_equal(vdrv_net_rx_fill(drv, 0, 4, NULL), 4);
    assert_int_equal(vdrv_net_tx(drv, 0, 2, NULL), 2);
    tx = fake_ring(f, 1);
    rx = fake_ring(f, 0);
    assert_int_equal(vring_dev_pop(tx, f->elem[0]), 1); /* frame 0 */
    assert_int_equal(vring_dev_pop(tx, f->elem[1]), 1); /* frame 1 */
    memcpy(old_frame, f->elem[0]->seg[0].addr, sizeof(old_frame));
    /* frame 0 delivered twice */
    for (int i = 0; i < 2; i++) {
        assert_int_equal(vring_dev_pop(rx, f->elem[2]), 1);
        len = fake_loop(f->elem[0], f->elem[2]);
        vring_dev_push(rx, f->elem[2]->head, len);
    }
    /* frame 1 with one payload byte flipped */
    assert_int_equal(vring_dev_pop(rx, f->elem[2]), 1);
    len = fake_loop(f->elem[1], f->elem[2]);
    ((uint8_t *)f->elem[2]->seg[f->elem[2]->n_out].addr)[12 + 50] ^= 0x10;
    vring_dev_push(rx, f->elem[2]->head, len);
    vring_dev_push(tx, f->elem[0]->head, 0);
    vring_dev_push(tx, f->elem[1]->head, 0);
    assert_int_equal(vdrv_net_collect(drv, 0, 0, true, NULL), 5);
    vdrv_net_run_result(drv, 0, &r);
    assert_int_equal(r.sent, 2);
    assert_int_equal(r.received, 1);
    assert_int_equal(r.duplicated, 1);
    assert_int_equal(r.corrupted, 1);
    assert_int_equal(r.lost, 1);
    assert_int_equal(vdrv_net_tx_pending(drv, 0), 0);

    /* a frame of the previous run arriving during a new one is stray */
    assert_int_equal(vdrv_net_run_begin(drv, 0, 1, 64, mac, NULL), 0);
    assert_int_equal(vring_dev_pop(rx, f->elem[2]), 1);
    memcpy(f->elem[2]->seg[f->elem[2]->n_out].addr, old_frame, sizeof(old_frame));
    ((uint8_t *)f->elem[2]->seg[f->elem[2]->n_out].addr)[10] = 1;
    vring_dev_push(rx, f->elem[2]->head, sizeof(old_frame));
    assert_int_equal(vdrv_net_collect(drv, 0, 0, true, NULL), 1);
    vdrv_net_run_result(drv, 0, &r);
    assert_int_equal(r.stray, 1);
    assert_int_equal(r.received + r.corrupted, 0);
}

static void driver_rejects_frames_outside_the_mtu_and_unknown_pairs(void **state)
{
    struct fake *f = fake_new(fake_features);
    g_autoptr(vdpa_device) dev = &f->vdev;
    g_autoptr(vdrv) drv = drv_on(dev);
    g_autoptr(GError) e1 = NULL, e2 = NULL, e3 = NULL;

    assert_int_equal(vdrv_net_run_begin(drv, 0, 1, 59, mac, &e1), -EINVAL);
    assert_int_equal(vdrv_net_run_begin(drv, 0, 1, 1515, mac, &e2), -EINVAL);
    assert_int_equal(vdrv_net_run_begin(drv, 1, 1, 64, mac, &e3), -EINVAL);
    assert_non_null(strstr(e3->message, "pair 1"));
    assert_int_equal(vdrv_net_run_begin(drv, 0, 1, 1514, mac, NULL), 0);
}

static void driver_times_out_when_the_device_never_answers(void **state)
{
    struct fake *f = fake_new(fake_features | F(VIRTIO_NET_F_CTRL_VQ) | F(VIRTIO_NET_F_CTRL_RX));
    g_autoptr(vdpa_device) dev = &f->vdev;
    g_autoptr(vdrv) drv = drv_on(dev);
    g_autoptr(GError) err = NULL;
    struct net_ctrl_cmd cmd = { .class = VIRTIO_NET_CTRL_RX, .cmd = VIRTIO_NET_CTRL_RX_PROMISC };
    int64_t t0 = g_get_monotonic_time();
    uint8_t ack;

    assert_int_equal(vdrv_net_ctrl(drv, &cmd, &ack, &err), -ETIMEDOUT);
    assert_true(g_get_monotonic_time() - t0 >= 150 * 1000);
    assert_true(g_get_monotonic_time() - t0 < 2000 * 1000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(driver_refuses_a_device_without_access_platform),
        cmocka_unit_test(driver_maps_guest_memory_at_the_start_of_the_iova_range),
        cmocka_unit_test(driver_detects_a_used_length_larger_than_the_buffer),
        cmocka_unit_test(driver_detects_a_used_id_not_in_flight),
        cmocka_unit_test(driver_counts_corrupted_duplicated_and_stray_frames),
        cmocka_unit_test(driver_rejects_frames_outside_the_mtu_and_unknown_pairs),
        cmocka_unit_test(driver_times_out_when_the_device_never_answers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
