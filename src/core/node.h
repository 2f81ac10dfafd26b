/* node.h — the daemon's devices, each served as a node DIR/NAME.
 *
 * A node owns its backend device for its whole life and a session while a client has it
 * open. The registry owns the nodes. Observers (the FUSE front, which shows the files,
 * and the D-Bus service, which exports the objects) are told when nodes come, go and
 * change (opened, closed, features negotiated...).
 *
 * Threads: the control thread only. Observers are called synchronously from it.
 */
#pragma once

#include <glib.h>
#include <sys/types.h>

#include "backend/vdpa_device.h"
#include "core/device_spec.h"
#include "core/session.h"

struct node_registry;

/* The device as it stood the last time it stopped from DRIVER_OK: what a migration's
 * destination restores. */
struct node_stop_record {
    bool valid;
    uint64_t generation;   /* increases with every stop */
    char token[33];        /* the session's token */
    gint64 stopped_us;     /* g_get_real_time() */
    uint64_t features;     /* negotiated */
    bool logging;          /* dirty logging was on: a migration's stop */
    bool has_net;
    struct net_state net;
    unsigned nvqs;
    uint16_t *bases;       /* per queue: next avail index, for started queues */
    bool *started;
};

/* A destination prepared for a migration: where the state comes from. */
struct node_incoming {
    char *source;          /* "host:port" of the source vdpad's migration listener */
    char *device;          /* the device's name there */
    char *token;           /* the source session's token */
};

struct vdpa_node {
    char *name;
    struct device_spec *spec;  /* what it was created from */
    struct vdpa_device *dev;   /* owned */
    struct session *session;   /* while open, else NULL */
    gint64 created_us;         /* g_get_real_time() at creation */
    struct node_registry *reg;
    /* Ties a migration's destination to this session: a fresh random token per session
     * (not a credential: the channel's TLS is). */
    char token[33];

    struct node_stop_record stop;
    struct node_incoming *incoming; /* until the restore is done */
    /* the last migration events, for observers */
    enum session_mode mode;
    double mode_switch_ms;
    unsigned restored_commands;
    double restored_ms;
    char *last_failure;
};

struct node_registry;
typedef struct node_registry node_registry; /* for g_autoptr */

enum node_event {
    NODE_ADDED,
    NODE_REMOVED, /* called before the node is freed */
    NODE_OPENED,
    NODE_CLOSED,
    NODE_CHANGED, /* features, status, owner */
    NODE_MODE_CHANGED,      /* node->mode, node->mode_switch_ms */
    NODE_STOPPED,           /* node->stop */
    NODE_RESTORED,          /* node->restored_commands, node->restored_ms */
    NODE_MIGRATION_FAILED,  /* node->last_failure */
};

/* Fetches the state a prepared destination restores (the migration channel). Its error
 * need not name the node: the session's message does. */
typedef int (*node_state_fetcher)(void *opaque, struct vdpa_node *node,
                                  const struct node_incoming *from, struct net_state *out,
                                  GError **error);

typedef void (*node_observer_fn)(struct vdpa_node *node, enum node_event event, void *data);

struct node_registry *node_registry_new(void);
/* Destroys every node (resetting devices); observers see NODE_REMOVED for each. */
void node_registry_free(struct node_registry *reg);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(node_registry, node_registry_free)

/* The directory this daemon serves: a kernel: device whose path lies inside it would be
 * our own node, and opening it from the control thread would wait for itself. */
void node_registry_set_own_dir(struct node_registry *reg, const char *dir);

void node_registry_add_observer(struct node_registry *reg, node_observer_fn fn, void *data);
void node_registry_remove_observer(struct node_registry *reg, node_observer_fn fn, void *data);

/* Creates the device a spec describes and adds its node. -EEXIST if the name is taken;
 * the backend's error if the device cannot be created. */
int node_registry_create(struct node_registry *reg, const char *spec_text,
                         struct vdpa_node **out, GError **error);
/* Removes a node; -EBUSY while a client has it open, -ENOENT if unknown. */
int node_registry_destroy(struct node_registry *reg, const char *name, GError **error);

struct vdpa_node *node_registry_lookup(struct node_registry *reg, const char *name);
/* The nodes, sorted by name (the array and its order are the registry's; do not keep). */
GPtrArray *node_registry_list(struct node_registry *reg);

/* Opens a session on the node for process opener; -EBUSY if one is open. */
int node_open(struct node_registry *reg, struct vdpa_node *node, pid_t opener,
              const struct session_mem_ops *mem, void *mem_opaque, GError **error);
/* Ends the session: the device is reset, mappings dropped, fds closed. */
void node_close(struct node_registry *reg, struct vdpa_node *node);
/* Tells observers the node's state changed. */
void node_changed(struct node_registry *reg, struct vdpa_node *node);

/* How prepared destinations fetch their state (set by the migration module). */
void node_registry_set_fetcher(struct node_registry *reg, node_state_fetcher fn, void *opaque);

/* Prepares the node as a migration's destination: the next start restores the state of
 * device `device` (session `token`) from the vdpad at `source` (host:port) before its
 * data queues start. -EBUSY while a started session runs. */
int node_prepare_incoming(struct node_registry *reg, struct vdpa_node *node, const char *source,
                          const char *device, const char *token, GError **error);
void node_cancel_incoming(struct vdpa_node *node);
