/* relay.h — the shadow-virtqueue relay.
 *
 * For each relayed queue the device works on a shadow ring in vdpad's memory instead of
 * the guest's ring. The relay thread takes guest chains (the device side of the split-ring
 * library, so guest rings are hostile input), posts them to the shadow ring with the same
 * buffer IOVAs (guest memory stays mapped in the device at IOVA = GPA: nothing is copied),
 * and returns the device's used buffers to the guest. Because every device write the guest
 * can see passes through here, the relay can log it: the writable bytes of each completed
 * buffer (up to the used length) and the guest's used-ring entries and index, marked in
 * the dirty log before the guest can see the used entry.
 *
 * The control queue is relayed with bounce buffers: the command the device executes is the
 * copy the relay parsed, so the recorded device state is exactly what the device saw
 * (hooks.cvq_done). The relay can also send commands of its own (relay_cvq_command: state
 * replay on a migration's destination).
 *
 * Shadow rings live in one memfd region mapped into the device at the top of its IOVA
 * range, away from guest memory; setting a queue up costs O(ring size), not O(guest RAM).
 *
 * Threads: one relay thread per relay. All other functions are called by the owner (the
 * session, on the control thread). Queue changes happen under the relay lock while the
 * device is suspended or not yet started. The guest memory map belongs to the owner, who
 * holds relay_lock() around every change to it and calls relay_remap_locked() before
 * unlocking.
 *
 * Ownership: the relay borrows the device and the guest memory map; it dups the guest's
 * eventfds it is given, and owns its shadow memory and its own eventfds.
 */
#pragma once

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#include "backend/vdpa_device.h"

struct iova_map;
struct dirty_log;
struct relay;
typedef struct relay relay; /* for g_autoptr */

struct relay_queue_config {
    unsigned idx;                /* queue index on the device */
    unsigned num;                /* ring size (the shadow ring has the same) */
    uint64_t desc, avail, used;  /* the guest ring, by IOVA */
    uint16_t base;               /* next guest avail entry to take; nothing in flight */
    int guest_kick_fd;           /* the guest's kick eventfd (dup'ed) */
    int guest_call_fd;           /* the guest's call eventfd (dup'ed), -1 for none */
    bool control;                /* the net control queue: bounce buffers, cvq_done */
};

struct relay_hooks {
    /* A control command the device answered: cmd/len are the bytes it executed (class,
     * command, data), ack its answer. Relay thread; keep it short. */
    void (*cvq_done)(void *opaque, const uint8_t *cmd, size_t len, uint8_t ack);
    /* A guest ring was found hostile or corrupt: the queue stopped. Relay thread. */
    void (*queue_failed)(void *opaque, unsigned idx, const char *why);
    void *opaque;
};

struct relay_queue_stats {
    uint64_t forwarded;   /* chains posted to the device */
    uint64_t completed;   /* chains returned to the guest */
    uint64_t in_flight;
    uint64_t dirty_marks; /* dirty-log marks made for this queue */
    bool failed;
};

/* negotiated: the driver features (event idx, indirect). */
struct relay *relay_new(struct vdpa_device *dev, const struct iova_map *guest_mem,
                        uint64_t negotiated, const struct relay_hooks *hooks, GError **error);
/* Stops the thread and frees the shadow memory (the device must not use it any more:
 * reset, or pointed back at the guest rings). */
void relay_free(struct relay *r);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(relay, relay_free)

/* Starts relaying a queue: sets up its shadow ring starting at cfg->base and points the
 * device's queue at it (address, state, kick, call). The device must be suspended or not
 * started. */
int relay_add_queue(struct relay *r, const struct relay_queue_config *cfg, GError **error);

/* Stops relaying a queue (device suspended): returns to the guest everything the device
 * completed, then gives in *guest_base the guest ring's used index — where a device working
 * on the guest ring must resume. Chains the device took and did not complete (receive
 * buffers it never filled) are handed back by that rewind: the guest offers them again.
 * The caller points the device back at the guest ring. */
int relay_remove_queue(struct relay *r, unsigned idx, uint16_t *guest_base, GError **error);

/* The same drain without removing the queue, for a stop (GET_VRING_BASE): the queue then
 * stays idle until removed. */
int relay_drain_queue(struct relay *r, unsigned idx, uint16_t *guest_base, GError **error);

bool relay_has_queue(struct relay *r, unsigned idx);

/* The guest gave a relayed queue new eventfds (QEMU does when the guest masks and unmasks
 * its interrupt vectors). -1 keeps the current one. */
int relay_set_guest_fds(struct relay *r, unsigned idx, int kick_fd, int call_fd, GError **error);

/* Dirty logging: marks go to log (NULL stops logging). The caller keeps log alive until it
 * replaces it here. */
void relay_set_log(struct relay *r, struct dirty_log *log);
/* Pushes pending marks into the log now. */
int relay_flush_log(struct relay *r, GError **error);

/* Sends a control command of the relay's own through the control queue and waits (at
 * most timeout_ms) for the device's ack. */
int relay_cvq_command(struct relay *r, const void *cmd, size_t len, unsigned timeout_ms,
                      uint8_t *ack, GError **error);

/* Guest memory map changes: lock before the change, remap after it and before unlocking
 * (rings are translated again; a queue whose ring is no longer mapped fails). The relay
 * never touches guest memory without this lock. */
void relay_lock(struct relay *r);
void relay_unlock(struct relay *r);
void relay_remap_locked(struct relay *r);

int relay_queue_stats(struct relay *r, unsigned idx, struct relay_queue_stats *stats);

/* Where the shadow memory lives in the device's IOVA space (for the owner's IOTLB
 * checks: the client must not map there). */
void relay_shadow_window(const struct vdpa_device *dev, uint64_t *first, uint64_t *last);
