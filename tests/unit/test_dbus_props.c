/* Unit tests: D-Bus object paths and error names, the access rule for CreateDevice and
 * DestroyDevice, and the org.vdpad1.Device property values read from a device. */
#include "config.h"

#include <endian.h>
#include <gio/gio.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_net.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include "dbus/dbus_access.h"
#include "dbus/dbus_names.h"
#include "dbus/device_props.h"
#include "dbus/device_signals.h"
#include "util/error.h"

/* ------------------------------------------------------------------ names */

static void device_paths_escape_every_byte_outside_alnum(void **state)
{
    static const struct { const char *name, *element; } cases[] = {
        { "n0", "n0" },
        { "n0.eth-1", "n0_2eeth_2d1" },
        { "a_b", "a_5fb" },
        { "-", "_2d" },
        { "", "_" },
    };

    for (unsigned i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autofree char *element = vdpad_dbus_escape_path_element(cases[i].name);
        g_autofree char *path = vdpad_dbus_device_path(cases[i].name);
        g_autofree char *want = g_strconcat("/org/vdpad1/device/", cases[i].element, NULL);

        assert_string_equal(element, cases[i].element);
        assert_string_equal(path, want);
        assert_true(g_variant_is_object_path(path));
#if GLIB_CHECK_VERSION(2, 68, 0)
        /* the same escaping as GLib's, so other GLib programs can compute the path */
        g_autofree char *glib = g_dbus_escape_object_path(cases[i].name);
        assert_string_equal(element, glib);
#endif
    }
}

static void device_paths_give_back_their_names(void **state)
{
    static const char *const names[] = { "n0", "n0.eth-1", "a_b", "-", "", "x_2e" };

    for (unsigned i = 0; i < G_N_ELEMENTS(names); i++) {
        g_autofree char *path = vdpad_dbus_device_path(names[i]);
        g_autofree char *back = vdpad_dbus_device_name_from_path(path);
        assert_non_null(back);
        assert_string_equal(back, names[i]);
    }
    /* not a device path, or not an escaping vdpad writes */
    static const char *const others[] = { "/org/vdpad1", "/org/vdpad1/device/",
                                          "/org/vdpad1/device/a_2", "/org/vdpad1/device/a_zz",
                                          "/org/vdpad1/device/a_00", "/org/vdpad1/device/a/b" };
    for (unsigned i = 0; i < G_N_ELEMENTS(others); i++)
        assert_null(vdpad_dbus_device_name_from_path(others[i]));
}

static void distinct_names_get_distinct_paths(void **state)
{
    /* '_' itself is escaped, so "a.b" and "a_2eb" cannot collide */
    g_autofree char *a = vdpad_dbus_device_path("a.b");
    g_autofree char *b = vdpad_dbus_device_path("a_2eb");

    assert_string_not_equal(a, b);
}

static void error_names_follow_the_errno(void **state)
{
    static const struct { int errnum; const char *name; } cases[] = {
        { EEXIST, VDPAD_DBUS_ERROR_EXISTS },
        { ENOENT, VDPAD_DBUS_ERROR_NOT_FOUND },
        { EBUSY, VDPAD_DBUS_ERROR_BUSY },
        { EINVAL, VDPAD_DBUS_ERROR_INVALID_ARGUMENT },
        { EIO, VDPAD_DBUS_ERROR_FAILED },
        { ENOMEM, VDPAD_DBUS_ERROR_FAILED },
    };

    for (unsigned i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autoptr(GError) err = NULL;
        vdpad_fail(&err, cases[i].errnum, "device n0: x");
        assert_string_equal(vdpad_dbus_error_name(err), cases[i].name);
        assert_true(g_dbus_is_error_name(cases[i].name));
    }
    g_autoptr(GError) foreign = g_error_new_literal(G_IO_ERROR, G_IO_ERROR_EXISTS, "x");
    assert_string_equal(vdpad_dbus_error_name(foreign), VDPAD_DBUS_ERROR_FAILED);
}

/* ------------------------------------------------------------------ access */

static GVariant *credentials(guint32 uid, guint32 pid, const guint32 *gids, gsize ngids)
{
    GVariantBuilder b;

    g_variant_builder_init(&b, G_VARIANT_TYPE_VARDICT);
    g_variant_builder_add(&b, "{sv}", "UnixUserID", g_variant_new_uint32(uid));
    g_variant_builder_add(&b, "{sv}", "ProcessID", g_variant_new_uint32(pid));
    if (gids)
        g_variant_builder_add(&b, "{sv}", "UnixGroupIDs",
                              g_variant_new_fixed_array(G_VARIANT_TYPE_UINT32, gids, ngids,
                                                        sizeof(guint32)));
    return g_variant_ref_sink(g_variant_builder_end(&b));
}

static void credentials_give_uid_pid_and_groups(void **state)
{
    static const guint32 gids[] = { 1000, 4242 };
    g_autoptr(GVariant) creds = credentials(1000, 77, gids, 2);
    struct dbus_caller caller;

    assert_true(dbus_caller_from_credentials(creds, &caller));
    assert_int_equal(caller.uid, 1000);
    assert_int_equal(caller.pid, 77);
    assert_true(caller.has_gids);
    assert_int_equal(caller.gids->len, 2);
    assert_int_equal(g_array_index(caller.gids, gid_t, 1), 4242);
    dbus_caller_clear(&caller);

    /* no UnixUserID: nobody to judge */
    g_autoptr(GVariant) empty = g_variant_ref_sink(g_variant_new("a{sv}", NULL));
    assert_false(dbus_caller_from_credentials(empty, &caller));
}

static void root_daemon_user_and_group_members_may_modify(void **state)
{
    static const guint32 member[] = { 1000, 4242 };
    static const guint32 outsider[] = { 1000, 27 };
    const gid_t vdpad_gid = 4242;
    struct dbus_caller caller;

    g_autoptr(GVariant) root = credentials(0, 1, NULL, 0);
    assert_true(dbus_caller_from_credentials(root, &caller));
    assert_true(dbus_access_may_modify(&caller, 5555, true, vdpad_gid));
    assert_true(dbus_access_may_modify(&caller, 5555, false, 0));
    dbus_caller_clear(&caller);

    g_autoptr(GVariant) in_group = credentials(1000, 2, member, 2);
    assert_true(dbus_caller_from_credentials(in_group, &caller));
    assert_true(dbus_access_may_modify(&caller, 0, true, vdpad_gid));
    /* without a group vdpad on the system, membership of some gid means nothing */
    assert_false(dbus_access_may_modify(&caller, 0, false, vdpad_gid));
    /* the daemon's own user */
    assert_true(dbus_access_may_modify(&caller, 1000, false, 0));
    dbus_caller_clear(&caller);

    g_autoptr(GVariant) other = credentials(1000, 3, outsider, 2);
    assert_true(dbus_caller_from_credentials(other, &caller));
    assert_false(dbus_access_may_modify(&caller, 0, true, vdpad_gid));
    dbus_caller_clear(&caller);
}

/* ------------------------------------------------------------------ device properties */

/* A device that answers what the properties read, from fields a test sets. */
struct fake_dev {
    struct vdpa_device vdpa;
    uint32_t device_id;
    uint64_t device_features;
    uint64_t driver_features;
    uint8_t status;
    uint8_t config[32];
    size_t config_size;
    unsigned nvqs;
    uint64_t kicks;
};

static struct fake_dev *fake_of(struct vdpa_device *dev)
{
    return (struct fake_dev *)dev;
}

static uint32_t fake_device_id(struct vdpa_device *dev) { return fake_of(dev)->device_id; }
static uint64_t fake_device_features(struct vdpa_device *dev)
{
    return fake_of(dev)->device_features;
}
static uint64_t fake_driver_features(struct vdpa_device *dev)
{
    return fake_of(dev)->driver_features;
}
static uint8_t fake_status(struct vdpa_device *dev) { return fake_of(dev)->status; }
static size_t fake_config_size(struct vdpa_device *dev) { return fake_of(dev)->config_size; }
static void fake_get_config(struct vdpa_device *dev, unsigned off, void *buf, unsigned len)
{
    assert_true(off + len <= fake_of(dev)->config_size);
    memcpy(buf, fake_of(dev)->config + off, len);
}
static unsigned fake_vq_count(struct vdpa_device *dev) { return fake_of(dev)->nvqs; }
static int fake_vq_stats(struct vdpa_device *dev, unsigned idx, struct vdpa_vq_stats *stats,
                         GError **error)
{
    if (idx == 2) /* a queue whose counters cannot be read */
        return vdpad_fail(error, EOPNOTSUPP, "no stats for queue %u", idx);
    vdpa_vq_stats_add(stats, "received_desc", 10 + idx);
    vdpa_vq_stats_add(stats, "kicks", fake_of(dev)->kicks);
    return 0;
}

static const struct vdpa_device_ops fake_ops = {
    .get_device_id = fake_device_id,
    .get_device_features = fake_device_features,
    .get_driver_features = fake_driver_features,
    .get_status = fake_status,
    .get_config_size = fake_config_size,
    .get_config = fake_get_config,
    .get_vq_count = fake_vq_count,
    .get_vq_stats = fake_vq_stats,
};

struct fixture {
    struct fake_dev dev;
    struct vdpa_node node;
};

static void fixture_net(struct fixture *f, bool mq, uint16_t pairs)
{
    static const uint8_t mac[6] = { 0x52, 0x54, 0x00, 0xab, 0xcd, 0x0f };
    uint16_t le_pairs = htole16(pairs);

    memset(f, 0, sizeof(*f));
    f->dev.vdpa.ops = &fake_ops;
    f->dev.vdpa.name = (char *)"n0";
    f->dev.vdpa.backend = "sim-net";
    f->dev.device_id = VIRTIO_ID_NET;
    f->dev.device_features = (1ull << VIRTIO_NET_F_MAC) | (mq ? 1ull << VIRTIO_NET_F_MQ : 0);
    f->dev.config_size = sizeof(struct virtio_net_config);
    memcpy(f->dev.config + offsetof(struct virtio_net_config, mac), mac, 6);
    memcpy(f->dev.config + offsetof(struct virtio_net_config, max_virtqueue_pairs), &le_pairs, 2);
    f->dev.nvqs = 3;
    f->node.name = (char *)"n0";
    f->node.spec = device_spec_parse("net:n0", NULL);
    f->node.dev = &f->dev.vdpa;
    assert_non_null(f->node.spec);
}

static void fixture_clear(struct fixture *f)
{
    device_spec_free(f->node.spec);
}

static void assert_prop_string(GVariant *state, const char *name, const char *want)
{
    const char *got = NULL;

    assert_true(g_variant_lookup(state, name, "&s", &got));
    assert_string_equal(got, want);
}

static void assert_prop_u32(GVariant *state, const char *name, guint32 want)
{
    guint32 got = 0xdeadbeef;

    assert_true(g_variant_lookup(state, name, "u", &got));
    assert_int_equal(got, want);
}

static void net_properties_come_from_config_space(void **state)
{
    struct fixture f;

    fixture_net(&f, true, 4);
    f.dev.status = 0x0f;
    f.dev.driver_features = 0x130000000ull; /* ignored while closed */
    g_autoptr(GVariant) props = device_props_state(&f.node, "/run/vdpad/dev/n0");

    assert_true(g_variant_is_of_type(props, G_VARIANT_TYPE_VARDICT));
    assert_prop_string(props, "Name", "n0");
    assert_prop_string(props, "NodePath", "/run/vdpad/dev/n0");
    assert_prop_string(props, "Type", "net");
    assert_prop_string(props, "Backend", "sim-net");
    assert_prop_string(props, "Mode", "passthrough");
    assert_prop_string(props, "MAC", "52:54:00:ab:cd:0f");
    assert_prop_u32(props, "QueuePairs", 4);
    assert_prop_u32(props, "OpenerPid", 0);
    assert_prop_u32(props, "OwnerPid", 0);
    guint64 features = 1;
    assert_true(g_variant_lookup(props, "Features", "t", &features));
    assert_int_equal(features, 0); /* closed: nothing negotiated */
    guint8 status = 0;
    assert_true(g_variant_lookup(props, "Status", "y", &status));
    assert_int_equal(status, 0x0f);
    /* closed: no token, not prepared */
    assert_prop_string(props, "MigrationToken", "");
    assert_prop_string(props, "Incoming", "");
    /* every property of the interface but QueueCounters and DirtyMarks, nothing else */
    assert_int_equal(g_variant_n_children(props), 13);
    g_autoptr(GVariant) marks = device_props_get(&f.node, "", "DirtyMarks");
    assert_non_null(marks);
    assert_int_equal(g_variant_get_uint64(marks), 0);
    assert_null(g_variant_lookup_value(props, "DirtyMarks", NULL));
    fixture_clear(&f);
}

static void incoming_names_the_source_and_its_device(void **state)
{
    struct fixture f;
    struct node_incoming in = { .source = (char *)"192.0.2.7:16520", .device = (char *)"vm-a.nic0",
                                .token = (char *)"t0" };

    fixture_net(&f, false, 1);
    f.node.incoming = &in;
    g_autoptr(GVariant) props = device_props_state(&f.node, "");
    assert_prop_string(props, "Incoming", "192.0.2.7:16520 vm-a.nic0");
    /* a prepared node is announced like any change */
    f.node.incoming = NULL;
    g_autoptr(GVariant) after = device_props_state(&f.node, "");
    g_autoptr(GVariant) changed = device_props_changed(props, after);
    assert_non_null(changed);
    assert_int_equal(g_variant_n_children(changed), 1);
    assert_prop_string(changed, "Incoming", "");
    fixture_clear(&f);
}

/* ------------------------------------------------------------------ migration signals */

static char *signal_text(struct vdpa_node *node, enum node_event ev, const char **member)
{
    g_autoptr(GVariant) args = device_signal_for_event(node, ev, member);

    return args ? g_variant_print(args, TRUE) : NULL;
}

static void node_events_become_signals_with_their_values(void **state)
{
    struct fixture f;
    const char *member;

    fixture_net(&f, false, 1);
    f.node.mode = SESSION_RELAY;
    f.node.mode_switch_ms = 0.25;
    g_autofree char *relay = signal_text(&f.node, NODE_MODE_CHANGED, &member);
    assert_string_equal(member, "ModeChanged");
    assert_string_equal(relay, "('relay', 0.25)");
    f.node.mode = SESSION_PASSTHROUGH;
    f.node.mode_switch_ms = 1.5;
    g_autofree char *back = signal_text(&f.node, NODE_MODE_CHANGED, &member);
    assert_string_equal(back, "('passthrough', 1.5)");

    /* the next avail index of each started queue; queue 1 never started */
    uint16_t bases[3] = { 1043, 9, 12 };
    bool started[3] = { true, false, true };
    f.node.stop = (struct node_stop_record){ .valid = true, .nvqs = 3, .bases = bases,
                                             .started = started };
    g_autofree char *stopped = signal_text(&f.node, NODE_STOPPED, &member);
    assert_string_equal(member, "Stopped");
    assert_string_equal(stopped, "([(uint32 0, uint16 1043), (2, 12)],)");
    f.node.stop.valid = false;
    g_autofree char *none = signal_text(&f.node, NODE_STOPPED, &member);
    assert_string_equal(none, "(@a(uq) [],)");

    f.node.restored_commands = 6;
    f.node.restored_ms = 1.125;
    g_autofree char *restored = signal_text(&f.node, NODE_RESTORED, &member);
    assert_string_equal(member, "StateRestored");
    assert_string_equal(restored, "(uint32 6, 1.125)");

    f.node.last_failure = (char *)"n0: the state of vm-a from 192.0.2.7:16520 (timeout): ...";
    g_autofree char *failed = signal_text(&f.node, NODE_MIGRATION_FAILED, &member);
    assert_string_equal(member, "MigrationFailed");
    assert_string_equal(failed, "('n0: the state of vm-a from 192.0.2.7:16520 (timeout): ...',)");

    /* the life-cycle events have only PropertiesChanged */
    static const enum node_event plain[] = { NODE_ADDED, NODE_OPENED, NODE_CLOSED, NODE_CHANGED,
                                             NODE_REMOVED };
    for (unsigned i = 0; i < G_N_ELEMENTS(plain); i++) {
        assert_null(device_signal_for_event(&f.node, plain[i], &member));
        assert_null(member);
    }
    fixture_clear(&f);
}

static void dirty_signals_come_when_the_count_moves_and_once_when_it_stops(void **state)
{
    const gint64 s = G_USEC_PER_SEC;
    struct dirty_meter m;
    double rate = -1;

    dirty_meter_start(&m, 100, 10 * s);
    /* no marks in the first second: nothing to say */
    assert_false(dirty_meter_sample(&m, 100, 11 * s, &rate));
    /* 500 marks in the next second */
    assert_true(dirty_meter_sample(&m, 600, 12 * s, &rate));
    assert_true(rate > 499.9 && rate < 500.1);
    /* 300 over two seconds, read half a second late */
    assert_true(dirty_meter_sample(&m, 900, 14 * s + s / 2, &rate));
    assert_true(rate > 119.9 && rate < 120.1);
    /* the count stops: one signal with rate 0, then silence */
    assert_true(dirty_meter_sample(&m, 900, 15 * s + s / 2, &rate));
    assert_true(rate == 0);
    assert_false(dirty_meter_sample(&m, 900, 16 * s + s / 2, &rate));
    assert_false(dirty_meter_sample(&m, 900, 17 * s + s / 2, &rate));
    /* the end of logging: a last signal only when the count moved since the last one */
    assert_false(dirty_meter_final(&m, 900, 18 * s, &rate));
    assert_true(dirty_meter_final(&m, 950, 18 * s + s / 2, &rate));
    assert_true(rate > 49.9 && rate < 50.1); /* 50 since the last reading, at 17.5 s */
    /* a new log counts from 0 */
    dirty_meter_start(&m, 5000, 0);
    assert_true(dirty_meter_sample(&m, 40, s, &rate));
    assert_true(rate > 39.9 && rate < 40.1);
}

static void net_without_mq_has_one_pair_and_without_mac_no_address(void **state)
{
    struct fixture f;

    fixture_net(&f, false, 8);
    f.dev.device_features &= ~(1ull << VIRTIO_NET_F_MAC);
    g_autoptr(GVariant) props = device_props_state(&f.node, "");
    assert_prop_u32(props, "QueuePairs", 1);
    assert_prop_string(props, "MAC", "");
    fixture_clear(&f);
}

static void blk_has_no_mac_and_no_pairs(void **state)
{
    struct fixture f;

    fixture_net(&f, true, 2);
    f.dev.device_id = VIRTIO_ID_BLOCK;
    f.dev.vdpa.backend = "sim-blk";
    device_spec_free(f.node.spec);
    f.node.spec = device_spec_parse("blk:n0", NULL);
    g_autoptr(GVariant) props = device_props_state(&f.node, "");
    assert_prop_string(props, "MAC", "");
    assert_prop_u32(props, "QueuePairs", 0);
    assert_prop_string(props, "Type", "blk");
    assert_prop_string(props, "Backend", "sim-blk");
    fixture_clear(&f);
}

static void queue_counters_list_every_queue_in_order(void **state)
{
    struct fixture f;

    fixture_net(&f, false, 1);
    f.dev.kicks = 99;
    g_autoptr(GVariant) counters = device_props_queue_counters(&f.node);
    assert_true(g_variant_is_of_type(counters, G_VARIANT_TYPE("a(ua{st})")));
    assert_int_equal(g_variant_n_children(counters), 3);
    for (guint32 q = 0; q < 3; q++) {
        guint32 idx;
        g_autoptr(GVariant) dict = NULL;
        g_variant_get_child(counters, q, "(u@a{st})", &idx, &dict);
        assert_int_equal(idx, q);
        guint64 v = 0;
        if (q == 2) { /* unreadable: present, empty */
            assert_int_equal(g_variant_n_children(dict), 0);
            continue;
        }
        assert_true(g_variant_lookup(dict, "received_desc", "t", &v));
        assert_int_equal(v, 10 + q);
        assert_true(g_variant_lookup(dict, "kicks", "t", &v));
        assert_int_equal(v, 99);
    }
    /* read on demand: a new value shows at the next read */
    f.dev.kicks = 100;
    g_autoptr(GVariant) one = device_props_get(&f.node, "", "QueueCounters");
    g_autoptr(GVariant) q0 = g_variant_get_child_value(one, 0);
    g_autoptr(GVariant) dict0 = g_variant_get_child_value(q0, 1);
    guint64 kicks = 0;
    assert_true(g_variant_lookup(dict0, "kicks", "t", &kicks));
    assert_int_equal(kicks, 100);
    fixture_clear(&f);
}

static void get_answers_one_property_and_null_for_unknown(void **state)
{
    struct fixture f;

    fixture_net(&f, true, 2);
    g_autoptr(GVariant) mac = device_props_get(&f.node, "", "MAC");
    assert_non_null(mac);
    assert_string_equal(g_variant_get_string(mac, NULL), "52:54:00:ab:cd:0f");
    assert_null(device_props_get(&f.node, "", "NoSuchProperty"));
    fixture_clear(&f);
}

static void changed_lists_only_the_properties_that_differ(void **state)
{
    struct fixture f;

    fixture_net(&f, true, 2);
    g_autoptr(GVariant) before = device_props_state(&f.node, "/d/n0");
    g_autoptr(GVariant) same = device_props_state(&f.node, "/d/n0");
    assert_null(device_props_changed(before, same));

    f.dev.status = 0x03;
    g_autoptr(GVariant) after = device_props_state(&f.node, "/d/n0");
    g_autoptr(GVariant) changed = device_props_changed(before, after);
    assert_non_null(changed);
    assert_int_equal(g_variant_n_children(changed), 1);
    guint8 status = 0;
    assert_true(g_variant_lookup(changed, "Status", "y", &status));
    assert_int_equal(status, 0x03);

    /* nothing known before: everything is new */
    g_autoptr(GVariant) all = device_props_changed(NULL, after);
    assert_int_equal(g_variant_n_children(all), g_variant_n_children(after));
    fixture_clear(&f);
}

int main(void)
{
    g_log_set_always_fatal(G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_WARNING);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(device_paths_escape_every_byte_outside_alnum),
        cmocka_unit_test(device_paths_give_back_their_names),
        cmocka_unit_test(distinct_names_get_distinct_paths),
        cmocka_unit_test(error_names_follow_the_errno),
        cmocka_unit_test(credentials_give_uid_pid_and_groups),
        cmocka_unit_test(root_daemon_user_and_group_members_may_modify),
        cmocka_unit_test(net_properties_come_from_config_space),
        cmocka_unit_test(incoming_names_the_source_and_its_device),
        cmocka_unit_test(node_events_become_signals_with_their_values),
        cmocka_unit_test(dirty_signals_come_when_the_count_moves_and_once_when_it_stops),
        cmocka_unit_test(net_without_mq_has_one_pair_and_without_mac_no_address),
        cmocka_unit_test(blk_has_no_mac_and_no_pairs),
        cmocka_unit_test(queue_counters_list_every_queue_in_order),
        cmocka_unit_test(get_answers_one_property_and_null_for_unknown),
        cmocka_unit_test(changed_lists_only_the_properties_that_differ),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
