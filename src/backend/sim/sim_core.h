/* sim_core.h — the generic part of the simulated devices (internal to src/backend/sim/).
 *
 * The core implements every op of struct vdpa_device_ops: features, status, config space,
 * queues, suspend/resume, reset, the IOMMU (an iova_map) and one worker thread per device.
 * A device type (sim_net.c, sim_blk.c) embeds struct sim first in its own struct, fills in a
 * struct sim_type with its hooks and calls sim_init().
 *
 * Threads and locking:
 *   - The ops run on the caller's control thread; get_vq_stats on any thread.
 *   - The worker thread waits (epoll) on the kick eventfds of all queues and on an internal
 *     control eventfd. A kick only marks its queue pending; the worker then calls
 *     type->process() when the device runs (DRIVER_OK, not suspended, not FAILED).
 *   - Everything in struct sim below "state" is guarded by sim->lock. The worker holds the
 *     lock for a whole processing round (it walks rings and guest memory under it), and
 *     every op that reads or changes queues, mappings, status or config takes it. Hence an
 *     op that returns has waited for the round in flight: after suspend() returns, no guest
 *     memory is touched until resume().
 *   - A round is bounded (SIM_BUDGET chains per queue), so ops wait at most one round; the
 *     worker steps aside (sched_yield) while an op is waiting for the lock.
 *
 * Hooks run with the lock held, on the worker (process) or the control thread (the rest).
 */
#pragma once

#include <glib.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "backend/vdpa_device.h"
#include "iova/iova_map.h"
#include "virtio/split_ring.h"

/* Chains a queue may complete in one round before the worker looks at the other queues. */
#define SIM_BUDGET 64u
/* The most queues a simulated device has (net: 16 pairs + control queue). */
#define SIM_MAX_VQS 64u

struct sim;

struct sim_vq {
    /* set by the driver through the ops */
    unsigned num;
    uint64_t desc_iova, driver_iova, device_iova;
    bool ready;
    uint16_t base;  /* avail index to start at (set_vq_state; saved when stopped) */
    int kick_fd;    /* our dup, or -1 */
    int call_fd;    /* our dup, or -1 */
    uint32_t kick_gen; /* tags epoll events, so a replaced fd's event is ignored */

    /* run state */
    bool started;   /* rings translated, vr valid: the worker may walk this queue */
    bool restart;   /* re-translate and restart at base when the device next runs */
    bool failed;    /* stopped by an error until reset */
    char error[200];
    struct vring_dev vr;
    struct vring_elem *elem;  /* the chain being processed (worker) */
    struct vring_elem *elem2; /* a second one, for devices that pair queues (net) */

    /* counters (survive reset, like vdpa_sim's vstats) */
    uint64_t received_desc;  /* chains taken from the ring */
    uint64_t completed_desc; /* chains returned to the used ring */
    uint64_t ring_errors;    /* times the queue was stopped by an error; devices fold it
                              * into their own error counter */
};

struct sim_type {
    uint32_t device_id;
    /* Extra checks of the driver features at FEATURES_OK (dependencies); false refuses
     * them with a static reason in *why. May be NULL. */
    bool (*features_ok)(struct sim *s, uint64_t features, const char **why);
    /* Processes pending queues (s->pending): clears the bits of queues it finished, keeps
     * the bits of queues with work left. Worker thread. */
    void (*process)(struct sim *s);
    /* Device-specific reset (filters, config space); counters are not reset. */
    void (*reset)(struct sim *s);
    /* Called after DRIVER_OK was set. May be NULL. */
    void (*driver_ok)(struct sim *s);
    /* Appends the device's counters of queue idx (core adds received/completed_desc). */
    void (*get_stats)(struct sim *s, unsigned idx, struct vdpa_vq_stats *stats);
    /* Releases the device's own resources; the worker is already stopped. May be NULL. */
    void (*destroy)(struct sim *s);
};

struct sim {
    struct vdpa_device vdev; /* first: the ops table's view */
    const struct sim_type *type;
    uint64_t device_features; /* fixed at creation */
    unsigned nvqs;
    uint16_t num_max;
    size_t config_size;

    pthread_mutex_t lock;
    atomic_uint lock_waiters; /* ops waiting for the lock; the worker yields to them */

    /* state (under lock) */
    uint64_t driver_features;
    uint8_t status;
    bool suspended;
    uint32_t generation;
    uint8_t *config;          /* config_size bytes, little endian */
    int config_call_fd;
    struct sim_vq *vqs;
    struct iova_map *map;     /* what the worker translates through */
    uint64_t pending;         /* queues the worker should look at */
    bool stop;

    /* control thread only */
    struct iova_map *batch;   /* the map being built between batch begin and end */

    /* worker */
    pthread_t thread;
    bool thread_started;
    int epfd;
    int ctl_fd;               /* eventfd: wakes the worker (stop, new pending work) */
};

/* Sets up the core in s (zeroed by the caller): config space (zeroed, config_size bytes),
 * nvqs queues whose elements hold max_segs segments, an empty map, and starts the worker.
 * The device fills s->config afterwards; the worker does nothing before DRIVER_OK. On
 * failure the caller frees the device with sim_ops.free (safe on a partly set-up sim). */
int sim_init(struct sim *s, const struct sim_type *type, const struct vdpa_device_ops *ops,
             const char *name, const char *backend, uint64_t device_features,
             size_t config_size, unsigned nvqs, uint16_t num_max, unsigned max_segs,
             GError **error);
/* The core's ops table; devices use it as it is. */
extern const struct vdpa_device_ops sim_ops;

static inline struct sim *sim_from_vdev(struct vdpa_device *dev)
{
    return (struct sim *)dev;
}

/* ---- for device hooks (lock held) */

/* Stops queue idx with an error: logs it once (g_warning), sets DEVICE_NEEDS_RESET and
 * signals the config eventfd. The queue stays stopped until reset. */
void sim_vq_fail(struct sim *s, unsigned idx, const char *fmt, ...) G_GNUC_PRINTF(3, 4);

/* After a batch of used entries: signals the call eventfd if the driver wants it. */
void sim_vq_notify(struct sim *s, unsigned idx);

/* Can the worker walk queue idx now (started and not failed)? */
static inline bool sim_vq_usable(const struct sim *s, unsigned idx)
{
    return s->vqs[idx].started && !s->vqs[idx].failed;
}

/* Config space changed on the device's initiative: bump the generation, signal the config
 * eventfd. */
void sim_config_changed(struct sim *s);

/* Takes the device lock from a control thread (the worker yields to it). */
void sim_lock(struct sim *s);
void sim_unlock(struct sim *s);
