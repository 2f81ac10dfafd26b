/* vdpactl — lists, shows, creates and destroys vdpad's devices over D-Bus (org.vdpad1).
 *
 * Exit codes: 0 done, 1 the operation failed (the daemon's message on stderr), 2 usage
 * error, 3 the daemon cannot be reached (no bus, or nobody owns org.vdpad1). See vdpactl(1).
 */
#include "config.h"

#include <gio/gio.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "dbus/dbus_names.h"
#include "tools/vdpactl_format.h"

enum {
    EXIT_OK = 0,
    EXIT_FAILED = 1,
    EXIT_USAGE = 2,
    EXIT_UNREACHABLE = 3,
};

struct ctl {
    GDBusConnection *conn;
    gboolean json;
};

static const char usage_text[] =
    "Commands:\n"
    "  list            the devices, one per line\n"
    "  show NAME       every property of a device and its per-queue counters\n"
    "  create SPEC     a new device, e.g. net:n1,mac=52:54:00:12:34:56,queues=2\n"
    "  destroy NAME    remove a device (refused while its node is open)\n"
    "\n"
    "Exit status: 0 done, 1 the operation failed, 2 usage error, 3 vdpad not reachable.\n"
    "See vdpactl(1).";

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

/* Prints why a call failed and returns the exit code it means. */
static int report(const char *what, GError *err)
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

static GVariant *call(struct ctl *ctl, const char *path, const char *iface, const char *method,
                      GVariant *args, const char *reply_type, GError **error)
{
    return g_dbus_connection_call_sync(ctl->conn, VDPAD_DBUS_NAME, path, iface, method, args,
                                       G_VARIANT_TYPE(reply_type), G_DBUS_CALL_FLAGS_NONE, -1,
                                       NULL, error);
}

/* The device's properties (a{sv}), or NULL with *error. */
static GVariant *get_all(struct ctl *ctl, const char *path, GError **error)
{
    g_autoptr(GVariant) reply = call(ctl, path, "org.freedesktop.DBus.Properties", "GetAll",
                                     g_variant_new("(s)", VDPAD_DBUS_DEVICE_IFACE), "(a{sv})",
                                     error);

    return reply ? g_variant_get_child_value(reply, 0) : NULL;
}

static void print_json(json_object *obj)
{
    printf("%s\n", json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PRETTY |
                                                           JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(obj);
}

static int cmd_list(struct ctl *ctl)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(GVariant) reply = call(ctl, VDPAD_DBUS_MANAGER_PATH, VDPAD_DBUS_MANAGER_IFACE,
                                     "ListDevices", NULL, "(ao)", &err);
    if (!reply)
        return report("ListDevices", err);

    g_autoptr(GPtrArray) devices = g_ptr_array_new_with_free_func((GDestroyNotify)g_variant_unref);
    json_object *array = ctl->json ? json_object_new_array() : NULL;
    g_autoptr(GVariantIter) it = NULL;
    const char *path;
    g_variant_get(reply, "(ao)", &it);
    while (g_variant_iter_next(it, "&o", &path)) {
        GVariant *props = get_all(ctl, path, &err);
        if (!props) {
            /* destroyed since ListDevices answered: not listed */
            if (g_error_matches(err, G_DBUS_ERROR, G_DBUS_ERROR_UNKNOWN_OBJECT) ||
                g_error_matches(err, G_DBUS_ERROR, G_DBUS_ERROR_UNKNOWN_METHOD)) {
                g_clear_error(&err);
                continue;
            }
            if (array)
                json_object_put(array);
            return report(path, err);
        }
        if (array)
            json_object_array_add(array, vdpactl_device_json(props, path));
        g_ptr_array_add(devices, props);
    }
    if (array) {
        print_json(array);
    } else {
        g_autofree char *table = vdpactl_format_table(devices);
        fputs(table, stdout);
    }
    return EXIT_OK;
}

/* The object path of device name, or NULL with *error. */
static char *device_path(struct ctl *ctl, const char *name, GError **error)
{
    g_autoptr(GVariant) reply = call(ctl, VDPAD_DBUS_MANAGER_PATH, VDPAD_DBUS_MANAGER_IFACE,
                                     "GetDevice", g_variant_new("(s)", name), "(o)", error);
    char *path = NULL;

    if (reply)
        g_variant_get(reply, "(o)", &path);
    return path;
}

static int show_path(struct ctl *ctl, const char *path)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(GVariant) props = get_all(ctl, path, &err);

    if (!props)
        return report(path, err);
    if (ctl->json) {
        print_json(vdpactl_device_json(props, path));
    } else {
        g_autofree char *text = vdpactl_format_show(props);
        fputs(text, stdout);
    }
    return EXIT_OK;
}

static int cmd_show(struct ctl *ctl, const char *name)
{
    g_autoptr(GError) err = NULL;
    g_autofree char *path = device_path(ctl, name, &err);

    if (!path)
        return report(name, err);
    return show_path(ctl, path);
}

static int cmd_create(struct ctl *ctl, const char *spec)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(GVariant) reply = call(ctl, VDPAD_DBUS_MANAGER_PATH, VDPAD_DBUS_MANAGER_IFACE,
                                     "CreateDevice", g_variant_new("(s)", spec), "(o)", &err);
    if (!reply)
        return report("create", err);

    const char *path;
    g_variant_get(reply, "(&o)", &path);
    if (ctl->json)
        return show_path(ctl, path);
    g_autoptr(GVariant) props = get_all(ctl, path, &err);
    const char *name = spec, *node = "?";
    if (props) {
        g_variant_lookup(props, "Name", "&s", &name);
        g_variant_lookup(props, "NodePath", "&s", &node);
    }
    printf("%s: created, node %s\n", name, node);
    return EXIT_OK;
}

static int cmd_destroy(struct ctl *ctl, const char *name)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(GVariant) reply = call(ctl, VDPAD_DBUS_MANAGER_PATH, VDPAD_DBUS_MANAGER_IFACE,
                                     "DestroyDevice", g_variant_new("(s)", name), "()", &err);
    if (!reply)
        return report("destroy", err);
    if (ctl->json) {
        json_object *obj = json_object_new_object();
        json_object_object_add(obj, "Name", json_object_new_string(name));
        json_object_object_add(obj, "Destroyed", json_object_new_boolean(1));
        print_json(obj);
    } else {
        printf("%s: destroyed\n", name);
    }
    return EXIT_OK;
}

static int usage_error(const char *fmt, ...) G_GNUC_PRINTF(1, 2);
static int usage_error(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "vdpactl: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (see vdpactl --help)\n");
    return EXIT_USAGE;
}

int main(int argc, char **argv)
{
    g_autofree char *bus_name = NULL;
    gboolean json = FALSE, version = FALSE;
    GOptionEntry entries[] = {
        { "bus", 0, 0, G_OPTION_ARG_STRING, &bus_name,
          "The bus vdpad serves on: system (default) or session", "BUS" },
        { "json", 0, 0, G_OPTION_ARG_NONE, &json, "Print JSON (for scripts)", NULL },
        { "version", 0, 0, G_OPTION_ARG_NONE, &version, "Print the version and exit", NULL },
        { NULL },
    };
    g_autoptr(GOptionContext) ctx =
        g_option_context_new("COMMAND [ARG] - manage vdpad's vhost-vdpa devices");
    g_autoptr(GError) err = NULL;

    g_option_context_add_main_entries(ctx, entries, NULL);
    g_option_context_set_description(ctx, usage_text);
    if (!g_option_context_parse(ctx, &argc, &argv, &err))
        return usage_error("%s", err->message);
    if (version) {
        printf("vdpactl %s\n", PACKAGE_VERSION);
        return EXIT_OK;
    }
    GBusType bus = G_BUS_TYPE_SYSTEM;
    if (bus_name && g_str_equal(bus_name, "session"))
        bus = G_BUS_TYPE_SESSION;
    else if (bus_name && !g_str_equal(bus_name, "system"))
        return usage_error("--bus must be system or session, not '%s'", bus_name);
    if (argc < 2)
        return usage_error("%s", "no command given: list, show, create or destroy");

    const char *cmd = argv[1];
    int nargs = g_str_equal(cmd, "list") ? 0
              : g_str_equal(cmd, "show") || g_str_equal(cmd, "create") ||
                        g_str_equal(cmd, "destroy")
                  ? 1
                  : -1;
    if (nargs < 0)
        return usage_error("unknown command '%s': list, show, create or destroy", cmd);
    if (argc - 2 != nargs)
        return usage_error("'%s' takes %s", cmd,
                           nargs == 0                   ? "no argument"
                           : g_str_equal(cmd, "create") ? "one SPEC"
                                                        : "one NAME");

    struct ctl ctl = { .json = json };
    ctl.conn = g_bus_get_sync(bus, NULL, &err);
    if (!ctl.conn) {
        fprintf(stderr, "vdpactl: cannot connect to the %s bus: %s\n",
                bus == G_BUS_TYPE_SYSTEM ? "system" : "session", err->message);
        return EXIT_UNREACHABLE;
    }
    int rc;
    if (g_str_equal(cmd, "list"))
        rc = cmd_list(&ctl);
    else if (g_str_equal(cmd, "show"))
        rc = cmd_show(&ctl, argv[2]);
    else if (g_str_equal(cmd, "create"))
        rc = cmd_create(&ctl, argv[2]);
    else
        rc = cmd_destroy(&ctl, argv[2]);
    g_object_unref(ctl.conn);
    return rc;
}
