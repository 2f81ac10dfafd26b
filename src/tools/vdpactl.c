/* vdpactl — lists, shows, creates and destroys vdpad's devices over D-Bus (org.vdpad1),
 * prepares migration destinations, monitors vdpad's signals and migrates QEMU guests.
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
#include "tools/vdpactl.h"
#include "tools/vdpactl_format.h"

static const char usage_text[] =
    "Commands:\n"
    "  list            the devices, one per line\n"
    "  show NAME       every property of a device and its per-queue counters\n"
    "  create SPEC     a new device, e.g. net:n1,mac=52:54:00:12:34:56,queues=2\n"
    "  destroy NAME    remove a device (refused while its node is open)\n"
    "  prepare-incoming NAME SOURCE_HOST:PORT SOURCE_DEVICE TOKEN\n"
    "                  make NAME a migration's destination: restore the state of\n"
    "                  SOURCE_DEVICE (its MigrationToken) from the vdpad at SOURCE\n"
    "  cancel-incoming NAME\n"
    "                  undo prepare-incoming\n"
    "  monitor [--count N] [--timeout S] [NAME]\n"
    "                  print vdpad's signals as they come, one line each\n"
    "  migrate --src-qmp SOCK --dst-qmp SOCK --device NAME --source HOST:PORT URI\n"
    "                  live-migrate a QEMU guest on a vdpad device (vdpactl migrate --help)\n"
    "  qmp SOCK COMMAND [ARGS-JSON]\n"
    "                  run one QMP command on a QEMU and print its result as JSON\n"
    "\n"
    "--bus takes system (default), session or a D-Bus address (unix:path=...).\n"
    "Exit status: 0 done, 1 the operation failed, 2 usage error, 3 vdpad not reachable.\n"
    "See vdpactl(1).";

struct ctl {
    GDBusConnection *conn;
    gboolean json;
};

/* The device's properties (a{sv}), or NULL with *error. */
static GVariant *get_all(struct ctl *ctl, const char *path, GError **error)
{
    g_autoptr(GVariant) reply = vdpactl_call(ctl->conn, path, "org.freedesktop.DBus.Properties",
                                             "GetAll", g_variant_new("(s)", VDPAD_DBUS_DEVICE_IFACE),
                                             "(a{sv})", error);

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
    g_autoptr(GVariant) reply = vdpactl_call(ctl->conn, VDPAD_DBUS_MANAGER_PATH, VDPAD_DBUS_MANAGER_IFACE,
                                     "ListDevices", NULL, "(ao)", &err);
    if (!reply)
        return vdpactl_report("ListDevices", err);

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
            return vdpactl_report(path, err);
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

static int show_path(struct ctl *ctl, const char *path)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(GVariant) props = get_all(ctl, path, &err);

    if (!props)
        return vdpactl_report(path, err);
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
    g_autofree char *path = vdpactl_device_path(ctl->conn, name, &err);

    if (!path)
        return vdpactl_report(name, err);
    return show_path(ctl, path);
}

static int cmd_create(struct ctl *ctl, const char *spec)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(GVariant) reply = vdpactl_call(ctl->conn, VDPAD_DBUS_MANAGER_PATH, VDPAD_DBUS_MANAGER_IFACE,
                                     "CreateDevice", g_variant_new("(s)", spec), "(o)", &err);
    if (!reply)
        return vdpactl_report("create", err);

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
    g_autoptr(GVariant) reply = vdpactl_call(ctl->conn, VDPAD_DBUS_MANAGER_PATH, VDPAD_DBUS_MANAGER_IFACE,
                                     "DestroyDevice", g_variant_new("(s)", name), "()", &err);
    if (!reply)
        return vdpactl_report("destroy", err);
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

/* prepare-incoming and cancel-incoming: methods of the device's object. */
static int cmd_incoming(struct ctl *ctl, const char *name, char **args)
{
    g_autoptr(GError) err = NULL;
    g_autofree char *path = vdpactl_device_path(ctl->conn, name, &err);

    if (!path)
        return vdpactl_report(name, err);
    const char *method = args ? "PrepareIncoming" : "CancelIncoming";
    GVariant *params = args ? g_variant_new("(sss)", args[0], args[1], args[2]) : NULL;
    g_autoptr(GVariant) reply = vdpactl_call(ctl->conn, path, VDPAD_DBUS_DEVICE_IFACE, method,
                                             params, "()", &err);
    if (!reply)
        return vdpactl_report(args ? "prepare-incoming" : "cancel-incoming", err);
    if (ctl->json)
        return show_path(ctl, path);
    if (args)
        printf("%s: prepared to receive %s's state from %s\n", name, args[1], args[0]);
    else
        printf("%s: not prepared for a migration\n", name);
    return EXIT_OK;
}

struct command {
    const char *name;
    int nargs;
    const char *params;
};

static const struct command commands[] = {
    { "list", 0, "" },
    { "show", 1, "NAME" },
    { "create", 1, "SPEC" },
    { "destroy", 1, "NAME" },
    { "prepare-incoming", 4, "NAME SOURCE_HOST:PORT SOURCE_DEVICE TOKEN" },
    { "cancel-incoming", 1, "NAME" },
};

/* The commands that make one call to vdpad. */
static int run_simple(const struct command *c, struct ctl_options *opt, int argc, char **argv)
{
    g_autoptr(GError) err = NULL;

    if (vdpactl_parse_command(c->name, c->params, NULL, NULL, opt, &argc, &argv) != 0)
        return EXIT_USAGE;
    if (argc - 1 != c->nargs)
        return vdpactl_usage_error("'%s' takes %s", c->name,
                                   c->nargs == 0 ? "no argument" : c->params);
    struct ctl ctl = { .json = opt->json };
    ctl.conn = vdpactl_connect(opt->bus, &err);
    if (!ctl.conn) {
        g_autofree char *label = vdpactl_bus_label(opt->bus);
        fprintf(stderr, "vdpactl: cannot connect to %s: %s\n", label, err->message);
        return EXIT_UNREACHABLE;
    }
    int rc;
    if (g_str_equal(c->name, "list"))
        rc = cmd_list(&ctl);
    else if (g_str_equal(c->name, "show"))
        rc = cmd_show(&ctl, argv[1]);
    else if (g_str_equal(c->name, "create"))
        rc = cmd_create(&ctl, argv[1]);
    else if (g_str_equal(c->name, "destroy"))
        rc = cmd_destroy(&ctl, argv[1]);
    else if (g_str_equal(c->name, "prepare-incoming"))
        rc = cmd_incoming(&ctl, argv[1], argv + 2);
    else
        rc = cmd_incoming(&ctl, argv[1], NULL);
    g_object_unref(ctl.conn);
    return rc;
}

int main(int argc, char **argv)
{
    struct ctl_options opt = { 0 };
    gboolean version = FALSE;
    GOptionEntry entries[] = {
        { "bus", 0, 0, G_OPTION_ARG_STRING, &opt.bus,
          "The bus vdpad serves on: system (default), session or a D-Bus address", "BUS" },
        { "json", 0, 0, G_OPTION_ARG_NONE, &opt.json, "Print JSON (for scripts)", NULL },
        { "version", 0, 0, G_OPTION_ARG_NONE, &version, "Print the version and exit", NULL },
        { NULL },
    };
    g_autoptr(GOptionContext) ctx =
        g_option_context_new("COMMAND [ARG...] - manage vdpad's vhost-vdpa devices");
    g_autoptr(GError) err = NULL;
    int rc;

    g_option_context_add_main_entries(ctx, entries, NULL);
    g_option_context_set_description(ctx, usage_text);
    /* options before the command are vdpactl's; the command parses the rest */
    g_option_context_set_strict_posix(ctx, TRUE);
    if (!g_option_context_parse(ctx, &argc, &argv, &err)) {
        rc = vdpactl_usage_error("%s", err->message);
        goto out;
    }
    if (version) {
        printf("vdpactl %s\n", PACKAGE_VERSION);
        rc = EXIT_OK;
        goto out;
    }
    if (!vdpactl_bus_valid(opt.bus)) {
        rc = vdpactl_usage_error("--bus must be system, session or a D-Bus address, not '%s'",
                                 opt.bus);
        goto out;
    }
    if (argc < 2) {
        rc = vdpactl_usage_error("%s", "no command given: list, show, create, destroy, "
                                 "prepare-incoming, cancel-incoming, monitor, migrate or qmp");
        goto out;
    }
    const char *cmd = argv[1];
    if (g_str_equal(cmd, "monitor")) {
        rc = vdpactl_monitor(&opt, argc - 1, argv + 1);
        goto out;
    }
    if (g_str_equal(cmd, "migrate")) {
        rc = vdpactl_migrate(&opt, argc - 1, argv + 1);
        goto out;
    }
    if (g_str_equal(cmd, "qmp")) {
        rc = vdpactl_qmp(&opt, argc - 1, argv + 1);
        goto out;
    }
    rc = -1;
    for (unsigned i = 0; i < G_N_ELEMENTS(commands); i++)
        if (g_str_equal(cmd, commands[i].name))
            rc = run_simple(&commands[i], &opt, argc - 1, argv + 1);
    if (rc < 0)
        rc = vdpactl_usage_error("unknown command '%s': list, show, create, destroy, "
                                 "prepare-incoming, cancel-incoming, monitor, migrate or qmp", cmd);
out:
    g_free(opt.bus);
    return rc;
}
