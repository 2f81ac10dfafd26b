/* dbus_names.h — the names vdpad uses on D-Bus, shared by the daemon and vdpactl.
 *
 * Object paths: /org/vdpad1 (org.vdpad1.Manager) and /org/vdpad1/device/<escaped name>
 * (org.vdpad1.Device). Device names may hold '.', '-' and '_', which object paths cannot,
 * so each byte outside [A-Za-z0-9] becomes "_xx" (its hex value), exactly as GLib 2.68's
 * g_dbus_escape_object_path() does; "n0.eth-1" becomes "n0_2eeth_2d1".
 *
 * Errors: a failed call carries org.vdpad1.Error.<Kind> chosen from the errno of the
 * GError (error.h), with the GError's message.
 *
 * Threads: pure functions.
 */
#pragma once

#include <glib.h>

#define VDPAD_DBUS_NAME "org.vdpad1"
#define VDPAD_DBUS_MANAGER_PATH "/org/vdpad1"
#define VDPAD_DBUS_DEVICE_PATH_PREFIX "/org/vdpad1/device/"
#define VDPAD_DBUS_MANAGER_IFACE "org.vdpad1.Manager"
#define VDPAD_DBUS_DEVICE_IFACE "org.vdpad1.Device"

#define VDPAD_DBUS_ERROR_EXISTS "org.vdpad1.Error.Exists"
#define VDPAD_DBUS_ERROR_NOT_FOUND "org.vdpad1.Error.NotFound"
#define VDPAD_DBUS_ERROR_BUSY "org.vdpad1.Error.Busy"
#define VDPAD_DBUS_ERROR_INVALID_ARGUMENT "org.vdpad1.Error.InvalidArgument"
#define VDPAD_DBUS_ERROR_FAILED "org.vdpad1.Error.Failed"
/* the standard name, as the bus itself answers a call its policy refuses */
#define VDPAD_DBUS_ERROR_ACCESS_DENIED "org.freedesktop.DBus.Error.AccessDenied"

/* A path element for any string: [A-Za-z0-9] kept, every other byte "_xx", "" -> "_". */
char *vdpad_dbus_escape_path_element(const char *s);
/* VDPAD_DBUS_DEVICE_PATH_PREFIX + the escaped name; the caller frees it. */
char *vdpad_dbus_device_path(const char *name);

/* The device name a device object path stands for (the inverse of vdpad_dbus_device_path),
 * or NULL for any other path; the caller frees it. */
char *vdpad_dbus_device_name_from_path(const char *path);

/* The D-Bus error name for a vdpad GError (by its errno; Failed for foreign errors). */
const char *vdpad_dbus_error_name(const GError *error);
