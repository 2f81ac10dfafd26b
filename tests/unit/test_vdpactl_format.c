/* Unit tests: vdpactl's table, `show` text and JSON for devices as GetAll returns them. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include "tools/vdpactl_format.h"

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

    assert_non_null(strstr(text, "Name         n0\n"));
    assert_non_null(strstr(text, "NodePath     /run/vdpad/dev/n0\n"));
    assert_non_null(strstr(text, "MAC          52:54:00:00:00:01\n"));
    assert_non_null(strstr(text, "QueuePairs   2\n"));
    assert_non_null(strstr(text, "Features     0x0000000130000020\n"));
    assert_non_null(strstr(text, "Status       0x0f (ACKNOWLEDGE DRIVER FEATURES_OK DRIVER_OK)\n"));
    assert_non_null(strstr(text, "OpenerPid    4321\n"));
    assert_non_null(strstr(text, "Mode         passthrough\n"));
    assert_non_null(strstr(text, "QueueCounters:\n"));
    assert_non_null(strstr(text, "queue 0   received_desc=5 completed_desc=4\n"));
    assert_non_null(strstr(text, "queue 1   (no counters)\n"));
}

static void show_marks_missing_and_empty_values(void **state)
{
    g_autoptr(GVariant) dev = device("d0", "blk", "sim-blk", "", 0, 0, 0);
    g_autofree char *text = vdpactl_format_show(dev);

    assert_non_null(strstr(text, "MAC          -\n"));
    assert_non_null(strstr(text, "OpenerPid    -\n"));

    g_autoptr(GVariant) bare = g_variant_ref_sink(g_variant_new_parsed("@a{sv} {'Name': <'x'>}"));
    g_autofree char *few = vdpactl_format_show(bare);
    assert_non_null(strstr(few, "Name         x\n"));
    assert_non_null(strstr(few, "Features     -\n"));
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

int main(void)
{
    g_log_set_always_fatal(G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_WARNING);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(table_columns_line_up_under_their_headers),
        cmocka_unit_test(empty_list_is_the_header_alone),
        cmocka_unit_test(status_names_its_bits),
        cmocka_unit_test(show_prints_every_property_and_the_counters),
        cmocka_unit_test(show_marks_missing_and_empty_values),
        cmocka_unit_test(json_keeps_property_names_and_numbers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
