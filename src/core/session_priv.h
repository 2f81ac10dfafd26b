/* session_priv.h — the session's state, shared by session.c (the client's view: owner,
 * features, rings, IOTLB) and session_relay.c (relay, dirty log, control-queue shadow,
 * migration). Not for other modules. Threads: the control thread, except net/net_lock,
 * which the relay thread updates when the device answers a control command. */
#pragma once

#include <glib.h>

#include "core/session.h"
#include "virtio/net_state.h"

struct relay;
struct dirty_log;

#define DEV_NAME(s) ((s)->dev->name)

/* One piece of client memory mapped into ours, for one IOVA range; local is NULL for
 * memory the client could not share (unreachable for the device). */
struct mem_record {
    uint64_t iova;
    uint64_t size;
    void *local;
};

struct session_vq {
    unsigned num;
    uint64_t desc, avail, used;
    bool addr_set;       /* SET_VRING_ADDR seen (IOVA 0 is a valid ring address) */
    uint16_t base;
    bool ready;
    int kick_fd; /* ours; the device holds its own dup */
    int call_fd;
    unsigned busyloop_timeout;
    uint16_t saved_base; /* the base at the last reset from DRIVER_OK */
    bool saved_valid;
};

struct session {
    struct vdpa_device *dev; /* borrowed from the node */
    pid_t opener;
    pid_t owner;
    uint64_t backend_features; /* acked by the client */
    unsigned nvqs;
    struct session_vq *vq;
    int config_call_fd;
    struct iova_map *iotlb;  /* client IOVA -> our address */
    GArray *maps;            /* struct mem_record, sorted by iova */
    /* Memory invalidated inside a batch: the device may use it until BATCH_END applies
     * the batch, so it is unmapped only then (or at reset). struct mem_record. */
    GArray *unmap_at_batch_end;
    const struct session_mem_ops *mem;
    void *mem_opaque;
    bool in_batch;
    bool suspended;      /* by GET_VRING_BASE or the client's SUSPEND */
    char *ram_unshared;  /* why guest RAM is unreachable, when it is */

    /* relay and migration (session_relay.c) */
    uint64_t negotiated;     /* driver features, without VHOST_F_LOG_ALL */
    bool log_all;            /* VHOST_F_LOG_ALL acked: log dirty pages */
    uint64_t log_base;       /* QEMU's log address (SET_LOG_BASE), 0 = none */
    struct dirty_log *log;   /* while log_all and a base is known */
    struct relay *relay;     /* while started, when a queue is relayed */
    unsigned cvq;            /* the control queue's index, or UINT_MAX */
    bool data_relayed;       /* the data queues are in the relay (migration) */
    GMutex net_lock;
    struct net_state net;    /* what the driver set through the control queue */
    bool net_valid;
    bool restore_pending;      /* data queue enables held back until a state is replayed */
    struct session_events events;
};


/* session_relay.c, for session.c */
bool session_vq_started(const struct session *s, unsigned idx);
bool session_offers_log_all(const struct session *s);
bool session_vq_relayed(struct session *s, unsigned idx);
int session_flush_log(struct session *s, GError **error);
int session_relay_toggle_log(struct session *s, bool on, GError **error);
int session_relay_before_driver_ok(struct session *s, GError **error);
int session_relay_after_driver_ok(struct session *s, GError **error);
int session_relay_drain(struct session *s, unsigned idx, uint16_t *base, GError **error);
void session_relay_stop(struct session *s);
void session_relay_free(struct session *s);
