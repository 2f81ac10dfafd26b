/* Unit tests: the D-Bus service on a private bus (GTestDBus runs a dbus-daemon), with
 * simulated devices in a real registry, called by a second connection of this process. */
#include "config.h"

#include <gio/gio.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "core/node.h"
#include "dbus/dbus_names.h"
#include "dbus/dbus_service.h"
#include "util/error.h"

#define MAC "52:54:00:12:34:56"

struct fixture {
    GTestDBus *bus;
    const char *address;
    struct node_registry *reg;
    struct dbus_service *svc;
    GDBusConnection *client;
    guint subscription;
    GPtrArray *signals; /* "Member (params)" of every signal from org.vdpad1 */
};

static void on_signal(GDBusConnection *conn, const char *sender, const char *path,
                      const char *iface, const char *member, GVariant *params, gpointer data)
{
    struct fixture *f = data;
    g_autofree char *text = g_variant_print(params, FALSE);

    g_ptr_array_add(f->signals, g_strdup_printf("%s %s %s", path, member, text));
}

static int setup(void **state)
{
    struct fixture *f = g_new0(struct fixture, 1);
    g_autoptr(GError) err = NULL;

    g_autofree char *daemon = g_find_program_in_path("dbus-daemon");
    if (!daemon) {
        fprintf(stderr, "dbus-daemon is not installed\n");
        return -1;
    }
    f->bus = g_test_dbus_new(G_TEST_DBUS_NONE);
    g_test_dbus_up(f->bus);
    f->address = g_test_dbus_get_bus_address(f->bus);
    f->reg = node_registry_new();
    assert_int_equal(node_registry_create(f->reg, "net:n0,mac=" MAC ",queues=2", NULL, &err), 0);
    assert_int_equal(node_registry_create(f->reg, "blk:d.0", NULL, &err), 0);
    f->svc = dbus_service_start_address(f->address, f->reg, NULL, &err);
    if (!f->svc)
        fail_msg("service: %s", err->message);
    f->client = g_dbus_connection_new_for_address_sync(
        f->address,
        G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_CLIENT |
            G_DBUS_CONNECTION_FLAGS_MESSAGE_BUS_CONNECTION,
        NULL, NULL, &err);
    assert_non_null(f->client);
    f->signals = g_ptr_array_new_with_free_func(g_free);
    f->subscription = g_dbus_connection_signal_subscribe(f->client, VDPAD_DBUS_NAME, NULL, NULL,
                                                         NULL, NULL, G_DBUS_SIGNAL_FLAGS_NONE,
                                                         on_signal, f, NULL);
    /* GDBus delivers signals from a well-known name only once it has learnt the name's
     * owner (an asynchronous GetNameOwner since the CVE-2024-34397 fix); a signal emitted
     * before that is dropped. A call answered after it on the same connection, then the
     * events it left pending, make the subscription complete before any test runs. */
    g_autoptr(GVariant) owner = g_dbus_connection_call_sync(
        f->client, "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
        "GetNameOwner", g_variant_new("(s)", VDPAD_DBUS_NAME), NULL, G_DBUS_CALL_FLAGS_NONE, -1,
        NULL, &err);
    assert_non_null(owner);
    while (g_main_context_iteration(NULL, FALSE))
        ;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    g_dbus_connection_signal_unsubscribe(f->client, f->subscription);
    g_dbus_connection_close_sync(f->client, NULL, NULL);
    g_object_unref(f->client);
    dbus_service_stop(f->svc);
    node_registry_free(f->reg);
    g_ptr_array_unref(f->signals);
    g_test_dbus_down(f->bus);
    g_object_unref(f->bus);
    g_free(f);
    return 0;
}

struct reply {
    GVariant *value;
    GError *error;
    gboolean done;
};

static void on_reply(GObject *src, GAsyncResult *res, gpointer data)
{
    struct reply *r = data;

    r->value = g_dbus_connection_call_finish(G_DBUS_CONNECTION(src), res, &r->error);
    r->done = TRUE;
}

/* A call that lets the service (same main context) run while it waits. */
static GVariant *call(struct fixture *f, const char *path, const char *iface, const char *method,
                      GVariant *args, GError **error)
{
    struct reply r = { 0 };

    g_dbus_connection_call(f->client, VDPAD_DBUS_NAME, path, iface, method, args, NULL,
                           G_DBUS_CALL_FLAGS_NONE, 5000, NULL, on_reply, &r);
    while (!r.done)
        g_main_context_iteration(NULL, TRUE);
    if (r.error)
        g_propagate_error(error, r.error);
    return r.value;
}

static GVariant *manager(struct fixture *f, const char *method, GVariant *args, GError **error)
{
    return call(f, VDPAD_DBUS_MANAGER_PATH, VDPAD_DBUS_MANAGER_IFACE, method, args, error);
}

static GVariant *get_prop(struct fixture *f, const char *path, const char *name, GError **error)
{
    g_autoptr(GVariant) reply = call(f, path, "org.freedesktop.DBus.Properties", "Get",
                                     g_variant_new("(ss)", VDPAD_DBUS_DEVICE_IFACE, name), error);
    GVariant *value = NULL;

    if (reply)
        g_variant_get(reply, "(v)", &value);
    return value;
}

/* The remote error name of a failed call, and its message checked for a fragment. */
static void assert_dbus_error(GError *err, const char *name, const char *fragment)
{
    assert_non_null(err);
    g_autofree char *remote = g_dbus_error_get_remote_error(err);
    assert_non_null(remote);
    assert_string_equal(remote, name);
    g_dbus_error_strip_remote_error(err);
    if (!strstr(err->message, fragment))
        fail_msg("'%s' not in '%s'", fragment, err->message);
}

/* Waits (up to 5 s) for a signal whose text holds fragment. */
static void assert_signal(struct fixture *f, const char *fragment)
{
    gint64 deadline = g_get_monotonic_time() + 5 * G_USEC_PER_SEC;

    for (;;) {
        for (guint i = 0; i < f->signals->len; i++)
            if (strstr(f->signals->pdata[i], fragment))
                return;
        if (g_get_monotonic_time() > deadline)
            break;
        g_main_context_iteration(NULL, FALSE);
        g_usleep(1000);
    }
    for (guint i = 0; i < f->signals->len; i++)
        fprintf(stderr, "signal: %s\n", (char *)f->signals->pdata[i]);
    fail_msg("no signal with '%s'", fragment);
}

static void list_answers_sorted_paths_and_properties_read_from_devices(void **state)
{
    struct fixture *f = *state;
    g_autoptr(GError) err = NULL;
    g_autoptr(GVariant) list = manager(f, "ListDevices", NULL, &err);

    assert_non_null(list);
    g_autofree char *text = g_variant_print(list, FALSE);
    assert_string_equal(text, "(['/org/vdpad1/device/d_2e0', '/org/vdpad1/device/n0'],)");

    g_autoptr(GVariant) mac = get_prop(f, "/org/vdpad1/device/n0", "MAC", &err);
    assert_string_equal(g_variant_get_string(mac, NULL), MAC);
    g_autoptr(GVariant) pairs = get_prop(f, "/org/vdpad1/device/n0", "QueuePairs", &err);
    assert_int_equal(g_variant_get_uint32(pairs), 2);
    g_autoptr(GVariant) type = get_prop(f, "/org/vdpad1/device/d_2e0", "Type", &err);
    assert_string_equal(g_variant_get_string(type, NULL), "blk");
    g_autoptr(GVariant) node = get_prop(f, "/org/vdpad1/device/d_2e0", "NodePath", &err);
    assert_string_equal(g_variant_get_string(node, NULL), ""); /* no FUSE front here */

    g_autoptr(GVariant) all = call(f, "/org/vdpad1/device/n0", "org.freedesktop.DBus.Properties",
                                   "GetAll", g_variant_new("(s)", VDPAD_DBUS_DEVICE_IFACE), &err);
    g_autoptr(GVariant) dict = g_variant_get_child_value(all, 0);
    assert_int_equal(g_variant_n_children(dict), 12);

    g_autoptr(GVariant) path = manager(f, "GetDevice", g_variant_new("(s)", "d.0"), &err);
    g_autofree char *ptext = g_variant_print(path, FALSE);
    assert_string_equal(ptext, "('/org/vdpad1/device/d_2e0',)");
}

static void queue_counters_cover_every_queue(void **state)
{
    struct fixture *f = *state;
    g_autoptr(GError) err = NULL;
    g_autoptr(GVariant) counters = get_prop(f, "/org/vdpad1/device/n0", "QueueCounters", &err);

    assert_non_null(counters);
    assert_true(g_variant_is_of_type(counters, G_VARIANT_TYPE("a(ua{st})")));
    /* two pairs and a control queue */
    assert_int_equal(g_variant_n_children(counters), 5);
    guint32 last_idx;
    g_autoptr(GVariant) names = NULL;
    g_variant_get_child(counters, 4, "(u@a{st})", &last_idx, &names);
    assert_int_equal(last_idx, 4);
    assert_true(g_variant_n_children(names) > 0);
}

static void create_exports_and_destroy_unexports_with_signals(void **state)
{
    struct fixture *f = *state;
    g_autoptr(GError) err = NULL;
    g_autoptr(GVariant) created = manager(f, "CreateDevice", g_variant_new("(s)", "net:n1.a-b"),
                                          &err);

    if (!created)
        fail_msg("CreateDevice: %s", err->message);
    const char *path;
    g_variant_get(created, "(&o)", &path);
    assert_string_equal(path, "/org/vdpad1/device/n1_2ea_2db");
    assert_non_null(node_registry_lookup(f->reg, "n1.a-b"));
    assert_signal(f, "/org/vdpad1 DeviceAdded ('/org/vdpad1/device/n1_2ea_2db', 'n1.a-b')");
    g_autoptr(GVariant) name = get_prop(f, path, "Name", &err);
    assert_string_equal(g_variant_get_string(name, NULL), "n1.a-b");

    g_autoptr(GVariant) destroyed = manager(f, "DestroyDevice", g_variant_new("(s)", "n1.a-b"),
                                            &err);
    assert_non_null(destroyed);
    assert_null(node_registry_lookup(f->reg, "n1.a-b"));
    assert_signal(f, "DeviceRemoved ('/org/vdpad1/device/n1_2ea_2db', 'n1.a-b')");
    g_autoptr(GVariant) gone = get_prop(f, "/org/vdpad1/device/n1_2ea_2db", "Name", &err);
    assert_null(gone);
    assert_true(g_error_matches(err, G_DBUS_ERROR, G_DBUS_ERROR_UNKNOWN_METHOD) ||
                g_error_matches(err, G_DBUS_ERROR, G_DBUS_ERROR_UNKNOWN_OBJECT));
}

static void failures_carry_error_names_and_change_nothing(void **state)
{
    struct fixture *f = *state;
    GError *err = NULL;

    assert_null(manager(f, "CreateDevice", g_variant_new("(s)", "net:n0"), &err));
    assert_dbus_error(err, VDPAD_DBUS_ERROR_EXISTS, "device n0 already exists");
    g_clear_error(&err);
    assert_null(manager(f, "CreateDevice", g_variant_new("(s)", "net:x,queues=99"), &err));
    assert_dbus_error(err, VDPAD_DBUS_ERROR_INVALID_ARGUMENT, "queues '99' is not in 1..16");
    g_clear_error(&err);
    assert_null(manager(f, "DestroyDevice", g_variant_new("(s)", "nosuch"), &err));
    assert_dbus_error(err, VDPAD_DBUS_ERROR_NOT_FOUND, "no device named nosuch");
    g_clear_error(&err);
    assert_null(manager(f, "GetDevice", g_variant_new("(s)", "nosuch"), &err));
    assert_dbus_error(err, VDPAD_DBUS_ERROR_NOT_FOUND, "no device named nosuch");
    g_clear_error(&err);

    g_autoptr(GPtrArray) nodes = node_registry_list(f->reg);
    assert_int_equal(nodes->len, 2);
    g_autoptr(GVariant) mac = get_prop(f, "/org/vdpad1/device/n0", "MAC", &err);
    assert_string_equal(g_variant_get_string(mac, NULL), MAC);
}

static int no_map(void *opaque, pid_t pid, uint64_t uaddr, uint64_t size, bool writable,
                  void **local, GError **error)
{
    return vdpad_fail(error, ENOTSUP, "no client memory in this test");
}
static void no_unmap(void *opaque, void *local, uint64_t size) {}
static const struct session_mem_ops no_memory = { .map = no_map, .unmap = no_unmap };

static void open_node_is_busy_and_open_close_are_signalled(void **state)
{
    struct fixture *f = *state;
    g_autoptr(GError) err = NULL;
    struct vdpa_node *node = node_registry_lookup(f->reg, "n0");
    g_autofree char *pid_text = g_strdup_printf("{'OpenerPid': <uint32 %d>}", (int)getpid());

    assert_int_equal(node_open(f->reg, node, getpid(), &no_memory, NULL, &err), 0);
    assert_signal(f, pid_text);
    g_autoptr(GVariant) opener = get_prop(f, "/org/vdpad1/device/n0", "OpenerPid", &err);
    assert_int_equal(g_variant_get_uint32(opener), (guint32)getpid());

    GError *busy = NULL;
    assert_null(manager(f, "DestroyDevice", g_variant_new("(s)", "n0"), &busy));
    g_autofree char *in_use = g_strdup_printf("in use by pid %d", (int)getpid());
    assert_dbus_error(busy, VDPAD_DBUS_ERROR_BUSY, in_use);
    g_error_free(busy);
    assert_non_null(node_registry_lookup(f->reg, "n0"));

    g_ptr_array_set_size(f->signals, 0);
    node_close(f->reg, node);
    assert_signal(f, "/org/vdpad1/device/n0 PropertiesChanged ('org.vdpad1.Device', {'OpenerPid': <uint32 0>}, [])");
    for (guint i = 0; i < f->signals->len; i++)
        assert_null(strstr(f->signals->pdata[i], "QueueCounters")); /* never signalled */

    g_autoptr(GVariant) done = manager(f, "DestroyDevice", g_variant_new("(s)", "n0"), &err);
    assert_non_null(done);
}

static void a_second_service_cannot_own_the_name_until_the_first_stops(void **state)
{
    struct fixture *f = *state;
    g_autoptr(GError) err = NULL;
    g_autoptr(node_registry) other = node_registry_new();
    struct dbus_service *second = dbus_service_start_address(f->address, other, NULL, &err);

    assert_null(second);
    assert_int_equal(err->code, EBUSY);
    g_autofree char *owner = g_strdup_printf("(pid %d) owns org.vdpad1", (int)getpid());
    if (!strstr(err->message, owner))
        fail_msg("'%s' not in '%s'", owner, err->message);

    g_clear_error(&err);
    g_clear_pointer(&f->svc, dbus_service_stop);
    second = dbus_service_start_address(f->address, other, NULL, &err);
    if (!second)
        fail_msg("after stop: %s", err->message);
    g_autoptr(GVariant) list = manager(f, "ListDevices", NULL, &err);
    g_autofree char *text = g_variant_print(list, FALSE);
    assert_string_equal(text, "([],)"); /* the second daemon's empty registry */
    dbus_service_stop(second);
}

int main(void)
{
    g_log_set_always_fatal(G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_WARNING);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(list_answers_sorted_paths_and_properties_read_from_devices,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(queue_counters_cover_every_queue, setup, teardown),
        cmocka_unit_test_setup_teardown(create_exports_and_destroy_unexports_with_signals, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(failures_carry_error_names_and_change_nothing, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(open_node_is_busy_and_open_close_are_signalled, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_second_service_cannot_own_the_name_until_the_first_stops,
                                        setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
