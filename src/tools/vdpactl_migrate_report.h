/* vdpactl_migrate_report.h — what `vdpactl migrate` shows: the progress line and the
 * summary (text or JSON), from one record that the command fills as the migration runs.
 *
 * Progress (every 0.5 s):
 *   migrate n0: active 1.5 s  RAM 120.5/256.0 MiB sent, 60.2 MiB left  dirty pages 1234 (vdpad)  mode relay
 * Summary:
 *   migration of n0 completed in 2.61 s
 *     QEMU:         total 2589 ms, downtime 87 ms, setup 4 ms; RAM 270.3 MiB sent of 256.0 MiB
 *     source n0:    switched to relay in 0.412 ms; 1234 dirty pages logged; stopped with 3 queues
 *     destination n0: state restored (5 commands) in 1.204 ms; QEMU running
 *     device down:  41.7 ms (the source's stop to the destination's queues started)
 * or, first line on failure: "migration of n0 FAILED: REASON".
 *
 * JSON (one flat object, for scripts; a value vdpactl never learned is null):
 *   {"result":"completed"|"failed","error":null|"...","elapsed_s":2.61,
 *    "device":"n0","dst_device":"n0",
 *    "status":"completed","total_time_ms":2589,"downtime_ms":87,"setup_time_ms":4,
 *    "ram_transferred":283426816,"ram_total":268435456,          (QEMU's query-migrate)
 *    "switch_in_ms":0.412,"dirty_marks":1234,"stopped_queues":3,  (the source vdpad)
 *    "restored_commands":5,"restore_ms":1.204,                    (the destination vdpad)
 *    "device_downtime_ms":41.7,                   (source Stopped to destination StateRestored)
 *    "dst_qemu_status":"running"}
 *
 * Threads: pure functions. Ownership: the record's strings are borrowed; results are the
 * caller's.
 */
#pragma once

#include <glib.h>
#include <json.h>
#include <stdbool.h>

struct vdpactl_migrate_report {
    const char *device, *dst_device;
    double elapsed_s;           /* since the migrate command */
    /* QEMU (query-migrate on the source); -1: not known */
    const char *status;         /* QEMU's status name, NULL before the first answer */
    gint64 ram_transferred, ram_remaining, ram_total;
    gint64 total_time_ms, downtime_ms, setup_time_ms;
    /* the source vdpad */
    const char *mode;           /* the device's Mode, NULL if not read */
    guint64 dirty_marks;        /* the most it reported (DirtyMarks, DirtyPagesLogged) */
    bool has_switch;            /* ModeChanged to relay seen */
    double switch_ms;
    int stopped_queues;         /* from Stopped; -1 if not seen */
    /* the destination */
    bool has_restore;           /* StateRestored seen */
    unsigned restored_commands;
    double restore_ms;
    const char *dst_status;     /* its QEMU's run state after the migration, NULL if unknown */
    /* the source's Stopped to the destination's StateRestored, as they arrived */
    bool has_device_downtime;
    double device_downtime_ms;
    /* the outcome */
    bool ok;
    const char *error;          /* why it failed */
};

/* Fields vdpactl has not learned yet. */
void vdpactl_migrate_report_init(struct vdpactl_migrate_report *r);

/* The progress line, without a newline. */
char *vdpactl_migrate_progress(const struct vdpactl_migrate_report *r);
/* The summary, lines ending in '\n'. */
char *vdpactl_migrate_summary(const struct vdpactl_migrate_report *r);
json_object *vdpactl_migrate_json(const struct vdpactl_migrate_report *r);
