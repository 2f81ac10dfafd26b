/* vdpactl_format.h — how vdpactl shows devices: aligned text for people, JSON for scripts.
 *
 * A device is the a{sv} that org.freedesktop.DBus.Properties.GetAll returns for
 * org.vdpad1.Device (docs/dbus.md). Missing properties print as "-" (text) or are left
 * out (JSON), so a newer daemon with more properties, or an older one with fewer, works.
 *
 * JSON keys are the D-Bus property names (Name, NodePath, ...) plus ObjectPath; numbers
 * are JSON integers; QueueCounters becomes [{"Queue": 0, "Counters": {"name": n}}, ...].
 *
 * Threads: pure functions. Ownership: results are the caller's.
 */
#pragma once

#include <glib.h>
#include <json.h>

/* The `list` table: a header and one row per device (GVariant a{sv}), columns
 * NAME TYPE BACKEND MODE NODE OPENER MAC, aligned, each line ending in '\n'. */
char *vdpactl_format_table(GPtrArray *devices);

/* `show`: one "Property:  value" line per property, then the per-queue counters. */
char *vdpactl_format_show(GVariant *device);

/* "0x0f (ACKNOWLEDGE DRIVER FEATURES_OK DRIVER_OK)"; "0x00 (reset)" for 0. */
char *vdpactl_format_status(guint8 status);

/* A double with at most three decimals ("0.412", "2584657.6", "1.0"); NULL (JSON null)
 * for NaN and infinities. */
json_object *vdpactl_json_double(double v);

/* Any D-Bus value as JSON: strings, numbers, booleans as such; a{s*} as an object; other
 * arrays and tuples as arrays; variants unwrapped. QueueCounters' a(ua{st}) becomes
 * [{"Queue": 0, "Counters": {...}}], Stopped's a(uq) [{"Queue": 0, "Base": 17}]. */
json_object *vdpactl_variant_json(GVariant *v);

/* The JSON object for a device; object_path may be NULL. */
json_object *vdpactl_device_json(GVariant *device, const char *object_path);
