/* Unit tests: vdpad's migration metadata element (src/libvirt_driver/domain_metadata.c) —
 * parser, formatter and the RelaxNG schema agreeing on what is valid —, the domain XML the
 * destination's hook reads (domain_xml.c) and QEMU command lines (qemu_cmdline.c). */
#include "config.h"

#include <errno.h>
#include <glib.h>
#include <libxml/parser.h>
#include <libxml/relaxng.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include "libvirt_driver/domain_metadata.h"
#include "libvirt_driver/domain_xml.h"
#include "libvirt_driver/qemu_cmdline.h"
#include "util/error.h"

#define NS "https://vdpad.org/xmlns/migration/1"
#define TOKEN "0123456789abcdef0123456789abcdef"
/* an entry of string literals (the functions do not write to it) */
#define DEV(n, a, s, t) ((struct vdpad_mig_device){ (char *)(n), (char *)(a), (char *)(s), (char *)(t) })

/* ------------------------------------------------------------------ the schema */

static xmlRelaxNGPtr schema;

static void silent(void *ctx, const char *msg, ...) {}

static int load_schema(void **state)
{
    g_autofree char *path = g_build_filename(VDPAD_SRCDIR, "xml", "schemas",
                                             "vdpad-migration.rng", NULL);
    xmlRelaxNGParserCtxtPtr pctx = xmlRelaxNGNewParserCtxt(path);
    schema = xmlRelaxNGParse(pctx);
    xmlRelaxNGFreeParserCtxt(pctx);
    return schema ? 0 : -1;
}

static int free_schema(void **state)
{
    xmlRelaxNGFree(schema);
    return 0;
}

/* Whether the schema accepts a document (the element in its namespace). */
static bool schema_valid(const char *xml)
{
    xmlDocPtr doc = xmlReadMemory(xml, (int)strlen(xml), "t.xml", NULL,
                                  XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    if (!doc)
        return false;
    xmlRelaxNGValidCtxtPtr v = xmlRelaxNGNewValidCtxt(schema);
    xmlRelaxNGSetValidErrors(v, silent, silent, NULL);
    int rc = xmlRelaxNGValidateDoc(v, doc);
    xmlRelaxNGFreeValidCtxt(v);
    xmlFreeDoc(doc);
    return rc == 0;
}

/* <vdpad:devices> with the given <vdpad:device .../> attributes (one element per string) */
static char *ns_element(const char *const *attrs, size_t n)
{
    GString *s = g_string_new("<vdpad:devices xmlns:vdpad=\"" NS "\">");
    for (size_t i = 0; i < n; i++)
        g_string_append_printf(s, "<vdpad:device %s/>", attrs[i]);
    g_string_append(s, "</vdpad:devices>");
    return g_string_free(s, FALSE);
}

/* ------------------------------------------------------------------ element */

static void parses_the_element_as_libvirt_returns_it_and_as_it_stands_in_a_domain(void **state)
{
    static const char plain[] =
        "<devices>\n  <device node=\"/run/vdpad/dev/n0\" name=\"n0\" source=\"hosta:16516\" "
        "token=\"" TOKEN "\"/>\n  <device node=\"/run/vdpad/dev/n1\" name=\"n1\" "
        "source=\"[fd00::1]:16520\" token=\"t-2\"/>\n</devices>";
    static const char prefixed[] =
        "<vdpad:devices xmlns:vdpad=\"" NS "\"><!-- c --><vdpad:device node=\"/run/vdpad/dev/n0\" "
        "name=\"n0\" source=\"hosta:16516\" token=\"" TOKEN "\"/><vdpad:device "
        "node=\"/run/vdpad/dev/n1\" name=\"n1\" source=\"[fd00::1]:16520\" token=\"t-2\"/>"
        "</vdpad:devices>";
    const char *texts[] = { plain, prefixed };

    for (size_t t = 0; t < 2; t++) {
        g_autoptr(GError) err = NULL;
        g_autoptr(GPtrArray) d = domain_metadata_parse(texts[t], strlen(texts[t]), &err);
        assert_non_null(d);
        assert_int_equal(d->len, 2);
        const struct vdpad_mig_device *a = d->pdata[0], *b = d->pdata[1];
        assert_string_equal(a->node, "/run/vdpad/dev/n0");
        assert_string_equal(a->name, "n0");
        assert_string_equal(a->source, "hosta:16516");
        assert_string_equal(a->token, TOKEN);
        assert_string_equal(b->source, "[fd00::1]:16520");
        assert_string_equal(b->token, "t-2");
        assert_ptr_equal(domain_metadata_find(d, "/run/vdpad/dev/n1"), b);
        assert_null(domain_metadata_find(d, "/run/vdpad/dev/n2"));
    }
    assert_true(schema_valid(prefixed));
}

static void formats_what_it_parses_and_the_schema_accepts_it(void **state)
{
    g_autoptr(GPtrArray) d = vdpad_mig_devices_new();
    g_autoptr(GError) err = NULL;
    struct vdpad_mig_device a = DEV("/run/vdpad/dev/n0", "n0", "10.77.0.1:16516", TOKEN);
    struct vdpad_mig_device b = DEV("/srv/a&b <\"x\">/n.1", "n.1", "hostb", "a&<>\"'z");

    assert_int_equal(domain_metadata_upsert(d, &a, &err), 0);
    assert_int_equal(domain_metadata_upsert(d, &b, &err), 0);
    g_autofree char *plain = domain_metadata_format(d, false);
    g_autofree char *prefixed = domain_metadata_format(d, true);
    assert_string_equal(plain,
        "<devices><device node=\"/run/vdpad/dev/n0\" name=\"n0\" source=\"10.77.0.1:16516\" "
        "token=\"" TOKEN "\"/><device node=\"/srv/a&amp;b &lt;&quot;x&quot;&gt;/n.1\" "
        "name=\"n.1\" source=\"hostb\" token=\"a&amp;&lt;&gt;&quot;'z\"/></devices>");
    assert_true(schema_valid(prefixed));
    assert_false(schema_valid(plain)); /* no namespace: libvirt adds it */
    for (int i = 0; i < 2; i++) {
        const char *text = i ? prefixed : plain;
        g_autoptr(GPtrArray) back = domain_metadata_parse(text, strlen(text), &err);
        assert_non_null(back);
        assert_int_equal(back->len, 2);
        const struct vdpad_mig_device *x = back->pdata[1];
        assert_string_equal(x->node, b.node);
        assert_string_equal(x->token, b.token);
    }
    g_autoptr(GPtrArray) none = vdpad_mig_devices_new();
    g_autofree char *empty = domain_metadata_format(none, true);
    assert_true(schema_valid(empty));
    g_autoptr(GPtrArray) back = domain_metadata_parse(empty, strlen(empty), &err);
    assert_non_null(back);
    assert_int_equal(back->len, 0);
}

/* Each refused element is refused by the schema too, with the reason in the message. */
static void parser_and_schema_refuse_the_same_elements_and_the_message_says_why(void **state)
{
    static const struct {
        const char *attrs;
        const char *why;
    } bad[] = {
        { "node=\"run/vdpad/dev/n0\" name=\"n0\" source=\"h:1\" token=\"t\"", "node 'run/vdpad/dev/n0'" },
        { "node=\"/run/../etc/n0\" name=\"n0\" source=\"h:1\" token=\"t\"", "not an absolute path" },
        { "node=\"/run//n0\" name=\"n0\" source=\"h:1\" token=\"t\"", "not an absolute path" },
        { "node=\"/run/n0/\" name=\"n0\" source=\"h:1\" token=\"t\"", "not an absolute path" },
        { "node=\"/run/n&#9;0\" name=\"n0\" source=\"h:1\" token=\"t\"", "control character" },
        { "node=\"/n0\" name=\".n0\" source=\"h:1\" token=\"t\"", "name '.n0'" },
        { "node=\"/n0\" name=\"n/0\" source=\"h:1\" token=\"t\"", "name 'n/0'" },
        { "node=\"/n0\" name=\"n0\" source=\"*:16520\" token=\"t\"", "source '*:16520'" },
        { "node=\"/n0\" name=\"n0\" source=\"h:0\" token=\"t\"", "source 'h:0'" },
        { "node=\"/n0\" name=\"n0\" source=\"h:65536\" token=\"t\"", "source 'h:65536'" },
        { "node=\"/n0\" name=\"n0\" source=\"fd00::1\" token=\"t\"", "source 'fd00::1'" },
        { "node=\"/n0\" name=\"n0\" source=\"h:1\" token=\"a b\"", "token" },
        { "node=\"/n0\" name=\"n0\" source=\"h:1\" token=\"\"", "token" },
        { "node=\"/n0\" name=\"n0\" source=\"h:1\"", "without the attribute 'token'" },
        { "node=\"/n0\" name=\"n0\" source=\"h:1\" token=\"t\" extra=\"1\"", "unknown attribute 'extra'" },
        { "node=\"/n0\" name=\"n0\" source=\"h:1\" vdpad:token=\"t\"", "unknown attribute 'token'" },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_autoptr(GError) err = NULL;
        const char *attrs = bad[i].attrs;
        g_autofree char *xml = ns_element(&attrs, 1);
        g_autoptr(GPtrArray) d = domain_metadata_parse(xml, strlen(xml), &err);
        if (d || !strstr(err->message, bad[i].why))
            fail_msg("case %zu (%s): %s", i, attrs, d ? "accepted" : err->message);
        assert_int_equal(vdpad_error_errno(err), -EINVAL);
        if (schema_valid(xml))
            fail_msg("case %zu (%s): the schema accepts it", i, attrs);
    }
    /* and the good ones near them are accepted by both */
    static const char *const good[] = {
        "node=\"/n0\" name=\"n0\" source=\"h\" token=\"t\"",
        "node=\"/run/vdpad/dev/a.b-c_d\" name=\"a.b-c_d\" source=\"[::1]:65535\" token=\"!~\"",
        "node=\"/n0\" name=\"n0\" source=\"host-b.example:1\" token=\"" TOKEN TOKEN TOKEN TOKEN "\"",
    };
    for (size_t i = 0; i < G_N_ELEMENTS(good); i++) {
        g_autoptr(GError) err = NULL;
        g_autofree char *xml = ns_element(&good[i], 1);
        g_autoptr(GPtrArray) d = domain_metadata_parse(xml, strlen(xml), &err);
        if (!d)
            fail_msg("good case %zu: %s", i, err->message);
        assert_true(schema_valid(xml));
    }
}

static void refuses_other_structures_dtds_and_duplicates(void **state)
{
    static const struct {
        const char *xml;
        const char *why;
    } bad[] = {
        { "<devices><device node=\"/a\" name=\"a\" source=\"h\" token=\"t\"/>"
          "<device node=\"/a\" name=\"b\" source=\"h\" token=\"t\"/></devices>", "listed twice" },
        { "<devices>text</devices>", "text inside <devices>" },
        { "<devices><device node=\"/a\" name=\"a\" source=\"h\" token=\"t\">x</device></devices>",
          "text inside <device>" },
        { "<devices><other/></devices>", "unexpected element <other>" },
        { "<devices><x:device xmlns:x=\"" NS "\" node=\"/a\" name=\"a\" source=\"h\" token=\"t\"/>"
          "</devices>", "unexpected element <device>" },
        { "<devices version=\"2\"/>", "unknown attribute 'version'" },
        { "<device node=\"/a\" name=\"a\" source=\"h\" token=\"t\"/>", "not <devices>" },
        { "<x:devices xmlns:x=\"https://vdpad.org/xmlns/migration/2\"/>", "not <devices>" },
        { "<!DOCTYPE devices [<!ENTITY a \"aaaa\">]><devices/>", "DTD" },
        { "<devices>", "not well-formed" },
        { "", "not well-formed" },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_autoptr(GError) err = NULL;
        g_autoptr(GPtrArray) d = domain_metadata_parse(bad[i].xml, strlen(bad[i].xml), &err);
        if (d || !strstr(err->message, bad[i].why))
            fail_msg("case %zu: %s", i, d ? "accepted" : err->message);
    }
    /* a NUL inside */
    g_autoptr(GError) err = NULL;
    assert_null(domain_metadata_parse("<devices/>\0x", 12, &err));
    assert_non_null(strstr(err->message, "NUL"));
    /* 65 devices */
    GString *many = g_string_new("<devices>");
    for (int i = 0; i <= VDPAD_MIG_MAX_DEVICES; i++)
        g_string_append_printf(many, "<device node=\"/n%d\" name=\"n%d\" source=\"h\" token=\"t\"/>",
                               i, i);
    g_string_append(many, "</devices>");
    g_clear_error(&err);
    assert_null(domain_metadata_parse(many->str, many->len, &err));
    assert_int_equal(vdpad_error_errno(err), -E2BIG);
    g_string_free(many, TRUE);
}

static void upsert_replaces_the_entry_of_the_same_node_and_keeps_the_others(void **state)
{
    g_autoptr(GPtrArray) d = vdpad_mig_devices_new();
    g_autoptr(GError) err = NULL;
    struct vdpad_mig_device other = DEV("/run/other/x", "x", "hostc:1", "old");
    struct vdpad_mig_device mine = DEV("/run/vdpad/dev/n0", "n0", "hosta:16516", "old-token");

    assert_int_equal(domain_metadata_upsert(d, &other, &err), 0);
    assert_int_equal(domain_metadata_upsert(d, &mine, &err), 0);
    mine.token = (char *)"new-token";
    assert_int_equal(domain_metadata_upsert(d, &mine, &err), 0);
    assert_int_equal(d->len, 2);
    assert_string_equal(((struct vdpad_mig_device *)d->pdata[0])->token, "old");
    assert_string_equal(domain_metadata_find(d, mine.node)->token, "new-token");

    struct vdpad_mig_device bad = DEV("/run/vdpad/dev/n1", "n1", "0.0.0.0:16516", "t");
    assert_int_equal(domain_metadata_upsert(d, &bad, &err), -EINVAL);
    assert_non_null(strstr(err->message, "source '0.0.0.0:16516'"));
    assert_int_equal(d->len, 2);

    g_clear_error(&err);
    for (int i = 2; i < VDPAD_MIG_MAX_DEVICES; i++) {
        g_autofree char *node = g_strdup_printf("/n%d", i);
        struct vdpad_mig_device e = DEV(node, "n", "h", "t");
        assert_int_equal(domain_metadata_upsert(d, &e, &err), 0);
    }
    struct vdpad_mig_device extra = DEV("/n-extra", "n", "h", "t");
    assert_int_equal(domain_metadata_upsert(d, &extra, &err), -E2BIG);
    assert_int_equal(d->len, VDPAD_MIG_MAX_DEVICES);
    /* but a present node is still replaced */
    mine.token = (char *)"newest";
    assert_int_equal(domain_metadata_upsert(d, &mine, NULL), 0);
    assert_string_equal(domain_metadata_find(d, mine.node)->token, "newest");
}

static void addresses_destinations_can_reach(void **state)
{
    static const char *const good[] = { "hosta:16516", "hosta", "10.77.0.1:16516", "[::1]",
                                        "[fd00::1]:1", "a-b.c_d:65535" };
    static const char *const bad[] = { "", "*:16520", "0.0.0.0:16520", "[::]:16520", "[::0]",
                                       ":16520", "h:", "h:0", "h:01", "h:65536", "fd00::1",
                                       "[fd00::1", "[]:1", "h o:1", "h:1x", "[::1]x" };
    for (size_t i = 0; i < G_N_ELEMENTS(good); i++)
        if (!vdpad_mig_address_valid(good[i]))
            fail_msg("'%s' refused", good[i]);
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++)
        if (vdpad_mig_address_valid(bad[i]))
            fail_msg("'%s' accepted", bad[i]);
}

/* ------------------------------------------------------------------ domain XML */

static const char domain_xml[] =
    "<domain type='qemu' id='3'>\n"
    "  <name>g0</name>\n"
    "  <uuid>6695eb01-f6a4-8304-79aa-97f2502e193f</uuid>\n"
    "  <metadata>\n"
    "    <app1:foo xmlns:app1=\"http://app1.example/\"><app1:bar/></app1:foo>\n"
    "    <vdpad:devices xmlns:vdpad=\"" NS "\">\n"
    "      <vdpad:device node=\"/run/vdpad/dev/n1\" name=\"n1\" source=\"hosta:16516\" token=\"t1\"/>\n"
    "      <vdpad:device node=\"/run/vdpad/dev/n0\" name=\"n0\" source=\"hosta:16516\" token=\"t0\"/>\n"
    "      <vdpad:device node=\"/run/vdpad/dev/old\" name=\"old\" source=\"hosta:16516\" token=\"t\"/>\n"
    "    </vdpad:devices>\n"
    "  </metadata>\n"
    "  <devices>\n"
    "    <interface type='vdpa'><mac address='52:54:00:12:34:56'/>"
    "<source dev='/run/vdpad/dev/n0'/><model type='virtio'/><driver queues='2'/></interface>\n"
    "    <interface type='vdpa'><source dev='/dev/vhost-vdpa-0'/></interface>\n"
    "    <interface type='network'><source network='default'/></interface>\n"
    "    <interface type='vdpa'><source dev='/run/vdpad/dev/n1'/></interface>\n"
    "  </devices>\n"
    "</domain>\n";

static void hook_prepares_the_listed_nodes_of_vdpa_interfaces_in_interface_order(void **state)
{
    struct domain_xml_info info;
    g_autoptr(GError) err = NULL;

    assert_int_equal(domain_xml_scan(domain_xml, strlen(domain_xml), &info, &err), 0);
    assert_string_equal(info.name, "g0");
    assert_int_equal(info.devices->len, 3);
    assert_int_equal(info.vdpa_sources->len, 3);
    assert_string_equal(info.vdpa_sources->pdata[1], "/dev/vhost-vdpa-0");
    g_autoptr(GPtrArray) in = domain_xml_incoming(&info);
    assert_int_equal(in->len, 2);
    const struct vdpad_mig_device *a = in->pdata[0], *b = in->pdata[1];
    assert_string_equal(a->name, "n0"); /* first interface first */
    assert_string_equal(a->token, "t0");
    assert_string_equal(b->name, "n1");
    domain_xml_info_clear(&info);
}

static void a_domain_without_vdpad_metadata_needs_nothing(void **state)
{
    static const char xml[] =
        "<domain type='qemu'><name>plain</name><metadata><a:x xmlns:a='urn:a'/></metadata>"
        "<devices><interface type='vdpa'><source dev='/run/vdpad/dev/n0'/></interface>"
        "</devices></domain>";
    struct domain_xml_info info;
    g_autoptr(GError) err = NULL;

    assert_int_equal(domain_xml_scan(xml, strlen(xml), &info, &err), 0);
    assert_int_equal(info.devices->len, 0);
    g_autoptr(GPtrArray) in = domain_xml_incoming(&info);
    assert_int_equal(in->len, 0);
    domain_xml_info_clear(&info);
}

static void a_domain_with_invalid_or_doubled_metadata_is_refused_naming_it(void **state)
{
    static const char *const bad[] = {
        "<domain><name>g1</name><metadata><vdpad:devices xmlns:vdpad='" NS "'>"
        "<vdpad:device node='/n0' name='n0' source='*:1' token='t'/></vdpad:devices></metadata></domain>",
        "<domain><name>g1</name><metadata><vdpad:devices xmlns:vdpad='" NS "'/>"
        "<v:devices xmlns:v='" NS "'/></metadata></domain>",
    };
    static const char *const why[] = { "domain g1: vdpad metadata: node /n0: source '*:1'", "twice" };
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        struct domain_xml_info info;
        g_autoptr(GError) err = NULL;
        assert_int_equal(domain_xml_scan(bad[i], strlen(bad[i]), &info, &err), -EINVAL);
        if (!strstr(err->message, why[i]))
            fail_msg("case %zu: %s", i, err->message);
        assert_null(info.devices);
    }
    struct domain_xml_info info;
    g_autoptr(GError) err = NULL;
    assert_int_equal(domain_xml_scan("<network/>", 10, &info, &err), -EINVAL);
    assert_non_null(strstr(err->message, "not <domain>"));
}

/* ------------------------------------------------------------------ QEMU command lines */

static void finds_name_and_uuid_on_a_libvirt_9_command_line(void **state)
{
    /* as libvirt 9.0 starts QEMU 7.2 (from /proc/PID/cmdline) */
    static const char argv[] =
        "/usr/bin/qemu-system-x86_64\0-name\0guest=g0,debug-threads=on\0-S\0-object\0"
        "{\"qom-type\":\"secret\",\"id\":\"masterKey0\"}\0-machine\0pc-q35-7.2,usb=off\0"
        "-uuid\0c7a5fdbd-cdaf-9455-926a-d65c16db1809\0-no-user-config\0";
    struct qemu_identity id;
    g_autoptr(GError) err = NULL;

    assert_int_equal(qemu_cmdline_identity(argv, sizeof(argv) - 1, &id, &err), 0);
    assert_string_equal(id.name, "g0");
    assert_string_equal(id.uuid, "c7a5fdbd-cdaf-9455-926a-d65c16db1809");
    qemu_identity_clear(&id);
}

static void unescapes_commas_and_reads_the_older_forms(void **state)
{
    static const struct {
        const char *value;
        const char *name;
    } cases[] = {
        { "guest=a,,b,debug-threads=on", "a,b" },
        { "debug-threads=on,guest=x", "x" },
        { "old-style,process=qemu:old", "old-style" },
        { "with,,comma", "with,comma" },
        { "guest=", NULL },
        { "debug-threads=on", NULL },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autofree char *argv = g_strdup_printf("qemu%c-name%c%s%c-uuid%c"
                                                "00000000-0000-0000-0000-00000000000%zu%c",
                                                0, 0, cases[i].value, 0, 0, i, 0);
        size_t len = strlen(argv) + 1 + strlen("-name") + 1 + strlen(cases[i].value) + 1 +
                     strlen("-uuid") + 1 + 36 + 1;
        struct qemu_identity id;
        assert_int_equal(qemu_cmdline_identity(argv, len, &id, NULL), 0);
        if (g_strcmp0(id.name, cases[i].name))
            fail_msg("'%s': name '%s', expected '%s'", cases[i].value, id.name ? id.name : "(none)",
                     cases[i].name ? cases[i].name : "(none)");
        assert_non_null(id.uuid);
        qemu_identity_clear(&id);
    }
}

static void a_process_without_name_or_uuid_is_not_a_libvirt_domain(void **state)
{
    static const char plain[] = "qemu-system-x86_64\0-m\0256\0-uuid\0not-a-uuid\0";
    static const char truncated[] = "qemu\0-name\0guest=g0"; /* last argument cut: not trusted */
    struct qemu_identity id;
    g_autoptr(GError) err = NULL;

    assert_int_equal(qemu_cmdline_identity(plain, sizeof(plain) - 1, &id, &err), -ENOENT);
    assert_non_null(strstr(err->message, "qemu-system-x86_64: no -name or -uuid"));
    assert_null(id.name);
    assert_null(id.uuid);
    g_clear_error(&err);
    assert_int_equal(qemu_cmdline_identity(truncated, sizeof(truncated) - 1, &id, &err), -ENOENT);
    g_clear_error(&err);
    assert_int_equal(qemu_cmdline_identity("", 0, &id, &err), -ENOENT);
}

static void reads_the_command_line_of_a_process(void **state)
{
    struct qemu_identity id;
    g_autoptr(GError) err = NULL;
    /* this test has neither option */
    assert_int_equal(qemu_process_identity(getpid(), &id, &err), -ENOENT);
    g_autofree char *prefix = g_strdup_printf("pid %d: ", (int)getpid());
    assert_true(g_str_has_prefix(err->message, prefix));
    g_clear_error(&err);
    assert_int_equal(qemu_process_identity(0x7ffffff0, &id, &err), -ESRCH);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parses_the_element_as_libvirt_returns_it_and_as_it_stands_in_a_domain),
        cmocka_unit_test(formats_what_it_parses_and_the_schema_accepts_it),
        cmocka_unit_test(parser_and_schema_refuse_the_same_elements_and_the_message_says_why),
        cmocka_unit_test(refuses_other_structures_dtds_and_duplicates),
        cmocka_unit_test(upsert_replaces_the_entry_of_the_same_node_and_keeps_the_others),
        cmocka_unit_test(addresses_destinations_can_reach),
        cmocka_unit_test(hook_prepares_the_listed_nodes_of_vdpa_interfaces_in_interface_order),
        cmocka_unit_test(a_domain_without_vdpad_metadata_needs_nothing),
        cmocka_unit_test(a_domain_with_invalid_or_doubled_metadata_is_refused_naming_it),
        cmocka_unit_test(finds_name_and_uuid_on_a_libvirt_9_command_line),
        cmocka_unit_test(unescapes_commas_and_reads_the_older_forms),
        cmocka_unit_test(a_process_without_name_or_uuid_is_not_a_libvirt_domain),
        cmocka_unit_test(reads_the_command_line_of_a_process),
    };
    return cmocka_run_group_tests(tests, load_schema, free_schema);
}
