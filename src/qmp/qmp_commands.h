/* qmp_commands.h — the QMP commands live-migration code and its tests use, typed.
 *
 * Each is one qmp_client_execute() (blocking, the client's timeout) and returns 0 or -errno
 * like it: -EREMOTEIO with a QMP_ERROR GError when QEMU refuses. Threads and ownership are
 * the client's (qmp_client.h); what a helper hands out belongs to the caller.
 */
#pragma once

#include <glib.h>

#include "qmp/qmp_client.h"

/* query-status: whether the guest runs, and QEMU's run state ("running", "paused",
 * "inmigrate", "postmigrate"...; the caller frees it) if status is non-NULL. */
int qmp_query_status(struct qmp_client *c, gboolean *running, char **status, GError **error);
int qmp_stop(struct qmp_client *c, GError **error);
int qmp_cont(struct qmp_client *c, GError **error);

/* migrate-set-capabilities for one capability ("events", "postcopy-ram"...). */
int qmp_migrate_set_capability(struct qmp_client *c, const char *name, gboolean state,
                               GError **error);
/* query-migrate-capabilities: the state of one; -ENOENT if QEMU does not list it. */
int qmp_query_migrate_capability(struct qmp_client *c, const char *name, gboolean *state,
                                 GError **error);
/* migrate-set-parameters with params (a JSON object, borrowed), or one integer one. */
int qmp_migrate_set_parameters(struct qmp_client *c, json_object *params, GError **error);
int qmp_migrate_set_parameter_int(struct qmp_client *c, const char *name, gint64 value,
                                  GError **error);

/* migrate to uri ("unix:/path", "tcp:host:port"...); returns once the migration started. */
int qmp_migrate(struct qmp_client *c, const char *uri, GError **error);
/* migrate-incoming on a destination started with -incoming defer. */
int qmp_migrate_incoming(struct qmp_client *c, const char *uri, GError **error);
int qmp_migrate_cancel(struct qmp_client *c, GError **error);

/* MigrationStatus of QEMU 7.2. */
enum qmp_migration_status {
    QMP_MIGRATION_NONE,
    QMP_MIGRATION_SETUP,
    QMP_MIGRATION_CANCELLING,
    QMP_MIGRATION_CANCELLED,
    QMP_MIGRATION_ACTIVE,
    QMP_MIGRATION_POSTCOPY_ACTIVE,
    QMP_MIGRATION_POSTCOPY_PAUSED,
    QMP_MIGRATION_POSTCOPY_RECOVER,
    QMP_MIGRATION_COMPLETED,
    QMP_MIGRATION_FAILED,
    QMP_MIGRATION_COLO,
    QMP_MIGRATION_PRE_SWITCHOVER,
    QMP_MIGRATION_DEVICE,
    QMP_MIGRATION_WAIT_UNPLUG,
    QMP_MIGRATION_UNKNOWN, /* a name this list lacks (see status_name) */
};
/* QEMU's name for status ("none", "setup"...). */
const char *qmp_migration_status_name(enum qmp_migration_status status);
/* completed, failed or cancelled. */
gboolean qmp_migration_status_is_final(enum qmp_migration_status status);

/* query-migrate. Members QEMU left out read -1 (has_ram says whether "ram" was there). */
struct qmp_migrate_info {
    enum qmp_migration_status status;
    char *status_name;          /* as QEMU spelled it ("none" when absent) */
    gboolean has_ram;
    gint64 ram_transferred;     /* bytes */
    gint64 ram_remaining;       /* bytes */
    gint64 ram_total;           /* bytes */
    gint64 ram_dirty_pages_rate; /* pages per second */
    gint64 total_time_ms;
    gint64 setup_time_ms;
    gint64 downtime_ms;         /* once completed */
    gint64 expected_downtime_ms;
    char *error_desc;           /* why it failed, or NULL */
};
typedef struct qmp_migrate_info qmp_migrate_info; /* for g_auto */
/* Frees the strings; the struct may be reused. */
void qmp_migrate_info_clear(struct qmp_migrate_info *info);
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(qmp_migrate_info, qmp_migrate_info_clear)

/* info: zeroed, or filled by an earlier call (its strings are freed first). */
int qmp_query_migrate(struct qmp_client *c, struct qmp_migrate_info *info, GError **error);

/* Called with each query-migrate result while waiting; may run commands on c (e.g.
 * qmp_migrate_cancel). */
typedef void (*qmp_migrate_progress_fn)(const struct qmp_migrate_info *info, void *data);

/* Queries every interval_ms (events keep being queued meanwhile) until the migration is
 * completed, failed or cancelled, or timeout_ms passed. progress (optional) sees every
 * result, the last included; *last (optional; zeroed or filled before) keeps the last one.
 * 0 when completed; -EIO with QEMU's error-desc when failed; -ECANCELED when cancelled;
 * -ETIMEDOUT; or the client's error. */
int qmp_migrate_wait(struct qmp_client *c, int interval_ms, int timeout_ms,
                     qmp_migrate_progress_fn progress, void *data,
                     struct qmp_migrate_info *last, GError **error);
