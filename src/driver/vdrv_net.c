/* vdrv_net.c — the test driver's net side: numbered, patterned frames through a pair's
 * TX ring, checked as they come back on its RX ring; control commands.
 *
 * Frame: Ethernet header (dst, src 02:00:00:00:00:01, optional 802.1Q tag, type 0x88b5),
 * then magic, run id, sequence number and length, then a xorshift pattern seeded by run id
 * and sequence number up to the frame's end. */
#include "config.h"

#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <linux/virtio_config.h>
#include <linux/virtio_net.h>
#include <string.h>

#include "driver/vdrv_internal.h"
#include "util/error.h"

#define F(bit) (1ull << (bit))
#define FRAME_MAGIC 0x56445256u /* "VDRV" */
#define FRAME_ETHERTYPE 0x88b5  /* IEEE local experimental */
#define FRAME_MIN 60u
#define FRAME_HDR 20u           /* magic, run id, seq, len */

static const uint8_t frame_src[6] = { 0x02, 0, 0, 0, 0, 0x01 };

/* tokens are slot + 1 */
#define SLOT_TOKEN(slot) ((void *)(uintptr_t)((slot) + 1))
#define TOKEN_SLOT(tok) ((unsigned)((uintptr_t)(tok)-1))

/* ------------------------------------------------------------------ frames */

static uint64_t pattern_seed(uint32_t run, uint64_t seq)
{
    uint64_t x = ((uint64_t)run << 32 | 0x9e3779b9u) ^ (seq * 0x9e3779b97f4a7c15ull);

    return x ? x : 1;
}

static inline uint64_t xorshift64(uint64_t *s)
{
    uint64_t x = *s;

    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *s = x;
    return x;
}

static void pattern_fill(uint8_t *p, size_t n, uint64_t seed)
{
    size_t i = 0;

    for (; i + 8 <= n; i += 8) {
        uint64_t v = xorshift64(&seed);

        memcpy(p + i, &v, 8);
    }
    if (i < n) {
        uint64_t v = xorshift64(&seed);

        memcpy(p + i, &v, n - i);
    }
}

static bool pattern_check(const uint8_t *p, size_t n, uint64_t seed)
{
    size_t i = 0;

    for (; i + 8 <= n; i += 8) {
        uint64_t v = xorshift64(&seed);

        if (memcmp(p + i, &v, 8) != 0)
            return false;
    }
    if (i < n) {
        uint64_t v = xorshift64(&seed);

        return memcmp(p + i, &v, n - i) == 0;
    }
    return true;
}

static size_t eth_header(uint8_t *f, const uint8_t dst[6], int vlan)
{
    size_t off = 12;

    memcpy(f, dst, 6);
    memcpy(f + 6, frame_src, 6);
    if (vlan >= 0) {
        f[off++] = 0x81;
        f[off++] = 0x00;
        f[off++] = (uint8_t)(vlan >> 8);
        f[off++] = (uint8_t)vlan;
    }
    f[off++] = FRAME_ETHERTYPE >> 8;
    f[off++] = FRAME_ETHERTYPE & 0xff;
    return off;
}

static void frame_build(const struct vdrv_pair *p, uint8_t *f, uint64_t seq)
{
    size_t off = eth_header(f, p->dst, p->vlan);
    uint32_t magic = htole32(FRAME_MAGIC), run = htole32(p->run_id);
    uint32_t len = htole32((uint32_t)p->frame_len);
    uint64_t s = htole64(seq);

    memcpy(f + off, &magic, 4);
    memcpy(f + off + 4, &run, 4);
    memcpy(f + off + 8, &s, 8);
    memcpy(f + off + 16, &len, 4);
    off += FRAME_HDR;
    pattern_fill(f + off, p->frame_len - off, pattern_seed(p->run_id, seq));
}

enum frame_verdict { FRAME_OK, FRAME_CORRUPT, FRAME_STRAY };

static enum frame_verdict frame_check(const struct vdrv_pair *p, const uint8_t *f, size_t len,
                                      uint64_t *seq)
{
    size_t off = (len >= 14 && f[12] == 0x81 && f[13] == 0x00) ? 18 : 14;
    uint32_t magic, run, flen;

    if (len < off + FRAME_HDR)
        return FRAME_CORRUPT;
    memcpy(&magic, f + off, 4);
    memcpy(&run, f + off + 4, 4);
    memcpy(seq, f + off + 8, 8);
    memcpy(&flen, f + off + 16, 4);
    *seq = le64toh(*seq);
    if (le32toh(magic) != FRAME_MAGIC || le32toh(flen) != len)
        return FRAME_CORRUPT;
    if (le32toh(run) != p->run_id)
        return FRAME_STRAY;
    if (len != p->frame_len || *seq >= p->nframes)
        return FRAME_CORRUPT;
    if (!pattern_check(f + off + FRAME_HDR, len - off - FRAME_HDR, pattern_seed(p->run_id, *seq)))
        return FRAME_CORRUPT;
    return FRAME_OK;
}

/* ------------------------------------------------------------------ setup */

uint64_t vdrv_net_mem_needed(const struct vdrv *drv)
{
    /* buffers for every pair the device can have, plus the control buffer */
    uint8_t cfg[12] = { 0 };
    uint16_t pairs, mtu;

    drv->dev->ops->get_config(drv->dev, 0, cfg, sizeof(cfg));
    memcpy(&pairs, cfg + 8, 2);
    memcpy(&mtu, cfg + 10, 2);
    pairs = MAX(le16toh(pairs), 1);
    mtu = MAX(le16toh(mtu), 1500);
    return (uint64_t)pairs * 2 * drv->vq_num * (VDRV_NET_HDR_LEN + mtu + 18u + 64u) +
           VDRV_CTRL_MAX + 4096;
}

int vdrv_net_setup(struct vdrv *drv, GError **error)
{
    struct virtio_net_config cfg;
    bool mq = drv->features & F(VIRTIO_NET_F_MQ);

    drv->dev->ops->get_config(drv->dev, 0, &cfg, sizeof(cfg));
    drv->pairs = mq ? MAX(le16toh(cfg.max_virtqueue_pairs), 1) : 1;
    drv->mtu = (drv->features & F(VIRTIO_NET_F_MTU)) ? le16toh(cfg.mtu) : 1500;
    if (drv->mtu < 68)
        drv->mtu = 1500;
    drv->ctrl_idx = (drv->features & F(VIRTIO_NET_F_CTRL_VQ)) ? 2 * drv->pairs : UINT_MAX;
    if (2 * drv->pairs + (drv->ctrl_idx != UINT_MAX) > drv->nvqs)
        return vdpad_fail(error, EINVAL, "%s: %u queue pairs and a control queue need more than "
                          "the %u queues the device has", drv->dev->name, drv->pairs, drv->nvqs);

    drv->pair = g_new0(struct vdrv_pair, drv->pairs);
    for (unsigned i = 0; i < drv->pairs; i++) {
        struct vdrv_pair *p = &drv->pair[i];
        /* room for the largest frame the MTU allows, a VLAN tag, and the net header */
        p->buf_size = (VDRV_NET_HDR_LEN + MAX(drv->mtu, 1500u) + 18u + 63u) & ~63u;
        p->index = i;
        p->drv = drv;
        p->rx = &drv->vqs[2 * i];
        p->tx = &drv->vqs[2 * i + 1];
        p->rx->wanted = p->tx->wanted = true;
        p->vlan = -1;
        p->next_run = (g_random_int() & 0xffff0000u) | (i << 8);
        if (!vdrv_alloc(drv, (uint64_t)drv->vq_num * p->buf_size, 64, &p->rx_bufs) ||
            !vdrv_alloc(drv, (uint64_t)drv->vq_num * p->buf_size, 64, &p->tx_bufs))
            return vdpad_fail(error, ENOMEM, "%s: guest memory of %" PRIu64 " bytes full",
                              drv->dev->name, drv->mem_size);
        p->tx_free = g_new(unsigned, drv->vq_num);
        p->rx_idle = g_new(unsigned, drv->vq_num);
        for (unsigned s = 0; s < drv->vq_num; s++) {
            p->tx_free[s] = drv->vq_num - 1 - s;
            p->rx_idle[s] = drv->vq_num - 1 - s;
        }
        p->n_tx_free = p->n_rx_idle = drv->vq_num;
    }
    if (drv->ctrl_idx != UINT_MAX) {
        drv->vqs[drv->ctrl_idx].wanted = true;
        if (!vdrv_alloc(drv, VDRV_CTRL_MAX + 64, 64, &drv->ctrl_buf))
            return vdpad_fail(error, ENOMEM, "%s: guest memory full", drv->dev->name);
    }
    return 0;
}

void vdrv_net_teardown(struct vdrv *drv)
{
    for (unsigned i = 0; drv->pair && i < drv->pairs; i++) {
        g_free(drv->pair[i].tx_free);
        g_free(drv->pair[i].rx_idle);
        g_free(drv->pair[i].seen);
    }
    g_clear_pointer(&drv->pair, g_free);
    drv->pairs = 0;
}

void vdrv_net_mac(struct vdrv *drv, uint8_t mac[6])
{
    drv->dev->ops->get_config(drv->dev, 0, mac, 6);
}

unsigned vdrv_net_pairs(const struct vdrv *drv)
{
    return drv->pairs;
}

void vdrv_net_set_vlan(struct vdrv *drv, int vid)
{
    for (unsigned i = 0; i < drv->pairs; i++)
        drv->pair[i].vlan = vid < 0 ? -1 : vid & 0xfff;
}

/* ------------------------------------------------------------------ traffic */

static struct vdrv_pair *pair_get(struct vdrv *drv, unsigned pair, GError **error)
{
    if (drv->device_id != VIRTIO_ID_NET || pair >= drv->pairs) {
        vdpad_fail(error, EINVAL, "%s: no queue pair %u (%u set up)", drv->dev->name, pair,
                   drv->pairs);
        return NULL;
    }
    return &drv->pair[pair];
}

int vdrv_net_run_begin(struct vdrv *drv, unsigned pair, uint64_t nframes, size_t frame_len,
                       const uint8_t dst[6], GError **error)
{
    struct vdrv_pair *p;
    size_t max;

    if (!(p = pair_get(drv, pair, error)))
        return -EINVAL;
    max = drv->mtu + 14u + (p->vlan >= 0 ? 4u : 0u);
    if (frame_len < FRAME_MIN || frame_len > max || frame_len + VDRV_NET_HDR_LEN > p->buf_size)
        return vdpad_fail(error, EINVAL, "%s: pair %u: frame length %zu (%u..%zu)",
                          drv->dev->name, pair, frame_len, FRAME_MIN, max);
    g_free(p->seen);
    p->seen = g_malloc0(nframes / 8 + 1);
    p->run_id = p->next_run++;
    p->nframes = nframes;
    p->next_seq = 0;
    p->frame_len = frame_len;
    memcpy(p->dst, dst, 6);
    memset(&p->res, 0, sizeof(p->res));
    p->t_start = g_get_monotonic_time();
    return 0;
}

int vdrv_net_tx(struct vdrv *drv, unsigned pair, unsigned n, GError **error)
{
    struct vdrv_pair *p;
    unsigned added = 0;

    if (!(p = pair_get(drv, pair, error)))
        return -EINVAL;
    if (p->tx->vr.broken)
        return vdrv_vq_broken(drv, p->tx, error);
    while (added < n && p->n_tx_free > 0 && p->next_seq < p->nframes) {
        unsigned slot = p->tx_free[p->n_tx_free - 1];
        uint8_t *buf = (uint8_t *)p->tx_bufs.ptr + (size_t)slot * p->buf_size;
        struct vring_buf b = {
            .iova = p->tx_bufs.iova + (uint64_t)slot * p->buf_size,
            .len = (uint32_t)(VDRV_NET_HDR_LEN + p->frame_len),
        };

        memset(buf, 0, VDRV_NET_HDR_LEN);
        frame_build(p, buf + VDRV_NET_HDR_LEN, p->next_seq);
        if (vring_drv_add(&p->tx->vr, &b, 1, 0, SLOT_TOKEN(slot)) < 0)
            break; /* ring full of raw chains */
        p->n_tx_free--;
        p->next_seq++;
        p->res.sent++;
        added++;
    }
    if (added)
        vdrv_vq_publish(p->tx);
    return (int)added;
}

static int pair_rx_fill(struct vdrv_pair *p, unsigned n)
{
    unsigned posted = 0;

    while (posted < n && p->n_rx_idle > 0) {
        unsigned slot = p->rx_idle[p->n_rx_idle - 1];
        struct vring_buf b = {
            .iova = p->rx_bufs.iova + (uint64_t)slot * p->buf_size,
            .len = p->buf_size,
        };

        if (vring_drv_add(&p->rx->vr, &b, 0, 1, SLOT_TOKEN(slot)) < 0)
            break;
        p->n_rx_idle--;
        posted++;
    }
    if (posted)
        vdrv_vq_publish(p->rx);
    return (int)posted;
}

int vdrv_net_rx_fill(struct vdrv *drv, unsigned pair, unsigned n, GError **error)
{
    struct vdrv_pair *p;

    if (!(p = pair_get(drv, pair, error)))
        return -EINVAL;
    if (p->rx->vr.broken)
        return vdrv_vq_broken(drv, p->rx, error);
    return pair_rx_fill(p, n);
}

/* Checks one received buffer against the run (or just counts it when raw). */
static void pair_receive(struct vdrv_pair *p, unsigned slot, uint32_t len, bool raw)
{
    const uint8_t *buf = (const uint8_t *)p->rx_bufs.ptr + (size_t)slot * p->buf_size;
    struct virtio_net_hdr_v1 hdr;
    uint64_t seq = 0;

    if (raw) {
        p->raw_received++;
        return;
    }
    memcpy(&hdr, buf, sizeof(hdr));
    if (len < VDRV_NET_HDR_LEN || le16toh(hdr.num_buffers) != 1) {
        p->res.corrupted++;
        return;
    }
    switch (frame_check(p, buf + VDRV_NET_HDR_LEN, len - VDRV_NET_HDR_LEN, &seq)) {
    case FRAME_CORRUPT:
        p->res.corrupted++;
        break;
    case FRAME_STRAY:
        p->res.stray++;
        break;
    case FRAME_OK:
        if (p->seen[seq / 8] & (1u << (seq % 8))) {
            p->res.duplicated++;
        } else {
            p->seen[seq / 8] |= (uint8_t)(1u << (seq % 8));
            p->res.received++;
        }
        break;
    }
}

/* Collects TX completions and received frames without waiting. */
static int pair_collect_now(struct vdrv *drv, struct vdrv_pair *p, bool repost, bool raw,
                            GError **error)
{
    unsigned got = 0, reposted = 0;
    uint32_t len;
    void *tok;

    while ((tok = vring_drv_get_used(&p->tx->vr, &len))) {
        got++;
        if (TOKEN_SLOT(tok) >= drv->vq_num)
            continue; /* a raw chain (vdrv_post_raw) */
        p->tx_free[p->n_tx_free++] = TOKEN_SLOT(tok);
    }
    if (p->tx->vr.broken)
        return vdrv_vq_broken(drv, p->tx, error);
    while ((tok = vring_drv_get_used(&p->rx->vr, &len))) {
        unsigned slot = TOKEN_SLOT(tok);

        got++;
        if (slot >= drv->vq_num)
            continue;
        pair_receive(p, slot, len, raw);
        if (repost) {
            struct vring_buf b = {
                .iova = p->rx_bufs.iova + (uint64_t)slot * p->buf_size,
                .len = p->buf_size,
            };

            if (vring_drv_add(&p->rx->vr, &b, 0, 1, tok) == 0) {
                reposted++;
                continue;
            }
        }
        p->rx_idle[p->n_rx_idle++] = slot;
    }
    if (p->rx->vr.broken)
        return vdrv_vq_broken(drv, p->rx, error);
    if (reposted)
        vdrv_vq_publish(p->rx);
    return (int)got;
}

static int pair_collect(struct vdrv *drv, struct vdrv_pair *p, unsigned timeout_ms, bool repost,
                        bool raw, GError **error)
{
    struct vdrv_vq *vqs[2] = { p->rx, p->tx };

    if (timeout_ms)
        vdrv_wait_used(drv, vqs, 2, timeout_ms);
    return pair_collect_now(drv, p, repost, raw, error);
}

int vdrv_net_collect(struct vdrv *drv, unsigned pair, unsigned timeout_ms, bool repost,
                     GError **error)
{
    struct vdrv_pair *p;

    if (!(p = pair_get(drv, pair, error)))
        return -EINVAL;
    return pair_collect(drv, p, timeout_ms, repost, false, error);
}

void vdrv_net_run_result(const struct vdrv *drv, unsigned pair, struct vdrv_net_result *result)
{
    const struct vdrv_pair *p = &drv->pair[pair];

    *result = p->res;
    result->lost = p->res.sent > p->res.received ? p->res.sent - p->res.received : 0;
    result->seconds = (double)(g_get_monotonic_time() - p->t_start) / 1e6;
}

unsigned vdrv_net_tx_pending(const struct vdrv *drv, unsigned pair)
{
    const struct vdrv_pair *p = &drv->pair[pair];

    return drv->vq_num - p->n_tx_free;
}

int vdrv_net_exchange(struct vdrv *drv, unsigned pair, uint64_t nframes, size_t frame_len,
                      const uint8_t dst[6], bool expect_loopback, unsigned timeout_ms,
                      struct vdrv_net_result *result, GError **error)
{
    struct vdrv_pair *p;
    int64_t last_progress;
    struct vdrv_net_result r;
    int ret;

    if ((ret = vdrv_net_run_begin(drv, pair, nframes, frame_len, dst, error)) < 0)
        return ret;
    p = &drv->pair[pair];
    pair_rx_fill(p, UINT_MAX);
    last_progress = g_get_monotonic_time();
    for (;;) {
        bool all_sent, wait;
        int64_t now;

        if (p->next_seq < nframes && (ret = vdrv_net_tx(drv, pair, UINT_MAX, error)) < 0)
            return ret;
        all_sent = p->next_seq == nframes;
        if (all_sent && p->n_tx_free == drv->vq_num &&
            (!expect_loopback || p->res.received == nframes))
            break;
        /* wait when there is nothing more to send now */
        wait = all_sent || p->n_tx_free == 0;
        if ((ret = pair_collect(drv, p, wait ? timeout_ms : 0, true, false, error)) < 0)
            return ret;
        now = g_get_monotonic_time();
        if (ret > 0)
            last_progress = now;
        else if (now - last_progress > (int64_t)timeout_ms * 1000)
            break;
    }
    if (!expect_loopback) {
        /* the device completes a TX frame after it delivered it, so anything coming back
         * is already there; a device that is slower gets a short grace period */
        if ((ret = pair_collect(drv, p, MIN(timeout_ms, 50u), true, false, error)) < 0)
            return ret;
    }
    vdrv_net_run_result(drv, pair, &r);
    if (result)
        *result = r;
    if (expect_loopback && (r.lost || r.duplicated || r.corrupted || r.stray))
        return vdpad_fail(error, EIO,
                          "%s: pair %u: %" PRIu64 " frames of %zu bytes: %" PRIu64
                          " received, %" PRIu64 " lost, %" PRIu64 " duplicated, %" PRIu64
                          " corrupted, %" PRIu64 " stray (%u still in TX)",
                          drv->dev->name, pair, nframes, frame_len, r.received, r.lost,
                          r.duplicated, r.corrupted, r.stray, vdrv_net_tx_pending(drv, pair));
    if (!expect_loopback && (r.received || r.duplicated || r.corrupted || r.stray))
        return vdpad_fail(error, EIO,
                          "%s: pair %u: %" PRIu64 " frames to a filtered address: %" PRIu64
                          " came back (%" PRIu64 " duplicated, %" PRIu64 " corrupted, %" PRIu64
                          " stray)",
                          drv->dev->name, pair, nframes, r.received, r.duplicated, r.corrupted,
                          r.stray);
    if (r.sent != nframes || vdrv_net_tx_pending(drv, pair))
        return vdpad_fail(error, ETIMEDOUT,
                          "%s: pair %u: %" PRIu64 " of %" PRIu64 " frames sent, %u not completed "
                          "by the device within %u ms",
                          drv->dev->name, pair, r.sent, nframes, vdrv_net_tx_pending(drv, pair),
                          timeout_ms);
    return 0;
}

int vdrv_net_tx_raw(struct vdrv *drv, unsigned pair, const void *frame, size_t len,
                    unsigned *received, GError **error)
{
    struct vdrv_pair *p;
    int64_t deadline;
    unsigned slot;
    int ret;

    if (!(p = pair_get(drv, pair, error)))
        return -EINVAL;
    if (len + VDRV_NET_HDR_LEN > p->buf_size)
        return vdpad_fail(error, EINVAL, "%s: raw frame of %zu bytes (at most %u)",
                          drv->dev->name, len, p->buf_size - VDRV_NET_HDR_LEN);
    p->raw_received = 0;
    pair_rx_fill(p, UINT_MAX);
    deadline = g_get_monotonic_time() + (int64_t)drv->timeout_ms * 1000;
    while (p->n_tx_free == 0) {
        if ((ret = pair_collect(drv, p, drv->timeout_ms, true, true, error)) < 0)
            return ret;
        if (g_get_monotonic_time() > deadline)
            return vdpad_fail(error, ETIMEDOUT, "%s: pair %u: TX ring stays full",
                              drv->dev->name, pair);
    }
    slot = p->tx_free[--p->n_tx_free];
    uint8_t *buf = (uint8_t *)p->tx_bufs.ptr + (size_t)slot * p->buf_size;
    struct vring_buf b = {
        .iova = p->tx_bufs.iova + (uint64_t)slot * p->buf_size,
        .len = (uint32_t)(VDRV_NET_HDR_LEN + len),
    };
    memset(buf, 0, VDRV_NET_HDR_LEN);
    memcpy(buf + VDRV_NET_HDR_LEN, frame, len);
    if ((ret = vring_drv_add(&p->tx->vr, &b, 1, 0, SLOT_TOKEN(slot))) < 0) {
        p->tx_free[p->n_tx_free++] = slot;
        return vdpad_fail(error, -ret, "%s: pair %u: cannot add a raw frame: %s",
                          drv->dev->name, pair, g_strerror(-ret));
    }
    vdrv_vq_publish(p->tx);
    /* done when every TX chain came back */
    while (p->n_tx_free < drv->vq_num) {
        if ((ret = pair_collect(drv, p, drv->timeout_ms, true, true, error)) < 0)
            return ret;
        if (g_get_monotonic_time() > deadline)
            return vdpad_fail(error, ETIMEDOUT, "%s: pair %u: raw frame not completed in %u ms",
                              drv->dev->name, pair, drv->timeout_ms);
    }
    if (received)
        *received = p->raw_received;
    return 0;
}

/* ------------------------------------------------------------------ control queue */

/* Sends the len request bytes already in drv->ctrl_buf. */
static int ctrl_send(struct vdrv *drv, size_t len, uint8_t *ack, GError **error)
{
    uint8_t *ackp = (uint8_t *)drv->ctrl_buf.ptr + VDRV_CTRL_MAX;
    struct vring_buf bufs[3];
    unsigned n = 0;
    uint32_t used = 0;
    int ret;

    if (drv->ctrl_idx == UINT_MAX)
        return vdpad_fail(error, ENOTSUP, "%s: CTRL_VQ not negotiated", drv->dev->name);
    /* header and data in separate descriptors, as Linux sends them */
    if (len > 0)
        bufs[n++] = (struct vring_buf){ drv->ctrl_buf.iova, (uint32_t)MIN(len, 2u) };
    if (len > 2)
        bufs[n++] = (struct vring_buf){ drv->ctrl_buf.iova + 2, (uint32_t)(len - 2) };
    bufs[n] = (struct vring_buf){ drv->ctrl_buf.iova + VDRV_CTRL_MAX, 1 };
    *ackp = 0xff;
    ret = vdrv_vq_roundtrip(drv, &drv->vqs[drv->ctrl_idx], bufs, n, 1, NULL, 0, &used, error);
    if (ret < 0)
        return ret;
    if (used < 1)
        return vdpad_fail(error, EIO, "%s: control request completed without an ack",
                          drv->dev->name);
    *ack = *ackp;
    return 0;
}

int vdrv_net_ctrl_raw(struct vdrv *drv, const void *req, size_t len, uint8_t *ack,
                      GError **error)
{
    if (len > VDRV_CTRL_MAX)
        return vdpad_fail(error, EINVAL, "%s: control request of %zu bytes (at most %u)",
                          drv->dev->name, len, VDRV_CTRL_MAX);
    if (drv->ctrl_idx == UINT_MAX)
        return vdpad_fail(error, ENOTSUP, "%s: CTRL_VQ not negotiated", drv->dev->name);
    if (len)
        memcpy(drv->ctrl_buf.ptr, req, len);
    return ctrl_send(drv, len, ack, error);
}

int vdrv_net_ctrl(struct vdrv *drv, const struct net_ctrl_cmd *cmd, uint8_t *ack,
                  GError **error)
{
    size_t len;

    if (drv->ctrl_idx == UINT_MAX)
        return vdpad_fail(error, ENOTSUP, "%s: CTRL_VQ not negotiated", drv->dev->name);
    len = net_ctrl_encode(cmd, drv->ctrl_buf.ptr, VDRV_CTRL_MAX);
    if (len == 0)
        return vdpad_fail(error, EINVAL, "%s: control command %u/%u does not encode",
                          drv->dev->name, cmd->class, cmd->cmd);
    return ctrl_send(drv, len, ack, error);
}

/* ------------------------------------------------------------------ every pair at once */

struct pair_job {
    struct vdrv *drv;
    unsigned pair;
    uint64_t frames;
    size_t len;
    const uint8_t *dst;
    unsigned timeout_ms;
    pthread_barrier_t *start;
    gint64 t_end;
    int ret;
    struct vdrv_net_result result;
    GError *error;
};

static void *pair_thread(void *arg)
{
    struct pair_job *j = arg;

    pthread_barrier_wait(j->start);
    j->ret = vdrv_net_exchange(j->drv, j->pair, j->frames, j->len, j->dst, true, j->timeout_ms,
                               &j->result, &j->error);
    j->t_end = g_get_monotonic_time();
    return NULL;
}

int vdrv_net_exchange_pairs(struct vdrv *drv, unsigned npairs, uint64_t frames_per_pair,
                            size_t frame_len, const uint8_t dst[6], unsigned timeout_ms,
                            struct vdrv_net_result *results, double *seconds, GError **error)
{
    if (npairs == 0 || npairs > vdrv_net_pairs(drv))
        return vdpad_fail(error, EINVAL, "exchange on %u pairs: the driver set up %u", npairs,
                          vdrv_net_pairs(drv));
    g_autofree struct pair_job *job = g_new0(struct pair_job, npairs);
    g_autofree pthread_t *th = g_new(pthread_t, npairs);
    pthread_barrier_t start;
    gint64 t0, t_end = 0;
    int ret = 0;

    pthread_barrier_init(&start, NULL, npairs + 1);
    for (unsigned p = 0; p < npairs; p++) {
        job[p] = (struct pair_job){ .drv = drv, .pair = p, .frames = frames_per_pair,
                                    .len = frame_len, .dst = dst, .timeout_ms = timeout_ms,
                                    .start = &start };
        pthread_create(&th[p], NULL, pair_thread, &job[p]);
    }
    t0 = g_get_monotonic_time();
    pthread_barrier_wait(&start);
    for (unsigned p = 0; p < npairs; p++) {
        pthread_join(th[p], NULL);
        if (results)
            results[p] = job[p].result;
        t_end = MAX(t_end, job[p].t_end);
        if (job[p].ret < 0 && ret == 0) {
            ret = job[p].ret;
            g_propagate_prefixed_error(error, job[p].error, "pair %u: ", p);
            job[p].error = NULL;
        }
        g_clear_error(&job[p].error);
    }
    pthread_barrier_destroy(&start);
    if (seconds)
        *seconds = (double)(t_end - t0) / 1e6;
    return ret;
}

int vdrv_net_set_pairs(struct vdrv *drv, unsigned npairs, GError **error)
{
    struct net_ctrl_cmd cmd = { .class = VIRTIO_NET_CTRL_MQ,
                                .cmd = VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET,
                                .u.queue_pairs = (uint16_t)npairs };
    uint8_t ack;
    int ret = vdrv_net_ctrl(drv, &cmd, &ack, error);

    if (ret < 0)
        return ret;
    if (ack != VIRTIO_NET_OK)
        return vdpad_fail(error, EINVAL, "MQ_VQ_PAIRS_SET %u refused by the device", npairs);
    return 0;
}

/* ------------------------------------------------------------------ dirty log check */

static bool page_marked(const uint64_t *log, uint64_t n_words, uint64_t iova)
{
    uint64_t page = iova >> 12;

    return page / 64 < n_words && (log[page / 64] >> (page % 64)) & 1;
}

static bool page_has_data(const uint8_t *p, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (p[i])
            return true;
    return false;
}

int vdrv_net_check_dirty_log(struct vdrv *drv, const uint64_t *log, uint64_t n_words,
                             uint64_t *checked, GError **error)
{
    uint64_t n = 0;

    for (unsigned i = 0; i < drv->pairs; i++) {
        const struct vdrv_pair *p = &drv->pair[i];
        uint64_t size = (uint64_t)drv->vq_num * p->buf_size;
        /* the driver never writes receive buffers: data there came from the device */
        uint64_t first = p->rx_bufs.iova & ~0xfffull;
        for (uint64_t page = first; page < p->rx_bufs.iova + size; page += 4096) {
            uint64_t lo = MAX(page, p->rx_bufs.iova), hi = MIN(page + 4096, p->rx_bufs.iova + size);
            const uint8_t *at = (const uint8_t *)p->rx_bufs.ptr + (lo - p->rx_bufs.iova);
            if (!page_has_data(at, hi - lo))
                continue;
            n++;
            if (!page_marked(log, n_words, page))
                return vdpad_fail(error, EIO, "pair %u: receive buffer page 0x%" PRIx64 " holds "
                                  "data the device wrote but is not marked dirty", i, page);
        }
        /* the used rings the device wrote */
        const struct vdrv_vq *vqs[2] = { p->rx, p->tx };
        for (unsigned v = 0; v < 2; v++) {
            const struct vring_drv *vr = &vqs[v]->vr;
            uint64_t used_iova = vqs[v]->ring.iova +
                                 ((const uint8_t *)vr->ring.used - (const uint8_t *)vqs[v]->ring.ptr);
            if (vr->last_used == 0)
                continue;
            n++;
            if (!page_marked(log, n_words, used_iova))
                return vdpad_fail(error, EIO, "queue %u: used ring page 0x%" PRIx64 " is not "
                                  "marked dirty", vqs[v]->idx, used_iova & ~(uint64_t)0xfff);
        }
    }
    if (checked)
        *checked = n;
    return 0;
}
