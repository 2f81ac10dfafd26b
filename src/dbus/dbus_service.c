#include "config.h"

#include <errno.h>
#include <unistd.h>

#include "dbus/dbus_access.h"
#include "dbus/dbus_migration.h"
#include "dbus/dbus_names.h"
#include "dbus/dbus_resources.h"
#include "dbus/dbus_service.h"
#include "dbus/device_props.h"
#include "dbus/device_signals.h"
#include "util/error.h"

/* RequestName flags and replies (the D-Bus specification). */
#define NAME_FLAG_DO_NOT_QUEUE 4u
#define NAME_REPLY_PRIMARY_OWNER 1u
#define NAME_REPLY_EXISTS 3u
#define NAME_REPLY_ALREADY_OWNER 4u

#define BUS_CALL_TIMEOUT_MS 10000

/* One exported device. */
struct device_obj {
    struct dbus_service *svc;
    struct vdpa_node *node; /* the registry's; valid until NODE_REMOVED */
    char *path;
    guint reg_id;
    GVariant *state;        /* the properties last announced (a{sv}) */
    struct device_signals *signals;
};

struct dbus_service {
    struct node_registry *reg;
    struct fuse_front *front;
    struct dbus_migration *migration; /* PrepareIncoming, CancelIncoming */
    char *bus_label;        /* "system bus", "session bus", "bus at ADDRESS" */
    GDBusConnection *conn;
    GDBusNodeInfo *manager_info;
    GDBusNodeInfo *device_info;
    guint manager_id;
    gulong closed_handler;
    gboolean observing;
    GHashTable *devices;    /* node name (the node's string) -> struct device_obj */
    GCancellable *cancel;   /* pending credential checks */
    bool has_group;
    gid_t vdpad_gid;
};

/* ------------------------------------------------------------------ device objects */

static char *node_path_of(struct dbus_service *svc, const char *name)
{
    return svc->front ? fuse_front_node_path(svc->front, name) : g_strdup("");
}

static GVariant *device_get_property(GDBusConnection *conn, const char *sender,
                                     const char *path, const char *iface, const char *prop,
                                     GError **error, gpointer data)
{
    struct device_obj *obj = data;
    g_autofree char *node_path = node_path_of(obj->svc, obj->node->name);
    GVariant *value = device_props_get(obj->node, node_path, prop);

    if (!value)
        g_set_error(error, G_DBUS_ERROR, G_DBUS_ERROR_UNKNOWN_PROPERTY,
                    "device %s has no property %s", obj->node->name, prop);
    return value;
}

static void authorize_then_modify(struct dbus_service *svc, GDBusMethodInvocation *inv,
                                  const char *sender, const char *device);

static void device_method(GDBusConnection *conn, const char *sender, const char *path,
                          const char *iface, const char *method, GVariant *params,
                          GDBusMethodInvocation *inv, gpointer data)
{
    struct device_obj *obj = data;

    /* PrepareIncoming and CancelIncoming: both change the node */
    authorize_then_modify(obj->svc, inv, sender, obj->node->name);
}

static const GDBusInterfaceVTable device_vtable = {
    .method_call = device_method,
    .get_property = device_get_property,
};

static void device_obj_free(struct device_obj *obj)
{
    device_signals_free(obj->signals);
    if (obj->reg_id)
        g_dbus_connection_unregister_object(obj->svc->conn, obj->reg_id);
    g_clear_pointer(&obj->state, g_variant_unref);
    g_free(obj->path);
    g_free(obj);
}

static void emit_manager_signal(struct dbus_service *svc, const char *signal,
                                const struct device_obj *obj)
{
    g_dbus_connection_emit_signal(svc->conn, NULL, VDPAD_DBUS_MANAGER_PATH,
                                  VDPAD_DBUS_MANAGER_IFACE, signal,
                                  g_variant_new("(os)", obj->path, obj->node->name), NULL);
}

static void export_device(struct dbus_service *svc, struct vdpa_node *node)
{
    g_autoptr(GError) err = NULL;
    struct device_obj *obj = g_new0(struct device_obj, 1);
    g_autofree char *node_path = node_path_of(svc, node->name);

    obj->svc = svc;
    obj->node = node;
    obj->path = vdpad_dbus_device_path(node->name);
    obj->state = device_props_state(node, node_path);
    obj->signals = device_signals_new(svc->conn, obj->path, node);
    obj->reg_id = g_dbus_connection_register_object(svc->conn, obj->path,
                                                    svc->device_info->interfaces[0],
                                                    &device_vtable, obj, NULL, &err);
    if (!obj->reg_id) /* cannot happen: paths are unique per name */
        g_warning("%s: cannot export %s on D-Bus: %s", node->name, obj->path, err->message);
    g_hash_table_insert(svc->devices, node->name, obj);
}

static void announce_changes(struct dbus_service *svc, struct vdpa_node *node)
{
    struct device_obj *obj = g_hash_table_lookup(svc->devices, node->name);

    if (!obj)
        return;
    g_autofree char *node_path = node_path_of(svc, node->name);
    g_autoptr(GVariant) now = device_props_state(node, node_path);
    g_autoptr(GVariant) changed = device_props_changed(obj->state, now);
    if (!changed)
        return;
    g_dbus_connection_emit_signal(svc->conn, NULL, obj->path, "org.freedesktop.DBus.Properties",
                                  "PropertiesChanged",
                                  g_variant_new("(s@a{sv}@as)", VDPAD_DBUS_DEVICE_IFACE, changed,
                                                g_variant_new_strv(NULL, 0)),
                                  NULL);
    g_variant_unref(obj->state);
    obj->state = g_steal_pointer(&now);
}

static void on_node_event(struct vdpa_node *node, enum node_event event, void *data)
{
    struct dbus_service *svc = data;

    switch (event) {
    case NODE_ADDED:
        export_device(svc, node);
        emit_manager_signal(svc, "DeviceAdded", g_hash_table_lookup(svc->devices, node->name));
        break;
    case NODE_REMOVED: {
        struct device_obj *obj = g_hash_table_lookup(svc->devices, node->name);
        if (obj) {
            emit_manager_signal(svc, "DeviceRemoved", obj);
            g_hash_table_remove(svc->devices, node->name); /* unexports */
        }
        break;
    }
    case NODE_OPENED:
    case NODE_CLOSED:
    case NODE_CHANGED:
    case NODE_MODE_CHANGED:
    case NODE_STOPPED:
    case NODE_RESTORED:
    case NODE_MIGRATION_FAILED: {
        struct device_obj *obj = g_hash_table_lookup(svc->devices, node->name);
        if (obj)
            device_signals_node_event(obj->signals, event);
        announce_changes(svc, node);
        break;
    }
    }
}

/* ------------------------------------------------------------------ the manager */

static void return_error(GDBusMethodInvocation *inv, const GError *err)
{
    g_dbus_method_invocation_return_dbus_error(inv, vdpad_dbus_error_name(err), err->message);
}

static void list_devices(struct dbus_service *svc, GDBusMethodInvocation *inv)
{
    g_autoptr(GPtrArray) nodes = node_registry_list(svc->reg);
    GVariantBuilder b;

    g_variant_builder_init(&b, G_VARIANT_TYPE("ao"));
    for (guint i = 0; i < nodes->len; i++) {
        struct vdpa_node *node = nodes->pdata[i];
        g_autofree char *path = vdpad_dbus_device_path(node->name);
        g_variant_builder_add(&b, "o", path);
    }
    g_dbus_method_invocation_return_value(inv, g_variant_new("(ao)", &b));
}

static void get_device(struct dbus_service *svc, GDBusMethodInvocation *inv, const char *name)
{
    g_autoptr(GError) err = NULL;

    if (!node_registry_lookup(svc->reg, name)) {
        vdpad_fail(&err, ENOENT, "no device named %s", name);
        return_error(inv, err);
        return;
    }
    g_autofree char *path = vdpad_dbus_device_path(name);
    g_dbus_method_invocation_return_value(inv, g_variant_new("(o)", path));
}

/* The methods that change something, once the caller is known to be allowed: the
 * manager's CreateDevice and DestroyDevice, and a device's (device: its name). */
static void modify(struct dbus_service *svc, GDBusMethodInvocation *inv,
                   const struct dbus_caller *caller, const char *device)
{
    const char *method = g_dbus_method_invocation_get_method_name(inv);
    const char *arg;
    g_autoptr(GError) err = NULL;

    if (device) {
        g_autofree char *args = g_variant_print(g_dbus_method_invocation_get_parameters(inv),
                                                FALSE);
        g_message("D-Bus: %s.%s%s from uid %u, pid %d", device, method, args,
                  (unsigned)caller->uid, (int)caller->pid);
        dbus_migration_call(svc->migration, inv, device);
        return;
    }
    g_variant_get(g_dbus_method_invocation_get_parameters(inv), "(&s)", &arg);
    g_message("D-Bus: %s('%s') from uid %u, pid %d", method, arg, (unsigned)caller->uid,
              (int)caller->pid);
    if (g_str_equal(method, "CreateDevice")) {
        struct vdpa_node *node;
        if (node_registry_create(svc->reg, arg, &node, &err) < 0) {
            g_message("D-Bus: CreateDevice('%s') failed: %s", arg, err->message);
            return_error(inv, err);
            return;
        }
        g_autofree char *path = vdpad_dbus_device_path(node->name);
        g_dbus_method_invocation_return_value(inv, g_variant_new("(o)", path));
    } else {
        if (node_registry_destroy(svc->reg, arg, &err) < 0) {
            g_message("D-Bus: DestroyDevice('%s') failed: %s", arg, err->message);
            return_error(inv, err);
            return;
        }
        g_dbus_method_invocation_return_value(inv, NULL);
    }
}

struct pending_call {
    struct dbus_service *svc; /* not touched once the call is cancelled */
    GDBusMethodInvocation *inv;
    char *device;             /* a device's method: its name (the object may go meanwhile) */
};
typedef struct pending_call pending_call; /* for g_autoptr */

static void pending_call_free(struct pending_call *p)
{
    g_free(p->device);
    g_free(p);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC(pending_call, pending_call_free)

static void on_credentials(GObject *source, GAsyncResult *res, gpointer data)
{
    g_autoptr(pending_call) p = data;
    g_autoptr(GError) err = NULL;
    g_autoptr(GVariant) reply = g_dbus_connection_call_finish(G_DBUS_CONNECTION(source), res,
                                                              &err);
    const char *method = g_dbus_method_invocation_get_method_name(p->inv);

    if (!reply) {
        if (g_error_matches(err, G_IO_ERROR, G_IO_ERROR_CANCELLED))
            g_dbus_method_invocation_return_dbus_error(p->inv, VDPAD_DBUS_ERROR_FAILED,
                                                       "vdpad is stopping");
        else {
            g_autofree char *msg = g_strdup_printf(
                "%s: cannot learn who is calling from the bus: %s", method, err->message);
            g_dbus_method_invocation_return_dbus_error(p->inv, VDPAD_DBUS_ERROR_FAILED, msg);
        }
        return;
    }

    struct dbus_service *svc = p->svc;
    g_autoptr(GVariant) creds = g_variant_get_child_value(reply, 0);
    struct dbus_caller caller;
    if (!dbus_caller_from_credentials(creds, &caller)) {
        g_dbus_method_invocation_return_dbus_error(
            p->inv, VDPAD_DBUS_ERROR_ACCESS_DENIED,
            "the bus does not say which user is calling; only root and the group "
            VDPAD_GROUP " may change devices");
        return;
    }
    if (!dbus_access_may_modify(&caller, geteuid(), svc->has_group, svc->vdpad_gid)) {
        g_message("D-Bus: refused %s from uid %u, pid %d (neither root nor in group "
                  VDPAD_GROUP ")", method, (unsigned)caller.uid, (int)caller.pid);
        g_autofree char *msg = g_strdup_printf(
            "%s is only for root and members of the group " VDPAD_GROUP
            "; uid %u (pid %d) is neither", method, (unsigned)caller.uid, (int)caller.pid);
        g_dbus_method_invocation_return_dbus_error(p->inv, VDPAD_DBUS_ERROR_ACCESS_DENIED, msg);
    } else {
        modify(svc, p->inv, &caller, p->device);
    }
    dbus_caller_clear(&caller);
}

/* Asks the bus who the sender is, then runs modify() if it may. */
static void authorize_then_modify(struct dbus_service *svc, GDBusMethodInvocation *inv,
                                  const char *sender, const char *device)
{
    if (!sender) { /* not on a message bus: no way to know the caller */
        g_dbus_method_invocation_return_dbus_error(inv, VDPAD_DBUS_ERROR_ACCESS_DENIED,
                                                   "the caller has no bus name");
        return;
    }
    struct pending_call *p = g_new0(struct pending_call, 1);
    p->svc = svc;
    p->inv = inv;
    p->device = g_strdup(device);
    g_dbus_connection_call(svc->conn, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                           "org.freedesktop.DBus", "GetConnectionCredentials",
                           g_variant_new("(s)", sender), G_VARIANT_TYPE("(a{sv})"),
                           G_DBUS_CALL_FLAGS_NONE, BUS_CALL_TIMEOUT_MS, svc->cancel,
                           on_credentials, p);
}

static void manager_method(GDBusConnection *conn, const char *sender, const char *path,
                           const char *iface, const char *method, GVariant *params,
                           GDBusMethodInvocation *inv, gpointer data)
{
    struct dbus_service *svc = data;

    if (g_str_equal(method, "ListDevices")) {
        list_devices(svc, inv);
    } else if (g_str_equal(method, "GetDevice")) {
        const char *name;
        g_variant_get(params, "(&s)", &name);
        get_device(svc, inv, name);
    } else if (g_str_equal(method, "CreateDevice") || g_str_equal(method, "DestroyDevice")) {
        authorize_then_modify(svc, inv, sender, NULL);
    } else {
        g_dbus_method_invocation_return_error(inv, G_DBUS_ERROR, G_DBUS_ERROR_UNKNOWN_METHOD,
                                              "no method %s.%s", iface, method);
    }
}

static const GDBusInterfaceVTable manager_vtable = {
    .method_call = manager_method,
};

/* ------------------------------------------------------------------ start and stop */

static GDBusNodeInfo *load_interface(const char *resource_path, GError **error)
{
    g_autoptr(GError) local = NULL;
    g_autoptr(GBytes) xml = g_resource_lookup_data(vdpad_dbus_get_resource(), resource_path,
                                                   G_RESOURCE_LOOKUP_FLAGS_NONE, &local);
    GDBusNodeInfo *info = xml ? g_dbus_node_info_new_for_xml(g_bytes_get_data(xml, NULL), &local)
                              : NULL;

    if (!info || !info->interfaces || !info->interfaces[0]) {
        vdpad_fail(error, EINVAL, "introspection data %s: %s", resource_path,
                   local ? local->message : "no interface");
        g_clear_pointer(&info, g_dbus_node_info_unref);
    }
    return info;
}

static void on_bus_closed(GDBusConnection *conn, gboolean remote_peer_vanished, GError *err,
                          gpointer data)
{
    struct dbus_service *svc = data;

    g_warning("lost the connection to the %s (%s); the nodes are still served, but not on "
              "D-Bus", svc->bus_label, err ? err->message : "closed");
}

/* Takes org.vdpad1, or says who has it. */
static int own_name(struct dbus_service *svc, GError **error)
{
    g_autoptr(GError) local = NULL;
    g_autoptr(GVariant) reply = g_dbus_connection_call_sync(
        svc->conn, "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
        "RequestName", g_variant_new("(su)", VDPAD_DBUS_NAME, NAME_FLAG_DO_NOT_QUEUE),
        G_VARIANT_TYPE("(u)"), G_DBUS_CALL_FLAGS_NONE, BUS_CALL_TIMEOUT_MS, NULL, &local);

    if (!reply) {
        g_dbus_error_strip_remote_error(local);
        return vdpad_fail(error, EACCES, "cannot own the name " VDPAD_DBUS_NAME " on the %s: %s "
                          "(the system bus needs root and the policy file "
                          "dbus-1/system.d/org.vdpad1.conf installed)",
                          svc->bus_label, local->message);
    }
    guint32 code;
    g_variant_get(reply, "(u)", &code);
    if (code == NAME_REPLY_PRIMARY_OWNER || code == NAME_REPLY_ALREADY_OWNER)
        return 0;
    if (code == NAME_REPLY_EXISTS) {
        guint32 pid = 0;
        g_autoptr(GVariant) owner = g_dbus_connection_call_sync(
            svc->conn, "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
            "GetConnectionUnixProcessID", g_variant_new("(s)", VDPAD_DBUS_NAME),
            G_VARIANT_TYPE("(u)"), G_DBUS_CALL_FLAGS_NONE, BUS_CALL_TIMEOUT_MS, NULL, NULL);
        if (owner)
            g_variant_get(owner, "(u)", &pid);
        return vdpad_fail(error, EBUSY, "another process (pid %u) owns " VDPAD_DBUS_NAME
                          " on the %s; is another vdpad running?", pid, svc->bus_label);
    }
    return vdpad_fail(error, EIO, "RequestName(" VDPAD_DBUS_NAME ") on the %s answered %u",
                      svc->bus_label, code);
}

static struct dbus_service *start(const char *address, const char *bus_label,
                                  struct node_registry *reg, struct fuse_front *front,
                                  GError **error)
{
    g_autoptr(dbus_service) svc = g_new0(struct dbus_service, 1);
    g_autoptr(GError) local = NULL;

    svc->reg = reg;
    svc->front = front;
    svc->bus_label = g_strdup(bus_label);
    svc->devices = g_hash_table_new_full(g_str_hash, g_str_equal, NULL,
                                         (GDestroyNotify)device_obj_free);
    svc->cancel = g_cancellable_new();
    svc->migration = dbus_migration_new(reg);
    svc->has_group = dbus_access_lookup_group(&svc->vdpad_gid);
    svc->manager_info = load_interface(VDPAD_DBUS_RESOURCE_MANAGER_XML, error);
    if (!svc->manager_info)
        return NULL;
    svc->device_info = load_interface(VDPAD_DBUS_RESOURCE_DEVICE_XML, error);
    if (!svc->device_info)
        return NULL;

    /* A connection of our own: closing it at stop releases the name. */
    svc->conn = g_dbus_connection_new_for_address_sync(
        address,
        G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_CLIENT |
            G_DBUS_CONNECTION_FLAGS_MESSAGE_BUS_CONNECTION,
        NULL, NULL, &local);
    if (!svc->conn) {
        vdpad_fail(error, EIO, "cannot connect to the %s at %s: %s", bus_label, address,
                   local->message);
        return NULL;
    }
    g_dbus_connection_set_exit_on_close(svc->conn, FALSE);
    svc->closed_handler = g_signal_connect(svc->conn, "closed", G_CALLBACK(on_bus_closed), svc);

    /* The objects first, so that whoever sees the name also finds them. */
    svc->manager_id = g_dbus_connection_register_object(svc->conn, VDPAD_DBUS_MANAGER_PATH,
                                                        svc->manager_info->interfaces[0],
                                                        &manager_vtable, svc, NULL, &local);
    if (!svc->manager_id) {
        vdpad_fail(error, EIO, "cannot export " VDPAD_DBUS_MANAGER_PATH ": %s", local->message);
        return NULL;
    }
    g_autoptr(GPtrArray) nodes = node_registry_list(reg);
    for (guint i = 0; i < nodes->len; i++)
        export_device(svc, nodes->pdata[i]);
    node_registry_add_observer(reg, on_node_event, svc);
    svc->observing = TRUE;

    if (own_name(svc, error) < 0)
        return NULL;
    return g_steal_pointer(&svc);
}

struct dbus_service *dbus_service_start(GBusType bus, struct node_registry *reg,
                                        struct fuse_front *front, GError **error)
{
    const char *label = bus == G_BUS_TYPE_SYSTEM ? "system bus" : "session bus";
    g_autoptr(GError) local = NULL;
    g_autofree char *address = g_dbus_address_get_for_bus_sync(bus, NULL, &local);

    if (!address) {
        vdpad_fail(error, EIO, "cannot find the %s: %s", label, local->message);
        return NULL;
    }
    return start(address, label, reg, front, error);
}

struct dbus_service *dbus_service_start_address(const char *address, struct node_registry *reg,
                                                struct fuse_front *front, GError **error)
{
    g_autofree char *label = g_strdup_printf("bus at %s", address);

    return start(address, label, reg, front, error);
}

void dbus_service_set_migration(struct dbus_service *svc, struct mig_service *mig)
{
    dbus_migration_set_channel(svc->migration, mig);
}

void dbus_service_stop(struct dbus_service *svc)
{
    if (!svc)
        return;
    if (svc->cancel)
        g_cancellable_cancel(svc->cancel);
    g_clear_pointer(&svc->migration, dbus_migration_free); /* waits for source checks */
    if (svc->observing)
        node_registry_remove_observer(svc->reg, on_node_event, svc);
    if (svc->devices)
        g_hash_table_destroy(svc->devices); /* unexports */
    if (svc->conn) {
        if (svc->manager_id)
            g_dbus_connection_unregister_object(svc->conn, svc->manager_id);
        g_signal_handler_disconnect(svc->conn, svc->closed_handler);
        g_dbus_connection_close_sync(svc->conn, NULL, NULL);
        g_object_unref(svc->conn);
    }
    g_clear_object(&svc->cancel);
    g_clear_pointer(&svc->manager_info, g_dbus_node_info_unref);
    g_clear_pointer(&svc->device_info, g_dbus_node_info_unref);
    g_free(svc->bus_label);
    g_free(svc);
}
