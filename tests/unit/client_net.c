/* client_net.c — see client_net.h. */
#include "config.h"

#include <errno.h>
#include <linux/virtio_config.h>
#include <linux/virtio_net.h>
#include <linux/vhost_types.h>
#include <poll.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "client_net.h"
#include "util/error.h"
#include "util/fd.h"

#define F(bit) (1ull << (bit))
#define NET_HDR 12u /* struct virtio_net_hdr_v1 */

/* tokens are slot + 1 */
#define TOKEN(slot) ((void *)(uintptr_t)((slot) + 1))
#define SLOT(tok) ((unsigned)((uintptr_t)(tok)-1))

static uint64_t ring_off(unsigned q)
{
    return (uint64_t)q * CLIENT_NET_RING_STRIDE;
}

static uint64_t rx_buf_off(const struct client_net *c, unsigned slot)
{
    return CLIENT_NET_BUFS_OFF + (uint64_t)slot * CLIENT_NET_BUF;
}

static uint64_t tx_buf_off(const struct client_net *c, unsigned slot)
{
    return CLIENT_NET_BUFS_OFF + (uint64_t)(c->num + slot) * CLIENT_NET_BUF;
}

uint64_t client_net_free_off(const struct client_net *c)
{
    return CLIENT_NET_BUFS_OFF + 2ull * c->num * CLIENT_NET_BUF;
}

uint64_t client_net_iova(const struct client_net *c, uint64_t off)
{
    return c->iova + off;
}

void client_net_init(struct client_net *c, struct session *s, struct client_mem *mem,
                     uint64_t iova, unsigned num)
{
    memset(c, 0, sizeof(*c));
    g_assert(vring_num_valid(num) && num <= 256);
    c->num = num;
    g_assert(client_net_free_off(c) <= mem->size);
    c->s = s;
    c->mem = mem;
    c->iova = iova;
    c->features = F(VIRTIO_F_VERSION_1) | F(VIRTIO_F_ACCESS_PLATFORM) | F(VIRTIO_NET_F_MAC);
    for (unsigned q = 0; q < 2; q++) {
        c->q[q].kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        c->q[q].call_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        g_assert(c->q[q].kick_fd >= 0 && c->q[q].call_fd >= 0);
    }
}

void client_net_destroy(struct client_net *c)
{
    for (unsigned q = 0; q < 2; q++) {
        if (c->q[q].live)
            vring_drv_destroy(&c->q[q].vr);
        c->q[q].live = false;
        vdpad_close_fd(c->q[q].kick_fd);
        vdpad_close_fd(c->q[q].call_fd);
        c->q[q].kick_fd = c->q[q].call_fd = -1;
    }
}

int client_net_map(struct client_net *c, GError **error)
{
    return session_iotlb_update(c->s, c->iova, c->mem->size, client_mem_uaddr(c->mem, 0),
                                VHOST_ACCESS_RW, getpid(), error);
}

uint8_t client_net_status(struct client_net *c)
{
    return session_get_status(c->s);
}

static int add_status(struct client_net *c, uint8_t bits, GError **error)
{
    return session_set_status(c->s, session_get_status(c->s) | bits, error);
}

static int start_queue(struct client_net *c, unsigned q, bool with_fds, GError **error)
{
    struct client_vq *vq = &c->q[q];
    unsigned num = c->num;
    uint64_t off = ring_off(q);
    uint64_t avail = off + vring_desc_bytes(num);
    uint64_t used = (avail + vring_avail_bytes(num) + 3) & ~3ull;
    int ret;

    memset(client_mem_ptr(c->mem, off), 0, CLIENT_NET_RING_STRIDE);
    if (vq->live)
        vring_drv_destroy(&vq->vr);
    vq->vr = (struct vring_drv){ 0 };
    vq->vr.ring.num = num;
    vq->vr.ring.desc = client_mem_ptr(c->mem, off);
    vq->vr.ring.avail = client_mem_ptr(c->mem, avail);
    vq->vr.ring.used = client_mem_ptr(c->mem, used);
    g_assert(vring_drv_init(&vq->vr, 0) == 0);
    vq->live = true;

    if ((ret = session_set_vring_num(c->s, q, num, error)) < 0 ||
        (ret = session_set_vring_addr(c->s, q, client_net_iova(c, off),
                                      client_net_iova(c, avail), client_net_iova(c, used),
                                      error)) < 0 ||
        (ret = session_set_vring_base(c->s, q, 0, error)) < 0)
        return ret;
    if (with_fds && ((ret = session_set_vring_kick(c->s, q, dup(vq->kick_fd), error)) < 0 ||
                     (ret = session_set_vring_call(c->s, q, dup(vq->call_fd), error)) < 0))
        return ret;
    return session_set_vring_enable(c->s, q, true, error);
}

int client_net_start(struct client_net *c, bool with_fds, GError **error)
{
    int ret;

    if ((ret = add_status(c, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER, error)) < 0 ||
        (ret = session_set_features(c->s, c->features, error)) < 0 ||
        (ret = add_status(c, VIRTIO_CONFIG_S_FEATURES_OK, error)) < 0)
        return ret;
    if (!(session_get_status(c->s) & VIRTIO_CONFIG_S_FEATURES_OK))
        return vdpad_fail(error, EIO, "the device did not accept features 0x%llx",
                          (unsigned long long)c->features);
    for (unsigned q = 0; q < 2; q++)
        if ((ret = start_queue(c, q, with_fds, error)) < 0)
            return ret;
    return add_status(c, VIRTIO_CONFIG_S_DRIVER_OK, error);
}

/* the frame with sequence number seq: broadcast, then the number and a pattern */
static void frame_fill(uint8_t *f, uint32_t seq)
{
    static const uint8_t head[14] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                      0x02, 0, 0, 0, 0, 0x02, 0x88, 0xb5 };

    memcpy(f, head, sizeof(head));
    memcpy(f + 14, &seq, 4);
    for (unsigned i = 18; i < CLIENT_NET_FRAME; i++)
        f[i] = (uint8_t)(seq * 7 + i);
}

static void kick(struct client_vq *vq)
{
    (void)eventfd_write(vq->kick_fd, 1);
}

int client_net_send(struct client_net *c, unsigned n, GError **error)
{
    struct client_vq *rx = &c->q[CLIENT_NET_RX], *tx = &c->q[CLIENT_NET_TX];

    if (n > rx->vr.num_free || n > tx->vr.num_free)
        return vdpad_fail(error, ENOSPC, "%u frames: only %u/%u free descriptors", n,
                          rx->vr.num_free, tx->vr.num_free);
    for (unsigned i = 0; i < n; i++) {
        /* a free descriptor is a free slot: slots are used one per chain */
        unsigned slot = rx->vr.free_head;
        struct vring_buf b = { client_net_iova(c, rx_buf_off(c, slot)), CLIENT_NET_BUF };
        int ret = vring_drv_add(&rx->vr, &b, 0, 1, TOKEN(slot));

        if (ret < 0)
            return vdpad_fail(error, -ret, "RX add: %s", g_strerror(-ret));
    }
    vring_drv_publish(&rx->vr);
    kick(rx);
    for (unsigned i = 0; i < n; i++) {
        unsigned slot = tx->vr.free_head;
        uint8_t *p = client_mem_ptr(c->mem, tx_buf_off(c, slot));
        struct vring_buf b = { client_net_iova(c, tx_buf_off(c, slot)),
                               NET_HDR + CLIENT_NET_FRAME };

        memset(p, 0, NET_HDR);
        frame_fill(p + NET_HDR, c->next_seq++);
        int ret = vring_drv_add(&tx->vr, &b, 1, 0, TOKEN(slot));
        if (ret < 0)
            return vdpad_fail(error, -ret, "TX add: %s", g_strerror(-ret));
    }
    vring_drv_publish(&tx->vr);
    kick(tx);
    return 0;
}

int client_net_collect(struct client_net *c, unsigned n, unsigned timeout_ms,
                       unsigned *tx_done, GError **error)
{
    struct client_vq *rx = &c->q[CLIENT_NET_RX], *tx = &c->q[CLIENT_NET_TX];
    int64_t deadline = g_get_monotonic_time() + (int64_t)timeout_ms * 1000;
    unsigned got_tx = 0, got_rx = 0;
    g_autofree uint8_t *seen = g_malloc0(c->next_seq / 8 + 1);

    for (;;) {
        void *tok;
        uint32_t len;

        while ((tok = vring_drv_get_used(&tx->vr, &len)))
            got_tx++;
        while ((tok = vring_drv_get_used(&rx->vr, &len))) {
            const uint8_t *f = (const uint8_t *)client_mem_ptr(c->mem, rx_buf_off(c, SLOT(tok))) + NET_HDR;
            uint8_t want[CLIENT_NET_FRAME];
            uint32_t seq;

            memcpy(&seq, f + 14, 4);
            frame_fill(want, seq);
            if (len != NET_HDR + CLIENT_NET_FRAME || seq >= c->next_seq ||
                memcmp(f, want, sizeof(want)) != 0 || (seen[seq / 8] & (1u << (seq % 8))))
                return vdpad_fail(error, EBADMSG, "received frame %u (len %u) is not one "
                                  "that was sent, or came twice", seq, len);
            seen[seq / 8] |= 1u << (seq % 8);
            got_rx++;
        }
        if (tx->vr.broken || rx->vr.broken)
            return vdpad_fail(error, EIO, "the device broke a ring: %s%s", tx->vr.error,
                              rx->vr.error);
        if (tx_done)
            *tx_done = got_tx;
        if ((got_tx >= n && got_rx >= n) || g_get_monotonic_time() >= deadline)
            return (int)got_rx;

        struct pollfd pfd[2] = { { .fd = rx->call_fd, .events = POLLIN },
                                 { .fd = tx->call_fd, .events = POLLIN } };
        eventfd_t v;

        if (poll(pfd, 2, 5) > 0) {
            (void)eventfd_read(rx->call_fd, &v);
            (void)eventfd_read(tx->call_fd, &v);
        }
    }
}

int client_net_exchange(struct client_net *c, unsigned n, unsigned timeout_ms, GError **error)
{
    int ret = client_net_send(c, n, error);

    return ret < 0 ? ret : client_net_collect(c, n, timeout_ms, NULL, error);
}
