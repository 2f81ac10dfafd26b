#include "config.h"

#include <endian.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_net.h>
#include <stddef.h>

#include "dbus/device_props.h"

const char *device_props_mode(const struct vdpa_node *node)
{
    return node->session && node->mode == SESSION_RELAY ? "relay" : "passthrough";
}

static bool is_net(struct vdpa_device *dev)
{
    return dev->ops->get_device_id(dev) == VIRTIO_ID_NET;
}

static bool offers(struct vdpa_device *dev, unsigned bit)
{
    return dev->ops->get_device_features(dev) & (1ull << bit);
}

static char *net_mac(struct vdpa_device *dev)
{
    uint8_t mac[6];

    if (!is_net(dev) || !offers(dev, VIRTIO_NET_F_MAC) ||
        dev->ops->get_config_size(dev) < offsetof(struct virtio_net_config, mac) + sizeof(mac))
        return g_strdup("");
    dev->ops->get_config(dev, offsetof(struct virtio_net_config, mac), mac, sizeof(mac));
    return g_strdup_printf("%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3],
                           mac[4], mac[5]);
}

/* The pairs the device offers; the pairs a driver enabled (VQ_PAIRS_SET on the control
 * queue) are the net model's, not visible here yet. */
static guint32 net_queue_pairs(struct vdpa_device *dev)
{
    const unsigned off = offsetof(struct virtio_net_config, max_virtqueue_pairs);
    uint16_t pairs;

    if (!is_net(dev))
        return 0;
    if (!offers(dev, VIRTIO_NET_F_MQ) || dev->ops->get_config_size(dev) < off + sizeof(pairs))
        return 1;
    dev->ops->get_config(dev, off, &pairs, sizeof(pairs));
    return le16toh(pairs); /* config space is little-endian (VIRTIO_F_VERSION_1) */
}

char *device_props_incoming(const struct vdpa_node *node)
{
    if (!node->incoming)
        return g_strdup("");
    return g_strdup_printf("%s %s", node->incoming->source, node->incoming->device);
}

guint64 device_props_dirty_marks(struct vdpa_node *node)
{
    return node->session ? session_dirty_marks(node->session) : 0;
}

GVariant *device_props_state(struct vdpa_node *node, const char *node_path)
{
    struct vdpa_device *dev = node->dev;
    struct session *s = node->session;
    g_autofree char *mac = net_mac(dev);
    g_autofree char *incoming = device_props_incoming(node);
    GVariantBuilder b;

    g_variant_builder_init(&b, G_VARIANT_TYPE_VARDICT);
    /* sorted by name, so that two states compare entry by entry */
    g_variant_builder_add(&b, "{sv}", "Backend", g_variant_new_string(dev->backend));
    g_variant_builder_add(&b, "{sv}", "Features",
                          g_variant_new_uint64(s ? dev->ops->get_driver_features(dev) : 0));
    g_variant_builder_add(&b, "{sv}", "Incoming", g_variant_new_string(incoming));
    g_variant_builder_add(&b, "{sv}", "MAC", g_variant_new_string(mac));
    g_variant_builder_add(&b, "{sv}", "MigrationToken",
                          g_variant_new_string(s ? node->token : ""));
    g_variant_builder_add(&b, "{sv}", "Mode", g_variant_new_string(device_props_mode(node)));
    g_variant_builder_add(&b, "{sv}", "Name", g_variant_new_string(node->name));
    g_variant_builder_add(&b, "{sv}", "NodePath", g_variant_new_string(node_path));
    g_variant_builder_add(&b, "{sv}", "OpenerPid",
                          g_variant_new_uint32(s ? (guint32)session_opener(s) : 0));
    g_variant_builder_add(&b, "{sv}", "OwnerPid",
                          g_variant_new_uint32(s ? (guint32)session_owner(s) : 0));
    g_variant_builder_add(&b, "{sv}", "QueuePairs", g_variant_new_uint32(net_queue_pairs(dev)));
    g_variant_builder_add(&b, "{sv}", "Status", g_variant_new_byte(dev->ops->get_status(dev)));
    g_variant_builder_add(&b, "{sv}", "Type",
                          g_variant_new_string(device_kind_name(node->spec->kind)));
    return g_variant_ref_sink(g_variant_builder_end(&b));
}

GVariant *device_props_queue_counters(struct vdpa_node *node)
{
    struct vdpa_device *dev = node->dev;
    unsigned nvqs = dev->ops->get_vq_count(dev);
    GVariantBuilder b;

    g_variant_builder_init(&b, G_VARIANT_TYPE("a(ua{st})"));
    for (unsigned i = 0; i < nvqs; i++) {
        struct vdpa_vq_stats stats = { 0 };

        g_variant_builder_open(&b, G_VARIANT_TYPE("(ua{st})"));
        g_variant_builder_add(&b, "u", (guint32)i);
        g_variant_builder_open(&b, G_VARIANT_TYPE("a{st}"));
        if (dev->ops->get_vq_stats && dev->ops->get_vq_stats(dev, i, &stats, NULL) == 0) {
            for (unsigned k = 0; k < stats.n && k < VDPA_VQ_STATS_MAX; k++)
                g_variant_builder_add(&b, "{st}", stats.entry[k].name,
                                      (guint64)stats.entry[k].value);
        }
        g_variant_builder_close(&b);
        g_variant_builder_close(&b);
    }
    return g_variant_ref_sink(g_variant_builder_end(&b));
}

GVariant *device_props_get(struct vdpa_node *node, const char *node_path, const char *name)
{
    if (g_str_equal(name, "QueueCounters"))
        return device_props_queue_counters(node);
    if (g_str_equal(name, "DirtyMarks"))
        return g_variant_ref_sink(g_variant_new_uint64(device_props_dirty_marks(node)));
    g_autoptr(GVariant) state = device_props_state(node, node_path);
    return g_variant_lookup_value(state, name, NULL);
}

GVariant *device_props_changed(GVariant *before, GVariant *now)
{
    GVariantBuilder b;
    GVariantIter it;
    const char *key;
    GVariant *value;
    gboolean any = FALSE;

    g_variant_builder_init(&b, G_VARIANT_TYPE_VARDICT);
    g_variant_iter_init(&it, now);
    while (g_variant_iter_loop(&it, "{&sv}", &key, &value)) {
        g_autoptr(GVariant) old = before ? g_variant_lookup_value(before, key, NULL) : NULL;
        if (old && g_variant_equal(old, value))
            continue;
        g_variant_builder_add(&b, "{sv}", key, value);
        any = TRUE;
    }
    if (!any) {
        g_variant_builder_clear(&b);
        return NULL;
    }
    return g_variant_ref_sink(g_variant_builder_end(&b));
}
