/* device_props.h — the values of org.vdpad1.Device's properties for one node, read from
 * the node, its session and its device at each call (nothing is cached here).
 *
 * Threads: the control thread (device ops other than get_vq_stats belong to it).
 * Ownership: every GVariant returned is a new, non-floating reference for the caller.
 */
#pragma once

#include <gio/gio.h>

#include "core/node.h"

/* What the device does with the client's rings: "passthrough", or "relay" while the
 * session's data queues go through the relay (node->mode, from NODE_MODE_CHANGED). */
const char *device_props_mode(const struct vdpa_node *node);

/* Incoming: "HOST:PORT DEVICE" while the node is prepared for a migration, else "". */
char *device_props_incoming(const struct vdpa_node *node);

/* DirtyMarks: the session's dirty-log marks so far; 0 while the node is closed. */
guint64 device_props_dirty_marks(struct vdpa_node *node);

/* Every property that PropertiesChanged announces (all but QueueCounters and DirtyMarks),
 * as a{sv} sorted by name. node_path is the NodePath value. MigrationToken is the
 * session's token while the node is open, else "". */
GVariant *device_props_state(struct vdpa_node *node, const char *node_path);

/* QueueCounters: a(ua{st}), one entry per virtqueue in queue order; a queue whose
 * counters the backend cannot read has an empty dictionary. */
GVariant *device_props_queue_counters(struct vdpa_node *node);

/* One property by name, or NULL if the interface has no such property. */
GVariant *device_props_get(struct vdpa_node *node, const char *node_path, const char *name);

/* The entries of now (a{sv}) whose value differs from, or is missing in, before; NULL
 * when nothing changed. before may be NULL (everything changed). */
GVariant *device_props_changed(GVariant *before, GVariant *now);
