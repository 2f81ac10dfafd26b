/* vdpactl monitor — prints vdpad's signals as they come: the manager's DeviceAdded and
 * DeviceRemoved, every device's PropertiesChanged and migration signals (ModeChanged,
 * DirtyPagesLogged, Stopped, StateRestored, MigrationFailed). One line each
 * (vdpactl_events.h), JSON lines with --json, until SIGINT/SIGTERM, --count N signals or
 * --timeout S; then exit 0. With NAME, only that device's signals (it need not exist yet).
 *
 * Once the bus has the subscription (a round trip after AddMatch), stderr says
 * "vdpactl: monitoring ..." so that a script knows no later signal will be missed.
 */
#include "config.h"

#include <glib-unix.h>
#include <stdio.h>

#include "dbus/dbus_names.h"
#include "tools/vdpactl.h"
#include "tools/vdpactl_events.h"

struct monitor {
    GMainLoop *loop;
    gboolean json;
    const char *name; /* only this device's signals, or NULL */
    gint64 count;     /* 0: no limit */
    gint64 seen;
    int rc;
};

static void on_signal(GDBusConnection *conn, const char *sender, const char *path,
                      const char *iface, const char *member, GVariant *params, gpointer data)
{
    struct monitor *m = data;
    struct vdpactl_event ev = {
        .time_us = g_get_real_time(), .path = path, .iface = iface, .member = member,
        .params = params,
    };

    if (m->count && m->seen >= m->count)
        return; /* already enough, the loop is ending */
    if (m->name) {
        g_autofree char *device = vdpactl_event_device(&ev);
        if (!g_str_equal(device, m->name))
            return;
    }
    if (m->json) {
        json_object *obj = vdpactl_event_json(&ev);
        printf("%s\n", json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PLAIN |
                                                               JSON_C_TO_STRING_NOSLASHESCAPE));
        json_object_put(obj);
    } else {
        g_autofree char *line = vdpactl_event_text(&ev);
        printf("%s\n", line);
    }
    fflush(stdout);
    if (m->count && ++m->seen >= m->count)
        g_main_loop_quit(m->loop);
}

static gboolean on_stop(gpointer data)
{
    g_main_loop_quit(((struct monitor *)data)->loop);
    return G_SOURCE_CONTINUE;
}

static void on_closed(GDBusConnection *conn, gboolean remote_peer_vanished, GError *err,
                      gpointer data)
{
    struct monitor *m = data;

    fprintf(stderr, "vdpactl: monitor: the bus connection closed (%s)\n",
            err ? err->message : "closed");
    m->rc = EXIT_UNREACHABLE;
    g_main_loop_quit(m->loop);
}

int vdpactl_monitor(struct ctl_options *opt, int argc, char **argv)
{
    gint64 count = 0, timeout = 0;
    GOptionEntry entries[] = {
        { "count", 0, 0, G_OPTION_ARG_INT64, &count, "Stop after N signals", "N" },
        { "timeout", 0, 0, G_OPTION_ARG_INT64, &timeout, "Stop after S seconds", "S" },
        { NULL },
    };
    g_autoptr(GError) err = NULL;

    if (vdpactl_parse_command("monitor", "[NAME]",
                              "Prints vdpad's signals as they come, one line each (JSON lines "
                              "with --json),\nuntil SIGINT/SIGTERM, --count or --timeout.",
                              entries, opt, &argc, &argv) != 0)
        return EXIT_USAGE;
    if (argc > 2)
        return vdpactl_usage_error("'monitor' takes at most one NAME");
    if (count < 0 || timeout < 0)
        return vdpactl_usage_error("--count and --timeout must not be negative");
    const char *name = argc == 2 ? argv[1] : NULL;

    g_autoptr(GDBusConnection) conn = vdpactl_connect(opt->bus, &err);
    g_autofree char *label = vdpactl_bus_label(opt->bus);
    if (!conn) {
        fprintf(stderr, "vdpactl: cannot connect to %s: %s\n", label, err->message);
        return EXIT_UNREACHABLE;
    }
    g_dbus_connection_set_exit_on_close(conn, FALSE);

    struct monitor m = { .loop = g_main_loop_new(NULL, FALSE), .json = opt->json,
                         .name = name, .count = count, .rc = EXIT_OK };
    guint subs[2] = { 0, 0 };
    if (name) {
        /* the device's own signals, and the manager's (on_signal keeps those about it) */
        g_autofree char *path = vdpad_dbus_device_path(name);
        subs[0] = g_dbus_connection_signal_subscribe(conn, VDPAD_DBUS_NAME, NULL, NULL, path,
                                                     NULL, G_DBUS_SIGNAL_FLAGS_NONE, on_signal,
                                                     &m, NULL);
        subs[1] = g_dbus_connection_signal_subscribe(conn, VDPAD_DBUS_NAME,
                                                     VDPAD_DBUS_MANAGER_IFACE, NULL,
                                                     VDPAD_DBUS_MANAGER_PATH, NULL,
                                                     G_DBUS_SIGNAL_FLAGS_NONE, on_signal, &m,
                                                     NULL);
    } else {
        subs[0] = g_dbus_connection_signal_subscribe(conn, VDPAD_DBUS_NAME, NULL, NULL, NULL,
                                                     NULL, G_DBUS_SIGNAL_FLAGS_NONE, on_signal,
                                                     &m, NULL);
    }
    /* The bus handles AddMatch before this call, and GDBus's lookup of org.vdpad1's owner
     * (it drops signals from a well-known name until it knows the owner) was answered
     * before it too: dispatching what is pending after the answer completes both. */
    g_autoptr(GVariant) id = g_dbus_connection_call_sync(
        conn, "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "GetId",
        NULL, G_VARIANT_TYPE("(s)"), G_DBUS_CALL_FLAGS_NONE, -1, NULL, &err);
    if (!id) {
        fprintf(stderr, "vdpactl: monitor: %s does not answer: %s\n", label, err->message);
        m.rc = EXIT_UNREACHABLE;
        goto out;
    }
    while (g_main_context_iteration(NULL, FALSE))
        ;
    fprintf(stderr, "vdpactl: monitoring %s on %s (Ctrl-C to stop)\n",
            name ? name : "every device", label);

    gulong closed = g_signal_connect(conn, "closed", G_CALLBACK(on_closed), &m);
    guint sigint = g_unix_signal_add(SIGINT, on_stop, &m);
    guint sigterm = g_unix_signal_add(SIGTERM, on_stop, &m);
    guint timer = timeout ? g_timeout_add_seconds((guint)timeout, on_stop, &m) : 0;
    g_main_loop_run(m.loop);
    g_signal_handler_disconnect(conn, closed);
    g_source_remove(sigint);
    g_source_remove(sigterm);
    if (timer)
        g_source_remove(timer);
out:
    for (unsigned i = 0; i < G_N_ELEMENTS(subs); i++)
        if (subs[i])
            g_dbus_connection_signal_unsubscribe(conn, subs[i]);
    g_main_loop_unref(m.loop);
    return m.rc;
}
