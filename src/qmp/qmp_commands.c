#include "config.h"

#include <string.h>

#include "qmp/qmp_commands.h"
#include "util/error.h"

static const char *const status_names[] = {
    [QMP_MIGRATION_NONE] = "none",
    [QMP_MIGRATION_SETUP] = "setup",
    [QMP_MIGRATION_CANCELLING] = "cancelling",
    [QMP_MIGRATION_CANCELLED] = "cancelled",
    [QMP_MIGRATION_ACTIVE] = "active",
    [QMP_MIGRATION_POSTCOPY_ACTIVE] = "postcopy-active",
    [QMP_MIGRATION_POSTCOPY_PAUSED] = "postcopy-paused",
    [QMP_MIGRATION_POSTCOPY_RECOVER] = "postcopy-recover",
    [QMP_MIGRATION_COMPLETED] = "completed",
    [QMP_MIGRATION_FAILED] = "failed",
    [QMP_MIGRATION_COLO] = "colo",
    [QMP_MIGRATION_PRE_SWITCHOVER] = "pre-switchover",
    [QMP_MIGRATION_DEVICE] = "device",
    [QMP_MIGRATION_WAIT_UNPLUG] = "wait-unplug",
    [QMP_MIGRATION_UNKNOWN] = "unknown",
};

const char *qmp_migration_status_name(enum qmp_migration_status status)
{
    return (size_t)status < G_N_ELEMENTS(status_names) ? status_names[status] : "unknown";
}

gboolean qmp_migration_status_is_final(enum qmp_migration_status status)
{
    return status == QMP_MIGRATION_COMPLETED || status == QMP_MIGRATION_FAILED ||
           status == QMP_MIGRATION_CANCELLED;
}

static enum qmp_migration_status parse_status(const char *name)
{
    for (size_t i = 0; i < QMP_MIGRATION_UNKNOWN; i++)
        if (strcmp(name, status_names[i]) == 0)
            return (enum qmp_migration_status)i;
    return QMP_MIGRATION_UNKNOWN;
}

/* Runs cmd and drops its (empty) return value. Takes args. */
static int run(struct qmp_client *c, const char *cmd, json_object *args, GError **error)
{
    g_autoptr(json_object) owned = args;

    return qmp_client_execute(c, cmd, owned, NULL, error);
}

static json_object *one_string_arg(const char *key, const char *value)
{
    json_object *args = json_object_new_object();

    json_object_object_add(args, key, json_object_new_string(value));
    return args;
}

static int malformed(struct qmp_client *c, const char *cmd, json_object *ret, GError **error)
{
    return vdpad_fail(error, EPROTO, "QMP socket %s: unexpected reply to %s: %.200s",
                      qmp_client_path(c), cmd, json_object_to_json_string(ret));
}

int qmp_query_status(struct qmp_client *c, gboolean *running, char **status, GError **error)
{
    g_autoptr(json_object) ret = NULL;
    int err = qmp_client_execute(c, "query-status", NULL, &ret, error);

    if (err < 0)
        return err;
    json_object *run_flag = qmp_json_member(ret, "running", json_type_boolean);
    const char *name = qmp_json_string(ret, "status");

    if (!run_flag || !name)
        return malformed(c, "query-status", ret, error);
    if (running)
        *running = json_object_get_boolean(run_flag);
    if (status)
        *status = g_strdup(name);
    return 0;
}

int qmp_stop(struct qmp_client *c, GError **error)
{
    return run(c, "stop", NULL, error);
}

int qmp_cont(struct qmp_client *c, GError **error)
{
    return run(c, "cont", NULL, error);
}

int qmp_migrate_set_capability(struct qmp_client *c, const char *name, gboolean state,
                               GError **error)
{
    json_object *args = json_object_new_object();
    json_object *caps = json_object_new_array();
    json_object *cap = json_object_new_object();

    json_object_object_add(cap, "capability", json_object_new_string(name));
    json_object_object_add(cap, "state", json_object_new_boolean(state));
    json_object_array_add(caps, cap);
    json_object_object_add(args, "capabilities", caps);
    return run(c, "migrate-set-capabilities", args, error);
}

int qmp_query_migrate_capability(struct qmp_client *c, const char *name, gboolean *state,
                                 GError **error)
{
    g_autoptr(json_object) ret = NULL;
    int err = qmp_client_execute(c, "query-migrate-capabilities", NULL, &ret, error);

    if (err < 0)
        return err;
    if (!json_object_is_type(ret, json_type_array))
        return malformed(c, "query-migrate-capabilities", ret, error);
    for (size_t i = 0; i < json_object_array_length(ret); i++) {
        json_object *cap = json_object_array_get_idx(ret, i);
        const char *cap_name = qmp_json_string(cap, "capability");
        json_object *cap_state = qmp_json_member(cap, "state", json_type_boolean);

        if (cap_name && cap_state && strcmp(cap_name, name) == 0) {
            *state = json_object_get_boolean(cap_state);
            return 0;
        }
    }
    return vdpad_fail(error, ENOENT, "QMP socket %s: QEMU lists no migration capability %s",
                      qmp_client_path(c), name);
}

int qmp_migrate_set_parameters(struct qmp_client *c, json_object *params, GError **error)
{
    return qmp_client_execute(c, "migrate-set-parameters", params, NULL, error);
}

int qmp_migrate_set_parameter_int(struct qmp_client *c, const char *name, gint64 value,
                                  GError **error)
{
    json_object *args = json_object_new_object();

    json_object_object_add(args, name, json_object_new_int64(value));
    return run(c, "migrate-set-parameters", args, error);
}

int qmp_migrate(struct qmp_client *c, const char *uri, GError **error)
{
    return run(c, "migrate", one_string_arg("uri", uri), error);
}

int qmp_migrate_incoming(struct qmp_client *c, const char *uri, GError **error)
{
    return run(c, "migrate-incoming", one_string_arg("uri", uri), error);
}

int qmp_migrate_cancel(struct qmp_client *c, GError **error)
{
    return run(c, "migrate_cancel", NULL, error);
}

void qmp_migrate_info_clear(struct qmp_migrate_info *info)
{
    g_clear_pointer(&info->status_name, g_free);
    g_clear_pointer(&info->error_desc, g_free);
}

static gint64 int_or_minus_one(json_object *obj, const char *key)
{
    gint64 v = -1;

    qmp_json_int(obj, key, &v);
    return v;
}

int qmp_query_migrate(struct qmp_client *c, struct qmp_migrate_info *info, GError **error)
{
    g_autoptr(json_object) ret = NULL;

    qmp_migrate_info_clear(info);
    memset(info, 0, sizeof(*info));
    int err = qmp_client_execute(c, "query-migrate", NULL, &ret, error);
    if (err < 0)
        return err;
    if (!json_object_is_type(ret, json_type_object))
        return malformed(c, "query-migrate", ret, error);

    /* QEMU leaves "status" out while no migration ever ran */
    const char *status = qmp_json_string(ret, "status");
    info->status_name = g_strdup(status ? status : "none");
    info->status = parse_status(info->status_name);

    json_object *ram = qmp_json_member(ret, "ram", json_type_object);
    info->has_ram = ram != NULL;
    info->ram_transferred = int_or_minus_one(ram, "transferred");
    info->ram_remaining = int_or_minus_one(ram, "remaining");
    info->ram_total = int_or_minus_one(ram, "total");
    info->ram_dirty_pages_rate = int_or_minus_one(ram, "dirty-pages-rate");
    info->total_time_ms = int_or_minus_one(ret, "total-time");
    info->setup_time_ms = int_or_minus_one(ret, "setup-time");
    info->downtime_ms = int_or_minus_one(ret, "downtime");
    info->expected_downtime_ms = int_or_minus_one(ret, "expected-downtime");
    info->error_desc = g_strdup(qmp_json_string(ret, "error-desc"));
    return 0;
}

int qmp_migrate_wait(struct qmp_client *c, int interval_ms, int timeout_ms,
                     qmp_migrate_progress_fn progress, void *data,
                     struct qmp_migrate_info *last, GError **error)
{
    g_return_val_if_fail(interval_ms > 0 && timeout_ms >= 0, -EINVAL);
    g_auto(qmp_migrate_info) info = { 0 };
    gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;
    int err;

    if (last) {
        qmp_migrate_info_clear(last);
        memset(last, 0, sizeof(*last));
    }
    for (;;) {
        if ((err = qmp_query_migrate(c, &info, error)) < 0)
            return err;
        if (progress)
            progress(&info, data);
        if (qmp_migration_status_is_final(info.status))
            break;
        gint64 left_ms = (deadline - g_get_monotonic_time()) / 1000;
        if (left_ms <= 0) {
            err = vdpad_fail(error, ETIMEDOUT,
                             "QMP socket %s: migration still %s after %d ms (%" G_GINT64_FORMAT
                             " of %" G_GINT64_FORMAT " bytes of RAM sent)",
                             qmp_client_path(c), info.status_name, timeout_ms,
                             info.ram_transferred, info.ram_total);
            break;
        }
        if ((err = qmp_client_pump(c, (int)MIN(left_ms, interval_ms), error)) < 0)
            return err;
    }
    if (err == 0 && info.status == QMP_MIGRATION_FAILED)
        err = vdpad_fail(error, EIO, "QMP socket %s: migration failed: %s", qmp_client_path(c),
                         info.error_desc ? info.error_desc : "(QEMU gave no reason)");
    else if (err == 0 && info.status == QMP_MIGRATION_CANCELLED)
        err = vdpad_fail(error, ECANCELED, "QMP socket %s: migration cancelled",
                         qmp_client_path(c));
    if (last) {
        *last = info;
        memset(&info, 0, sizeof(info));
    }
    return err;
}
