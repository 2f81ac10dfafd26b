#include "config.h"

#include "dbus/dbus_names.h"
#include "dbus/device_props.h"
#include "dbus/device_signals.h"

#define DIRTY_INTERVAL_MS 1000

struct device_signals {
    GDBusConnection *conn; /* borrowed */
    char *path;
    struct vdpa_node *node; /* borrowed */
    guint dirty_timer;      /* while the session logs */
    struct dirty_meter meter;
};

/* ------------------------------------------------------------------ pacing */

void dirty_meter_start(struct dirty_meter *m, guint64 total, gint64 now_us)
{
    *m = (struct dirty_meter){ .last_total = total, .last_us = now_us };
}

static double rate_since(const struct dirty_meter *m, guint64 total, gint64 now_us)
{
    guint64 delta = total >= m->last_total ? total - m->last_total : total;
    double seconds = (double)(now_us - m->last_us) / G_USEC_PER_SEC;

    return seconds > 0 ? (double)delta / seconds : 0;
}

bool dirty_meter_sample(struct dirty_meter *m, guint64 total, gint64 now_us, double *rate)
{
    double r = rate_since(m, total, now_us);
    bool due = total != m->last_total || m->last_rate != 0;

    m->last_us = now_us;
    if (!due)
        return false;
    m->last_total = total;
    m->last_rate = r;
    *rate = r;
    return true;
}

bool dirty_meter_final(struct dirty_meter *m, guint64 total, gint64 now_us, double *rate)
{
    if (total == m->last_total)
        return false;
    *rate = rate_since(m, total, now_us);
    m->last_total = total;
    m->last_us = now_us;
    m->last_rate = *rate;
    return true;
}

/* ------------------------------------------------------------------ event signals */

static GVariant *stopped_args(const struct node_stop_record *stop)
{
    GVariantBuilder b;

    g_variant_builder_init(&b, G_VARIANT_TYPE("a(uq)"));
    for (unsigned i = 0; stop->valid && i < stop->nvqs; i++)
        if (stop->started[i])
            g_variant_builder_add(&b, "(uq)", (guint32)i, (guint16)stop->bases[i]);
    return g_variant_new("(@a(uq))", g_variant_builder_end(&b));
}

GVariant *device_signal_for_event(const struct vdpa_node *node, enum node_event event,
                                  const char **member)
{
    GVariant *args;

    switch (event) {
    case NODE_MODE_CHANGED:
        *member = "ModeChanged";
        args = g_variant_new("(sd)", node->mode == SESSION_RELAY ? "relay" : "passthrough",
                             node->mode_switch_ms);
        break;
    case NODE_STOPPED:
        *member = "Stopped";
        args = stopped_args(&node->stop);
        break;
    case NODE_RESTORED:
        *member = "StateRestored";
        args = g_variant_new("(ud)", (guint32)node->restored_commands, node->restored_ms);
        break;
    case NODE_MIGRATION_FAILED:
        *member = "MigrationFailed";
        args = g_variant_new("(s)", node->last_failure ? node->last_failure : "");
        break;
    default:
        *member = NULL;
        return NULL;
    }
    return g_variant_ref_sink(args);
}

/* ------------------------------------------------------------------ emitting */

static void emit(struct device_signals *ds, const char *member, GVariant *args)
{
    g_autoptr(GError) err = NULL;

    if (!g_dbus_connection_emit_signal(ds->conn, NULL, ds->path, VDPAD_DBUS_DEVICE_IFACE,
                                       member, args, &err))
        g_info("%s: cannot emit %s: %s", ds->node->name, member, err->message);
}

static void emit_dirty(struct device_signals *ds, guint64 total, double rate)
{
    emit(ds, "DirtyPagesLogged", g_variant_new("(td)", total, rate));
}

static bool logging(const struct vdpa_node *node)
{
    return node->session && session_logging(node->session);
}

static void stop_dirty_timer(struct device_signals *ds, bool final)
{
    double rate;

    if (!ds->dirty_timer)
        return;
    g_source_remove(ds->dirty_timer);
    ds->dirty_timer = 0;
    if (final && ds->node->session &&
        dirty_meter_final(&ds->meter, device_props_dirty_marks(ds->node), g_get_monotonic_time(),
                          &rate))
        emit_dirty(ds, ds->meter.last_total, rate);
}

static gboolean on_dirty_tick(gpointer data)
{
    struct device_signals *ds = data;
    double rate;

    if (!logging(ds->node)) { /* missed the event that ended it: end here */
        ds->dirty_timer = 0;
        return G_SOURCE_REMOVE;
    }
    if (dirty_meter_sample(&ds->meter, device_props_dirty_marks(ds->node), g_get_monotonic_time(),
                           &rate))
        emit_dirty(ds, ds->meter.last_total, rate);
    return G_SOURCE_CONTINUE;
}

void device_signals_node_event(struct device_signals *ds, enum node_event event)
{
    const char *member;
    g_autoptr(GVariant) args = device_signal_for_event(ds->node, event, &member);

    if (args)
        emit(ds, member, args);

    if (logging(ds->node) && !ds->dirty_timer) {
        dirty_meter_start(&ds->meter, device_props_dirty_marks(ds->node), g_get_monotonic_time());
        ds->dirty_timer = g_timeout_add(DIRTY_INTERVAL_MS, on_dirty_tick, ds);
    } else if (!logging(ds->node)) {
        stop_dirty_timer(ds, true); /* the log still holds its count here */
    } else if (event == NODE_STOPPED) {
        /* the device stopped: the count is final even while QEMU keeps logging on */
        double rate;
        if (dirty_meter_final(&ds->meter, device_props_dirty_marks(ds->node),
                              g_get_monotonic_time(), &rate))
            emit_dirty(ds, ds->meter.last_total, rate);
    }
}

struct device_signals *device_signals_new(GDBusConnection *conn, const char *path,
                                          struct vdpa_node *node)
{
    struct device_signals *ds = g_new0(struct device_signals, 1);

    ds->conn = conn;
    ds->path = g_strdup(path);
    ds->node = node;
    return ds;
}

void device_signals_free(struct device_signals *ds)
{
    if (!ds)
        return;
    stop_dirty_timer(ds, false);
    g_free(ds->path);
    g_free(ds);
}
