/* dbus_migration.h — org.vdpad1.Device.PrepareIncoming and CancelIncoming, once the
 * caller has passed the access check (dbus_service.c does it).
 *
 * PrepareIncoming(source, device, token) checks its arguments and the node here, then has
 * the migration channel ping the source (mig_service_check_source: connect, mutual TLS,
 * one request). The ping runs on a worker thread, because it may take up to the channel's
 * I/O timeout and the control thread serves every node's FUSE requests meanwhile; its
 * answer comes back to the control thread, which looks the node up again and calls
 * node_prepare_incoming. The reply says which way a refused source failed (unreachable,
 * timeout, closed, auth...: mig_error_kind).
 *
 * Threads: every function here on the control thread (the default main context). The
 * worker threads only call mig_service_check_source (a mig_client may be used from several
 * threads). Ownership: the registry and the channel are borrowed; dbus_migration_free
 * waits for the pings in flight (bounded by the channel's timeout), so the channel may be
 * stopped right after it; their replies then say that vdpad is stopping.
 */
#pragma once

#include <gio/gio.h>

#include "core/node.h"
#include "migration/mig_service.h"

struct dbus_migration;

struct dbus_migration *dbus_migration_new(struct node_registry *reg);
void dbus_migration_free(struct dbus_migration *dm);

/* The channel (NULL: none; PrepareIncoming then fails and says how to start vdpad). */
void dbus_migration_set_channel(struct dbus_migration *dm, struct mig_service *mig);

/* Answers inv (PrepareIncoming or CancelIncoming on the object of device `name`), now or
 * once the source answered. */
void dbus_migration_call(struct dbus_migration *dm, GDBusMethodInvocation *inv,
                         const char *name);
