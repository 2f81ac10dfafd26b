/* device_signals.h — org.vdpad1.Device's migration signals for one exported device:
 * ModeChanged, DirtyPagesLogged, Stopped, StateRestored and MigrationFailed, from the
 * registry's node events (node.h). data/org.vdpad1.Device.xml documents each.
 *
 * DirtyPagesLogged is paced: while the node's session logs dirty pages (session_logging),
 * a 1 s GLib timeout reads session_dirty_marks and signals when the count moved (or its
 * rate fell back to 0), so at most once a second; when logging ends (the switch back to
 * passthrough, a stop, the node closing) one last signal carries the final count if it
 * moved since. The timeout runs only while logging is on.
 *
 * Threads: the control thread (the default main context), like the registry's events.
 * Ownership: a device_signals borrows the connection and the node (valid until
 * NODE_REMOVED, before which its owner frees it) and owns its path and timeout.
 */
#pragma once

#include <gio/gio.h>
#include <stdbool.h>

#include "core/node.h"

/* The pacing of DirtyPagesLogged, apart from any clock (tests drive it). */
struct dirty_meter {
    guint64 last_total;  /* the count at the last signal (or at the start) */
    gint64 last_us;      /* when it was read */
    double last_rate;    /* the rate last signalled */
};

void dirty_meter_start(struct dirty_meter *m, guint64 total, gint64 now_us);
/* A periodic reading: true, with *rate (marks per second since the last reading), when a
 * signal is due: the count moved, or the last rate signalled was not 0. A count that went
 * down (a new log) counts from 0. */
bool dirty_meter_sample(struct dirty_meter *m, guint64 total, gint64 now_us, double *rate);
/* The reading when logging ends: true, with *rate, when the count moved since the last
 * signal. */
bool dirty_meter_final(struct dirty_meter *m, guint64 total, gint64 now_us, double *rate);

/* The signal a node event means, with its arguments (a new, non-floating reference) and
 * its member name in *member; NULL for events that have none (added, opened, ...). */
GVariant *device_signal_for_event(const struct vdpa_node *node, enum node_event event,
                                  const char **member);

struct device_signals;

struct device_signals *device_signals_new(GDBusConnection *conn, const char *path,
                                          struct vdpa_node *node);
/* Emits the event's signal, and starts or stops the dirty-page pacing as the session's
 * logging now stands. Call it for every event of the node but NODE_REMOVED (free then). */
void device_signals_node_event(struct device_signals *ds, enum node_event event);
void device_signals_free(struct device_signals *ds);
