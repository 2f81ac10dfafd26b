/* vdpactl.h — what vdpactl's commands share: exit codes, the bus, calls to vdpad and how a
 * failed call is reported. The commands: vdpactl.c (list, show, create, destroy,
 * prepare-incoming, cancel-incoming), vdpactl_monitor.c, vdpactl_migrate.c.
 *
 * Threads: vdpactl is single-threaded; D-Bus signals are dispatched by the default main
 * context. Ownership: results are the caller's.
 */
#pragma once

#include <gio/gio.h>

enum {
    EXIT_OK = 0,
    EXIT_FAILED = 1,
    EXIT_USAGE = 2,
    EXIT_UNREACHABLE = 3,
};

/* The options every command takes. */
struct ctl_options {
    char *bus;     /* "system" (default), "session" or a D-Bus address */
    gboolean json;
};

/* Connects to a bus: "system", "session", or a D-Bus address ("unix:path=..."); label
 * names it in messages. NULL with *error. */
GDBusConnection *vdpactl_connect(const char *bus, GError **error);
/* "the system bus", "the session bus", "the bus at ADDRESS" (g_free). */
char *vdpactl_bus_label(const char *bus);
/* Whether a bus choice is valid: system, session, or something that parses as an address. */
gboolean vdpactl_bus_valid(const char *bus);

/* A method call to vdpad (org.vdpad1) with the default timeout. */
GVariant *vdpactl_call(GDBusConnection *conn, const char *path, const char *iface,
                       const char *method, GVariant *args, const char *reply_type,
                       GError **error);
/* The object path of device name (GetDevice), or NULL with *error. */
char *vdpactl_device_path(GDBusConnection *conn, const char *name, GError **error);
/* One property of a device (the value, unwrapped), or NULL with *error. */
GVariant *vdpactl_device_property(GDBusConnection *conn, const char *path, const char *name,
                                  GError **error);

/* Prints why a call failed ("vdpactl: WHAT: message") and returns the exit code it means:
 * EXIT_UNREACHABLE when vdpad is not there, else EXIT_FAILED. */
int vdpactl_report(const char *what, GError *err);

/* "vdpactl: MESSAGE (see vdpactl --help)" on stderr; returns EXIT_USAGE. */
int vdpactl_usage_error(const char *fmt, ...) G_GNUC_PRINTF(1, 2);

/* Parses a command's own options (entries, NULL-terminated; the common --bus and --json
 * are added) from argv (argv[0] is the command). On success argv keeps the positional
 * arguments after the command. */
int vdpactl_parse_command(const char *command, const char *params, const char *summary,
                          GOptionEntry *entries, struct ctl_options *opt, int *argc,
                          char ***argv);

int vdpactl_monitor(struct ctl_options *opt, int argc, char **argv);
int vdpactl_migrate(struct ctl_options *opt, int argc, char **argv);
int vdpactl_qmp(struct ctl_options *opt, int argc, char **argv);
