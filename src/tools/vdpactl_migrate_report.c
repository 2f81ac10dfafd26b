#include "config.h"

#include <inttypes.h>

#include "tools/vdpactl_format.h"
#include "tools/vdpactl_migrate_report.h"

#define MIB (1024.0 * 1024.0)

void vdpactl_migrate_report_init(struct vdpactl_migrate_report *r)
{
    *r = (struct vdpactl_migrate_report){
        .ram_transferred = -1, .ram_remaining = -1, .ram_total = -1,
        .total_time_ms = -1, .downtime_ms = -1, .setup_time_ms = -1,
        .stopped_queues = -1,
    };
}

char *vdpactl_migrate_progress(const struct vdpactl_migrate_report *r)
{
    GString *out = g_string_new(NULL);

    g_string_append_printf(out, "migrate %s: %s %.1f s", r->device, r->status ? r->status : "starting",
                           r->elapsed_s);
    if (r->ram_transferred >= 0 && r->ram_total > 0) {
        g_string_append_printf(out, "  RAM %.1f/%.1f MiB sent", r->ram_transferred / MIB,
                               r->ram_total / MIB);
        if (r->ram_remaining >= 0)
            g_string_append_printf(out, ", %.1f MiB left", r->ram_remaining / MIB);
    }
    g_string_append_printf(out, "  dirty pages %" PRIu64 " (vdpad)", r->dirty_marks);
    if (r->mode)
        g_string_append_printf(out, "  mode %s", r->mode);
    return g_string_free(out, FALSE);
}

static void append_ms(GString *out, const char *what, gint64 ms, bool *first)
{
    if (ms < 0)
        return;
    g_string_append_printf(out, "%s%s %" PRId64 " ms", *first ? "" : ", ", what, ms);
    *first = false;
}

char *vdpactl_migrate_summary(const struct vdpactl_migrate_report *r)
{
    GString *out = g_string_new(NULL);
    bool first = true;

    if (r->ok)
        g_string_append_printf(out, "migration of %s completed in %.2f s\n", r->device,
                               r->elapsed_s);
    else
        g_string_append_printf(out, "migration of %s FAILED: %s\n", r->device,
                               r->error ? r->error : "(no reason given)");

    g_string_append(out, "  QEMU:          ");
    append_ms(out, "total", r->total_time_ms, &first);
    append_ms(out, "downtime", r->downtime_ms, &first);
    append_ms(out, "setup", r->setup_time_ms, &first);
    if (r->ram_transferred >= 0) {
        g_string_append_printf(out, "%sRAM %.1f MiB sent", first ? "" : "; ",
                               r->ram_transferred / MIB);
        if (r->ram_total > 0)
            g_string_append_printf(out, " of %.1f MiB", r->ram_total / MIB);
        first = false;
    }
    g_string_append_printf(out, "%s\n", first ? (r->status ? r->status : "no answer") : "");

    g_string_append_printf(out, "  source %s: ", r->device);
    if (r->has_switch)
        g_string_append_printf(out, "switched to relay in %.3f ms", r->switch_ms);
    else
        g_string_append(out, "no switch to relay seen");
    g_string_append_printf(out, "; %" PRIu64 " dirty pages logged", r->dirty_marks);
    if (r->stopped_queues >= 0)
        g_string_append_printf(out, "; stopped with %d queues", r->stopped_queues);
    g_string_append_c(out, '\n');

    g_string_append_printf(out, "  destination %s: ", r->dst_device);
    if (r->has_restore)
        g_string_append_printf(out, "state restored (%u commands) in %.3f ms", r->restored_commands,
                               r->restore_ms);
    else
        g_string_append(out, "no state restore seen");
    if (r->dst_status)
        g_string_append_printf(out, "; QEMU %s", r->dst_status);
    g_string_append_c(out, '\n');
    if (r->has_device_downtime)
        g_string_append_printf(out, "  device down: %.1f ms (the source's stop to the "
                               "destination's queues started)\n", r->device_downtime_ms);
    return g_string_free(out, FALSE);
}

static json_object *int_or_null(gint64 v)
{
    return v >= 0 ? json_object_new_int64(v) : NULL;
}

static json_object *string_or_null(const char *s)
{
    return s ? json_object_new_string(s) : NULL;
}

json_object *vdpactl_migrate_json(const struct vdpactl_migrate_report *r)
{
    json_object *obj = json_object_new_object();

    json_object_object_add(obj, "result", json_object_new_string(r->ok ? "completed" : "failed"));
    json_object_object_add(obj, "error", r->ok ? NULL : string_or_null(r->error));
    json_object_object_add(obj, "elapsed_s", vdpactl_json_double(r->elapsed_s));
    json_object_object_add(obj, "device", json_object_new_string(r->device));
    json_object_object_add(obj, "dst_device", json_object_new_string(r->dst_device));
    /* QEMU */
    json_object_object_add(obj, "status", string_or_null(r->status));
    json_object_object_add(obj, "total_time_ms", int_or_null(r->total_time_ms));
    json_object_object_add(obj, "downtime_ms", int_or_null(r->downtime_ms));
    json_object_object_add(obj, "setup_time_ms", int_or_null(r->setup_time_ms));
    json_object_object_add(obj, "ram_transferred", int_or_null(r->ram_transferred));
    json_object_object_add(obj, "ram_total", int_or_null(r->ram_total));
    /* the source vdpad */
    json_object_object_add(obj, "switch_in_ms",
                           r->has_switch ? vdpactl_json_double(r->switch_ms) : NULL);
    json_object_object_add(obj, "dirty_marks", json_object_new_uint64(r->dirty_marks));
    json_object_object_add(obj, "stopped_queues", int_or_null(r->stopped_queues));
    /* the destination */
    json_object_object_add(obj, "restored_commands",
                           r->has_restore ? json_object_new_int64(r->restored_commands) : NULL);
    json_object_object_add(obj, "restore_ms",
                           r->has_restore ? vdpactl_json_double(r->restore_ms) : NULL);
    json_object_object_add(obj, "device_downtime_ms",
                           r->has_device_downtime ? vdpactl_json_double(r->device_downtime_ms)
                                                  : NULL);
    json_object_object_add(obj, "dst_qemu_status", string_or_null(r->dst_status));
    return obj;
}
