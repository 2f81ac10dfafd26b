/* Unit tests: the D-Bus service on a private bus (GTestDBus runs a dbus-daemon), with
 * simulated devices in a real registry, called by a second connection of this process.
 * The migration signals come from real sessions that this process drives through the
 * session API as QEMU would (its own memory is the "guest RAM"), and PrepareIncoming checks
 * real sources: migration channels of this process, with a throw-away PKI. */
#include "config.h"

#include <gio/gio.h>
#include <glib/gstdio.h>
#include <linux/vhost_types.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <grp.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <unistd.h>
#include <cmocka.h>

#include "core/node.h"
#include "dbus/dbus_names.h"
#include "dbus/dbus_service.h"
#include "migration/mig_service.h"
#include "mig_test_pki.h"
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
    /* the migration channels (setup_channels) */
    struct node_registry *src_reg;
    struct mig_service *src_mig, *dst_mig;
    unsigned src_port;
};

static char *pki_root; /* made once for the whole group */

/* Warnings and criticals fail the test, except one a test expects (the migration channel
 * logs the peers it refuses). */
static const char *expected_warning;

static void log_handler(const char *domain, GLogLevelFlags level, const char *message,
                        gpointer data)
{
    g_log_default_handler(domain, level, message, data);
    if ((level & (G_LOG_LEVEL_WARNING | G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_ERROR)) &&
        !(expected_warning && strstr(message, expected_warning)))
        abort();
}

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
    dbus_service_stop(f->svc); /* before the channel it borrows */
    mig_service_stop(f->dst_mig);
    mig_service_stop(f->src_mig);
    node_registry_free(f->src_reg);
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
    assert_int_equal(g_variant_n_children(dict), 15);

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
    g_autofree char *pid_text = g_strdup_printf("'OpenerPid': <uint32 %d>}", (int)getpid());

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
    assert_signal(f, "/org/vdpad1/device/n0 PropertiesChanged ('org.vdpad1.Device', "
                     "{'MigrationToken': <''>, 'OpenerPid': <uint32 0>}, [])");
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


/* ------------------------------------------------------------------ a client of a node
 *
 * This process plays QEMU on node n0 through the session API: its own memory is the guest
 * RAM (mapped where it lies), its own buffer QEMU's dirty log, and it sets up every queue
 * with the guest's rings at a known index, so that a stop reports known bases. */

#define GUEST_RAM (1u << 20)
#define QSIZE 256
/* desc; avail +0x1000; used +0x2000 (not at IOVA 0: a ring at 0 counts as not set up) */
#define RING_AT(i) (0x10000 + (uint64_t)(i) * 0x4000)
#define LOG_WORDS 64

static int self_map(void *opaque, pid_t pid, uint64_t uaddr, uint64_t size, bool writable,
                    void **local, GError **error)
{
    *local = (void *)(uintptr_t)uaddr;
    return 0;
}
static void self_unmap(void *opaque, void *local, uint64_t size) {}
static const struct session_mem_ops self_memory = { .map = self_map, .unmap = self_unmap };

struct client {
    struct vdpa_node *node;
    struct session *s;
    uint8_t *ram;
    uint64_t *log;
    uint64_t features; /* negotiated, without VHOST_F_LOG_ALL */
    unsigned nvqs;
};

/* Where data queue i starts and stops: its rings' indexes and its base. */
static uint16_t base_of(const struct client *c, unsigned i)
{
    return i + 1 < c->nvqs ? (uint16_t)(3 * i) : 0; /* the last queue: the control queue */
}

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

/* QEMU 7.2's start sequence on the open node: the rings at their bases, or all at 0 (a
 * guest that reset the device); -errno with *error when the device refuses. */
static int client_start_device(struct fixture *f, struct client *c, bool from_zero,
                               GError **error)
{
    int ret;

    if ((ret = session_set_status(c->s, 0x3, error)) < 0 ||
        (ret = session_set_features(c->s, c->features, error)) < 0 ||
        (ret = session_set_status(c->s, 0xb, error)) < 0)
        return ret;
    /* the IOTLB outlives a reset (vhost-vdpa): map guest RAM once */
    if (session_mapped_bytes(c->s) == 0 &&
        (ret = session_iotlb_update(c->s, 0, GUEST_RAM, (uintptr_t)c->ram, VHOST_ACCESS_RW,
                                    getpid(), error)) < 0)
        return ret;
    for (unsigned i = 0; i < c->nvqs; i++) {
        uint64_t desc = RING_AT(i), avail = desc + 0x1000, used = desc + 0x2000;
        uint16_t base = from_zero ? 0 : base_of(c, i);
        put16(c->ram + avail + 2, base); /* nothing new offered */
        put16(c->ram + used + 2, base);  /* everything returned */
        if ((ret = session_set_vring_num(c->s, i, QSIZE, error)) < 0 ||
            (ret = session_set_vring_addr(c->s, i, desc, avail, used, error)) < 0 ||
            (ret = session_set_vring_base(c->s, i, base, error)) < 0 ||
            (ret = session_set_vring_kick(c->s, i, eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK),
                                          error)) < 0 ||
            (ret = session_set_vring_call(c->s, i, eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK),
                                          error)) < 0 ||
            (ret = session_set_vring_enable(c->s, i, true, error)) < 0)
            return ret;
    }
    if ((ret = session_set_status(c->s, 0xf, error)) < 0)
        return ret;
    node_changed(f->reg, c->node); /* as the FUSE front does after SET_STATUS */
    return 0;
}

/* Opens n0 and starts its device (the node stays open on failure: client_stop). */
static int client_start(struct fixture *f, struct client *c, GError **error)
{
    memset(c, 0, sizeof(*c));
    c->node = node_registry_lookup(f->reg, "n0");
    c->ram = mmap(NULL, GUEST_RAM, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(c->ram != MAP_FAILED);
    c->log = g_new0(uint64_t, LOG_WORDS);
    assert_int_equal(node_open(f->reg, c->node, getpid(), &self_memory, NULL, error), 0);
    c->s = c->node->session;
    c->nvqs = session_vq_count(c->s);
    assert_int_equal(c->nvqs, 5); /* two pairs and the control queue */
    c->features = session_get_features(c->s) & ~(1ull << VHOST_F_LOG_ALL);
    int ret = session_set_owner(c->s, getpid(), error);
    return ret < 0 ? ret : client_start_device(f, c, false, error);
}

/* QEMU's log_global_start / _stop: SET_LOG_BASE, then SET_FEATURES with or without bit 26. */
static void client_set_logging(struct fixture *f, struct client *c, bool on)
{
    g_autoptr(GError) err = NULL;

    if (on && session_set_log_base(c->s, (uintptr_t)c->log, &err) < 0)
        fail_msg("SET_LOG_BASE: %s", err->message);
    uint64_t features = c->features | (on ? 1ull << VHOST_F_LOG_ALL : 0);
    if (session_set_features(c->s, features, &err) < 0)
        fail_msg("SET_FEATURES 0x%" G_GINT64_MODIFIER "x: %s", features, err->message);
    node_changed(f->reg, c->node);
}

static void client_stop(struct fixture *f, struct client *c)
{
    node_close(f->reg, c->node);
    munmap(c->ram, GUEST_RAM);
    g_free(c->log);
}

static GVariant *n0_prop(struct fixture *f, const char *name)
{
    g_autoptr(GError) err = NULL;
    GVariant *v = get_prop(f, "/org/vdpad1/device/n0", name, &err);

    if (!v)
        fail_msg("Get %s: %s", name, err->message);
    return v;
}

static void assert_n0_string(struct fixture *f, const char *name, const char *want)
{
    g_autoptr(GVariant) v = n0_prop(f, name);

    assert_string_equal(g_variant_get_string(v, NULL), want);
}

static void relay_switches_and_the_stop_are_signalled_with_their_values(void **state)
{
    struct fixture *f = *state;
    g_autoptr(GError) err = NULL;
    struct client c;

    if (client_start(f, &c, &err) < 0)
        fail_msg("start: %s", err->message);
    /* the session's token, announced at the open, is what a destination names */
    assert_int_equal(strlen(c.node->token), 32);
    assert_n0_string(f, "MigrationToken", c.node->token);
    g_autofree char *token = g_strdup_printf("'MigrationToken': <'%s'>", c.node->token);
    assert_signal(f, token);

    client_set_logging(f, &c, true);
    assert_signal(f, "/org/vdpad1/device/n0 ModeChanged ('relay', ");
    assert_signal(f, "PropertiesChanged ('org.vdpad1.Device', {'Mode': <'relay'>}");
    assert_n0_string(f, "Mode", "relay");
    g_autoptr(GVariant) marks = n0_prop(f, "DirtyMarks");
    assert_true(g_variant_is_of_type(marks, G_VARIANT_TYPE_UINT64));

    client_set_logging(f, &c, false);
    assert_signal(f, "/org/vdpad1/device/n0 ModeChanged ('passthrough', ");
    assert_n0_string(f, "Mode", "passthrough");

    /* QEMU's stop for a migration: in the relay, then the reset from DRIVER_OK */
    client_set_logging(f, &c, true);
    assert_signal(f, "PropertiesChanged ('org.vdpad1.Device', {'Mode': <'relay'>}");
    g_ptr_array_set_size(f->signals, 0);
    if (session_set_status(c.s, 0, &err) < 0)
        fail_msg("reset: %s", err->message);
    /* every started queue with the index the guest resumes at */
    assert_signal(f, "/org/vdpad1/device/n0 Stopped ([(0, 0), (1, 3), (2, 6), (3, 9), (4, 0)],)");
    assert_signal(f, "'Mode': <'passthrough'>");
    for (guint i = 0; i < f->signals->len; i++) /* DirtyMarks is read, never pushed */
        assert_null(strstr(f->signals->pdata[i], "DirtyMarks"));
    client_stop(f, &c);
    assert_signal(f, "'MigrationToken': <''>");
}

/* A fetcher in place of the migration channel: a state, or a failure. */
struct fetch_script {
    bool fail;
    unsigned calls;
    char *source, *device, *token;
};

static int scripted_fetch(void *opaque, struct vdpa_node *node, const struct node_incoming *from,
                          struct net_state *out, GError **error)
{
    struct fetch_script *fs = opaque;
    static const uint8_t mac[6] = { 0x52, 0x54, 0x00, 0x00, 0x00, 0x77 };

    fs->calls++;
    g_free(fs->source);
    g_free(fs->device);
    g_free(fs->token);
    fs->source = g_strdup(from->source);
    fs->device = g_strdup(from->device);
    fs->token = g_strdup(from->token);
    if (fs->fail)
        return vdpad_fail(error, ETIMEDOUT, "%s: the source %s did not answer (scripted)",
                          node->name, from->source);
    net_state_reset(out, mac, node->dev->ops->get_driver_features(node->dev));
    out->promisc = true;
    return 1;
}

static void a_prepared_start_signals_the_restore_or_the_failure(void **state)
{
    struct fixture *f = *state;
    g_autoptr(GError) err = NULL;
    struct fetch_script fs = { 0 };
    struct vdpa_node *n0 = node_registry_lookup(f->reg, "n0");
    struct client c;

    node_registry_set_fetcher(f->reg, scripted_fetch, &fs);
    assert_int_equal(node_prepare_incoming(f->reg, n0, "192.0.2.7:16520", "vm-a.nic", "tok-1",
                                           &err), 0);
    assert_signal(f, "{'Incoming': <'192.0.2.7:16520 vm-a.nic'>}");
    assert_n0_string(f, "Incoming", "192.0.2.7:16520 vm-a.nic");

    if (client_start(f, &c, &err) < 0)
        fail_msg("start: %s", err->message);
    assert_int_equal(fs.calls, 1);
    assert_string_equal(fs.source, "192.0.2.7:16520");
    assert_string_equal(fs.device, "vm-a.nic");
    assert_string_equal(fs.token, "tok-1");
    /* the state was replayed through the control queue before the data queues ran */
    assert_signal(f, "/org/vdpad1/device/n0 StateRestored (");
    assert_n0_string(f, "Incoming", ""); /* done: no longer prepared */
    assert_n0_string(f, "MAC", "52:54:00:00:00:77"); /* the restored MAC, set by the replay */
    assert_signal(f, "'Incoming': <''>");
    client_stop(f, &c);

    /* the source does not answer: the device does not start, and says why */
    g_ptr_array_set_size(f->signals, 0);
    fs.fail = true;
    assert_int_equal(node_prepare_incoming(f->reg, n0, "192.0.2.7:16520", "vm-a.nic", "tok-2",
                                           &err), 0);
    g_clear_error(&err);
    expected_warning = "did not answer (scripted)"; /* the session logs it */
    assert_true(client_start(f, &c, &err) < 0);
    expected_warning = NULL;
    assert_non_null(strstr(err->message, "did not answer (scripted)"));
    assert_signal(f, "/org/vdpad1/device/n0 MigrationFailed ('");
    assert_signal(f, "the source 192.0.2.7:16520 did not answer (scripted)");
    client_stop(f, &c);
    node_cancel_incoming(n0);
    node_registry_set_fetcher(f->reg, NULL, NULL);
    g_free(fs.source);
    g_free(fs.device);
    g_free(fs.token);
}

/* QEMU 7.2 resets the device when the VM stops and starts it again at the same ring bases
 * when it resumes: the node replays the state the guest had set. A guest that resets the
 * device itself starts its rings at 0 and gets nothing replayed. */
static void a_device_resumed_where_it_stopped_gets_its_state_back(void **state)
{
    struct fixture *f = *state;
    g_autoptr(GError) err = NULL;
    static const uint8_t guest_mac[6] = { 0x52, 0x54, 0x00, 0x00, 0x00, 0x88 };
    struct client c;

    if (client_start(f, &c, &err) < 0)
        fail_msg("start: %s", err->message);
    assert_int_equal(session_set_status(c.s, 0, &err), 0); /* the VM stops */
    node_changed(f->reg, c.node);
    assert_signal(f, "/org/vdpad1/device/n0 Stopped (");
    /* what the guest had set through its control queue (white box: the recorded state) */
    memcpy(c.node->stop.net.mac, guest_mac, 6);
    g_ptr_array_set_size(f->signals, 0);
    if (client_start_device(f, &c, false, &err) < 0) /* the VM resumes */
        fail_msg("resume: %s", err->message);
    assert_signal(f, "/org/vdpad1/device/n0 StateRestored (");
    assert_n0_string(f, "MAC", "52:54:00:00:00:88");

    assert_int_equal(session_set_status(c.s, 0, &err), 0); /* the guest resets the device */
    node_changed(f->reg, c.node);
    assert_signal(f, "/org/vdpad1/device/n0 Stopped (");
    g_ptr_array_set_size(f->signals, 0);
    if (client_start_device(f, &c, true, &err) < 0)
        fail_msg("start after the guest's reset: %s", err->message);
    for (int i = 0; i < 50; i++) { /* signals that would come, come in this time */
        g_main_context_iteration(NULL, FALSE);
        g_usleep(2000);
    }
    for (guint i = 0; i < f->signals->len; i++)
        assert_null(strstr(f->signals->pdata[i], "StateRestored"));
    client_stop(f, &c);
}

/* ------------------------------------------------------------------ PrepareIncoming */

static int make_pki(void **state)
{
    g_autoptr(GError) err = NULL;

    pki_root = mig_test_pki_create(&err);
    if (!pki_root) {
        fprintf(stderr, "cannot make the test PKI: %s\n", err->message);
        return -1;
    }
    /* a host's directory holds both certificates (a vdpad is server and client) */
    g_autofree char *host = mig_test_pki_dir(pki_root, "host");
    g_autofree char *cmd = g_strdup_printf("mkdir -p '%s' && cp '%s/server/'* '%s/client/'client* '%s'",
                                           host, pki_root, pki_root, host);
    const char *argv[] = { "/bin/sh", "-c", cmd, NULL };
    int status;
    if (!g_spawn_sync(NULL, (char **)argv, NULL, G_SPAWN_DEFAULT, NULL, NULL, NULL, NULL, &status,
                      &err) ||
        !g_spawn_check_wait_status(status, &err)) {
        fprintf(stderr, "cannot make the host PKI directory: %s\n", err->message);
        return -1;
    }
    return 0;
}

static int remove_pki(void **state)
{
    if (pki_root)
        mig_test_pki_remove(pki_root);
    g_clear_pointer(&pki_root, g_free);
    return 0;
}

/* The destination side of this vdpad: a channel with the client identity of the PKI. */
static void set_channel(struct fixture *f, const char *identity)
{
    g_autoptr(GError) err = NULL;
    g_autofree char *dir = mig_test_pki_dir(pki_root, identity);
    struct mig_service_config cfg = { .pki_dir = dir };

    dbus_service_set_migration(f->svc, NULL);
    g_clear_pointer(&f->dst_mig, mig_service_stop);
    f->dst_mig = mig_service_start(f->reg, &cfg, &err);
    if (!f->dst_mig)
        fail_msg("destination channel (%s): %s", identity, err->message);
    dbus_service_set_migration(f->svc, f->dst_mig);
}

/* setup, plus a source vdpad's channel (its own registry) listening on 127.0.0.1, and
 * this vdpad's channel as a destination. */
static int setup_channels(void **state)
{
    if (setup(state) != 0)
        return -1;
    struct fixture *f = *state;
    g_autoptr(GError) err = NULL;
    g_autofree char *host = mig_test_pki_dir(pki_root, "host");
    struct mig_service_config cfg = { .listen = "127.0.0.1:0", .pki_dir = host };

    f->src_reg = node_registry_new();
    assert_int_equal(node_registry_create(f->src_reg, "net:src0", NULL, &err), 0);
    f->src_mig = mig_service_start(f->src_reg, &cfg, &err);
    if (!f->src_mig)
        fail_msg("source channel: %s", err->message);
    f->src_port = mig_service_port(f->src_mig);
    set_channel(f, "client");
    return 0;
}

static GVariant *prepare_incoming(struct fixture *f, const char *source, const char *device,
                                  const char *token, GError **error)
{
    return call(f, "/org/vdpad1/device/n0", VDPAD_DBUS_DEVICE_IFACE, "PrepareIncoming",
                g_variant_new("(sss)", source, device, token), error);
}

static void prepare_incoming_without_a_channel_says_how_to_start_vdpad(void **state)
{
    struct fixture *f = *state;
    GError *err = NULL;

    assert_null(prepare_incoming(f, "127.0.0.1:16520", "n0", "0123abcd", &err));
    assert_dbus_error(err, VDPAD_DBUS_ERROR_FAILED, "n0: this vdpad has no migration channel: "
                      "start it with --pki-dir/--migration-listen");
    g_error_free(err);
    assert_n0_string(f, "Incoming", "");
    assert_null(node_registry_lookup(f->reg, "n0")->incoming);
}

static void prepare_incoming_refuses_bad_arguments_and_a_running_device(void **state)
{
    struct fixture *f = *state;
    static const struct { const char *source, *device, *token, *why; } bad[] = {
        { "", "n0", "t", "must be the source vdpad's migration channel as HOST:PORT" },
        { "host 1:16520", "n0", "t", "must be the source vdpad's migration channel" },
        { "127.0.0.1:16520", "no such/name", "t", "'no such/name' is not a device name" },
        { "127.0.0.1:16520", ".hidden", "t", "is not a device name" },
        { "127.0.0.1:16520", "n0", "", "the token must be 1-128 printable characters" },
        { "127.0.0.1:16520", "n0", "two words", "the token must be" },
    };

    for (unsigned i = 0; i < G_N_ELEMENTS(bad); i++) {
        GError *err = NULL;
        assert_null(prepare_incoming(f, bad[i].source, bad[i].device, bad[i].token, &err));
        assert_dbus_error(err, VDPAD_DBUS_ERROR_INVALID_ARGUMENT, bad[i].why);
        g_error_free(err);
    }

    /* a destination must be prepared before its device starts */
    g_autoptr(GError) start_err = NULL;
    struct client c;
    if (client_start(f, &c, &start_err) < 0)
        fail_msg("start: %s", start_err->message);
    GError *busy = NULL;
    assert_null(prepare_incoming(f, "127.0.0.1:16520", "n0", "t", &busy));
    assert_dbus_error(busy, VDPAD_DBUS_ERROR_BUSY, "a client runs the device");
    g_error_free(busy);
    client_stop(f, &c);
    assert_null(node_registry_lookup(f->reg, "n0")->incoming);
}

static void prepare_incoming_checks_the_source_and_cancel_forgets_it(void **state)
{
    struct fixture *f = *state;
    g_autoptr(GError) err = NULL;
    g_autofree char *source = g_strdup_printf("127.0.0.1:%u", f->src_port);
    g_autofree char *incoming = g_strdup_printf("%s src0", source);

    /* the source answers from this very main loop: the check must not block it */
    g_autoptr(GVariant) done = prepare_incoming(f, source, "src0", "0123456789abcdef", &err);
    if (!done)
        fail_msg("PrepareIncoming: %s", err->message);
    struct vdpa_node *n0 = node_registry_lookup(f->reg, "n0");
    assert_non_null(n0->incoming);
    assert_string_equal(n0->incoming->source, source);
    assert_string_equal(n0->incoming->device, "src0");
    assert_string_equal(n0->incoming->token, "0123456789abcdef");
    assert_n0_string(f, "Incoming", incoming);
    g_autofree char *announced = g_strdup_printf("{'Incoming': <'%s'>}", incoming);
    assert_signal(f, announced);

    g_autoptr(GVariant) cancelled = call(f, "/org/vdpad1/device/n0", VDPAD_DBUS_DEVICE_IFACE,
                                         "CancelIncoming", NULL, &err);
    assert_non_null(cancelled);
    assert_null(n0->incoming);
    assert_n0_string(f, "Incoming", "");
    assert_signal(f, "{'Incoming': <''>}");
    /* nothing prepared: nothing to do, no error */
    g_autoptr(GVariant) again = call(f, "/org/vdpad1/device/n0", VDPAD_DBUS_DEVICE_IFACE,
                                     "CancelIncoming", NULL, &err);
    assert_non_null(again);
}

/* A TCP port on 127.0.0.1 that nobody listens on (bound, then closed). */
static unsigned closed_port(void)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static void prepare_incoming_says_if_the_source_is_unreachable_or_not_authenticated(void **state)
{
    struct fixture *f = *state;
    GError *err = NULL;

    g_autofree char *nobody = g_strdup_printf("127.0.0.1:%u", closed_port());
    assert_null(prepare_incoming(f, nobody, "src0", "t", &err));
    assert_dbus_error(err, VDPAD_DBUS_ERROR_FAILED, "the source vdpad is unreachable");
    g_autofree char *names = g_strdup_printf("n0: cannot prepare for a migration from %s", nobody);
    assert_non_null(strstr(err->message, names));
    g_clear_error(&err);

    /* our certificate comes from a CA the source does not trust: it refuses us */
    g_autofree char *source = g_strdup_printf("127.0.0.1:%u", f->src_port);
    set_channel(f, "client-otherca");
    expected_warning = "certificate"; /* the sources log the certificates refused */
    assert_null(prepare_incoming(f, source, "src0", "t", &err));
    assert_dbus_error(err, VDPAD_DBUS_ERROR_FAILED, "the source refused our certificate");
    g_clear_error(&err);

    /* the source's certificate does not name the address we asked for (it names 127.0.0.1,
     * ::1 and localhost; this source listens on 127.0.0.2) */
    set_channel(f, "client");
    g_autofree char *host = mig_test_pki_dir(pki_root, "host");
    struct mig_service_config cfg = { .listen = "127.0.0.2:0", .pki_dir = host };
    g_autoptr(GError) start_err = NULL;
    g_autoptr(mig_service) other = mig_service_start(f->src_reg, &cfg, &start_err);
    if (!other)
        fail_msg("a source on 127.0.0.2: %s", start_err->message);
    g_autofree char *by_name = g_strdup_printf("127.0.0.2:%u", mig_service_port(other));
    assert_null(prepare_incoming(f, by_name, "src0", "t", &err));
    assert_dbus_error(err, VDPAD_DBUS_ERROR_FAILED, "the source is not authenticated");
    g_clear_error(&err);
    expected_warning = NULL;

    assert_null(node_registry_lookup(f->reg, "n0")->incoming);
    assert_n0_string(f, "Incoming", "");
}

/* ------------------------------------------------------------------ access */

/* A dbus-daemon that lets every user connect and call (no policy): only vdpad's own check
 * stands in the way, as on a session bus. */
struct open_bus {
    GPid pid;
    char *address;
    char *dir;
};

static void open_bus_start(struct open_bus *b)
{
    g_autoptr(GError) err = NULL;

    b->dir = g_dir_make_tmp("vdpad-bus-XXXXXX", &err);
    assert_non_null(b->dir);
    g_chmod(b->dir, 0755);
    g_autofree char *conf = g_build_filename(b->dir, "bus.conf", NULL);
    g_autofree char *text = g_strdup_printf(
        "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN\"\n"
        " \"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n"
        "<busconfig><listen>unix:path=%s/bus</listen><auth>EXTERNAL</auth>\n"
        "<policy context=\"default\"><allow user=\"*\"/>"
        "<allow send_destination=\"*\" eavesdrop=\"true\"/><allow eavesdrop=\"true\"/>"
        "<allow own=\"*\"/></policy></busconfig>\n", b->dir);
    assert_true(g_file_set_contents(conf, text, -1, NULL));
    g_autofree char *conf_arg = g_strconcat("--config-file=", conf, NULL);
    const char *argv[] = { "dbus-daemon", conf_arg, "--nofork", "--print-address=1", NULL };
    int out;
    if (!g_spawn_async_with_pipes(NULL, (char **)argv, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL,
                                  &b->pid, NULL, &out, NULL, &err))
        fail_msg("dbus-daemon: %s", err->message);
    char line[512];
    ssize_t n = read(out, line, sizeof(line) - 1);
    close(out);
    assert_true(n > 0);
    line[n] = '\0';
    b->address = g_strdup(g_strstrip(line));
}

static void open_bus_stop(struct open_bus *b)
{
    kill(b->pid, SIGTERM);
    waitpid(b->pid, NULL, 0);
    g_spawn_close_pid(b->pid);
    g_autofree char *cmd = g_strdup_printf("rm -rf '%s'", b->dir);
    g_assert_true(system(cmd) == 0);
    g_free(b->address);
    g_free(b->dir);
}

/* After fork, before exec: become nobody. */
static void become_nobody(gpointer data)
{
    if (setgroups(0, NULL) < 0 || setresgid(65534, 65534, 65534) < 0 ||
        setresuid(65534, 65534, 65534) < 0)
        _exit(126);
}

static void on_child_exit(GPid pid, gint status, gpointer data)
{
    *(gint *)data = status;
}

/* `gdbus call` of a method of n0 as uid 65534, while this process serves the call; its
 * output (stdout and stderr) and wait status. */
static gint call_as_nobody(const char *address, const char *method, const char *args,
                           char **output)
{
    g_autoptr(GError) err = NULL;
    g_autofree char *cmd = g_strdup_printf(
        "gdbus call --address '%s' -d org.vdpad1 -o /org/vdpad1/device/n0 -m "
        "org.vdpad1.Device.%s %s 2>&1", address, method, args);
    const char *argv[] = { "/bin/sh", "-c", cmd, NULL };
    GPid pid;
    int out;
    gint status = -1;

    if (!g_spawn_async_with_pipes(NULL, (char **)argv, NULL, G_SPAWN_DO_NOT_REAP_CHILD,
                                  become_nobody, NULL, &pid, NULL, &out, NULL, &err))
        fail_msg("gdbus: %s", err->message);
    g_child_watch_add(pid, on_child_exit, &status);
    while (status == -1)
        g_main_context_iteration(NULL, TRUE);
    GString *text = g_string_new(NULL);
    char buf[1024];
    ssize_t n;
    while ((n = read(out, buf, sizeof(buf))) > 0)
        g_string_append_len(text, buf, n);
    close(out);
    g_spawn_close_pid(pid);
    *output = g_string_free(text, FALSE);
    return status;
}

static void prepare_and_cancel_incoming_are_refused_to_other_users(void **state)
{
    struct fixture *f = *state;
    g_autoptr(GError) err = NULL;

    g_autofree char *gdbus = g_find_program_in_path("gdbus");
    if (geteuid() != 0 || !gdbus)
        skip(); /* needs another user (root runs it; scripts/check does) */
    struct open_bus bus;
    open_bus_start(&bus);
    struct dbus_service *svc = dbus_service_start_address(bus.address, f->reg, NULL, &err);
    if (!svc)
        fail_msg("service on the open bus: %s", err->message);
    dbus_service_set_migration(svc, f->dst_mig);
    struct vdpa_node *n0 = node_registry_lookup(f->reg, "n0");
    assert_int_equal(node_prepare_incoming(f->reg, n0, "192.0.2.7:16520", "vm-a", "tok", &err), 0);

    g_autofree char *source = g_strdup_printf("127.0.0.1:%u", f->src_port);
    g_autofree char *args = g_strdup_printf("%s src0 t1", source);
    g_autofree char *out1 = NULL, *out2 = NULL;
    gint st = call_as_nobody(bus.address, "PrepareIncoming", args, &out1);
    assert_false(g_spawn_check_wait_status(st, NULL));
    if (!strstr(out1, "org.freedesktop.DBus.Error.AccessDenied") ||
        !strstr(out1, "PrepareIncoming is only for root and members of the group vdpad; "
                      "uid 65534"))
        fail_msg("PrepareIncoming as uid 65534: %s", out1);
    st = call_as_nobody(bus.address, "CancelIncoming", "", &out2);
    assert_false(g_spawn_check_wait_status(st, NULL));
    if (!strstr(out2, "org.freedesktop.DBus.Error.AccessDenied"))
        fail_msg("CancelIncoming as uid 65534: %s", out2);
    /* unchanged by either */
    assert_non_null(n0->incoming);
    assert_string_equal(n0->incoming->source, "192.0.2.7:16520");
    node_cancel_incoming(n0);
    dbus_service_stop(svc);
    open_bus_stop(&bus);
}

int main(void)
{
    g_log_set_always_fatal(G_LOG_LEVEL_ERROR);
    g_log_set_default_handler(log_handler, NULL);
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
        cmocka_unit_test_setup_teardown(
            relay_switches_and_the_stop_are_signalled_with_their_values, setup, teardown),
        cmocka_unit_test_setup_teardown(a_device_resumed_where_it_stopped_gets_its_state_back,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(a_prepared_start_signals_the_restore_or_the_failure,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(prepare_incoming_without_a_channel_says_how_to_start_vdpad,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            prepare_incoming_refuses_bad_arguments_and_a_running_device, setup, teardown),
        cmocka_unit_test_setup_teardown(prepare_incoming_checks_the_source_and_cancel_forgets_it,
                                        setup_channels, teardown),
        cmocka_unit_test_setup_teardown(
            prepare_incoming_says_if_the_source_is_unreachable_or_not_authenticated,
            setup_channels, teardown),
        cmocka_unit_test_setup_teardown(prepare_and_cancel_incoming_are_refused_to_other_users,
                                        setup_channels, teardown),
    };
    return cmocka_run_group_tests(tests, make_pki, remove_pki);
}
