#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/virtio_net.h>
#include <linux/virtio_ring.h>
#include <pthread.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "dirty_log/dirty_log.h"
#include "iova/iova_map.h"
#include "shadow_vq/relay.h"
#include "util/error.h"
#include "util/fd.h"
#include "virtio/split_ring.h"

/* The device IOVA window for shadow memory: the top of the device's IOVA range, far from
 * guest RAM. Sparse: only what the rings use is ever touched. */
#define SHADOW_WINDOW_SIZE (512ull << 20)
#define SHADOW_WINDOW_ALIGN (2ull << 20)
/* Shadow indirect tables, one per guest head: chains longer than this go direct. */
#define SHADOW_INDIRECT_MAX 32u
/* Chains this short go direct (an indirect table costs the device a second read). */
#define SHADOW_DIRECT_MAX 2u
/* Writable segments kept inline per in-flight chain (for dirty logging). */
#define INLINE_WSEGS 4u
/* Control commands: bounce buffer size (the largest MAC table a driver sends fits). */
#define CVQ_BOUNCE_MAX (16u << 10)
/* Work per queue per round before the other queues get their turn. */
#define ROUND_BUDGET 64u
/* Pending dirty marks reach QEMU's log at least this often while logging. */
#define LOG_FLUSH_MS 2
#define RELAY_MAX_VQS 64u

struct wseg {
    uint64_t iova;
    uint32_t len;
};

/* A guest chain the device has (on the shadow ring), by guest head. */
struct inflight {
    bool busy;
    uint16_t head;
    uint16_t n_w;
    struct wseg w[INLINE_WSEGS];
    struct wseg *more; /* when n_w > INLINE_WSEGS */
};

/* A slot of shadow memory for one queue index, reused across adds. */
struct slot {
    unsigned capacity; /* ring size it was laid out for; 0 = none */
    uint64_t iova;     /* of the slot */
    uint8_t *local;
    uint64_t size;
};

struct rq {
    unsigned idx, num;
    bool control;
    bool failed;
    bool stopped; /* drained for a stop: nothing more moves until the queue is removed */
    char error[200];

    /* guest side */
    uint64_t g_desc, g_avail, g_used;
    struct vring_dev guest;
    struct vring_elem *elem;
    struct inflight *inflight; /* [num] */
    int guest_kick_fd, guest_call_fd;

    /* shadow side (vdpad memory, device IOVAs) */
    struct vring_drv shadow;
    struct vring_desc *indirect; /* [num][SHADOW_INDIRECT_MAX] */
    uint64_t indirect_iova;
    uint8_t *bounce;             /* control: command, then the ack byte */
    uint64_t bounce_iova;
    int dev_kick_fd, dev_call_fd; /* ours: the device waits on kick, signals call */

    /* control queue: one command in flight at a time */
    bool cvq_busy;
    bool cvq_internal;
    size_t cvq_len;

    /* scratch for building shadow chains */
    struct vring_buf *bufs; /* [max segs] */

    struct relay_queue_stats stats;
};

struct relay {
    struct vdpa_device *dev;
    const struct iova_map *mem;
    uint64_t features;
    struct relay_hooks hooks;

    pthread_mutex_t lock;
    pthread_cond_t cvq_cond; /* internal control commands complete */
    pthread_t thread;
    bool thread_started;
    int epfd;
    int wake_fd;
    bool stop;

    struct rq *q[RELAY_MAX_VQS];
    uint64_t pending[RELAY_MAX_VQS / 64]; /* queues to service */

    /* shadow memory */
    int memfd;
    uint8_t *shadow;
    uint64_t shadow_iova;
    uint64_t shadow_used;
    struct slot slot[RELAY_MAX_VQS];

    struct dirty_log *log;
    gint64 last_flush_us;

    /* internal control command result */
    bool cvq_done;
    uint8_t cvq_ack;
};

/* epoll tags */
#define TAG_WAKE UINT64_MAX
#define TAG(idx, call) (((uint64_t)(idx) << 1) | (call))

static void fail_queue(struct relay *r, struct rq *q, const char *fmt, ...) G_GNUC_PRINTF(3, 4);
static void fail_queue(struct relay *r, struct rq *q, const char *fmt, ...)
{
    va_list ap;

    if (q->failed)
        return;
    va_start(ap, fmt);
    g_vsnprintf(q->error, sizeof(q->error), fmt, ap);
    va_end(ap);
    q->failed = true;
    q->stats.failed = true;
    g_warning("%s: relay: queue %u stopped: %s", r->dev->name, q->idx, q->error);
    if (r->hooks.queue_failed)
        r->hooks.queue_failed(r->hooks.opaque, q->idx, q->error);
}

static void signal_fd(int fd)
{
    if (fd >= 0) {
        uint64_t one = 1;
        ssize_t n = write(fd, &one, sizeof(one));
        (void)n; /* a full counter still wakes the reader */
    }
}

static void drain_fd(int fd)
{
    uint64_t v;
    ssize_t n = read(fd, &v, sizeof(v));
    (void)n;
}

static void mark(struct relay *r, struct rq *q, uint64_t iova, uint64_t len)
{
    if (r->log && len) {
        dirty_log_mark(r->log, iova, len);
        q->stats.dirty_marks++;
    }
}

/* ------------------------------------------------------------------ shadow memory */

void relay_shadow_window(const struct vdpa_device *dev, uint64_t *first, uint64_t *last)
{
    struct vdpa_iova_range range = dev->ops->get_iova_range((struct vdpa_device *)dev);

    *last = range.last;
    *first = (range.last - SHADOW_WINDOW_SIZE + 1) & ~(SHADOW_WINDOW_ALIGN - 1);
}

static size_t align_up(size_t v, size_t a)
{
    return (v + a - 1) & ~(a - 1);
}

static uint64_t slot_bytes(unsigned num, bool control)
{
    uint64_t size = align_up(vring_desc_bytes(num), 64);
    size = align_up(size + vring_avail_bytes(num), 64);
    size = align_up(size + vring_used_bytes(num), 64);
    size += (uint64_t)num * SHADOW_INDIRECT_MAX * sizeof(struct vring_desc);
    if (control)
        size += CVQ_BOUNCE_MAX + 64;
    return align_up(size, 4096);
}

/* The shadow memory slot of queue idx, laid out for num entries; NULL when the window
 * is full. */
static struct slot *get_slot(struct relay *r, unsigned idx, unsigned num, bool control,
                             GError **error)
{
    struct slot *s = &r->slot[idx];
    uint64_t need = slot_bytes(num, control);

    if (s->capacity && s->size >= need)
        return s;
    if (r->shadow_used + need > SHADOW_WINDOW_SIZE) {
        vdpad_fail(error, ENOMEM, "%s: relay: shadow memory for queue %u (%" PRIu64
                   " bytes) does not fit the %llu MiB window", r->dev->name, idx, need,
                   SHADOW_WINDOW_SIZE >> 20);
        return NULL;
    }
    s->capacity = num;
    s->iova = r->shadow_iova + r->shadow_used;
    s->local = r->shadow + r->shadow_used;
    s->size = need;
    r->shadow_used += need;
    return s;
}

/* ------------------------------------------------------------------ guest side */

/* Translates the guest ring of q through the guest memory map. */
static bool map_guest_ring(struct relay *r, struct rq *q)
{
    struct vring_layout *l = &q->guest.ring;

    l->num = q->num;
    l->desc = iova_map_ptr(r->mem, q->g_desc, vring_desc_bytes(q->num), IOVA_PERM_READ);
    l->avail = iova_map_ptr(r->mem, q->g_avail, vring_avail_bytes(q->num), IOVA_PERM_READ);
    l->used = iova_map_ptr(r->mem, q->g_used, vring_used_bytes(q->num), IOVA_PERM_WRITE);
    return l->desc && l->avail && l->used;
}

/* ------------------------------------------------------------------ forwarding */

static void record_inflight(struct rq *q, const struct vring_elem *e)
{
    struct inflight *inf = &q->inflight[e->head];

    inf->busy = true;
    inf->head = e->head;
    inf->n_w = (uint16_t)e->n_in;
    struct wseg *w = inf->w;
    if (e->n_in > INLINE_WSEGS) {
        inf->more = g_renew(struct wseg, inf->more, e->n_in);
        w = inf->more;
    }
    for (unsigned i = 0; i < e->n_in; i++) {
        const struct vring_seg *s = &e->seg[e->n_out + i];
        w[i] = (struct wseg){ s->iova, s->len };
    }
}

static const struct wseg *inflight_wsegs(const struct inflight *inf)
{
    return inf->n_w > INLINE_WSEGS ? inf->more : inf->w;
}

/* Posts one data chain to the shadow ring; false when the shadow ring has no room. */
static bool post_data_chain(struct relay *r, struct rq *q, const struct vring_elem *e)
{
    unsigned n = e->n_out + e->n_in;

    for (unsigned i = 0; i < n; i++)
        q->bufs[i] = (struct vring_buf){ e->seg[i].iova, e->seg[i].len };

    int ret;
    bool use_indirect = q->shadow.indirect && n > SHADOW_DIRECT_MAX && n <= SHADOW_INDIRECT_MAX;
    if (use_indirect) {
        if (q->shadow.num_free == 0)
            return false;
        ret = vring_drv_add_indirect(&q->shadow, q->bufs, e->n_out, e->n_in,
                                     &q->inflight[e->head],
                                     q->indirect + (size_t)e->head * SHADOW_INDIRECT_MAX,
                                     q->indirect_iova + (uint64_t)e->head * SHADOW_INDIRECT_MAX *
                                                            sizeof(struct vring_desc));
    } else {
        if (n > q->num) {
            fail_queue(r, q, "a chain of %u segments fits neither the shadow ring (%u) nor an "
                       "indirect table (%u)", n, q->num, SHADOW_INDIRECT_MAX);
            return false;
        }
        if (q->shadow.num_free < n)
            return false;
        ret = vring_drv_add(&q->shadow, q->bufs, e->n_out, e->n_in, &q->inflight[e->head]);
    }
    if (ret < 0) {
        fail_queue(r, q, "posting guest head %u to the shadow ring failed: %s", e->head,
                   g_strerror(-ret));
        return false;
    }
    return true;
}

/* Completes a guest control chain with ack without involving the device. */
static void answer_control_locally(struct relay *r, struct rq *q, const struct vring_elem *e,
                                   uint8_t ack)
{
    if (e->n_in == 0 || e->seg[e->n_out].len == 0) {
        vring_dev_push(&q->guest, e->head, 0);
        return;
    }
    const struct vring_seg *s = &e->seg[e->n_out];
    *(volatile uint8_t *)s->addr = ack;
    mark(r, q, s->iova, 1);
    vring_dev_push(&q->guest, e->head, 1);
}

enum post_result { POSTED, ANSWERED, NOT_POSTED };

/* Bounces one guest control command to the device. */
static enum post_result post_control_chain(struct relay *r, struct rq *q,
                                           const struct vring_elem *e)
{
    uint64_t len = e->out_bytes;

    if (len > CVQ_BOUNCE_MAX || e->n_in == 0) {
        /* too large to be a real command, or nowhere to put the ack */
        answer_control_locally(r, q, e, VIRTIO_NET_ERR);
        return ANSWERED;
    }
    size_t off = 0;
    for (unsigned i = 0; i < e->n_out; i++) {
        memcpy(q->bounce + off, e->seg[i].addr, e->seg[i].len);
        off += e->seg[i].len;
    }
    q->bounce[CVQ_BOUNCE_MAX] = VIRTIO_NET_ERR;
    struct vring_buf bufs[2] = {
        { q->bounce_iova, (uint32_t)len },
        { q->bounce_iova + CVQ_BOUNCE_MAX, 1 },
    };
    int ret = vring_drv_add(&q->shadow, bufs, 1, 1, &q->inflight[e->head]);
    if (ret < 0) {
        fail_queue(r, q, "posting a control command failed: %s", g_strerror(-ret));
        return NOT_POSTED;
    }
    record_inflight(q, e);
    q->cvq_busy = true;
    q->cvq_internal = false;
    q->cvq_len = len;
    return POSTED;
}

static void forward_avail(struct relay *r, struct rq *q)
{
    unsigned added = 0, rounds = 0;

    if (q->failed || q->stopped)
        return;
    vring_dev_set_notify(&q->guest, false);
    while (rounds++ < ROUND_BUDGET && !(q->control && q->cvq_busy)) {
        int got = vring_dev_pop(&q->guest, q->elem);
        if (got == 0) {
            vring_dev_set_notify(&q->guest, true);
            if (vring_dev_avail_count(&q->guest) == 0)
                break;
            vring_dev_set_notify(&q->guest, false);
            continue;
        }
        if (got < 0) {
            fail_queue(r, q, "%s", q->guest.error);
            break;
        }
        struct vring_elem *e = q->elem;
        if (q->inflight[e->head].busy) {
            fail_queue(r, q, "the guest made head %u available again while the device has it",
                       e->head);
            break;
        }
        if (q->control) {
            enum post_result pr = post_control_chain(r, q, e);
            if (pr == NOT_POSTED)
                break;
            if (pr == ANSWERED) {
                if (vring_dev_need_notify(&q->guest))
                    signal_fd(q->guest_call_fd);
                continue;
            }
        } else {
            if (!post_data_chain(r, q, e)) {
                if (!q->failed)
                    vring_dev_unpop(&q->guest, 1); /* no room: wait for the device */
                break;
            }
            record_inflight(q, e);
        }
        added++;
    }
    if (added) {
        q->stats.forwarded += added;
        q->stats.in_flight += added;
        if (vring_drv_publish(&q->shadow))
            signal_fd(q->dev_kick_fd);
    }
    if (rounds > ROUND_BUDGET)
        r->pending[q->idx / 64] |= 1ull << (q->idx % 64); /* more next round */
}

/* The device answered a control command: pass the ack on. */
static void complete_control(struct relay *r, struct rq *q, struct inflight *inf)
{
    uint8_t ack = q->bounce[CVQ_BOUNCE_MAX];

    q->cvq_busy = false;
    if (r->hooks.cvq_done)
        r->hooks.cvq_done(r->hooks.opaque, q->bounce, q->cvq_len, ack);
    if (q->cvq_internal) {
        r->cvq_ack = ack;
        r->cvq_done = true;
        pthread_cond_broadcast(&r->cvq_cond);
        return;
    }
    const struct wseg *w = inflight_wsegs(inf);
    uint8_t *dst = inf->n_w ? iova_map_ptr(r->mem, w[0].iova, 1, IOVA_PERM_WRITE) : NULL;
    uint32_t used = 0;
    if (dst) {
        *(volatile uint8_t *)dst = ack;
        mark(r, q, w[0].iova, 1);
        used = 1;
    }
    inf->busy = false;
    vring_dev_push(&q->guest, inf->head, used);
    if (vring_dev_need_notify(&q->guest))
        signal_fd(q->guest_call_fd);
}

static void complete_used(struct relay *r, struct rq *q)
{
    unsigned filled = 0;

    if (q->failed || q->stopped)
        return;
    for (;;) {
        uint32_t len;
        struct inflight *inf = vring_drv_get_used(&q->shadow, &len);
        if (!inf) {
            if (q->shadow.broken) {
                fail_queue(r, q, "the device broke the shadow ring: %s", q->shadow.error);
                break;
            }
            /* ask the device to signal the next used buffer; one may have come meanwhile */
            if (vring_drv_set_notify(&q->shadow, true))
                break;
            continue;
        }
        q->stats.completed++;
        q->stats.in_flight--;
        if (q->control) {
            complete_control(r, q, inf);
            continue;
        }
        /* log what the device wrote, before the guest can see the used entry */
        const struct wseg *w = inflight_wsegs(inf);
        uint64_t left = len;
        for (unsigned i = 0; i < inf->n_w && left; i++) {
            uint64_t n = MIN(left, w[i].len);
            mark(r, q, w[i].iova, n);
            left -= n;
        }
        inf->busy = false;
        vring_dev_fill(&q->guest, filled++, inf->head, len);
        if (filled == q->num) {
            vring_dev_flush(&q->guest, filled);
            filled = 0;
        }
    }
    if (filled)
        vring_dev_flush(&q->guest, filled);
    if (vring_dev_need_notify(&q->guest))
        signal_fd(q->guest_call_fd);
}

static void service(struct relay *r, struct rq *q)
{
    complete_used(r, q);
    forward_avail(r, q);
}

/* ------------------------------------------------------------------ the thread */

static bool any_pending(struct relay *r)
{
    for (size_t i = 0; i < G_N_ELEMENTS(r->pending); i++)
        if (r->pending[i])
            return true;
    return false;
}

static void service_pending(struct relay *r)
{
    for (size_t w = 0; w < G_N_ELEMENTS(r->pending); w++) {
        uint64_t bits = r->pending[w];
        r->pending[w] = 0;
        while (bits) {
            unsigned idx = (unsigned)(w * 64 + __builtin_ctzll(bits));
            bits &= bits - 1;
            if (r->q[idx])
                service(r, r->q[idx]);
        }
    }
}

static void flush_log_locked(struct relay *r)
{
    g_autoptr(GError) err = NULL;

    if (!r->log)
        return;
    if (dirty_log_flush(r->log, &err) < 0)
        g_warning("%s: relay: dirty log flush failed (marks kept for the next try): %s",
                  r->dev->name, err->message);
    r->last_flush_us = g_get_monotonic_time();
}

static void *relay_thread(void *arg)
{
    struct relay *r = arg;
    struct epoll_event ev[32];

    pthread_mutex_lock(&r->lock);
    while (!r->stop) {
        int timeout = any_pending(r) ? 0 : r->log ? LOG_FLUSH_MS : -1;
        pthread_mutex_unlock(&r->lock);
        int n = epoll_wait(r->epfd, ev, G_N_ELEMENTS(ev), timeout);
        pthread_mutex_lock(&r->lock);
        for (int i = 0; i < n; i++) {
            uint64_t tag = ev[i].data.u64;
            if (tag == TAG_WAKE) {
                drain_fd(r->wake_fd);
                continue;
            }
            unsigned idx = (unsigned)(tag >> 1);
            struct rq *q = idx < RELAY_MAX_VQS ? r->q[idx] : NULL;
            if (!q)
                continue;
            drain_fd((tag & 1) ? q->dev_call_fd : q->guest_kick_fd);
            r->pending[idx / 64] |= 1ull << (idx % 64);
        }
        service_pending(r);
        if (r->log && g_get_monotonic_time() - r->last_flush_us >= LOG_FLUSH_MS * 1000)
            flush_log_locked(r);
    }
    pthread_mutex_unlock(&r->lock);
    return NULL;
}

static void wake(struct relay *r)
{
    signal_fd(r->wake_fd);
}

/* ------------------------------------------------------------------ life cycle */

struct relay *relay_new(struct vdpa_device *dev, const struct iova_map *guest_mem,
                        uint64_t negotiated, const struct relay_hooks *hooks, GError **error)
{
    g_autoptr(relay) r = g_new0(struct relay, 1);
    uint64_t first, last;

    r->dev = dev;
    r->mem = guest_mem;
    r->features = negotiated;
    if (hooks)
        r->hooks = *hooks;
    r->memfd = r->epfd = r->wake_fd = -1;
    pthread_mutex_init(&r->lock, NULL);
    /* its waits take deadlines from g_get_monotonic_time(): the default clock (realtime)
     * would put them in 1970 and every wait would time out at once */
    pthread_condattr_t cattr;
    pthread_condattr_init(&cattr);
    pthread_condattr_setclock(&cattr, CLOCK_MONOTONIC);
    pthread_cond_init(&r->cvq_cond, &cattr);
    pthread_condattr_destroy(&cattr);

    relay_shadow_window(dev, &first, &last);
    struct iova_region hit;
    for (unsigned i = 0; iova_map_nth(guest_mem, i, &hit); i++) {
        if (hit.iova <= last && hit.iova + hit.size - 1 >= first) {
            vdpad_fail(error, EEXIST, "%s: relay: guest memory at IOVA 0x%" PRIx64
                       " lies in the shadow window 0x%" PRIx64 "-0x%" PRIx64, dev->name,
                       hit.iova, first, last);
            return NULL;
        }
    }
    r->memfd = memfd_create("vdpad-shadow", MFD_CLOEXEC);
    if (r->memfd < 0 || ftruncate(r->memfd, SHADOW_WINDOW_SIZE) < 0) {
        vdpad_fail(error, errno, "%s: relay: shadow memory: %s", dev->name, g_strerror(errno));
        return NULL;
    }
    r->shadow = mmap(NULL, SHADOW_WINDOW_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, r->memfd, 0);
    if (r->shadow == MAP_FAILED) {
        r->shadow = NULL;
        vdpad_fail(error, errno, "%s: relay: mapping shadow memory: %s", dev->name,
                   g_strerror(errno));
        return NULL;
    }
    r->shadow_iova = first;
    if (dev->ops->dma_map(dev, first, SHADOW_WINDOW_SIZE, r->shadow, IOVA_PERM_RW, error) < 0) {
        vdpad_prefix_error(error, "%s: relay: mapping the shadow window into the device: ",
                           dev->name);
        munmap(r->shadow, SHADOW_WINDOW_SIZE);
        r->shadow = NULL;
        return NULL;
    }
    r->epfd = epoll_create1(EPOLL_CLOEXEC);
    r->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    struct epoll_event ev = { .events = EPOLLIN, .data.u64 = TAG_WAKE };
    if (r->epfd < 0 || r->wake_fd < 0 || epoll_ctl(r->epfd, EPOLL_CTL_ADD, r->wake_fd, &ev) < 0) {
        vdpad_fail(error, errno, "%s: relay: epoll: %s", dev->name, g_strerror(errno));
        return NULL;
    }
    if (pthread_create(&r->thread, NULL, relay_thread, r) != 0) {
        vdpad_fail(error, EAGAIN, "%s: relay: cannot start its thread", dev->name);
        return NULL;
    }
    r->thread_started = true;
    return g_steal_pointer(&r);
}

static void free_queue(struct relay *r, struct rq *q)
{
    if (!q)
        return;
    if (q->guest_kick_fd >= 0)
        epoll_ctl(r->epfd, EPOLL_CTL_DEL, q->guest_kick_fd, NULL);
    if (q->dev_call_fd >= 0)
        epoll_ctl(r->epfd, EPOLL_CTL_DEL, q->dev_call_fd, NULL);
    vdpad_close_fd(q->guest_kick_fd);
    vdpad_close_fd(q->guest_call_fd);
    vdpad_close_fd(q->dev_kick_fd);
    vdpad_close_fd(q->dev_call_fd);
    vring_drv_destroy(&q->shadow);
    vring_elem_free(q->elem);
    if (q->inflight)
        for (unsigned i = 0; i < q->num; i++)
            g_free(q->inflight[i].more);
    g_free(q->inflight);
    g_free(q->bufs);
    g_free(q);
}

void relay_free(struct relay *r)
{
    if (!r)
        return;
    if (r->thread_started) {
        pthread_mutex_lock(&r->lock);
        r->stop = true;
        pthread_mutex_unlock(&r->lock);
        wake(r);
        pthread_join(r->thread, NULL);
    }
    for (unsigned i = 0; i < RELAY_MAX_VQS; i++)
        free_queue(r, r->q[i]);
    if (r->shadow) {
        g_autoptr(GError) err = NULL;
        if (r->dev->ops->dma_unmap(r->dev, r->shadow_iova, SHADOW_WINDOW_SIZE, &err) < 0)
            g_warning("%s: relay: unmapping the shadow window: %s", r->dev->name, err->message);
        munmap(r->shadow, SHADOW_WINDOW_SIZE);
    }
    vdpad_close_fd(r->memfd);
    vdpad_close_fd(r->epfd);
    vdpad_close_fd(r->wake_fd);
    pthread_cond_destroy(&r->cvq_cond);
    pthread_mutex_destroy(&r->lock);
    g_free(r);
}

/* ------------------------------------------------------------------ queues */

static int point_device_at_shadow(struct relay *r, struct rq *q, uint64_t desc, uint64_t avail,
                                  uint64_t used, uint16_t base, GError **error)
{
    const struct vdpa_device_ops *ops = r->dev->ops;
    struct vdpa_vq_state st = { .avail_index = base };
    int ret;

    if ((ret = ops->set_vq_num(r->dev, q->idx, q->num, error)) < 0 ||
        (ret = ops->set_vq_address(r->dev, q->idx, desc, avail, used, error)) < 0 ||
        (ret = ops->set_vq_state(r->dev, q->idx, &st, error)) < 0 ||
        (ret = ops->set_vq_kick(r->dev, q->idx, q->dev_kick_fd, error)) < 0 ||
        (ret = ops->set_vq_call(r->dev, q->idx, q->dev_call_fd, error)) < 0)
        return vdpad_prefix_error(error, "%s: relay: queue %u: pointing the device at its "
                                  "shadow ring: ", r->dev->name, q->idx);
    return 0;
}

int relay_add_queue(struct relay *r, const struct relay_queue_config *cfg, GError **error)
{
    if (cfg->idx >= RELAY_MAX_VQS || !vring_num_valid(cfg->num))
        return vdpad_fail(error, EINVAL, "%s: relay: queue %u of size %u cannot be relayed",
                          r->dev->name, cfg->idx, cfg->num);

    pthread_mutex_lock(&r->lock);
    int ret = 0;
    struct rq *q = g_new0(struct rq, 1);
    struct slot *slot;

    q->idx = cfg->idx;
    q->num = cfg->num;
    q->control = cfg->control;
    q->g_desc = cfg->desc;
    q->g_avail = cfg->avail;
    q->g_used = cfg->used;
    q->guest_kick_fd = q->guest_call_fd = -1;
    q->dev_kick_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    q->dev_call_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (q->dev_kick_fd < 0 || q->dev_call_fd < 0 ||
        vdpad_fd_replace_dup(&q->guest_kick_fd, cfg->guest_kick_fd) < 0 ||
        vdpad_fd_replace_dup(&q->guest_call_fd, cfg->guest_call_fd) < 0) {
        ret = vdpad_fail(error, errno, "%s: relay: queue %u: eventfds: %s", r->dev->name,
                         q->idx, g_strerror(errno));
        goto out;
    }
    if (!(slot = get_slot(r, q->idx, q->num, q->control, error))) {
        ret = -ENOMEM;
        goto out;
    }

    /* shadow ring, laid out in its slot */
    size_t off = 0;
    uint64_t desc_iova = slot->iova + off;
    q->shadow.ring.num = q->num;
    q->shadow.ring.desc = (struct vring_desc *)(slot->local + off);
    off = align_up(off + vring_desc_bytes(q->num), 64);
    uint64_t avail_iova = slot->iova + off;
    q->shadow.ring.avail = (struct vring_avail *)(slot->local + off);
    off = align_up(off + vring_avail_bytes(q->num), 64);
    uint64_t used_iova = slot->iova + off;
    q->shadow.ring.used = (struct vring_used *)(slot->local + off);
    off = align_up(off + vring_used_bytes(q->num), 64);
    q->indirect = (struct vring_desc *)(slot->local + off);
    q->indirect_iova = slot->iova + off;
    off += (size_t)q->num * SHADOW_INDIRECT_MAX * sizeof(struct vring_desc);
    if (q->control) {
        q->bounce = slot->local + off;
        q->bounce_iova = slot->iova + off;
    }
    memset(slot->local, 0, off);
    q->shadow.event_idx = r->features & (1ull << VIRTIO_RING_F_EVENT_IDX);
    q->shadow.indirect = !q->control && (r->features & (1ull << VIRTIO_RING_F_INDIRECT_DESC));
    if ((ret = vring_drv_init(&q->shadow, cfg->base)) < 0) {
        vdpad_fail(error, -ret, "%s: relay: queue %u: shadow ring", r->dev->name, q->idx);
        goto out;
    }

    /* guest side */
    q->guest.mem = r->mem;
    q->guest.event_idx = r->features & (1ull << VIRTIO_RING_F_EVENT_IDX);
    q->guest.indirect = r->features & (1ull << VIRTIO_RING_F_INDIRECT_DESC);
    q->guest.log = r->log;
    q->guest.used_iova = q->g_used;
    if (!map_guest_ring(r, q)) {
        ret = vdpad_fail(error, EFAULT, "%s: relay: queue %u: the guest ring (desc 0x%" PRIx64
                         " avail 0x%" PRIx64 " used 0x%" PRIx64 ") is not in mapped memory",
                         r->dev->name, q->idx, q->g_desc, q->g_avail, q->g_used);
        goto out;
    }
    vring_dev_start(&q->guest, cfg->base);
    if (q->guest.broken) {
        ret = vdpad_fail(error, EINVAL, "%s: relay: queue %u: %s", r->dev->name, q->idx,
                         q->guest.error);
        goto out;
    }
    q->elem = vring_elem_new(VRING_MAX_SEGS);
    q->inflight = g_new0(struct inflight, q->num);
    q->bufs = g_new(struct vring_buf, VRING_MAX_SEGS);

    if ((ret = point_device_at_shadow(r, q, desc_iova, avail_iova, used_iova, cfg->base,
                                      error)) < 0)
        goto out;

    struct epoll_event kick = { .events = EPOLLIN, .data.u64 = TAG(q->idx, 0) };
    struct epoll_event call = { .events = EPOLLIN, .data.u64 = TAG(q->idx, 1) };
    if (epoll_ctl(r->epfd, EPOLL_CTL_ADD, q->guest_kick_fd, &kick) < 0 ||
        epoll_ctl(r->epfd, EPOLL_CTL_ADD, q->dev_call_fd, &call) < 0) {
        ret = vdpad_fail(error, errno, "%s: relay: queue %u: epoll: %s", r->dev->name, q->idx,
                         g_strerror(errno));
        goto out;
    }
    /* serve at once: the guest may have made buffers available without a kick we saw */
    r->q[cfg->idx] = g_steal_pointer(&q); /* not q->idx: the steal may be evaluated first */
    r->pending[cfg->idx / 64] |= 1ull << (cfg->idx % 64);

out:
    free_queue(r, q);
    pthread_mutex_unlock(&r->lock);
    if (ret == 0)
        wake(r);
    return ret;
}

static int drain_locked(struct relay *r, unsigned idx, uint16_t *guest_base, GError **error)
{
    struct rq *q = idx < RELAY_MAX_VQS ? r->q[idx] : NULL;

    if (!q)
        return vdpad_fail(error, ENOENT, "%s: relay: queue %u is not relayed", r->dev->name, idx);
    complete_used(r, q);
    /* what the device took and did not complete goes back to the guest by the rewind */
    for (unsigned i = 0; i < q->num; i++)
        q->inflight[i].busy = false;
    if (q->cvq_busy && q->cvq_internal) {
        r->cvq_ack = VIRTIO_NET_ERR;
        r->cvq_done = true;
        pthread_cond_broadcast(&r->cvq_cond);
    }
    q->cvq_busy = false;
    *guest_base = q->guest.used_idx;
    return 0;
}

int relay_drain_queue(struct relay *r, unsigned idx, uint16_t *guest_base, GError **error)
{
    pthread_mutex_lock(&r->lock);
    int ret = drain_locked(r, idx, guest_base, error);
    if (ret == 0) {
        r->q[idx]->stopped = true;
        r->q[idx]->stats.in_flight = 0;
    }
    pthread_mutex_unlock(&r->lock);
    return ret;
}

int relay_remove_queue(struct relay *r, unsigned idx, uint16_t *guest_base, GError **error)
{
    pthread_mutex_lock(&r->lock);
    int ret = drain_locked(r, idx, guest_base, error);
    if (ret == 0) {
        free_queue(r, r->q[idx]);
        r->q[idx] = NULL;
    }
    pthread_mutex_unlock(&r->lock);
    return ret;
}

bool relay_has_queue(struct relay *r, unsigned idx)
{
    pthread_mutex_lock(&r->lock);
    bool has = idx < RELAY_MAX_VQS && r->q[idx];
    pthread_mutex_unlock(&r->lock);
    return has;
}

int relay_set_guest_fds(struct relay *r, unsigned idx, int kick_fd, int call_fd, GError **error)
{
    int ret = 0;

    pthread_mutex_lock(&r->lock);
    struct rq *q = idx < RELAY_MAX_VQS ? r->q[idx] : NULL;
    if (!q) {
        ret = vdpad_fail(error, ENOENT, "%s: relay: queue %u is not relayed", r->dev->name, idx);
        goto out;
    }
    if (kick_fd >= 0) {
        g_auto(vdpad_fd) copy = fcntl(kick_fd, F_DUPFD_CLOEXEC, 0);
        struct epoll_event kick = { .events = EPOLLIN, .data.u64 = TAG(idx, 0) };
        if (copy < 0 || epoll_ctl(r->epfd, EPOLL_CTL_ADD, copy, &kick) < 0) {
            ret = vdpad_fail(error, errno, "%s: relay: queue %u: new kick eventfd: %s",
                             r->dev->name, idx, g_strerror(errno));
            goto out;
        }
        epoll_ctl(r->epfd, EPOLL_CTL_DEL, q->guest_kick_fd, NULL);
        vdpad_close_fd(q->guest_kick_fd);
        q->guest_kick_fd = vdpad_steal_fd(&copy);
    }
    if (call_fd >= 0 && vdpad_fd_replace_dup(&q->guest_call_fd, call_fd) < 0)
        ret = vdpad_fail(error, errno, "%s: relay: queue %u: new call eventfd: %s", r->dev->name,
                         idx, g_strerror(errno));
    r->pending[idx / 64] |= 1ull << (idx % 64);
out:
    pthread_mutex_unlock(&r->lock);
    if (ret == 0)
        wake(r);
    return ret;
}

void relay_set_log(struct relay *r, struct dirty_log *log)
{
    pthread_mutex_lock(&r->lock);
    r->log = log;
    for (unsigned i = 0; i < RELAY_MAX_VQS; i++)
        if (r->q[i])
            r->q[i]->guest.log = log;
    r->last_flush_us = g_get_monotonic_time();
    pthread_mutex_unlock(&r->lock);
    wake(r); /* the thread's wait now needs a flush timeout */
}

int relay_flush_log(struct relay *r, GError **error)
{
    int ret = 0;

    pthread_mutex_lock(&r->lock);
    if (r->log) {
        ret = dirty_log_flush(r->log, error);
        r->last_flush_us = g_get_monotonic_time();
    }
    pthread_mutex_unlock(&r->lock);
    return ret;
}

int relay_cvq_command(struct relay *r, const void *cmd, size_t len, unsigned timeout_ms,
                      uint8_t *ack, GError **error)
{
    struct rq *q = NULL;
    gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;
    int ret = 0;

    if (len == 0 || len > CVQ_BOUNCE_MAX)
        return vdpad_fail(error, EINVAL, "%s: relay: control command of %zu bytes", r->dev->name,
                          len);
    pthread_mutex_lock(&r->lock);
    for (unsigned i = 0; i < RELAY_MAX_VQS && !q; i++)
        if (r->q[i] && r->q[i]->control)
            q = r->q[i];
    if (!q || q->failed) {
        ret = vdpad_fail(error, ENODEV, "%s: relay: no working control queue", r->dev->name);
        goto out;
    }
    while (q->cvq_busy) {
        struct timespec ts = { .tv_sec = deadline / G_USEC_PER_SEC,
                               .tv_nsec = (deadline % G_USEC_PER_SEC) * 1000 };
        if (pthread_cond_timedwait(&r->cvq_cond, &r->lock, &ts) == ETIMEDOUT) {
            ret = vdpad_fail(error, ETIMEDOUT, "%s: relay: the control queue stayed busy",
                             r->dev->name);
            goto out;
        }
    }
    memcpy(q->bounce, cmd, len);
    q->bounce[CVQ_BOUNCE_MAX] = VIRTIO_NET_ERR;
    struct vring_buf bufs[2] = { { q->bounce_iova, (uint32_t)len },
                                 { q->bounce_iova + CVQ_BOUNCE_MAX, 1 } };
    ret = vring_drv_add(&q->shadow, bufs, 1, 1, &q->inflight[0]);
    if (ret < 0) {
        vdpad_fail(error, -ret, "%s: relay: posting a control command", r->dev->name);
        goto out;
    }
    q->cvq_busy = true;
    q->cvq_internal = true;
    q->cvq_len = len;
    r->cvq_done = false;
    q->stats.forwarded++;
    q->stats.in_flight++;
    if (vring_drv_publish(&q->shadow))
        signal_fd(q->dev_kick_fd);
    while (!r->cvq_done) {
        struct timespec ts = { .tv_sec = deadline / G_USEC_PER_SEC,
                               .tv_nsec = (deadline % G_USEC_PER_SEC) * 1000 };
        if (pthread_cond_timedwait(&r->cvq_cond, &r->lock, &ts) == ETIMEDOUT) {
            ret = vdpad_fail(error, ETIMEDOUT, "%s: relay: no answer to a control command "
                             "within %u ms", r->dev->name, timeout_ms);
            goto out;
        }
    }
    *ack = r->cvq_ack;
out:
    pthread_mutex_unlock(&r->lock);
    return ret;
}

void relay_lock(struct relay *r)
{
    pthread_mutex_lock(&r->lock);
}

void relay_unlock(struct relay *r)
{
    pthread_mutex_unlock(&r->lock);
}

void relay_remap_locked(struct relay *r)
{
    for (unsigned i = 0; i < RELAY_MAX_VQS; i++) {
        struct rq *q = r->q[i];
        if (q && !q->failed && !map_guest_ring(r, q))
            fail_queue(r, q, "its guest ring is no longer mapped after an IOTLB change");
        if (q)
            r->pending[i / 64] |= 1ull << (i % 64);
    }
    wake(r);
}

int relay_queue_stats(struct relay *r, unsigned idx, struct relay_queue_stats *stats)
{
    int ret = 0;

    pthread_mutex_lock(&r->lock);
    if (idx < RELAY_MAX_VQS && r->q[idx])
        *stats = r->q[idx]->stats;
    else
        ret = -ENOENT;
    pthread_mutex_unlock(&r->lock);
    return ret;
}
