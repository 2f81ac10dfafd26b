/* vdpactl_bus.c — the bus, calls to vdpad, and reporting their failures (vdpactl.h). */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>

#include "dbus/dbus_names.h"
#include "tools/vdpactl.h"

gboolean vdpactl_bus_valid(const char *bus)
{
    return !bus || g_str_equal(bus, "system") || g_str_equal(bus, "session") ||
           g_dbus_is_supported_address(bus, NULL);
}

char *vdpactl_bus_label(const char *bus)
{
    if (!bus || g_str_equal(bus, "system"))
        return g_strdup("the system bus");
    if (g_str_equal(bus, "session"))
        return g_strdup("the session bus");
    return g_strdup_printf("the bus at %s", bus);
}

GDBusConnection *vdpactl_connect(const char *bus, GError **error)
{
    if (!bus || g_str_equal(bus, "system"))
        return g_bus_get_sync(G_BUS_TYPE_SYSTEM, NULL, error);
    if (g_str_equal(bus, "session"))
        return g_bus_get_sync(G_BUS_TYPE_SESSION, NULL, error);
    return g_dbus_connection_new_for_address_sync(
        bus,
        G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_CLIENT |
            G_DBUS_CONNECTION_FLAGS_MESSAGE_BUS_CONNECTION,
        NULL, NULL, error);
}

GVariant *vdpactl_call(GDBusConnection *conn, const char *path, const char *iface,
                       const char *method, GVariant *args, const char *reply_type,
                       GError **error)
{
    return g_dbus_connection_call_sync(conn, VDPAD_DBUS_NAME, path, iface, method, args,
                                       G_VARIANT_TYPE(reply_type), G_DBUS_CALL_FLAGS_NONE, -1,
                                       NULL, error);
}

char *vdpactl_device_path(GDBusConnection *conn, const char *name, GError **error)
{
    g_autoptr(GVariant) reply = vdpactl_call(conn, VDPAD_DBUS_MANAGER_PATH,
                                             VDPAD_DBUS_MANAGER_IFACE, "GetDevice",
                                             g_variant_new("(s)", name), "(o)", error);
    char *path = NULL;

    if (reply)
        g_variant_get(reply, "(o)", &path);
    return path;
}

GVariant *vdpactl_device_property(GDBusConnection *conn, const char *path, const char *name,
                                  GError **error)
{
    g_autoptr(GVariant) reply = vdpactl_call(conn, path, "org.freedesktop.DBus.Properties", "Get",
                                             g_variant_new("(ss)", VDPAD_DBUS_DEVICE_IFACE, name),
                                             "(v)", error);
    GVariant *value = NULL;

    if (reply)
        g_variant_get(reply, "(v)", &value);
    return value;
}

/* Whether a failed call means vdpad is not there (as opposed to vdpad saying no). */
static gboolean is_unreachable(const GError *err)
{
    static const char *const names[] = {
        "org.freedesktop.DBus.Error.ServiceUnknown", "org.freedesktop.DBus.Error.NameHasNoOwner",
        "org.freedesktop.DBus.Error.NoReply",        "org.freedesktop.DBus.Error.Disconnected",
        "org.freedesktop.DBus.Error.TimedOut",       "org.freedesktop.DBus.Error.NoServer",
    };

    g_autofree char *remote = g_dbus_error_get_remote_error(err);

    if (remote) /* an answer from the bus or from vdpad: by its name */
        return g_strv_contains(names, remote);
    if (err->domain == G_IO_ERROR)
        return TRUE; /* connection closed, timed out, socket gone */
    if (err->domain == G_DBUS_ERROR &&
        (err->code == G_DBUS_ERROR_SERVICE_UNKNOWN || err->code == G_DBUS_ERROR_NAME_HAS_NO_OWNER ||
         err->code == G_DBUS_ERROR_NO_REPLY || err->code == G_DBUS_ERROR_DISCONNECTED ||
         err->code == G_DBUS_ERROR_TIMED_OUT || err->code == G_DBUS_ERROR_NO_SERVER ||
         err->code == G_DBUS_ERROR_TIMEOUT))
        return TRUE;
    return FALSE;
}

int vdpactl_report(const char *what, GError *err)
{
    g_autofree char *remote = g_dbus_error_get_remote_error(err);
    int code = is_unreachable(err) ? EXIT_UNREACHABLE : EXIT_FAILED;

    g_dbus_error_strip_remote_error(err);
    if (code == EXIT_UNREACHABLE)
        fprintf(stderr, "vdpactl: %s: vdpad is not reachable on D-Bus (%s); is it running?\n",
                what, err->message);
    else
        fprintf(stderr, "vdpactl: %s: %s\n", what, err->message);
    if (remote && g_str_equal(remote, VDPAD_DBUS_ERROR_ACCESS_DENIED))
        fprintf(stderr, "vdpactl: changing devices needs root or membership of the group "
                        "vdpad\n");
    return code;
}

int vdpactl_usage_error(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "vdpactl: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (see vdpactl --help)\n");
    return EXIT_USAGE;
}

int vdpactl_parse_command(const char *command, const char *params, const char *summary,
                          GOptionEntry *entries, struct ctl_options *opt, int *argc,
                          char ***argv)
{
    g_autofree char *bus = NULL;
    gboolean json = FALSE;
    GOptionEntry common[] = {
        { "bus", 0, 0, G_OPTION_ARG_STRING, &bus,
          "The bus vdpad serves on: system (default), session or a D-Bus address", "BUS" },
        { "json", 0, 0, G_OPTION_ARG_NONE, &json, "Print JSON (for scripts)", NULL },
        { NULL },
    };
    g_autofree char *usage = g_strdup_printf("%s%s%s", command, params ? " " : "",
                                             params ? params : "");
    g_autoptr(GOptionContext) ctx = g_option_context_new(usage);
    g_autoptr(GError) err = NULL;

    g_option_context_add_main_entries(ctx, common, NULL);
    if (entries)
        g_option_context_add_main_entries(ctx, entries, NULL);
    if (summary)
        g_option_context_set_summary(ctx, summary);
    if (!g_option_context_parse(ctx, argc, argv, &err))
        return vdpactl_usage_error("%s: %s", command, err->message);
    if (bus) {
        g_free(opt->bus);
        opt->bus = g_steal_pointer(&bus);
    }
    opt->json |= json;
    if (!vdpactl_bus_valid(opt->bus))
        return vdpactl_usage_error("--bus must be system, session or a D-Bus address, not '%s'",
                                   opt->bus);
    return 0;
}
