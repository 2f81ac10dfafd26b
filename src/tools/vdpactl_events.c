#include "config.h"

#include <gio/gio.h>
#include <stdbool.h>
#include <string.h>

#include "dbus/dbus_names.h"
#include "dbus/dbus_resources.h"
#include "tools/vdpactl_events.h"
#include "tools/vdpactl_format.h"

#define PROPERTIES_IFACE "org.freedesktop.DBus.Properties"

/* ------------------------------------------------------------------ argument names */

struct signal_names {
    char *iface, *member;
    char **args;
};

static GPtrArray *load_signal_names(void)
{
    static const char *const resources[] = { VDPAD_DBUS_RESOURCE_MANAGER_XML,
                                             VDPAD_DBUS_RESOURCE_DEVICE_XML };
    GPtrArray *all = g_ptr_array_new();

    for (unsigned r = 0; r < G_N_ELEMENTS(resources); r++) {
        g_autoptr(GBytes) xml = g_resource_lookup_data(vdpad_dbus_get_resource(), resources[r],
                                                       G_RESOURCE_LOOKUP_FLAGS_NONE, NULL);
        g_autoptr(GDBusNodeInfo) info =
            xml ? g_dbus_node_info_new_for_xml(g_bytes_get_data(xml, NULL), NULL) : NULL;
        for (unsigned i = 0; info && info->interfaces && info->interfaces[i]; i++) {
            GDBusInterfaceInfo *iface = info->interfaces[i];
            for (unsigned s = 0; iface->signals && iface->signals[s]; s++) {
                GDBusSignalInfo *sig = iface->signals[s];
                struct signal_names *n = g_new0(struct signal_names, 1);
                unsigned nargs = 0;
                while (sig->args && sig->args[nargs])
                    nargs++;
                n->iface = g_strdup(iface->name);
                n->member = g_strdup(sig->name);
                n->args = g_new0(char *, nargs + 1);
                for (unsigned a = 0; a < nargs; a++)
                    n->args[a] = g_strdup(sig->args[a]->name);
                g_ptr_array_add(all, n);
            }
        }
    }
    return all;
}

const char *const *vdpactl_signal_arg_names(const char *iface, const char *member)
{
    static const char *const properties_changed[] = { "interface", "changed", "invalidated",
                                                      NULL };
    static GPtrArray *names; /* kept for the program's life */

    if (g_str_equal(iface, PROPERTIES_IFACE))
        return g_str_equal(member, "PropertiesChanged") ? properties_changed : NULL;
    if (!names)
        names = load_signal_names();
    for (guint i = 0; i < names->len; i++) {
        const struct signal_names *n = names->pdata[i];
        if (g_str_equal(n->iface, iface) && g_str_equal(n->member, member))
            return (const char *const *)n->args;
    }
    return NULL;
}

/* ------------------------------------------------------------------ common */

char *vdpactl_event_device(const struct vdpactl_event *ev)
{
    char *name = vdpad_dbus_device_name_from_path(ev->path);
    const char *arg;

    if (name)
        return name;
    /* the manager's DeviceAdded/DeviceRemoved (o device, s name) */
    if (g_str_equal(ev->iface, VDPAD_DBUS_MANAGER_IFACE) &&
        g_variant_is_of_type(ev->params, G_VARIANT_TYPE("(os)"))) {
        g_variant_get(ev->params, "(&o&s)", NULL, &arg);
        return g_strdup(arg);
    }
    return g_strdup("-");
}

static char *arg_name(const char *const *names, gsize i)
{
    for (gsize k = 0; names && names[k]; k++)
        if (k == i)
            return g_strdup(names[k]);
    return g_strdup_printf("arg%" G_GSIZE_FORMAT, i);
}

/* ------------------------------------------------------------------ text */

static bool plain_word(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if ((unsigned char)*s <= ' ' || *s == '"' || *s == '=' || *s == '\\' || *s == 0x7f)
            return false;
    return true;
}

static void append_value(GString *out, GVariant *v)
{
    if (g_variant_is_of_type(v, G_VARIANT_TYPE_VARIANT)) {
        g_autoptr(GVariant) inner = g_variant_get_variant(v);
        append_value(out, inner);
    } else if (g_variant_is_of_type(v, G_VARIANT_TYPE_STRING) ||
               g_variant_is_of_type(v, G_VARIANT_TYPE_OBJECT_PATH)) {
        const char *s = g_variant_get_string(v, NULL);
        if (plain_word(s)) {
            g_string_append(out, s);
        } else { /* quoted as a JSON string: spaces, quotes and controls stay readable */
            json_object *js = json_object_new_string(s);
            g_string_append(out, json_object_to_json_string_ext(js, JSON_C_TO_STRING_PLAIN |
                                                                       JSON_C_TO_STRING_NOSLASHESCAPE));
            json_object_put(js);
        }
    } else if (g_variant_is_of_type(v, G_VARIANT_TYPE_DOUBLE)) {
        g_string_append_printf(out, "%.3f", g_variant_get_double(v));
    } else if (g_variant_is_of_type(v, G_VARIANT_TYPE("a(uq)"))) {
        GVariantIter it;
        guint32 idx;
        guint16 base;
        gboolean first = TRUE;
        g_variant_iter_init(&it, v);
        while (g_variant_iter_next(&it, "(uq)", &idx, &base)) {
            g_string_append_printf(out, "%s%u:%u", first ? "" : ",", idx, base);
            first = FALSE;
        }
        if (first)
            g_string_append(out, "-");
    } else {
        g_autofree char *text = g_variant_print(v, FALSE);
        g_string_append(out, text);
    }
}

static char *time_text(gint64 time_us, gboolean utc, const char *fmt)
{
    g_autoptr(GDateTime) dt = utc ? g_date_time_new_from_unix_utc(time_us / G_USEC_PER_SEC)
                                  : g_date_time_new_from_unix_local(time_us / G_USEC_PER_SEC);
    g_autofree char *secs = dt ? g_date_time_format(dt, fmt) : g_strdup("?");

    return g_strdup_printf("%s.%06d", secs, (int)(time_us % G_USEC_PER_SEC));
}

char *vdpactl_event_text(const struct vdpactl_event *ev)
{
    g_autofree char *device = vdpactl_event_device(ev);
    g_autofree char *when = time_text(ev->time_us, FALSE, "%H:%M:%S");
    GString *out = g_string_new(NULL);

    g_string_append_printf(out, "%s %s %s", when, device, ev->member);
    if (g_str_equal(ev->iface, PROPERTIES_IFACE) &&
        g_variant_is_of_type(ev->params, G_VARIANT_TYPE("(sa{sv}as)"))) {
        /* the properties that changed, by name */
        g_autoptr(GVariant) changed = g_variant_get_child_value(ev->params, 1);
        g_autoptr(GVariant) invalidated = g_variant_get_child_value(ev->params, 2);
        GVariantIter it;
        const char *key;
        GVariant *value;
        g_variant_iter_init(&it, changed);
        while (g_variant_iter_loop(&it, "{&sv}", &key, &value)) {
            g_string_append_printf(out, " %s=", key);
            append_value(out, value);
        }
        g_variant_iter_init(&it, invalidated);
        while (g_variant_iter_next(&it, "&s", &key))
            g_string_append_printf(out, " %s=?", key);
        return g_string_free(out, FALSE);
    }
    const char *const *names = vdpactl_signal_arg_names(ev->iface, ev->member);
    for (gsize i = 0; i < g_variant_n_children(ev->params); i++) {
        g_autoptr(GVariant) v = g_variant_get_child_value(ev->params, i);
        g_autofree char *name = arg_name(names, i);
        g_string_append_printf(out, " %s=", name);
        append_value(out, v);
    }
    return g_string_free(out, FALSE);
}

/* ------------------------------------------------------------------ JSON */

json_object *vdpactl_event_json(const struct vdpactl_event *ev)
{
    json_object *obj = json_object_new_object();
    json_object *args = json_object_new_object();
    g_autofree char *device = vdpactl_event_device(ev);
    g_autofree char *when = time_text(ev->time_us, TRUE, "%Y-%m-%dT%H:%M:%S");
    g_autofree char *stamp = g_strconcat(when, "Z", NULL);
    const char *const *names = vdpactl_signal_arg_names(ev->iface, ev->member);

    json_object_object_add(obj, "time", json_object_new_string(stamp));
    json_object_object_add(obj, "device", json_object_new_string(device));
    json_object_object_add(obj, "object_path", json_object_new_string(ev->path));
    json_object_object_add(obj, "interface", json_object_new_string(ev->iface));
    json_object_object_add(obj, "signal", json_object_new_string(ev->member));
    for (gsize i = 0; i < g_variant_n_children(ev->params); i++) {
        g_autoptr(GVariant) v = g_variant_get_child_value(ev->params, i);
        g_autofree char *name = arg_name(names, i);
        json_object_object_add(args, name, vdpactl_variant_json(v));
    }
    json_object_object_add(obj, "args", args);
    return obj;
}
