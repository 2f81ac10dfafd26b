/* Unit tests: device specs and the config file. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include "core/device_spec.h"

static void net_spec_with_every_key(void **state)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(device_spec) s =
        device_spec_parse("net:n0,mac=52:54:00:aa:bb:cc,queues=2,mtu=9000,features=0x1ff", &err);

    assert_non_null(s);
    assert_int_equal(s->kind, DEVICE_SIM_NET);
    assert_string_equal(s->name, "n0");
    assert_true(s->has_mac);
    const uint8_t mac[6] = { 0x52, 0x54, 0x00, 0xaa, 0xbb, 0xcc };
    assert_memory_equal(s->mac, mac, 6);
    assert_int_equal(s->queues, 2);
    assert_int_equal(s->mtu, 9000);
    assert_int_equal(s->features, 0x1ff);
    assert_string_equal(s->text, "net:n0,mac=52:54:00:aa:bb:cc,queues=2,mtu=9000,features=0x1ff");
}

static void blk_and_kernel_specs(void **state)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(device_spec) b = device_spec_parse("blk:disk-1.a,size=1G,queues=4", &err);
    g_autoptr(device_spec) d = device_spec_parse("blk:d", &err);
    g_autoptr(device_spec) k = device_spec_parse("kernel:hw0,path=/dev/vhost-vdpa-0", &err);

    assert_non_null(b);
    assert_int_equal(b->size, 1ull << 30);
    assert_int_equal(b->queues, 4);
    assert_non_null(d);
    assert_int_equal(d->size, 128ull << 20); /* default */
    assert_non_null(k);
    assert_int_equal(k->kind, DEVICE_KERNEL);
    assert_string_equal(k->path, "/dev/vhost-vdpa-0");
}

/* Every bad spec fails with EINVAL and a message naming the offending part. */
static void bad_specs_are_rejected_with_context(void **state)
{
    static const struct {
        const char *spec, *needle;
    } cases[] = {
        { "n0", "TYPE:NAME" },
        { "nic:n0", "unknown type 'nic'" },
        { "net:", "name ''" },
        { "net:../x", "name '../x'" },
        { "net:.hidden", "name '.hidden'" },
        { "net:a/b", "name 'a/b'" },
        { "net:n0,mac=52:54:00:aa:bb", "mac '52:54:00:aa:bb'" },
        { "net:n0,mac=53:54:00:aa:bb:cc", "unicast" }, /* multicast bit */
        { "net:n0,mac=52:54:00:aa:bb:zz", "mac" },
        { "net:n0,queues=0", "queues '0'" },
        { "net:n0,queues=17", "queues '17'" },
        { "net:n0,queues=-1", "queues '-1'" },
        { "net:n0,queues=2x", "queues '2x'" },
        { "net:n0,mtu=67", "mtu '67'" },
        { "net:n0,features=123", "features '123'" },
        { "net:n0,features=0x", "features '0x'" },
        { "net:n0,size=1M", "key 'size'" },
        { "net:n0,queues=1,queues=2", "given twice" },
        { "net:n0,queues", "not key=value" },
        { "net:n0,=3", "not key=value" },
        { "blk:d,size=100", "size '100'" },
        { "blk:d,size=0", "size '0'" },
        { "blk:d,size=99999999999999999999T", "size" },
        { "blk:d,mac=52:54:00:aa:bb:cc", "key 'mac'" },
        { "kernel:k", "needs path=" },
        { "kernel:k,path=dev/x", "not absolute" },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autoptr(GError) err = NULL;
        struct device_spec *s = device_spec_parse(cases[i].spec, &err);
        if (s || !err || !strstr(err->message, cases[i].needle))
            fail_msg("spec '%s': expected an error mentioning \"%s\", got %s", cases[i].spec,
                     cases[i].needle, s ? "success" : err->message);
        assert_int_equal(err->code, EINVAL);
    }
}

static void name_rules(void **state)
{
    assert_true(device_name_valid("vdpa0"));
    assert_true(device_name_valid("net-1.a_b"));
    g_autofree char *longest = g_strnfill(64, 'x');
    g_autofree char *too_long = g_strnfill(65, 'x');
    assert_true(device_name_valid(longest));
    assert_false(device_name_valid(too_long));
    assert_false(device_name_valid(""));
    assert_false(device_name_valid("a b"));
    assert_false(device_name_valid(".."));
}

static void config_file_becomes_specs(void **state)
{
    g_autoptr(GError) err = NULL;
    g_autofree char *path = NULL;
    int fd = g_file_open_tmp("vdpad-test-XXXXXX.conf", &path, &err);
    const char *text = "# two devices\n"
                       "[device n0]\ntype=net\nmac=52:54:00:00:00:01\nqueues=2\n\n"
                       "[device d0]\ntype=blk\nsize=64M\n";
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);

    g_autoptr(GPtrArray) specs = device_spec_load_config(path, &err);
    assert_non_null(specs);
    assert_int_equal(specs->len, 2);
    assert_string_equal(specs->pdata[0], "net:n0,mac=52:54:00:00:00:01,queues=2");
    assert_string_equal(specs->pdata[1], "blk:d0,size=64M");
    unlink(path);
}

static void bad_config_files_are_rejected(void **state)
{
    static const char *const texts[] = {
        "[device n0]\nmac=52:54:00:00:00:01\n",          /* no type */
        "[devices]\nn0=net\n",                            /* unknown group */
        "[device n0]\ntype=net\nmac=52:54:00:00:00:01,queues=9\n", /* comma injection */
        "not a key file",
    };
    for (size_t i = 0; i < G_N_ELEMENTS(texts); i++) {
        g_autoptr(GError) err = NULL;
        g_autofree char *path = NULL;
        int fd = g_file_open_tmp("vdpad-test-XXXXXX.conf", &path, &err);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, texts[i], strlen(texts[i])), (ssize_t)strlen(texts[i]));
        close(fd);
        GPtrArray *specs = device_spec_load_config(path, &err);
        if (specs)
            fail_msg("config %zu was accepted", i);
        assert_non_null(err);
        assert_non_null(strstr(err->message, path));
        unlink(path);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(net_spec_with_every_key),
        cmocka_unit_test(blk_and_kernel_specs),
        cmocka_unit_test(bad_specs_are_rejected_with_context),
        cmocka_unit_test(name_rules),
        cmocka_unit_test(config_file_becomes_specs),
        cmocka_unit_test(bad_config_files_are_rejected),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
