/* vdpactl_events.h — how `vdpactl monitor` shows vdpad's signals: one text line, or one
 * JSON object (a line of its own), per signal.
 *
 *   text: 03:30:44.123456 n0 ModeChanged mode=relay switch_ms=0.412
 *         03:30:44.130002 n0 Stopped bases=0:1043,1:877,4:12
 *         03:30:44.200000 n0 PropertiesChanged Mode=passthrough OpenerPid=0
 *   JSON: {"time":"2026-11-22T03:30:44.123456Z","device":"n0",
 *          "object_path":"/org/vdpad1/device/n0","interface":"org.vdpad1.Device",
 *          "signal":"ModeChanged","args":{"mode":"relay","switch_ms":0.412}}
 *
 * Arguments are named as the introspection XML names them (data/org.vdpad1.*.xml, compiled
 * into vdpactl; vdpactl_signal_arg_names), PropertiesChanged's as the D-Bus specification
 * does (interface, changed, invalidated); values are converted by vdpactl_variant_json. A
 * signal vdpactl does not know gets arg0, arg1... The device is the name the object path
 * stands for, or the name argument of the manager's DeviceAdded/DeviceRemoved; "-" when
 * there is none.
 *
 * Threads: pure functions (vdpactl_signal_arg_names reads the compiled-in XML once; call it
 * from one thread). Ownership: results are the caller's.
 */
#pragma once

#include <glib.h>
#include <json.h>

struct vdpactl_event {
    gint64 time_us;         /* g_get_real_time() when it arrived */
    const char *path;       /* the object that sent it */
    const char *iface;
    const char *member;
    GVariant *params;       /* a tuple */
};

/* The argument names of a signal of vdpad's interfaces (org.vdpad1.Manager, .Device) or
 * of org.freedesktop.DBus.Properties.PropertiesChanged; NULL for any other. The array is
 * static, NULL-terminated. */
const char *const *vdpactl_signal_arg_names(const char *iface, const char *member);

/* The device the event is about (g_free), "-" if none. */
char *vdpactl_event_device(const struct vdpactl_event *ev);

/* One line, without the newline. */
char *vdpactl_event_text(const struct vdpactl_event *ev);
json_object *vdpactl_event_json(const struct vdpactl_event *ev);
