/* dbus_service.h — vdpad on D-Bus (GDBus).
 *
 * Bus name org.vdpad1. /org/vdpad1 implements org.vdpad1.Manager (ListDevices,
 * CreateDevice, DestroyDevice); /org/vdpad1/device/<name> implements org.vdpad1.Device
 * (properties, and signals for every step a monitoring tool follows). The introspection
 * XML lives in data/. Who may call is the D-Bus policy's business (data/org.vdpad1.conf):
 * root and the vdpad group may call, everyone else may only read.
 *
 * Threads: the control thread's main context.
 */
#pragma once

#include <gio/gio.h>

#include "core/node.h"
#include "vhost_vdpa/fuse_front.h"

struct dbus_service;
typedef struct dbus_service dbus_service; /* for g_autoptr */

/* Connects to the bus, exports the objects and owns the name. Fails with a clear error
 * when the bus is unreachable or another process owns org.vdpad1. */
struct dbus_service *dbus_service_start(GBusType bus, struct node_registry *reg,
                                        struct fuse_front *front, GError **error);
void dbus_service_stop(struct dbus_service *svc);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(dbus_service, dbus_service_stop)
