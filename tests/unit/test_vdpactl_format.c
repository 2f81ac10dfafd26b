/* Unit tests: vdpactl's table, `show` text and JSON for devices as GetAll returns them;
 * monitor's lines for signals; migrate's progress line and summary. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <math.h>
#include <string.h>
#include <cmocka.h>

#include "tools/vdpactl_events.h"
#include "tools/vdpactl_format.h"
#include "tools/vdpactl_migrate_report.h"

static GVariant *device(const char *name, const char *type, const char *backend,
                        const char *mac, guint32 opener, guint64 features, guint8 status)
{
    GVariantBuilder b, q;
    g_autofree char *node = g_strdup_printf("/run/vdpad/dev/%s", name);

    g_variant_builder_init(&q, G_VARIANT_TYPE("a(ua{st})"));
    g_variant_builder_add_parsed(&q, "(uint32 0, {'received_desc': uint64 5, 'completed_desc': uint64 4})");
    g_variant_builder_add_parsed(&q, "(uint32 1, @a{st} {})");
    g_variant_builder_init(&b, G_VARIANT_TYPE_VARDICT);
    g_variant_builder_add(&b, "{sv}", "Name", g_variant_new_string(name));
    g_variant_builder_add(&b, "{sv}", "Type", g_variant_new_string(type));
    g_variant_builder_add(&b, "{sv}", "Backend", g_variant_new_string(backend));
    g_variant_builder_add(&b, "{sv}", "Mode", g_variant_new_string("passthrough"));
    g_variant_builder_add(&b, "{sv}", "NodePath", g_variant_new_string(node));
    g_variant_builder_add(&b, "{sv}", "MAC", g_variant_new_string(mac));
    g_variant_builder_add(&b, "{sv}", "QueuePairs", g_variant_new_uint32(mac[0] ? 2 : 0));
    g_variant_builder_add(&b, "{sv}", "Features", g_variant_new_uint64(features));
    g_variant_builder_add(&b, "{sv}", "Status", g_variant_new_byte(status));
    g_variant_builder_add(&b, "{sv}", "OpenerPid", g_variant_new_uint32(opener));
    g_variant_builder_add(&b, "{sv}", "OwnerPid", g_variant_new_uint32(opener));
    g_variant_builder_add(&b, "{sv}", "QueueCounters", g_variant_builder_end(&q));
    return g_variant_ref_sink(g_variant_builder_end(&b));
}

static void table_columns_line_up_under_their_headers(void **state)
{
    g_autoptr(GPtrArray) devs = g_ptr_array_new_with_free_func((GDestroyNotify)g_variant_unref);
    g_ptr_array_add(devs, device("n0", "net", "sim-net", "52:54:00:00:00:01", 4321, 0, 0));
    g_ptr_array_add(devs, device("disk-long.1", "blk", "sim-blk", "", 0, 0, 0));
    g_autofree char *table = vdpactl_format_table(devs);
    g_auto(GStrv) lines = g_strsplit(table, "\n", -1);

    assert_int_equal(g_strv_length(lines), 4); /* header, 2 rows, "" after the last \n */
    assert_string_equal(lines[3], "");
    assert_true(g_str_has_prefix(lines[0], "NAME         TYPE  BACKEND  MODE         NODE"));
    /* each column starts at the same offset in every line */
    const char *cols[] = { "TYPE", "BACKEND", "MODE", "NODE", "OPENER", "MAC" };
    const char *row0[] = { "net", "sim-net", "passthrough", "/run/vdpad/dev/n0", "4321",
                           "52:54:00:00:00:01" };
    const char *row1[] = { "blk", "sim-blk", "passthrough", "/run/vdpad/dev/disk-long.1", "-",
                           "-" };
    for (unsigned c = 0; c < G_N_ELEMENTS(cols); c++) {
        ptrdiff_t at = strstr(lines[0], cols[c]) - lines[0];
        assert_true(at > 0);
        assert_memory_equal(lines[1] + at, row0[c], strlen(row0[c]));
        assert_memory_equal(lines[2] + at, row1[c], strlen(row1[c]));
    }
    assert_true(g_str_has_prefix(lines[1], "n0 "));
    assert_true(g_str_has_prefix(lines[2], "disk-long.1 "));
    /* no trailing blanks */
    assert_false(g_str_has_suffix(lines[2], " "));
}

static void empty_list_is_the_header_alone(void **state)
{
    g_autoptr(GPtrArray) devs = g_ptr_array_new();
    g_autofree char *table = vdpactl_format_table(devs);

    assert_string_equal(table, "NAME  TYPE  BACKEND  MODE  NODE  OPENER  MAC\n");
}

static void status_names_its_bits(void **state)
{
    g_autofree char *zero = vdpactl_format_status(0);
    g_autofree char *running = vdpactl_format_status(0x0f);
    g_autofree char *odd = vdpactl_format_status(0x83 | 0x10);

    assert_string_equal(zero, "0x00 (reset)");
    assert_string_equal(running, "0x0f (ACKNOWLEDGE DRIVER FEATURES_OK DRIVER_OK)");
    assert_string_equal(odd, "0x93 (ACKNOWLEDGE DRIVER FAILED 0x10)");
}

static void show_prints_every_property_and_the_counters(void **state)
{
    g_autoptr(GVariant) dev = device("n0", "net", "sim-net", "52:54:00:00:00:01", 4321,
                                     0x130000020ull, 0x0f);
    g_autofree char *text = vdpactl_format_show(dev);

    assert_non_null(strstr(text, "Name           n0\n"));
    assert_non_null(strstr(text, "NodePath       /run/vdpad/dev/n0\n"));
    assert_non_null(strstr(text, "MAC            52:54:00:00:00:01\n"));
    assert_non_null(strstr(text, "QueuePairs     2\n"));
    assert_non_null(strstr(text, "Features       0x0000000130000020\n"));
    assert_non_null(strstr(text, "Status         0x0f (ACKNOWLEDGE DRIVER FEATURES_OK DRIVER_OK)\n"));
    assert_non_null(strstr(text, "OpenerPid      4321\n"));
    assert_non_null(strstr(text, "Mode           passthrough\n"));
    assert_non_null(strstr(text, "QueueCounters:\n"));
    assert_non_null(strstr(text, "queue 0   received_desc=5 completed_desc=4\n"));
    assert_non_null(strstr(text, "queue 1   (no counters)\n"));
}

static void show_marks_missing_and_empty_values(void **state)
{
    g_autoptr(GVariant) dev = device("d0", "blk", "sim-blk", "", 0, 0, 0);
    g_autofree char *text = vdpactl_format_show(dev);

    assert_non_null(strstr(text, "MAC            -\n"));
    assert_non_null(strstr(text, "OpenerPid      -\n"));

    g_autoptr(GVariant) bare = g_variant_ref_sink(g_variant_new_parsed("@a{sv} {'Name': <'x'>}"));
    g_autofree char *few = vdpactl_format_show(bare);
    assert_non_null(strstr(few, "Name           x\n"));
    assert_non_null(strstr(few, "Features       -\n"));
    assert_null(strstr(few, "QueueCounters"));
}

static void json_keeps_property_names_and_numbers(void **state)
{
    g_autoptr(GVariant) dev = device("n0", "net", "sim-net", "52:54:00:00:00:01", 4321,
                                     0xffffffffffffffffull, 0x0f);
    json_object *obj = vdpactl_device_json(dev, "/org/vdpad1/device/n0");
    json_object *v;

    /* through text and back, as a script would read it */
    json_object *parsed = json_tokener_parse(json_object_to_json_string(obj));
    assert_non_null(parsed);
    assert_true(json_object_object_get_ex(parsed, "ObjectPath", &v));
    assert_string_equal(json_object_get_string(v), "/org/vdpad1/device/n0");
    assert_true(json_object_object_get_ex(parsed, "MAC", &v));
    assert_string_equal(json_object_get_string(v), "52:54:00:00:00:01");
    assert_true(json_object_object_get_ex(parsed, "OpenerPid", &v));
    assert_int_equal(json_object_get_int64(v), 4321);
    assert_true(json_object_object_get_ex(parsed, "Features", &v));
    assert_true(json_object_get_uint64(v) == UINT64_MAX);
    assert_true(json_object_object_get_ex(parsed, "Status", &v));
    assert_int_equal(json_object_get_int64(v), 15);
    assert_true(json_object_object_get_ex(parsed, "QueueCounters", &v));
    assert_int_equal(json_object_array_length(v), 2);
    json_object *q0 = json_object_array_get_idx(v, 0), *counters, *n;
    assert_true(json_object_object_get_ex(q0, "Queue", &n));
    assert_int_equal(json_object_get_int64(n), 0);
    assert_true(json_object_object_get_ex(q0, "Counters", &counters));
    assert_true(json_object_object_get_ex(counters, "received_desc", &n));
    assert_int_equal(json_object_get_int64(n), 5);
    json_object_put(parsed);
    json_object_put(obj);
}


/* ------------------------------------------------------------------ monitor */

static void assert_names(const char *iface, const char *member, const char *const *want)
{
    const char *const *got = vdpactl_signal_arg_names(iface, member);

    assert_non_null(got);
    for (unsigned i = 0; want[i]; i++) {
        assert_non_null(got[i]);
        assert_string_equal(got[i], want[i]);
    }
    assert_null(got[g_strv_length((char **)want)]);
}

static void signal_arguments_are_named_as_the_introspection_xml_names_them(void **state)
{
    const char *dev = "org.vdpad1.Device";

    assert_names(dev, "ModeChanged", (const char *[]){ "mode", "switch_ms", NULL });
    assert_names(dev, "DirtyPagesLogged",
                 (const char *[]){ "total_marks", "marks_per_second", NULL });
    assert_names(dev, "Stopped", (const char *[]){ "bases", NULL });
    assert_names(dev, "StateRestored", (const char *[]){ "commands", "ms", NULL });
    assert_names(dev, "MigrationFailed", (const char *[]){ "reason", NULL });
    assert_names("org.vdpad1.Manager", "DeviceAdded", (const char *[]){ "device", "name", NULL });
    assert_names("org.freedesktop.DBus.Properties", "PropertiesChanged",
                 (const char *[]){ "interface", "changed", "invalidated", NULL });
    assert_null(vdpactl_signal_arg_names(dev, "NoSuchSignal"));
    assert_null(vdpactl_signal_arg_names("org.example.Other", "ModeChanged"));
}

#define T0 1700000000123456 /* 2023-11-14 22:13:20.123456 UTC */

static char *text_of(const char *path, const char *iface, const char *member, const char *params)
{
    g_autoptr(GVariant) v = g_variant_ref_sink(g_variant_new_parsed(params));
    struct vdpactl_event ev = { .time_us = T0, .path = path, .iface = iface, .member = member,
                                .params = v };

    return vdpactl_event_text(&ev);
}

static void monitor_lines_name_the_device_and_every_argument(void **state)
{
    const char *dev = "org.vdpad1.Device", *path = "/org/vdpad1/device/n0_2eeth_2d1";

    g_autofree char *mode = text_of(path, dev, "ModeChanged", "('relay', 0.25)");
    assert_string_equal(mode, "22:13:20.123456 n0.eth-1 ModeChanged mode=relay switch_ms=0.250");
    g_autofree char *dirty = text_of(path, dev, "DirtyPagesLogged", "(uint64 1513732, 2584657.6)");
    assert_string_equal(dirty, "22:13:20.123456 n0.eth-1 DirtyPagesLogged total_marks=1513732 "
                               "marks_per_second=2584657.600");
    g_autofree char *stopped = text_of(path, dev, "Stopped",
                                       "([(uint32 0, uint16 1043), (2, 12)],)");
    assert_string_equal(stopped, "22:13:20.123456 n0.eth-1 Stopped bases=0:1043,2:12");
    g_autofree char *none = text_of(path, dev, "Stopped", "(@a(uq) [],)");
    assert_string_equal(none, "22:13:20.123456 n0.eth-1 Stopped bases=-");
    g_autofree char *failed = text_of(path, dev, "MigrationFailed",
                                      "('n0: source 192.0.2.7:16520 (auth): \"x\"',)");
    assert_string_equal(failed, "22:13:20.123456 n0.eth-1 MigrationFailed "
                                "reason=\"n0: source 192.0.2.7:16520 (auth): \\\"x\\\"\"");
    g_autofree char *props = text_of(path, "org.freedesktop.DBus.Properties", "PropertiesChanged",
                                     "('org.vdpad1.Device', {'Mode': <'relay'>, "
                                     "'OpenerPid': <uint32 4711>, 'Incoming': <''>}, @as [])");
    assert_string_equal(props, "22:13:20.123456 n0.eth-1 PropertiesChanged Mode=relay "
                               "OpenerPid=4711 Incoming=\"\"");
    /* the manager's signals are about the device they name */
    g_autofree char *added = text_of("/org/vdpad1", "org.vdpad1.Manager", "DeviceAdded",
                                     "(objectpath '/org/vdpad1/device/n1', 'n1')");
    assert_string_equal(added, "22:13:20.123456 n1 DeviceAdded device=/org/vdpad1/device/n1 "
                               "name=n1");
    /* a signal this vdpactl does not know still shows */
    g_autofree char *other = text_of(path, dev, "Future", "(true, 'a b')");
    assert_string_equal(other, "22:13:20.123456 n0.eth-1 Future arg0=true arg1=\"a b\"");
}

static char *last_json; /* json_of's text, as vdpactl prints it */

static json_object *json_of(const char *path, const char *iface, const char *member,
                            const char *params)
{
    g_autoptr(GVariant) v = g_variant_ref_sink(g_variant_new_parsed(params));
    struct vdpactl_event ev = { .time_us = T0, .path = path, .iface = iface, .member = member,
                                .params = v };
    json_object *obj = vdpactl_event_json(&ev);
    /* through text and back, as a script reads it */
    json_object *parsed = json_tokener_parse(json_object_to_json_string(obj));

    g_free(last_json);
    last_json = g_strdup(json_object_to_json_string(obj));
    json_object_put(obj);
    assert_non_null(parsed);
    return parsed;
}

static json_object *member(json_object *obj, const char *key)
{
    json_object *v = NULL;

    if (!json_object_object_get_ex(obj, key, &v))
        fail_msg("no member %s in %s", key, json_object_to_json_string(obj));
    return v;
}

static void monitor_json_lines_carry_named_arguments(void **state)
{
    json_object *mode = json_of("/org/vdpad1/device/n0", "org.vdpad1.Device", "ModeChanged",
                                "('relay', 0.631)");
    assert_string_equal(json_object_get_string(member(mode, "time")), "2023-11-14T22:13:20.123456Z");
    assert_string_equal(json_object_get_string(member(mode, "device")), "n0");
    assert_string_equal(json_object_get_string(member(mode, "object_path")), "/org/vdpad1/device/n0");
    assert_string_equal(json_object_get_string(member(mode, "interface")), "org.vdpad1.Device");
    assert_string_equal(json_object_get_string(member(mode, "signal")), "ModeChanged");
    json_object *args = member(mode, "args");
    assert_string_equal(json_object_get_string(member(args, "mode")), "relay");
    assert_true(json_object_get_double(member(args, "switch_ms")) == 0.631);
    /* no 17-digit doubles in the text */
    assert_non_null(strstr(last_json, "\"switch_ms\": 0.631 }"));
    json_object_put(mode);

    json_object *stopped = json_of("/org/vdpad1/device/n0", "org.vdpad1.Device", "Stopped",
                                   "([(uint32 0, uint16 1043), (4, 7)],)");
    json_object *bases = member(member(stopped, "args"), "bases");
    assert_int_equal(json_object_array_length(bases), 2);
    json_object *b1 = json_object_array_get_idx(bases, 1);
    assert_int_equal(json_object_get_int64(member(b1, "Queue")), 4);
    assert_int_equal(json_object_get_int64(member(b1, "Base")), 7);
    json_object_put(stopped);

    json_object *dirty = json_of("/org/vdpad1/device/n0", "org.vdpad1.Device", "DirtyPagesLogged",
                                 "(uint64 18446744073709551615, 0.0)");
    assert_true(json_object_get_uint64(member(member(dirty, "args"), "total_marks")) == UINT64_MAX);
    json_object_put(dirty);

    json_object *props = json_of("/org/vdpad1/device/n0", "org.freedesktop.DBus.Properties",
                                 "PropertiesChanged",
                                 "('org.vdpad1.Device', {'OpenerPid': <uint32 4711>, "
                                 "'MigrationToken': <'0123abcd'>}, @as [])");
    json_object *pargs = member(props, "args");
    assert_string_equal(json_object_get_string(member(pargs, "interface")), "org.vdpad1.Device");
    json_object *changed = member(pargs, "changed");
    assert_int_equal(json_object_get_int64(member(changed, "OpenerPid")), 4711);
    assert_string_equal(json_object_get_string(member(changed, "MigrationToken")), "0123abcd");
    assert_int_equal(json_object_array_length(member(pargs, "invalidated")), 0);
    json_object_put(props);

    json_object *added = json_of("/org/vdpad1", "org.vdpad1.Manager", "DeviceRemoved",
                                 "(objectpath '/org/vdpad1/device/d_2e0', 'd.0')");
    assert_string_equal(json_object_get_string(member(added, "device")), "d.0");
    assert_string_equal(json_object_get_string(member(member(added, "args"), "device")),
                        "/org/vdpad1/device/d_2e0");
    json_object_put(added);
    g_clear_pointer(&last_json, g_free);
}

static void doubles_have_at_most_three_decimals(void **state)
{
    static const struct { double v; const char *text; } cases[] = {
        { 0.631, "0.631" }, { 1.0, "1.0" }, { 0.63100000000000001, "0.631" },
        { 2584657.6250002133, "2584657.625" }, { 0.0004, "0.0" }, { -2.5, "-2.5" },
    };

    for (unsigned i = 0; i < G_N_ELEMENTS(cases); i++) {
        json_object *d = vdpactl_json_double(cases[i].v);
        assert_string_equal(json_object_to_json_string(d), cases[i].text);
        json_object_put(d);
    }
    assert_null(vdpactl_json_double(NAN));
    assert_null(vdpactl_json_double(INFINITY));
}

/* ------------------------------------------------------------------ migrate */

static void a_migration(struct vdpactl_migrate_report *r)
{
    vdpactl_migrate_report_init(r);
    r->device = "n0";
    r->dst_device = "n0b";
    r->elapsed_s = 2.614;
    r->status = "completed";
    r->ram_transferred = 283426816;
    r->ram_remaining = 0;
    r->ram_total = 268435456;
    r->total_time_ms = 2589;
    r->downtime_ms = 87;
    r->setup_time_ms = 4;
    r->mode = "passthrough";
    r->dirty_marks = 1234;
    r->has_switch = true;
    r->switch_ms = 0.412;
    r->stopped_queues = 5;
    r->has_restore = true;
    r->restored_commands = 6;
    r->restore_ms = 1.204;
    r->dst_status = "running";
    r->has_device_downtime = true;
    r->device_downtime_ms = 41.7;
    r->ok = true;
}

static void migrate_progress_shows_qemu_and_vdpad_on_one_line(void **state)
{
    struct vdpactl_migrate_report r;

    vdpactl_migrate_report_init(&r);
    r.device = "n0";
    r.dst_device = "n0";
    g_autofree char *first = vdpactl_migrate_progress(&r);
    assert_string_equal(first, "migrate n0: starting 0.0 s  dirty pages 0 (vdpad)");

    a_migration(&r);
    r.status = "active";
    r.ram_transferred = 126353408;  /* 120.5 MiB */
    r.ram_remaining = 63124275;     /* 60.2 MiB */
    r.elapsed_s = 1.5;
    r.mode = "relay";
    g_autofree char *line = vdpactl_migrate_progress(&r);
    assert_string_equal(line, "migrate n0: active 1.5 s  RAM 120.5/256.0 MiB sent, 60.2 MiB left  "
                              "dirty pages 1234 (vdpad)  mode relay");
    assert_null(strchr(line, '\n'));
}

static void migrate_summary_gives_qemu_times_and_vdpad_switch_and_restore(void **state)
{
    struct vdpactl_migrate_report r;

    a_migration(&r);
    g_autofree char *text = vdpactl_migrate_summary(&r);
    assert_string_equal(text,
        "migration of n0 completed in 2.61 s\n"
        "  QEMU:          total 2589 ms, downtime 87 ms, setup 4 ms; RAM 270.3 MiB sent of 256.0 MiB\n"
        "  source n0: switched to relay in 0.412 ms; 1234 dirty pages logged; stopped with 5 queues\n"
        "  destination n0b: state restored (6 commands) in 1.204 ms; QEMU running\n"
        "  device down: 41.7 ms (the source's stop to the destination's queues started)\n");

    /* a failure says why first; what was never seen says so */
    vdpactl_migrate_report_init(&r);
    r.device = r.dst_device = "n0";
    r.status = "failed";
    r.error = "QMP socket /run/a.qmp: migration failed: Unable to write to socket";
    g_autofree char *failed = vdpactl_migrate_summary(&r);
    assert_true(g_str_has_prefix(failed, "migration of n0 FAILED: QMP socket /run/a.qmp: "
                                         "migration failed: Unable to write to socket\n"));
    assert_non_null(strstr(failed, "  QEMU:          failed\n"));
    assert_non_null(strstr(failed, "no switch to relay seen; 0 dirty pages logged\n"));
    assert_non_null(strstr(failed, "destination n0: no state restore seen\n"));
}

static void migrate_json_is_flat_with_nulls_for_the_unknown(void **state)
{
    struct vdpactl_migrate_report r;

    a_migration(&r);
    json_object *obj = vdpactl_migrate_json(&r);
    json_object *p = json_tokener_parse(json_object_to_json_string(obj));
    json_object_put(obj);
    assert_string_equal(json_object_get_string(member(p, "result")), "completed");
    assert_true(json_object_is_type(member(p, "error"), json_type_null));
    assert_string_equal(json_object_get_string(member(p, "device")), "n0");
    assert_string_equal(json_object_get_string(member(p, "dst_device")), "n0b");
    assert_int_equal(json_object_get_int64(member(p, "downtime_ms")), 87);
    assert_int_equal(json_object_get_int64(member(p, "total_time_ms")), 2589);
    assert_int_equal(json_object_get_int64(member(p, "ram_total")), 268435456);
    assert_true(json_object_get_double(member(p, "switch_in_ms")) == 0.412);
    assert_int_equal(json_object_get_int64(member(p, "dirty_marks")), 1234);
    assert_int_equal(json_object_get_int64(member(p, "stopped_queues")), 5);
    assert_int_equal(json_object_get_int64(member(p, "restored_commands")), 6);
    assert_true(json_object_get_double(member(p, "restore_ms")) == 1.204);
    assert_string_equal(json_object_get_string(member(p, "dst_qemu_status")), "running");
    assert_true(json_object_get_double(member(p, "device_downtime_ms")) == 41.7);
    json_object_put(p);

    vdpactl_migrate_report_init(&r);
    r.device = r.dst_device = "n0";
    r.error = "cancelled (interrupted)";
    obj = vdpactl_migrate_json(&r);
    p = json_tokener_parse(json_object_to_json_string(obj));
    json_object_put(obj);
    assert_string_equal(json_object_get_string(member(p, "result")), "failed");
    assert_string_equal(json_object_get_string(member(p, "error")), "cancelled (interrupted)");
    static const char *const unknown[] = { "status", "downtime_ms", "ram_transferred",
                                           "switch_in_ms", "stopped_queues", "restored_commands",
                                           "restore_ms", "dst_qemu_status",
                                           "device_downtime_ms" };
    for (unsigned i = 0; i < G_N_ELEMENTS(unknown); i++)
        assert_true(json_object_is_type(member(p, unknown[i]), json_type_null));
    json_object_put(p);
}

int main(void)
{
    g_log_set_always_fatal(G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_WARNING);
    g_setenv("TZ", "UTC", TRUE); /* monitor's text shows local time */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(table_columns_line_up_under_their_headers),
        cmocka_unit_test(empty_list_is_the_header_alone),
        cmocka_unit_test(status_names_its_bits),
        cmocka_unit_test(show_prints_every_property_and_the_counters),
        cmocka_unit_test(show_marks_missing_and_empty_values),
        cmocka_unit_test(json_keeps_property_names_and_numbers),
        cmocka_unit_test(signal_arguments_are_named_as_the_introspection_xml_names_them),
        cmocka_unit_test(monitor_lines_name_the_device_and_every_argument),
        cmocka_unit_test(monitor_json_lines_carry_named_arguments),
        cmocka_unit_test(doubles_have_at_most_three_decimals),
        cmocka_unit_test(migrate_progress_shows_qemu_and_vdpad_on_one_line),
        cmocka_unit_test(migrate_summary_gives_qemu_times_and_vdpad_switch_and_restore),
        cmocka_unit_test(migrate_json_is_flat_with_nulls_for_the_unknown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
