/* vdpad-libvirt-hook — libvirt's qemu hook on a migration's destination.
 *
 * libvirt runs it as `HOOK DOMAIN OPERATION SUBOPERATION EXTRA` with the domain XML on stdin
 * (see docs/migration.md, "With libvirt"). For `DOMAIN migrate begin -` (an incoming
 * migration, before the destination QEMU starts) it reads vdpad's metadata element from the
 * XML, and for every <interface type='vdpa'> whose <source dev> the element lists, asks the
 * local vdpad — the one serving the same node path on this host — to prepare that node:
 * org.vdpad1.Device.PrepareIncoming(source, device, token), which also checks that the
 * source vdpad answers and authenticates. A refusal makes the hook exit 1, and libvirt then
 * fails the migration before QEMU starts; the guest keeps running on the source.
 *
 * It prints nothing on stdout: for `migrate begin` libvirt takes empty output as "the XML
 * unchanged". Every other operation is left alone (exit 0). Messages go to stderr.
 *
 * libvirt clears the environment of hooks, so the bus is an option: a wrapper script
 * (`exec vdpad-libvirt-hook --bus ADDRESS "$@"`) passes a non-default one.
 */
#include "config.h"

#include <errno.h>
#include <gio/gio.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "dbus/dbus_names.h"
#include "libvirt_driver/domain_metadata.h"
#include "libvirt_driver/domain_xml.h"

#define PREPARE_TIMEOUT_MS 60000 /* PrepareIncoming pings the source: bounded by its I/O timeout */

static char *read_stdin(size_t *len, GError **error)
{
    GString *buf = g_string_new(NULL);
    char chunk[65536];
    ssize_t n;

    /* always read it all: libvirt writes the whole XML before it waits for us */
    while ((n = read(STDIN_FILENO, chunk, sizeof(chunk))) != 0) {
        if (n < 0) {
            if (errno == EINTR)
                continue;
            g_set_error(error, G_IO_ERROR, g_io_error_from_errno(errno), "reading stdin: %s",
                        g_strerror(errno));
            g_string_free(buf, TRUE);
            return NULL;
        }
        if (buf->len < DOMAIN_XML_MAX + 1)
            g_string_append_len(buf, chunk, n);
    }
    *len = buf->len;
    return g_string_free(buf, FALSE);
}

static GDBusConnection *connect_bus(const char *bus, GError **error)
{
    if (!bus || g_str_equal(bus, "system"))
        return g_bus_get_sync(G_BUS_TYPE_SYSTEM, NULL, error);
    if (g_str_equal(bus, "session"))
        return g_bus_get_sync(G_BUS_TYPE_SESSION, NULL, error);
    return g_dbus_connection_new_for_address_sync(
        bus, G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_CLIENT |
                 G_DBUS_CONNECTION_FLAGS_MESSAGE_BUS_CONNECTION,
        NULL, NULL, error);
}

static GVariant *call(GDBusConnection *bus, const char *path, const char *iface,
                      const char *method, GVariant *args, const char *reply_type, int timeout_ms,
                      GError **error)
{
    GVariant *r = g_dbus_connection_call_sync(bus, VDPAD_DBUS_NAME, path, iface, method, args,
                                              G_VARIANT_TYPE(reply_type),
                                              G_DBUS_CALL_FLAGS_NONE, timeout_ms, NULL, error);
    if (!r && *error)
        g_dbus_error_strip_remote_error(*error);
    return r;
}

/* The object of the local vdpad device whose node is d->node: the device named like the
 * node's file, checked by its NodePath. */
static char *local_device(GDBusConnection *bus, const struct vdpad_mig_device *d, GError **error)
{
    g_autofree char *name = g_path_get_basename(d->node);
    g_autoptr(GVariant) obj = call(bus, VDPAD_DBUS_MANAGER_PATH, VDPAD_DBUS_MANAGER_IFACE,
                                   "GetDevice", g_variant_new("(s)", name), "(o)", 10000, error);
    if (!obj) {
        g_prefix_error(error, "no vdpad device %s for the node %s on this host (the destination "
                       "needs a vdpad node at the same path): ", name, d->node);
        return NULL;
    }
    g_autofree char *path = NULL;
    g_variant_get(obj, "(o)", &path);
    g_autoptr(GVariant) prop = call(bus, path, "org.freedesktop.DBus.Properties", "Get",
                                    g_variant_new("(ss)", VDPAD_DBUS_DEVICE_IFACE, "NodePath"),
                                    "(v)", 10000, error);
    if (!prop)
        return NULL;
    g_autoptr(GVariant) value = NULL;
    g_variant_get(prop, "(v)", &value);
    const char *node_path = g_variant_is_of_type(value, G_VARIANT_TYPE_STRING)
                                ? g_variant_get_string(value, NULL) : "";
    if (!g_str_equal(node_path, d->node)) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND, "the vdpad device %s on this host "
                    "serves %s, not %s", name, node_path, d->node);
        return NULL;
    }
    return g_steal_pointer(&path);
}

static int prepare_incoming(const char *bus_name, const char *domain, GPtrArray *incoming)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(GDBusConnection) bus = connect_bus(bus_name, &err);
    g_autoptr(GPtrArray) prepared = g_ptr_array_new_with_free_func(g_free);
    int rc = 0;

    if (!bus) {
        fprintf(stderr, "vdpad-libvirt-hook: domain %s: cannot reach vdpad on the %s bus: %s\n",
                domain, bus_name ? bus_name : "system", err->message);
        return 1;
    }
    for (guint i = 0; i < incoming->len; i++) {
        const struct vdpad_mig_device *d = incoming->pdata[i];
        g_autofree char *path = local_device(bus, d, &err);
        g_autoptr(GVariant) r = NULL;
        if (path)
            r = call(bus, path, VDPAD_DBUS_DEVICE_IFACE, "PrepareIncoming",
                     g_variant_new("(sss)", d->source, d->name, d->token), "()",
                     PREPARE_TIMEOUT_MS, &err);
        if (!r) {
            fprintf(stderr, "vdpad-libvirt-hook: domain %s: node %s: cannot prepare it to receive "
                    "%s's state from %s: %s\n", domain, d->node, d->name, d->source, err->message);
            rc = 1;
            break;
        }
        fprintf(stderr, "vdpad-libvirt-hook: domain %s: node %s prepared to receive %s's state "
                "from %s\n", domain, d->node, d->name, d->source);
        g_ptr_array_add(prepared, g_steal_pointer(&path));
    }
    if (rc) /* the migration fails: leave no node waiting for it */
        for (guint i = 0; i < prepared->len; i++) {
            g_autoptr(GError) ignored = NULL;
            GVariant *r = call(bus, prepared->pdata[i], VDPAD_DBUS_DEVICE_IFACE,
                               "CancelIncoming", NULL, "()", 10000, &ignored);
            if (r)
                g_variant_unref(r);
        }
    return rc;
}

int main(int argc, char **argv)
{
    g_autofree char *bus = NULL;
    GOptionEntry entries[] = {
        { "bus", 0, 0, G_OPTION_ARG_STRING, &bus,
          "vdpad's D-Bus: system (default), session or a bus address", "BUS" },
        { NULL },
    };
    g_autoptr(GOptionContext) ctx =
        g_option_context_new("DOMAIN OPERATION SUBOPERATION EXTRA - libvirt qemu hook for vdpad");
    g_autoptr(GError) err = NULL;

    g_option_context_add_main_entries(ctx, entries, NULL);
    g_option_context_set_strict_posix(ctx, TRUE); /* a domain name may start with '-' */
    if (!g_option_context_parse(ctx, &argc, &argv, &err) || argc != 5) {
        fprintf(stderr, "vdpad-libvirt-hook: %s\nusage: vdpad-libvirt-hook [--bus BUS] DOMAIN "
                "OPERATION SUBOPERATION EXTRA (run by libvirt as its qemu hook)\n",
                err ? err->message : "needs the four arguments libvirt passes");
        return 2;
    }
    const char *domain = argv[1], *op = argv[2], *subop = argv[3];
    size_t len = 0;
    g_autofree char *xml = read_stdin(&len, &err);
    if (!xml) {
        fprintf(stderr, "vdpad-libvirt-hook: domain %s: %s\n", domain, err->message);
        return 1;
    }
    if (!g_str_equal(op, "migrate") || !g_str_equal(subop, "begin"))
        return 0;

    struct domain_xml_info info;
    if (domain_xml_scan(xml, len, &info, &err) < 0) {
        fprintf(stderr, "vdpad-libvirt-hook: domain %s: %s\n", domain, err->message);
        return 1;
    }
    g_autoptr(GPtrArray) incoming = domain_xml_incoming(&info);
    int rc = incoming->len ? prepare_incoming(bus, domain, incoming) : 0;
    domain_xml_info_clear(&info);
    return rc;
}
