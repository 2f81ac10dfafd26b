/* dbus_resources.h — the introspection XML of data/, compiled into the program by
 * glib-compile-resources (the generated src/dbus/dbus_resources.c). */
#pragma once

#include <gio/gio.h>

#define VDPAD_DBUS_RESOURCE_MANAGER_XML "/org/vdpad1/interfaces/org.vdpad1.Manager.xml"
#define VDPAD_DBUS_RESOURCE_DEVICE_XML "/org/vdpad1/interfaces/org.vdpad1.Device.xml"

GResource *vdpad_dbus_get_resource(void);
