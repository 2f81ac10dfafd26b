/* dbus_service.h — vdpad on D-Bus (GDBus).
 *
 * Bus name org.vdpad1. /org/vdpad1 implements org.vdpad1.Manager (ListDevices, GetDevice,
 * CreateDevice, DestroyDevice; signals DeviceAdded, DeviceRemoved); each device is an
 * object /org/vdpad1/device/<escaped name> (dbus_names.h) implementing org.vdpad1.Device:
 * read-only properties (device_props.h), the migration signals (device_signals.h) and
 * PrepareIncoming/CancelIncoming (dbus_migration.h). The introspection XML is
 * data/org.vdpad1.*.xml, compiled into the program. docs/dbus.md describes the whole
 * interface.
 *
 * Signals: PropertiesChanged is emitted for the properties that changed when the registry
 * reports a node event (opened, closed, changed, migration events). QueueCounters and
 * DirtyMarks are never signalled; they are read at each Get.
 *
 * Access: on the system bus the policy (data/org.vdpad1.conf) lets only root and the
 * group vdpad call CreateDevice, DestroyDevice, PrepareIncoming and CancelIncoming. The
 * service checks those calls again from the caller's bus credentials (dbus_access.h), so
 * a bus without the policy is no way around it; refused calls get
 * org.freedesktop.DBus.Error.AccessDenied.
 *
 * The service has a private connection to the bus: stopping it closes the connection,
 * which releases the name. If the bus goes away the daemon keeps serving its nodes and
 * logs that D-Bus is gone.
 *
 * Threads: the control thread's main context (the default one), which also serves FUSE.
 * Nothing here blocks on a client: the credential check is asynchronous, and
 * PrepareIncoming checks its source on a worker thread (stop waits for it).
 */
#pragma once

#include <gio/gio.h>

#include "core/node.h"
#include "migration/mig_service.h"
#include "vhost_vdpa/fuse_front.h"

struct dbus_service;
typedef struct dbus_service dbus_service; /* for g_autoptr */

/* Connects to the bus, exports the registry's devices (and follows it) and owns the
 * name. Fails with a clear error when the bus is unreachable, another process owns
 * org.vdpad1, or the bus policy does not let us own it. reg and front are borrowed and
 * must outlive the service; front gives NodePath and may be NULL (tests: NodePath ""). */
struct dbus_service *dbus_service_start(GBusType bus, struct node_registry *reg,
                                        struct fuse_front *front, GError **error);
/* Same, on the bus at a D-Bus address (tests). */
struct dbus_service *dbus_service_start_address(const char *address, struct node_registry *reg,
                                                struct fuse_front *front, GError **error);
/* Releases the name, removes the objects, stops following the registry. NULL is a no-op. */
void dbus_service_stop(struct dbus_service *svc);

/* The migration channel (NULL: none), which PrepareIncoming uses to check the source.
 * Borrowed: stop the service before the channel. */
void dbus_service_set_migration(struct dbus_service *svc, struct mig_service *mig);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(dbus_service, dbus_service_stop)
