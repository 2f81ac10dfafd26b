/* Unit tests: the QMP client against a real QEMU (7.2 on Debian 12), blocking and from a
 * GLib main loop. QEMU runs with -machine none: no guest is needed to talk QMP. */
#include "config.h"

#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <cmocka.h>

#include "qemu_proc.h"
#include "qmp/qmp_client.h"
#include "qmp/qmp_commands.h"
#include "util/error.h"

struct fixture {
    char *dir;
    struct qemu_proc *qemu;
    struct qmp_client *qmp;
};

static const char *const machine_none[] = { "-machine", "none", NULL };

static int setup(void **state)
{
    struct fixture *f = g_new0(struct fixture, 1);

    f->dir = qemu_dir_new();
    f->qemu = qemu_proc_start(f->dir, "vm", machine_none);
    f->qmp = qemu_proc_connect(f->qemu, 10000);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    qmp_client_free(f->qmp);
    qemu_proc_free(f->qemu);
    qemu_dir_remove(f->dir);
    g_free(f);
    return 0;
}

static gint64 elapsed_ms(gint64 start_us)
{
    return (g_get_monotonic_time() - start_us) / 1000;
}

#define assert_contains(haystack, needle)                                                   \
    do {                                                                                    \
        if (!strstr((haystack), (needle)))                                                  \
            fail_msg("\"%s\" does not contain \"%s\"", (const char *)(haystack), (needle)); \
    } while (0)

/* --- blocking mode ------------------------------------------------------------------ */

static void greeting_version_matches_query_version(void **state)
{
    struct fixture *f = *state;
    int major, minor, micro;
    const char *version = qmp_client_qemu_version(f->qmp, &major, &minor, &micro);
    g_autoptr(GError) err = NULL;
    g_autoptr(json_object) ret = NULL;

    assert_true(major > 7 || (major == 7 && minor >= 2));
    g_autofree char *numbers = g_strdup_printf("%d.%d.%d", major, minor, micro);
    assert_true(g_str_has_prefix(version, numbers));
    assert_string_equal(qmp_client_path(f->qmp), f->qemu->qmp_path);
    assert_null(qmp_client_closed_error(f->qmp));

    assert_int_equal(qmp_client_execute(f->qmp, "query-version", NULL, &ret, &err), 0);
    json_object *qemu = qmp_json_member(ret, "qemu", json_type_object);
    gint64 v;
    assert_true(qmp_json_int(qemu, "major", &v) && v == major);
    assert_true(qmp_json_int(qemu, "minor", &v) && v == minor);
    assert_true(qmp_json_int(qemu, "micro", &v) && v == micro);
    const char *package = qmp_json_string(ret, "package");
    if (package && *package)
        assert_contains(version, package);
}

static void query_status_reports_a_running_vm(void **state)
{
    struct fixture *f = *state;
    g_autoptr(GError) err = NULL;
    g_autofree char *status = NULL;
    gboolean running = FALSE;

    assert_int_equal(qmp_query_status(f->qmp, &running, &status, &err), 0);
    assert_true(running);
    assert_string_equal(status, "running");
}

static void error_replies_carry_qemu_class_and_desc(void **state)
{
    struct fixture *f = *state;
    g_autoptr(GError) err = NULL;
    json_object *ret = (json_object *)1;

    assert_int_equal(qmp_client_execute(f->qmp, "no-such-command", NULL, &ret, &err), -EREMOTEIO);
    assert_null(ret);
    assert_true(g_error_matches(err, QMP_ERROR, QMP_ERROR_COMMAND_NOT_FOUND));
    assert_true(g_str_has_prefix(
        err->message, "CommandNotFound: The command no-such-command has not been found"));
    assert_contains(err->message, f->qemu->qmp_path);
    g_clear_error(&err);

    /* a known command with a bad argument: GenericError */
    g_autoptr(json_object) args = json_tokener_parse("{\"bogus\": 1}");
    assert_int_equal(qmp_client_execute(f->qmp, "query-status", args, NULL, &err), -EREMOTEIO);
    assert_true(g_error_matches(err, QMP_ERROR, QMP_ERROR_GENERIC));
    assert_true(g_str_has_prefix(err->message, "GenericError: "));
    assert_contains(err->message, "bogus");
    g_clear_error(&err);

    /* another class QEMU 7.2 uses */
    g_autoptr(json_object) dev = json_tokener_parse("{\"id\": \"nonexistent0\"}");
    assert_int_equal(qmp_client_execute(f->qmp, "device_del", dev, NULL, &err), -EREMOTEIO);
    assert_true(g_error_matches(err, QMP_ERROR, QMP_ERROR_DEVICE_NOT_FOUND));
    assert_true(g_str_has_prefix(err->message, "DeviceNotFound: "));
    g_clear_error(&err);

    /* errors leave the connection usable */
    assert_int_equal(qmp_query_status(f->qmp, NULL, NULL, &err), 0);
}

static void stop_and_cont_events_are_queued_in_order(void **state)
{
    struct fixture *f = *state;
    g_autoptr(GError) err = NULL;
    gint64 before_us = g_get_real_time();

    /* STOP arrives before stop's reply, RESUME before cont's: both queued meanwhile */
    assert_int_equal(qmp_stop(f->qmp, &err), 0);
    assert_int_equal(qmp_cont(f->qmp, &err), 0);
    assert_int_equal(qmp_query_status(f->qmp, NULL, NULL, &err), 0);

    const struct qmp_event *head = qmp_client_peek_event(f->qmp);
    assert_non_null(head);
    assert_string_equal(head->name, "STOP");

    g_autoptr(GPtrArray) events = qmp_client_drain_events(f->qmp);
    assert_int_equal(events->len, 2);
    struct qmp_event *stop = events->pdata[0], *resume = events->pdata[1];
    assert_string_equal(stop->name, "STOP");
    assert_string_equal(resume->name, "RESUME");
    assert_null(stop->data);
    /* QEMU stamps events with its wall clock (same host, so close to ours) */
    assert_true(stop->timestamp_us >= before_us - 5 * G_USEC_PER_SEC);
    assert_true(resume->timestamp_us >= stop->timestamp_us);
    assert_null(qmp_client_peek_event(f->qmp));
}

static void waiting_for_a_named_event_leaves_others_queued(void **state)
{
    struct fixture *f = *state;
    g_autoptr(GError) err = NULL;

    assert_int_equal(qmp_stop(f->qmp, &err), 0);
    /* no RESUME yet: the wait times out, STOP stays */
    gint64 start = g_get_monotonic_time();
    assert_null(qmp_client_wait_event(f->qmp, "RESUME", 200, &err));
    assert_int_equal(vdpad_error_errno(err), -ETIMEDOUT);
    assert_contains(err->message, "no RESUME event within 200 ms");
    assert_true(elapsed_ms(start) >= 190 && elapsed_ms(start) < 2000);
    g_clear_error(&err);

    assert_int_equal(qmp_cont(f->qmp, &err), 0);
    g_autoptr(qmp_event) resume = qmp_client_wait_event(f->qmp, "RESUME", 5000, &err);
    assert_non_null(resume);
    assert_string_equal(resume->name, "RESUME");
    g_autoptr(qmp_event) stop = qmp_client_wait_event(f->qmp, NULL, 0, &err);
    assert_non_null(stop);
    assert_string_equal(stop->name, "STOP");
    assert_null(qmp_client_wait_event(f->qmp, NULL, 0, &err));
}

static void command_timeout_is_bounded_and_late_reply_is_ignored(void **state)
{
    struct fixture *f = *state;
    g_autoptr(GError) err = NULL;
    g_autoptr(json_object) ret = NULL;

    qemu_proc_signal(f->qemu, SIGSTOP);
    qmp_client_set_timeout(f->qmp, 300);
    gint64 start = g_get_monotonic_time();
    assert_int_equal(qmp_client_execute(f->qmp, "query-status", NULL, &ret, &err), -ETIMEDOUT);
    assert_true(elapsed_ms(start) >= 290 && elapsed_ms(start) < 3000);
    assert_contains(err->message, "no reply to query-status within 300 ms");
    assert_contains(err->message, f->qemu->qmp_path);
    g_clear_error(&err);

    /* the late reply to query-status must not pass for query-version's */
    qemu_proc_signal(f->qemu, SIGCONT);
    qmp_client_set_timeout(f->qmp, 10000);
    assert_int_equal(qmp_client_execute(f->qmp, "query-version", NULL, &ret, &err), 0);
    assert_non_null(qmp_json_member(ret, "qemu", json_type_object));
    assert_null(qmp_json_member(ret, "running", json_type_boolean));
}

static void qemu_killed_during_an_event_wait_fails_fast(void **state)
{
    struct fixture *f = *state;
    g_autoptr(GError) err = NULL;
    GThread *killer = qemu_proc_signal_later(f->qemu, SIGKILL, 300);
    gint64 start = g_get_monotonic_time();

    assert_null(qmp_client_wait_event(f->qmp, "NEVER", 20000, &err));
    g_thread_join(killer);
    assert_true(elapsed_ms(start) < 5000);
    assert_int_equal(vdpad_error_errno(err), -ECONNRESET);
    g_autofree char *closed = g_strdup_printf("QMP socket %s closed", f->qemu->qmp_path);
    assert_true(g_str_has_prefix(err->message, closed));
    assert_non_null(qmp_client_closed_error(f->qmp));
    g_clear_error(&err);

    /* every later call fails at once, naming the socket */
    start = g_get_monotonic_time();
    assert_int_equal(qmp_client_execute(f->qmp, "query-status", NULL, NULL, &err), -ECONNRESET);
    assert_true(g_str_has_prefix(err->message, closed));
    assert_contains(err->message, "cannot run query-status");
    g_clear_error(&err);
    assert_null(qmp_client_wait_event(f->qmp, NULL, 10000, &err));
    assert_true(g_str_has_prefix(err->message, closed));
    g_clear_error(&err);
    assert_int_equal(qmp_client_pump(f->qmp, 10000, &err), -ECONNRESET);
    assert_true(elapsed_ms(start) < 1000);
}

static void qemu_killed_during_a_command_fails_the_command(void **state)
{
    struct fixture *f = *state;
    g_autoptr(GError) err = NULL;

    /* stopped, QEMU cannot answer; killed, its socket closes under the waiting command */
    qemu_proc_signal(f->qemu, SIGSTOP);
    GThread *killer = qemu_proc_signal_later(f->qemu, SIGKILL, 300);
    gint64 start = g_get_monotonic_time();
    assert_int_equal(qmp_client_execute(f->qmp, "query-status", NULL, NULL, &err), -ECONNRESET);
    g_thread_join(killer);
    assert_true(elapsed_ms(start) < 5000);
    g_autofree char *want = g_strdup_printf("QMP socket %s closed before replying to query-status",
                                            f->qemu->qmp_path);
    assert_string_equal(err->message, want);
}

static void events_queued_before_the_close_are_still_delivered(void **state)
{
    struct fixture *f = *state;
    g_autoptr(GError) err = NULL;

    assert_int_equal(qmp_stop(f->qmp, &err), 0);
    qemu_proc_signal(f->qemu, SIGKILL);
    assert_int_equal(qmp_client_pump(f->qmp, 5000, &err), -ECONNRESET);
    g_clear_error(&err);
    g_autoptr(qmp_event) stop = qmp_client_wait_event(f->qmp, "STOP", 0, &err);
    assert_non_null(stop);
    assert_null(qmp_client_wait_event(f->qmp, "STOP", 0, &err));
    assert_int_equal(vdpad_error_errno(err), -ECONNRESET);
}

static void connect_errors_name_the_socket(void **state)
{
    struct fixture *f = *state;
    g_autoptr(GError) err = NULL;
    g_autofree char *missing = g_strdup_printf("%s/missing.qmp", f->dir);

    assert_null(qmp_client_connect(missing, 1000, &err));
    assert_int_equal(vdpad_error_errno(err), -ENOENT);
    assert_contains(err->message, missing);
    g_clear_error(&err);

    /* QEMU greets one client at a time: a second one gets no greeting */
    gint64 start = g_get_monotonic_time();
    assert_null(qmp_client_connect(f->qemu->qmp_path, 300, &err));
    assert_int_equal(vdpad_error_errno(err), -ETIMEDOUT);
    assert_contains(err->message, "no greeting within 300 ms");
    assert_contains(err->message, f->qemu->qmp_path);
    assert_true(elapsed_ms(start) < 3000);
}

static void client_on_a_connected_fd_works_like_connect(void **state)
{
    struct fixture *f = *state;
    g_autoptr(GError) err = NULL;

    /* give the monitor free for a new client */
    g_clear_pointer(&f->qmp, qmp_client_free);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    g_strlcpy(addr.sun_path, f->qemu->qmp_path, sizeof(addr.sun_path));
    assert_int_equal(connect(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);

    f->qmp = qmp_client_new_from_fd(fd, "monitor fd", 10000, &err);
    assert_non_null(f->qmp);
    assert_string_equal(qmp_client_path(f->qmp), "monitor fd");
    assert_int_equal(qmp_query_status(f->qmp, NULL, NULL, &err), 0);
    qemu_proc_signal(f->qemu, SIGKILL);
    assert_int_equal(qmp_client_execute(f->qmp, "query-status", NULL, NULL, &err), -ECONNRESET);
    assert_true(g_str_has_prefix(err->message, "QMP socket monitor fd closed"));
}

/* --- main-loop mode ------------------------------------------------------------------ */

struct loop_log {
    GPtrArray *lines; /* "event STOP", "done stop: {}", "done x: error ...", "closed: ..." */
    int closed;
    gboolean free_on_close;
};

static void on_event(struct qmp_client *c, const struct qmp_event *ev, void *data)
{
    struct loop_log *log = data;

    g_ptr_array_add(log->lines, g_strdup_printf("event %s", ev->name));
}

static void on_closed(struct qmp_client *c, const GError *why, void *data)
{
    struct loop_log *log = data;

    log->closed++;
    g_ptr_array_add(log->lines, g_strdup_printf("closed: %s", why->message));
    if (log->free_on_close)
        qmp_client_free(c);
}

struct pending {
    struct loop_log *log;
    const char *cmd;
    gboolean done;
};

static void on_done(struct qmp_client *c, json_object *result, const GError *error, void *data)
{
    struct pending *p = data;

    assert_false(p->done);
    assert_true((result == NULL) != (error == NULL));
    p->done = TRUE;
    const char *text = error ? error->message
                             : json_object_to_json_string_ext(result, JSON_C_TO_STRING_PLAIN);
    g_ptr_array_add(p->log->lines,
                    g_strdup_printf("done %s: %s%s", p->cmd, error ? "error " : "", text));
}

/* Iterates ctx until *flag or timeout_ms; fails the test on timeout. */
static void iterate_until(GMainContext *ctx, const gboolean *flag, int timeout_ms)
{
    gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;

    while (!*flag) {
        if (g_get_monotonic_time() > deadline)
            fail_msg("the main loop did not get there in %d ms", timeout_ms);
        g_main_context_iteration(ctx, FALSE);
        g_usleep(1000);
    }
}

static void async_commands_and_events_arrive_in_wire_order(void **state)
{
    struct fixture *f = *state;
    g_autoptr(GMainContext) ctx = g_main_context_new();
    struct loop_log log = { .lines = g_ptr_array_new_with_free_func(g_free) };
    struct pending status = { &log, "query-status" }, stop = { &log, "stop" },
                   bad = { &log, "no-such-command" }, cont = { &log, "cont" };

    qmp_client_attach(f->qmp, ctx, on_event, on_closed, &log);
    qmp_client_execute_async(f->qmp, "query-status", NULL, on_done, &status);
    qmp_client_execute_async(f->qmp, "stop", NULL, on_done, &stop);
    qmp_client_execute_async(f->qmp, "no-such-command", NULL, on_done, &bad);
    qmp_client_execute_async(f->qmp, "cont", NULL, on_done, &cont);
    /* nothing runs from inside the calls */
    assert_int_equal(log.lines->len, 0);
    iterate_until(ctx, &cont.done, 10000);
    /* let a stray event show itself */
    for (int i = 0; i < 20; i++)
        g_main_context_iteration(ctx, FALSE);

    assert_int_equal(log.lines->len, 6);
    assert_true(
        g_str_has_prefix(log.lines->pdata[0], "done query-status: {\"status\":\"running\""));
    /* the event QEMU sent before stop's reply comes first */
    assert_string_equal(log.lines->pdata[1], "event STOP");
    assert_string_equal(log.lines->pdata[2], "done stop: {}");
    assert_true(
        g_str_has_prefix(log.lines->pdata[3], "done no-such-command: error CommandNotFound: "));
    assert_string_equal(log.lines->pdata[4], "event RESUME");
    assert_string_equal(log.lines->pdata[5], "done cont: {}");
    assert_int_equal(log.closed, 0);
    /* events went to the callback, not the queue */
    assert_null(qmp_client_peek_event(f->qmp));
    qmp_client_detach(f->qmp);
    g_ptr_array_unref(log.lines);
}

static void blocking_calls_mix_with_the_main_loop(void **state)
{
    struct fixture *f = *state;
    g_autoptr(GMainContext) ctx = g_main_context_new();
    struct loop_log log = { .lines = g_ptr_array_new_with_free_func(g_free) };
    struct pending status = { &log, "query-status" };
    g_autoptr(GError) err = NULL;

    /* without an event callback, events stay queued for the blocking calls */
    qmp_client_attach(f->qmp, ctx, NULL, on_closed, &log);
    qmp_client_execute_async(f->qmp, "query-status", NULL, on_done, &status);
    /* a blocking call reads the async reply too; its callback waits for the loop */
    assert_int_equal(qmp_stop(f->qmp, &err), 0);
    assert_false(status.done);
    iterate_until(ctx, &status.done, 5000);
    assert_int_equal(log.lines->len, 1);
    g_autoptr(qmp_event) ev = qmp_client_wait_event(f->qmp, "STOP", 1000, &err);
    assert_non_null(ev);
    qmp_client_detach(f->qmp);
    g_ptr_array_unref(log.lines);
}

static void async_timeout_and_close_reach_every_callback(void **state)
{
    struct fixture *f = *state;
    g_autoptr(GMainContext) ctx = g_main_context_new();
    struct loop_log log = { .lines = g_ptr_array_new_with_free_func(g_free) };
    struct pending slow = { &log, "query-status" }, after = { &log, "query-name" };

    qmp_client_attach(f->qmp, ctx, on_event, on_closed, &log);
    qemu_proc_signal(f->qemu, SIGSTOP);
    qmp_client_set_timeout(f->qmp, 200);
    gint64 start = g_get_monotonic_time();
    qmp_client_execute_async(f->qmp, "query-status", NULL, on_done, &slow);
    iterate_until(ctx, &slow.done, 5000);
    assert_true(elapsed_ms(start) >= 190);
    assert_contains(log.lines->pdata[0], "no reply to query-status in time");

    /* commands pending when QEMU dies fail in the order they were sent, then on_closed */
    static const char *const doomed_cmds[] = { "query-version", "query-uuid", "query-kvm",
                                               "query-iothreads", "query-commands",
                                               "query-machines" };
    struct pending doomed[G_N_ELEMENTS(doomed_cmds)];
    qmp_client_set_timeout(f->qmp, 20000);
    for (size_t i = 0; i < G_N_ELEMENTS(doomed_cmds); i++) {
        doomed[i] = (struct pending){ &log, doomed_cmds[i] };
        qmp_client_execute_async(f->qmp, doomed_cmds[i], NULL, on_done, &doomed[i]);
    }
    qemu_proc_signal(f->qemu, SIGKILL);
    iterate_until(ctx, &doomed[G_N_ELEMENTS(doomed) - 1].done, 5000);
    for (int i = 0; i < 20 && !log.closed; i++)
        g_main_context_iteration(ctx, FALSE);
    assert_int_equal(log.closed, 1);
    assert_int_equal(log.lines->len, 2 + G_N_ELEMENTS(doomed));
    g_autofree char *closed = g_strdup_printf("QMP socket %s closed", f->qemu->qmp_path);
    for (size_t i = 0; i < G_N_ELEMENTS(doomed); i++) {
        g_autofree char *done_line = g_strdup_printf("done %s: error %s before replying to %s",
                                                     doomed_cmds[i], closed, doomed_cmds[i]);
        assert_string_equal(log.lines->pdata[1 + i], done_line);
    }
    g_autofree char *closed_line = g_strdup_printf("closed: %s", closed);
    assert_string_equal(log.lines->pdata[1 + G_N_ELEMENTS(doomed)], closed_line);

    /* a command on the closed client completes (with the error) from the loop too */
    qmp_client_execute_async(f->qmp, "query-name", NULL, on_done, &after);
    assert_false(after.done);
    iterate_until(ctx, &after.done, 1000);
    assert_contains(log.lines->pdata[log.lines->len - 1], "cannot run query-name");
    assert_int_equal(log.closed, 1);
    qmp_client_detach(f->qmp);
    g_ptr_array_unref(log.lines);
}

static void client_freed_from_its_closed_callback(void **state)
{
    struct fixture *f = *state;
    g_autoptr(GMainContext) ctx = g_main_context_new();
    struct loop_log log = { .lines = g_ptr_array_new_with_free_func(g_free),
                            .free_on_close = TRUE };

    qmp_client_attach(f->qmp, ctx, on_event, on_closed, &log);
    qemu_proc_signal(f->qemu, SIGKILL);
    gint64 deadline = g_get_monotonic_time() + 5 * G_USEC_PER_SEC;
    while (!log.closed && g_get_monotonic_time() < deadline)
        g_main_context_iteration(ctx, TRUE);
    assert_int_equal(log.closed, 1);
    f->qmp = NULL; /* freed by the callback */
    /* the source is gone with it */
    assert_false(g_main_context_pending(ctx));
    g_ptr_array_unref(log.lines);
}

int main(void)
{
    g_autofree char *qemu = qemu_binary();

    if (!qemu) {
        fprintf(stderr, "test_qmp_client: qemu-system-x86_64 not found (PATH or $QEMU); "
                        "install the Debian package qemu-system-x86 (scripts/deps does)\n");
        return 1;
    }
    const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
        T(greeting_version_matches_query_version),
        T(query_status_reports_a_running_vm),
        T(error_replies_carry_qemu_class_and_desc),
        T(stop_and_cont_events_are_queued_in_order),
        T(waiting_for_a_named_event_leaves_others_queued),
        T(command_timeout_is_bounded_and_late_reply_is_ignored),
        T(qemu_killed_during_an_event_wait_fails_fast),
        T(qemu_killed_during_a_command_fails_the_command),
        T(events_queued_before_the_close_are_still_delivered),
        T(connect_errors_name_the_socket),
        T(client_on_a_connected_fd_works_like_connect),
        T(async_commands_and_events_arrive_in_wire_order),
        T(blocking_calls_mix_with_the_main_loop),
        T(async_timeout_and_close_reach_every_callback),
        T(client_freed_from_its_closed_callback),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
