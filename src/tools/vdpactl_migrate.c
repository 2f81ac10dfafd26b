/* vdpactl migrate — live-migrates a QEMU guest whose NIC is a vdpad device, with plain
 * QEMU (no libvirt): both QEMUs through their QMP sockets, both vdpads over D-Bus.
 *
 *   1. reads the source device's MigrationToken (source vdpad, --src-bus);
 *   2. checks the destination QEMU waits for a migration (query-status: inmigrate) and
 *      calls PrepareIncoming(--source, device, token) on the destination vdpad (--dst-bus);
 *   3. turns on QEMU's "events" capability and runs `migrate URI` on the source;
 *   4. every 0.5 s shows QEMU's progress and the source device's DirtyMarks and Mode,
 *      on one line rewritten in place on a terminal, one line per update otherwise;
 *   5. when QEMU says completed: waits for the destination QEMU to leave "inmigrate" and
 *      for the destination vdpad's StateRestored (or MigrationFailed), a few seconds at
 *      most, and prints the summary (vdpactl_migrate_report.h).
 *
 * The device downtime is the time between the arrivals of the source's Stopped and the
 * destination's StateRestored (the source's GET_VRING_BASE to the destination's data queues
 * started after the restore). The arrivals are stamped by a filter on each connection, in
 * GDBus's worker thread, so the poll interval does not add to them; each bus's delivery
 * delay shifts one end.
 *
 * Failure (exit 1): QEMU's error, or MigrationFailed from either vdpad. The destination is
 * then un-prepared (CancelIncoming). --timeout, SIGINT and SIGTERM cancel the migration
 * (migrate_cancel) and fail. Signals from both vdpads arrive on the default main context,
 * which the command runs between QMP polls.
 */
#include "config.h"

#include <glib-unix.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "dbus/dbus_names.h"
#include "qmp/qmp_client.h"
#include "qmp/qmp_commands.h"
#include "tools/vdpactl.h"
#include "tools/vdpactl_migrate_report.h"

#define QMP_CONNECT_MS 5000
#define PROGRESS_MS 500
#define DEST_START_MS 10000  /* the destination QEMU leaving "inmigrate" after completion */
#define RESTORE_WAIT_MS 5000 /* the destination vdpad's StateRestored after that */
#define DEFAULT_TIMEOUT_S 600

/* When a signal (member) from one device path first arrived; shared with the connection's
 * filter, which may still run after its removal (hence the reference count). */
struct signal_clock {
    char *path;
    const char *member;
    _Atomic gint64 seen_us; /* monotonic; 0: not yet */
};

static void signal_clock_clear(struct signal_clock *c)
{
    g_free(c->path);
}

static void signal_clock_unref(gpointer c)
{
    g_atomic_rc_box_release_full(c, (GDestroyNotify)signal_clock_clear);
}

static GDBusMessage *stamp_signal(GDBusConnection *conn, GDBusMessage *msg, gboolean incoming,
                                  gpointer data)
{
    struct signal_clock *c = data;

    if (incoming && g_dbus_message_get_message_type(msg) == G_DBUS_MESSAGE_TYPE_SIGNAL &&
        g_strcmp0(g_dbus_message_get_member(msg), c->member) == 0 &&
        g_strcmp0(g_dbus_message_get_path(msg), c->path) == 0) {
        gint64 none = 0;
        atomic_compare_exchange_strong(&c->seen_us, &none, g_get_monotonic_time());
    }
    return msg;
}

static struct signal_clock *signal_clock_add(GDBusConnection *conn, const char *path,
                                             const char *member, guint *filter_id)
{
    struct signal_clock *c = g_atomic_rc_box_new0(struct signal_clock);

    c->path = g_strdup(path);
    c->member = member;
    *filter_id = g_dbus_connection_add_filter(conn, stamp_signal, g_atomic_rc_box_acquire(c),
                                              signal_clock_unref);
    return c;
}

struct migrate {
    struct vdpactl_migrate_report r;
    GDBusConnection *src_bus, *dst_bus;
    char *src_path, *dst_path;
    struct qmp_client *src_qmp, *dst_qmp;
    gint64 t0;
    FILE *progress;   /* stdout, or stderr with --json */
    gboolean tty;
    gboolean line_open; /* a progress line without its newline on the terminal */
    gboolean stop_asked, cancel_sent;
    char *status, *mode, *dst_status; /* the report's strings */
    char *src_failure, *dst_failure;  /* MigrationFailed from each vdpad */
    struct signal_clock *stopped, *restored; /* Stopped (source), StateRestored (destination) */
    guint stopped_filter, restored_filter;
};

static void migrate_clear(struct migrate *m)
{
    if (m->stopped) {
        g_dbus_connection_remove_filter(m->src_bus, m->stopped_filter);
        g_dbus_connection_remove_filter(m->dst_bus, m->restored_filter);
        signal_clock_unref(m->stopped);
        signal_clock_unref(m->restored);
    }
    g_clear_object(&m->src_bus);
    g_clear_object(&m->dst_bus);
    g_free(m->src_path);
    g_free(m->dst_path);
    g_clear_pointer(&m->src_qmp, qmp_client_free);
    g_clear_pointer(&m->dst_qmp, qmp_client_free);
    g_free(m->status);
    g_free(m->mode);
    g_free(m->dst_status);
    g_free(m->src_failure);
    g_free(m->dst_failure);
}

static void set_string(char **field, const char *value)
{
    g_free(*field);
    *field = g_strdup(value);
}

/* ------------------------------------------------------------------ vdpad's signals */

static void on_source_signal(GDBusConnection *conn, const char *sender, const char *path,
                             const char *iface, const char *member, GVariant *params,
                             gpointer data)
{
    struct migrate *m = data;

    if (g_str_equal(member, "ModeChanged") && g_variant_is_of_type(params, G_VARIANT_TYPE("(sd)"))) {
        const char *mode;
        double ms;
        g_variant_get(params, "(&sd)", &mode, &ms);
        set_string(&m->mode, mode);
        if (g_str_equal(mode, "relay")) {
            m->r.has_switch = true;
            m->r.switch_ms = ms;
        }
    } else if (g_str_equal(member, "DirtyPagesLogged") &&
               g_variant_is_of_type(params, G_VARIANT_TYPE("(td)"))) {
        guint64 total;
        g_variant_get(params, "(td)", &total, NULL);
        m->r.dirty_marks = MAX(m->r.dirty_marks, total);
    } else if (g_str_equal(member, "Stopped") &&
               g_variant_is_of_type(params, G_VARIANT_TYPE("(a(uq))"))) {
        g_autoptr(GVariant) bases = g_variant_get_child_value(params, 0);
        m->r.stopped_queues = (int)g_variant_n_children(bases);
    } else if (g_str_equal(member, "MigrationFailed") &&
               g_variant_is_of_type(params, G_VARIANT_TYPE("(s)"))) {
        const char *why;
        g_variant_get(params, "(&s)", &why);
        set_string(&m->src_failure, why);
    }
}

static void on_dest_signal(GDBusConnection *conn, const char *sender, const char *path,
                           const char *iface, const char *member, GVariant *params,
                           gpointer data)
{
    struct migrate *m = data;

    if (g_str_equal(member, "StateRestored") &&
        g_variant_is_of_type(params, G_VARIANT_TYPE("(ud)"))) {
        g_variant_get(params, "(ud)", &m->r.restored_commands, &m->r.restore_ms);
        m->r.has_restore = true;
    } else if (g_str_equal(member, "MigrationFailed") &&
               g_variant_is_of_type(params, G_VARIANT_TYPE("(s)"))) {
        const char *why;
        g_variant_get(params, "(&s)", &why);
        set_string(&m->dst_failure, why);
    }
}

static void dispatch(void)
{
    while (g_main_context_iteration(NULL, FALSE))
        ;
}

/* The subscriptions are complete once each bus answered a call made after them and what
 * that left pending (GDBus's lookup of org.vdpad1's owner) is dispatched. */
static void sync_subscriptions(struct migrate *m)
{
    GDBusConnection *buses[] = { m->src_bus, m->dst_bus };

    for (unsigned i = 0; i < G_N_ELEMENTS(buses); i++) {
        g_autoptr(GVariant) id = g_dbus_connection_call_sync(
            buses[i], "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
            "GetId", NULL, G_VARIANT_TYPE("(s)"), G_DBUS_CALL_FLAGS_NONE, -1, NULL, NULL);
        (void)id; /* a bus that does not answer shows in the calls that follow */
    }
    dispatch();
}

static gboolean on_stop_signal(gpointer data)
{
    ((struct migrate *)data)->stop_asked = TRUE;
    return G_SOURCE_CONTINUE;
}

/* ------------------------------------------------------------------ progress */

static void print_progress(struct migrate *m)
{
    g_autofree char *line = vdpactl_migrate_progress(&m->r);

    if (m->tty) {
        fprintf(m->progress, "\r%s\033[K", line);
        m->line_open = TRUE;
    } else {
        fprintf(m->progress, "%s\n", line);
    }
    fflush(m->progress);
}

static void end_progress(struct migrate *m)
{
    if (m->line_open)
        fputc('\n', m->progress);
    m->line_open = FALSE;
}

static void take_info(struct migrate *m, const struct qmp_migrate_info *info)
{
    set_string(&m->status, info->status_name);
    m->r.status = m->status;
    if (info->has_ram) {
        m->r.ram_transferred = info->ram_transferred;
        m->r.ram_remaining = info->ram_remaining;
        m->r.ram_total = info->ram_total;
    }
    m->r.total_time_ms = info->total_time_ms;
    m->r.downtime_ms = info->downtime_ms;
    m->r.setup_time_ms = info->setup_time_ms;
}

static void on_progress(const struct qmp_migrate_info *info, void *data)
{
    struct migrate *m = data;
    g_autoptr(GVariant) marks = NULL, mode = NULL;

    take_info(m, info);
    dispatch();
    /* what the source vdpad says now (a failed read leaves the last value) */
    marks = vdpactl_device_property(m->src_bus, m->src_path, "DirtyMarks", NULL);
    if (marks && g_variant_is_of_type(marks, G_VARIANT_TYPE_UINT64))
        m->r.dirty_marks = MAX(m->r.dirty_marks, g_variant_get_uint64(marks));
    mode = vdpactl_device_property(m->src_bus, m->src_path, "Mode", NULL);
    if (mode && g_variant_is_of_type(mode, G_VARIANT_TYPE_STRING))
        set_string(&m->mode, g_variant_get_string(mode, NULL));
    m->r.mode = m->mode;
    m->r.elapsed_s = (double)(g_get_monotonic_time() - m->t0) / G_USEC_PER_SEC;
    print_progress(m);

    if (m->stop_asked && !m->cancel_sent && !qmp_migration_status_is_final(info->status)) {
        g_autoptr(GError) err = NULL;
        end_progress(m);
        fprintf(stderr, "vdpactl: migrate: interrupted; cancelling the migration\n");
        if (qmp_migrate_cancel(m->src_qmp, &err) < 0)
            fprintf(stderr, "vdpactl: migrate: migrate_cancel: %s\n", err->message);
        m->cancel_sent = TRUE;
    }
}

/* ------------------------------------------------------------------ steps */

/* The destination QEMU's run state, once it has left "inmigrate" (or the wait ended). */
static void wait_dest_started(struct migrate *m)
{
    gint64 deadline = g_get_monotonic_time() + DEST_START_MS * 1000;

    for (;;) {
        g_autoptr(GError) err = NULL;
        g_autofree char *status = NULL;
        if (qmp_query_status(m->dst_qmp, NULL, &status, &err) < 0) {
            g_autofree char *why = g_strdup_printf("not answering (%s)", err->message);
            set_string(&m->dst_status, why);
            break;
        }
        set_string(&m->dst_status, status);
        if (!g_str_equal(status, "inmigrate") || g_get_monotonic_time() > deadline)
            break;
        qmp_client_pump(m->dst_qmp, 100, NULL);
    }
    m->r.dst_status = m->dst_status;
}

static gboolean on_wait_over(gpointer data)
{
    *(gboolean *)data = TRUE;
    return G_SOURCE_REMOVE;
}

/* Until the destination vdpad restored the state or failed, or RESTORE_WAIT_MS. */
static void wait_restore(struct migrate *m)
{
    gboolean over = FALSE;
    guint timer = g_timeout_add(RESTORE_WAIT_MS, on_wait_over, &over);

    while (!over && !m->r.has_restore && !m->dst_failure)
        g_main_context_iteration(NULL, TRUE);
    if (!over)
        g_source_remove(timer);
}

static void cancel_incoming(struct migrate *m)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(GVariant) reply = vdpactl_call(m->dst_bus, m->dst_path, VDPAD_DBUS_DEVICE_IFACE,
                                             "CancelIncoming", NULL, "()", &err);
    if (!reply) {
        g_dbus_error_strip_remote_error(err);
        fprintf(stderr, "vdpactl: migrate: CancelIncoming on the destination %s: %s\n",
                m->r.dst_device, err->message);
    }
}

/* Why the migration failed: QEMU's error, and what either vdpad said. */
static char *failure_text(struct migrate *m, const char *qemu_error)
{
    GString *why = g_string_new(qemu_error);

    if (m->src_failure)
        g_string_append_printf(why, "%svdpad on the source: %s", why->len ? "; " : "",
                               m->src_failure);
    if (m->dst_failure)
        g_string_append_printf(why, "%svdpad on the destination: %s", why->len ? "; " : "",
                               m->dst_failure);
    return g_string_free(why, FALSE);
}

static GDBusConnection *connect_vdpad(const char *bus, const char *side, GError **error)
{
    GDBusConnection *conn = vdpactl_connect(bus, error);

    if (conn)
        g_dbus_connection_set_exit_on_close(conn, FALSE);
    else
        g_prefix_error(error, "the %s vdpad: ", side);
    return conn;
}

/* Everything before `migrate`: returns an exit code, EXIT_OK to go on. */
static int prepare(struct migrate *m, const struct ctl_options *opt, const char *src_bus,
                   const char *dst_bus, const char *src_qmp, const char *dst_qmp,
                   const char *source)
{
    g_autoptr(GError) err = NULL;

    if (!(m->src_bus = connect_vdpad(src_bus ? src_bus : opt->bus, "source", &err)) ||
        !(m->dst_bus = connect_vdpad(dst_bus ? dst_bus : opt->bus, "destination", &err))) {
        fprintf(stderr, "vdpactl: migrate: %s\n", err->message);
        return EXIT_UNREACHABLE;
    }
    if (!(m->src_path = vdpactl_device_path(m->src_bus, m->r.device, &err)))
        return vdpactl_report("migrate: the source device", err);
    if (!(m->dst_path = vdpactl_device_path(m->dst_bus, m->r.dst_device, &err)))
        return vdpactl_report("migrate: the destination device", err);
    g_autoptr(GVariant) token = vdpactl_device_property(m->src_bus, m->src_path,
                                                        "MigrationToken", &err);
    if (!token)
        return vdpactl_report("migrate: the source device's MigrationToken", err);
    const char *token_text = g_variant_get_string(token, NULL);
    if (!*token_text) {
        fprintf(stderr, "vdpactl: migrate: the source device %s is not open: no QEMU uses it "
                        "there\n", m->r.device);
        return EXIT_FAILED;
    }

    if (!(m->src_qmp = qmp_client_connect(src_qmp, QMP_CONNECT_MS, &err)) ||
        !(m->dst_qmp = qmp_client_connect(dst_qmp, QMP_CONNECT_MS, &err))) {
        fprintf(stderr, "vdpactl: migrate: %s\n", err->message);
        return EXIT_FAILED;
    }
    g_autofree char *dst_state = NULL;
    if (qmp_query_status(m->dst_qmp, NULL, &dst_state, &err) < 0) {
        fprintf(stderr, "vdpactl: migrate: the destination QEMU: %s\n", err->message);
        return EXIT_FAILED;
    }
    if (!g_str_equal(dst_state, "inmigrate")) {
        fprintf(stderr, "vdpactl: migrate: the destination QEMU (%s) is %s, not waiting for a "
                        "migration; start it with -incoming\n", dst_qmp, dst_state);
        return EXIT_FAILED;
    }

    g_autoptr(GVariant) reply = vdpactl_call(
        m->dst_bus, m->dst_path, VDPAD_DBUS_DEVICE_IFACE, "PrepareIncoming",
        g_variant_new("(sss)", source, m->r.device, token_text), "()", &err);
    if (!reply)
        return vdpactl_report("migrate: PrepareIncoming on the destination", err);
    if (!opt->json)
        printf("%s: destination %s prepared (source %s, token %s)\n", m->r.device,
               m->r.dst_device, source, token_text);
    return EXIT_OK;
}

int vdpactl_migrate(struct ctl_options *opt, int argc, char **argv)
{
    g_autofree char *src_qmp = NULL, *dst_qmp = NULL, *src_bus = NULL, *dst_bus = NULL;
    g_autofree char *device = NULL, *dst_device = NULL, *source = NULL;
    gint64 timeout_s = DEFAULT_TIMEOUT_S;
    GOptionEntry entries[] = {
        { "src-qmp", 0, 0, G_OPTION_ARG_FILENAME, &src_qmp, "The source QEMU's QMP socket",
          "SOCK" },
        { "dst-qmp", 0, 0, G_OPTION_ARG_FILENAME, &dst_qmp,
          "The destination QEMU's QMP socket (QEMU started with -incoming)", "SOCK" },
        { "src-bus", 0, 0, G_OPTION_ARG_STRING, &src_bus,
          "The source vdpad's bus: system, session or a D-Bus address (default: --bus)",
          "ADDR" },
        { "dst-bus", 0, 0, G_OPTION_ARG_STRING, &dst_bus,
          "The destination vdpad's bus (default: --bus)", "ADDR" },
        { "device", 0, 0, G_OPTION_ARG_STRING, &device, "The guest's device on the source vdpad",
          "NAME" },
        { "dst-device", 0, 0, G_OPTION_ARG_STRING, &dst_device,
          "Its device on the destination vdpad (default: the same name)", "NAME" },
        { "source", 0, 0, G_OPTION_ARG_STRING, &source,
          "The source vdpad's migration channel, as the destination reaches it", "HOST:PORT" },
        { "timeout", 0, 0, G_OPTION_ARG_INT64, &timeout_s,
          "Cancel the migration after S seconds (default 600)", "S" },
        { NULL },
    };

    if (vdpactl_parse_command(
            "migrate", "URI",
            "Live-migrates a QEMU guest on a vdpad device to a QEMU started with -incoming URI:\n"
            "prepares the destination vdpad, runs `migrate URI` on the source QEMU, shows the\n"
            "progress and a summary. Exit 0 when the migration completed, 1 when it failed.",
            entries, opt, &argc, &argv) != 0)
        return EXIT_USAGE;
    if (argc != 2)
        return vdpactl_usage_error("'migrate' takes one URI (e.g. tcp:127.0.0.1:4444)");
    if (!src_qmp || !dst_qmp || !device || !source)
        return vdpactl_usage_error("migrate needs --src-qmp, --dst-qmp, --device and --source");
    if ((src_bus && !vdpactl_bus_valid(src_bus)) || (dst_bus && !vdpactl_bus_valid(dst_bus)))
        return vdpactl_usage_error("--src-bus and --dst-bus take system, session or a D-Bus "
                                   "address");
    if (timeout_s <= 0 || timeout_s > G_MAXINT / 1000)
        return vdpactl_usage_error("--timeout must be 1..%d seconds", G_MAXINT / 1000);
    const char *uri = argv[1];

    struct migrate m = { .progress = opt->json ? stderr : stdout };
    vdpactl_migrate_report_init(&m.r);
    m.r.device = device;
    m.r.dst_device = dst_device ? dst_device : device;
    m.tty = isatty(fileno(m.progress));

    int rc = prepare(&m, opt, src_bus, dst_bus, src_qmp, dst_qmp, source);
    if (rc != EXIT_OK) {
        migrate_clear(&m);
        return rc;
    }
    m.stopped = signal_clock_add(m.src_bus, m.src_path, "Stopped", &m.stopped_filter);
    m.restored = signal_clock_add(m.dst_bus, m.dst_path, "StateRestored", &m.restored_filter);
    guint src_sub = g_dbus_connection_signal_subscribe(
        m.src_bus, VDPAD_DBUS_NAME, VDPAD_DBUS_DEVICE_IFACE, NULL, m.src_path, NULL,
        G_DBUS_SIGNAL_FLAGS_NONE, on_source_signal, &m, NULL);
    guint dst_sub = g_dbus_connection_signal_subscribe(
        m.dst_bus, VDPAD_DBUS_NAME, VDPAD_DBUS_DEVICE_IFACE, NULL, m.dst_path, NULL,
        G_DBUS_SIGNAL_FLAGS_NONE, on_dest_signal, &m, NULL);
    sync_subscriptions(&m);
    guint sigint = g_unix_signal_add(SIGINT, on_stop_signal, &m);
    guint sigterm = g_unix_signal_add(SIGTERM, on_stop_signal, &m);

    g_autoptr(GError) err = NULL;
    g_auto(qmp_migrate_info) last = { 0 };
    m.t0 = g_get_monotonic_time();
    int ret = qmp_migrate_set_capability(m.src_qmp, "events", TRUE, &err);
    if (ret == 0)
        ret = qmp_migrate(m.src_qmp, uri, &err);
    if (ret == 0)
        ret = qmp_migrate_wait(m.src_qmp, PROGRESS_MS, (int)(timeout_s * 1000), on_progress, &m,
                               &last, &err);
    end_progress(&m);
    if (ret == -ETIMEDOUT && !qmp_client_closed_error(m.src_qmp)) {
        g_autoptr(GError) cancel_err = NULL;
        if (qmp_migrate_cancel(m.src_qmp, &cancel_err) < 0)
            fprintf(stderr, "vdpactl: migrate: migrate_cancel: %s\n", cancel_err->message);
    }
    if (last.status_name)
        take_info(&m, &last);
    dispatch();

    g_autofree char *why = NULL;
    if (ret == 0) {
        wait_dest_started(&m);
        if (g_str_equal(m.dst_status, "running"))
            wait_restore(&m);
        else if (!m.r.has_restore && !m.dst_failure)
            fprintf(stderr, "vdpactl: migrate: the destination QEMU is %s: its devices start "
                            "when it runs (cont)\n", m.dst_status);
        dispatch();
        if (m.src_failure || m.dst_failure)
            why = failure_text(&m, NULL);
    } else {
        if (m.cancel_sent && ret == -ECANCELED)
            why = failure_text(&m, "cancelled (interrupted)");
        else
            why = failure_text(&m, err ? err->message : "failed");
        cancel_incoming(&m);
    }
    m.r.elapsed_s = (double)(g_get_monotonic_time() - m.t0) / G_USEC_PER_SEC;
    m.r.mode = m.mode;
    /* both signals seen by the subscriptions (which check the sender), the stop first */
    gint64 t_stop = atomic_load(&m.stopped->seen_us), t_restored = atomic_load(&m.restored->seen_us);
    if (m.r.stopped_queues >= 0 && m.r.has_restore && t_stop && t_restored >= t_stop) {
        m.r.has_device_downtime = true;
        m.r.device_downtime_ms = (t_restored - t_stop) / 1000.0;
    }
    m.r.ok = why == NULL;
    m.r.error = why;

    if (opt->json) {
        json_object *obj = vdpactl_migrate_json(&m.r);
        printf("%s\n", json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PRETTY |
                                                               JSON_C_TO_STRING_NOSLASHESCAPE));
        json_object_put(obj);
    } else {
        g_autofree char *summary = vdpactl_migrate_summary(&m.r);
        fputs(summary, stdout);
    }
    if (!m.r.ok)
        fprintf(stderr, "vdpactl: migrate: %s\n", why);

    g_source_remove(sigint);
    g_source_remove(sigterm);
    g_dbus_connection_signal_unsubscribe(m.src_bus, src_sub);
    g_dbus_connection_signal_unsubscribe(m.dst_bus, dst_sub);
    migrate_clear(&m);
    return why ? EXIT_FAILED : EXIT_OK;
}
