/* Unit tests: the migration helpers between two real QEMUs — a small q35 guest with no
 * kernel (firmware only), migrated over a unix socket to a destination started with
 * -incoming defer. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "qemu_proc.h"
#include "qmp/qmp_commands.h"
#include "util/error.h"

static const char *const source_args[] = { "-machine", "q35", "-accel", "tcg", "-m", "64", NULL };
static const char *const dest_args[] = { "-machine", "q35", "-accel", "tcg", "-m", "64",
                                         "-incoming", "defer", NULL };

struct pair {
    char *dir;
    struct qemu_proc *src_vm, *dst_vm;
    struct qmp_client *src, *dst;
    char *uri;
};

static int setup(void **state)
{
    struct pair *p = g_new0(struct pair, 1);
    g_autoptr(GError) err = NULL;

    p->dir = qemu_dir_new();
    p->src_vm = qemu_proc_start(p->dir, "src", source_args);
    p->dst_vm = qemu_proc_start(p->dir, "dst", dest_args);
    p->src = qemu_proc_connect(p->src_vm, 10000);
    p->dst = qemu_proc_connect(p->dst_vm, 10000);
    p->uri = g_strdup_printf("unix:%s/migration.sock", p->dir);
    /* MIGRATION events need the "events" capability */
    assert_int_equal(qmp_migrate_set_capability(p->src, "events", TRUE, &err), 0);
    assert_int_equal(qmp_migrate_set_capability(p->dst, "events", TRUE, &err), 0);
    *state = p;
    return 0;
}

static int teardown(void **state)
{
    struct pair *p = *state;

    qmp_client_free(p->src);
    qmp_client_free(p->dst);
    qemu_proc_free(p->src_vm);
    qemu_proc_free(p->dst_vm);
    qemu_dir_remove(p->dir);
    g_free(p->uri);
    g_free(p);
    return 0;
}

/* The "status" of each MIGRATION event queued on c, in order, comma-separated. */
static char *migration_event_statuses(struct qmp_client *c, gboolean *stop_seen,
                                      gboolean *resume_seen)
{
    g_autoptr(GPtrArray) events = qmp_client_drain_events(c);
    GString *out = g_string_new(NULL);

    for (guint i = 0; i < events->len; i++) {
        struct qmp_event *ev = events->pdata[i];

        if (strcmp(ev->name, "MIGRATION") == 0)
            g_string_append_printf(out, "%s%s", out->len ? "," : "",
                                   qmp_json_string(ev->data, "status"));
        if (stop_seen && strcmp(ev->name, "STOP") == 0)
            *stop_seen = TRUE;
        if (resume_seen && strcmp(ev->name, "RESUME") == 0)
            *resume_seen = TRUE;
    }
    return g_string_free(out, FALSE);
}

struct progress_log {
    GArray *infos; /* struct qmp_migrate_info, strings dropped */
    struct qmp_client *cancel_on_active; /* if set: cancel at the first "active" */
    gboolean cancel_sent;
};

static void record_progress(const struct qmp_migrate_info *info, void *data)
{
    struct progress_log *log = data;
    struct qmp_migrate_info copy = *info;

    copy.status_name = NULL;
    copy.error_desc = NULL;
    g_array_append_val(log->infos, copy);
    if (log->cancel_on_active && !log->cancel_sent && info->status == QMP_MIGRATION_ACTIVE) {
        g_autoptr(GError) err = NULL;

        if (qmp_migrate_cancel(log->cancel_on_active, &err) < 0)
            fail_msg("migrate_cancel: %s", err->message);
        log->cancel_sent = TRUE;
    }
}

static void migration_completes_with_monotonic_progress_and_events(void **state)
{
    struct pair *p = *state;
    g_autoptr(GError) err = NULL;
    struct progress_log log = {
        .infos = g_array_new(FALSE, TRUE, sizeof(struct qmp_migrate_info)),
    };
    g_auto(qmp_migrate_info) last = { 0 };

    /* slow enough (~0.5 MB of non-zero pages at 400 kB/s) to be seen in progress */
    assert_int_equal(qmp_migrate_set_parameter_int(p->src, "max-bandwidth", 400000, &err), 0);
    assert_int_equal(qmp_migrate_incoming(p->dst, p->uri, &err), 0);
    assert_int_equal(qmp_migrate(p->src, p->uri, &err), 0);
    assert_int_equal(qmp_migrate_wait(p->src, 50, 60000, record_progress, &log, &last, &err), 0);

    assert_int_equal(last.status, QMP_MIGRATION_COMPLETED);
    assert_string_equal(last.status_name, "completed");
    assert_null(last.error_desc);
    assert_true(last.has_ram);
    assert_true(last.ram_total >= 64 << 20);
    assert_int_equal(last.ram_remaining, 0);
    assert_true(last.ram_transferred > 0);
    assert_true(last.total_time_ms > 0);
    assert_true(last.setup_time_ms >= 0);
    assert_true(last.downtime_ms >= 0);
    assert_true(last.ram_dirty_pages_rate >= 0);

    /* several samples, the counters never going back */
    guint active = 0;
    for (guint i = 0; i < log.infos->len; i++) {
        struct qmp_migrate_info *now = &g_array_index(log.infos, struct qmp_migrate_info, i);

        active += now->status == QMP_MIGRATION_ACTIVE;
        if (now->status == QMP_MIGRATION_ACTIVE) {
            assert_true(now->has_ram);
            assert_int_equal(now->ram_total, last.ram_total);
            assert_true(now->ram_remaining >= 0 && now->ram_remaining <= now->ram_total);
        }
        if (i == 0)
            continue;
        struct qmp_migrate_info *before = now - 1;
        if (before->has_ram && now->has_ram)
            assert_true(now->ram_transferred >= before->ram_transferred);
        if (before->total_time_ms >= 0 && now->total_time_ms >= 0)
            assert_true(now->total_time_ms >= before->total_time_ms);
    }
    if (active < 3)
        fail_msg("only %u progress samples while active", active);

    /* the source went setup → active → completed and stopped; the destination resumed */
    gboolean stopped = FALSE, resumed = FALSE;
    g_autofree char *src_events = migration_event_statuses(p->src, &stopped, NULL);
    assert_string_equal(src_events, "setup,active,completed");
    assert_true(stopped);
    /* events until the destination's "completed" (RESUME comes on the way) */
    GString *dst_events = g_string_new(NULL);
    for (gboolean completed = FALSE; !completed;) {
        g_autoptr(qmp_event) ev = qmp_client_wait_event(p->dst, NULL, 10000, &err);
        if (!ev)
            fail_msg("destination events so far: %s; then %s", dst_events->str, err->message);
        if (strcmp(ev->name, "RESUME") == 0)
            resumed = TRUE;
        if (strcmp(ev->name, "MIGRATION") != 0)
            continue;
        const char *status = qmp_json_string(ev->data, "status");
        g_string_append_printf(dst_events, "%s%s", dst_events->len ? "," : "", status);
        completed = strcmp(status, "completed") == 0;
    }
    assert_string_equal(dst_events->str, "setup,active,completed");
    g_string_free(dst_events, TRUE);
    if (!resumed) {
        g_autoptr(qmp_event) resume = qmp_client_wait_event(p->dst, "RESUME", 10000, &err);
        assert_non_null(resume);
    }

    gboolean running = FALSE;
    g_autofree char *src_status = NULL, *dst_status = NULL;
    assert_int_equal(qmp_query_status(p->src, &running, &src_status, &err), 0);
    assert_false(running);
    assert_string_equal(src_status, "postmigrate");
    assert_int_equal(qmp_query_status(p->dst, &running, &dst_status, &err), 0);
    assert_true(running);
    assert_string_equal(dst_status, "running");
    g_array_unref(log.infos);
}

static void migrate_cancel_ends_cancelled_and_the_source_runs_on(void **state)
{
    struct pair *p = *state;
    g_autoptr(GError) err = NULL;
    struct progress_log log = { .infos = g_array_new(FALSE, TRUE, sizeof(struct qmp_migrate_info)),
                                .cancel_on_active = p->src };
    g_auto(qmp_migrate_info) last = { 0 };

    /* so slow it cannot finish before the cancel */
    assert_int_equal(qmp_migrate_set_parameter_int(p->src, "max-bandwidth", 20000, &err), 0);
    assert_int_equal(qmp_migrate_incoming(p->dst, p->uri, &err), 0);
    assert_int_equal(qmp_migrate(p->src, p->uri, &err), 0);
    assert_int_equal(qmp_migrate_wait(p->src, 50, 60000, record_progress, &log, &last, &err),
                     -ECANCELED);
    assert_true(log.cancel_sent);
    assert_int_equal(last.status, QMP_MIGRATION_CANCELLED);
    if (!strstr(err->message, "migration cancelled"))
        fail_msg("%s", err->message);
    g_clear_error(&err);

    g_autofree char *events = migration_event_statuses(p->src, NULL, NULL);
    assert_string_equal(events, "setup,active,cancelling,cancelled");
    gboolean running = FALSE;
    assert_int_equal(qmp_query_status(p->src, &running, NULL, &err), 0);
    assert_true(running);

    /* the destination gives up on the broken stream and exits: its socket closes */
    g_autoptr(qmp_event) never = qmp_client_wait_event(p->dst, "NEVER", 20000, &err);
    assert_null(never);
    assert_int_equal(vdpad_error_errno(err), -ECONNRESET);
    assert_true(qemu_proc_wait_exit(p->dst_vm, 10000));
    g_array_unref(log.infos);
}

static void migration_to_nowhere_fails_with_qemu_reason(void **state)
{
    struct pair *p = *state;
    g_autoptr(GError) err = NULL;
    g_auto(qmp_migrate_info) last = { 0 };
    g_autofree char *nowhere = g_strdup_printf("unix:%s/nobody-listens", p->dir);

    assert_int_equal(qmp_migrate(p->src, nowhere, &err), 0);
    assert_int_equal(qmp_migrate_wait(p->src, 50, 30000, NULL, NULL, &last, &err), -EIO);
    assert_int_equal(last.status, QMP_MIGRATION_FAILED);
    assert_non_null(last.error_desc);
    if (!strstr(err->message, "migration failed: ") || !strstr(err->message, last.error_desc))
        fail_msg("%s", err->message);
    g_autofree char *events = migration_event_statuses(p->src, NULL, NULL);
    assert_string_equal(events, "setup,failed");
}

static void capabilities_and_parameters_round_trip(void **state)
{
    struct pair *p = *state;
    g_autoptr(GError) err = NULL;
    gboolean on = FALSE;

    assert_int_equal(qmp_query_migrate_capability(p->src, "events", &on, &err), 0);
    assert_true(on);
    assert_int_equal(qmp_migrate_set_capability(p->src, "events", FALSE, &err), 0);
    assert_int_equal(qmp_query_migrate_capability(p->src, "events", &on, &err), 0);
    assert_false(on);
    assert_int_equal(qmp_query_migrate_capability(p->src, "no-such-cap", &on, &err), -ENOENT);
    assert_non_null(strstr(err->message, "no migration capability no-such-cap"));
    g_clear_error(&err);
    assert_int_equal(qmp_migrate_set_capability(p->src, "no-such-cap", TRUE, &err), -EREMOTEIO);
    assert_true(g_error_matches(err, QMP_ERROR, QMP_ERROR_GENERIC));
    g_clear_error(&err);

    g_autoptr(json_object) params =
        json_tokener_parse("{\"downtime-limit\": 123, \"max-bandwidth\": 4567}");
    assert_int_equal(qmp_migrate_set_parameters(p->src, params, &err), 0);
    g_autoptr(json_object) got = NULL;
    assert_int_equal(qmp_client_execute(p->src, "query-migrate-parameters", NULL, &got, &err), 0);
    gint64 v;
    assert_true(qmp_json_int(got, "downtime-limit", &v) && v == 123);
    assert_true(qmp_json_int(got, "max-bandwidth", &v) && v == 4567);

    /* nothing has run yet: QEMU leaves the status out, read as "none" */
    g_auto(qmp_migrate_info) info = { 0 };
    assert_int_equal(qmp_query_migrate(p->src, &info, &err), 0);
    assert_int_equal(info.status, QMP_MIGRATION_NONE);
    assert_string_equal(info.status_name, "none");
    assert_false(info.has_ram);
    assert_int_equal(info.ram_total, -1);
    assert_false(qmp_migration_status_is_final(info.status));
}

int main(void)
{
    g_autofree char *qemu = qemu_binary();

    if (!qemu) {
        fprintf(stderr, "test_qmp_migration: qemu-system-x86_64 not found (PATH or $QEMU); "
                        "install the Debian package qemu-system-x86 (scripts/deps does)\n");
        return 1;
    }
    const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
        T(migration_completes_with_monotonic_progress_and_events),
        T(migrate_cancel_ends_cancelled_and_the_source_runs_on),
        T(migration_to_nowhere_fails_with_qemu_reason),
        T(capabilities_and_parameters_round_trip),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
