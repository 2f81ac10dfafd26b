#include "config.h"

#include <inttypes.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_net.h>
#include <string.h>

#include "core/device_spec.h"
#include "migration/device_state.h"
#include "migration/json_read.h"
#include "util/error.h"

#define F(bit) (1ull << (bit))
#define MTU_MIN 68 /* the IPv4 minimum; virtio leaves the lower bound to the driver */
/* far beyond any real time, and below what json-c clamps an oversized number to */
#define STOPPED_AT_MAX (UINT64_C(1) << 62)

struct device_state *device_state_new(void)
{
    struct device_state *st = g_new0(struct device_state, 1);

    st->version = DEVICE_STATE_VERSION;
    return st;
}

void device_state_free(struct device_state *st)
{
    if (!st)
        return;
    g_free(st->device);
    g_free(st->token);
    g_free(st);
}

struct device_state *device_state_copy(const struct device_state *st)
{
    struct device_state *c = g_memdup2(st, sizeof(*st));

    c->device = g_strdup(st->device);
    c->token = g_strdup(st->token);
    return c;
}

/* ------------------------------------------------------------------ validation */

static bool token_valid(const char *t)
{
    size_t len = strlen(t);

    if (len == 0 || len > DEVICE_STATE_TOKEN_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if (t[i] < 0x21 || t[i] > 0x7e)
            return false;
    return true;
}

/* The net rules: a state net_state_apply can reach from net_state_reset under features,
 * so that net_state_replay reproduces it on the destination. */
static int validate_net(const struct device_state_net *n, uint64_t features, int errnum,
                        GError **error)
{
    const struct net_state *s = &n->state;
    bool mq = features & F(VIRTIO_NET_F_MQ), rx = features & F(VIRTIO_NET_F_CTRL_RX);
    bool rx_extra = features & F(VIRTIO_NET_F_CTRL_RX_EXTRA);

    if (n->max_queue_pairs < 1 || n->max_queue_pairs > DEVICE_STATE_MAX_QUEUE_PAIRS)
        return vdpad_fail(error, errnum, "net.max_queue_pairs: %u is out of range [1, %d]",
                          n->max_queue_pairs, DEVICE_STATE_MAX_QUEUE_PAIRS);
    if (n->max_queue_pairs > 1 && !mq)
        return vdpad_fail(error, errnum, "net.max_queue_pairs: %u without VIRTIO_NET_F_MQ",
                          n->max_queue_pairs);
    if (s->queue_pairs < 1 || s->queue_pairs > n->max_queue_pairs)
        return vdpad_fail(error, errnum, "net.queue_pairs: %u is out of range [1, "
                          "max_queue_pairs %u]", s->queue_pairs, n->max_queue_pairs);
    if (features & F(VIRTIO_NET_F_MTU)) {
        if (n->mtu < MTU_MIN)
            return vdpad_fail(error, errnum, "net.mtu: %u is out of range [%d, 65535]",
                              n->mtu, MTU_MIN);
    } else if (n->mtu != 0) {
        return vdpad_fail(error, errnum, "net.mtu: %u without VIRTIO_NET_F_MTU (must be 0)",
                          n->mtu);
    }
    if (s->n_uni > NET_STATE_MAC_TABLE_MAX || s->n_multi > NET_STATE_MAC_TABLE_MAX)
        return vdpad_fail(error, errnum, "net.%s: %u entries, more than %d",
                          s->n_uni > NET_STATE_MAC_TABLE_MAX ? "uni" : "multi",
                          MAX(s->n_uni, s->n_multi), NET_STATE_MAC_TABLE_MAX);
    /* a table overflows only when the driver sent more than it keeps (net_ctrl_parse) */
    bool uni_bad = s->uni_overflow && s->n_uni != NET_STATE_MAC_TABLE_MAX;
    if (uni_bad || (s->multi_overflow && s->n_multi != NET_STATE_MAC_TABLE_MAX))
        return vdpad_fail(error, errnum, "net.%s_overflow: set with %u entries (an overflowing "
                          "table keeps %d)", uni_bad ? "uni" : "multi",
                          uni_bad ? s->n_uni : s->n_multi, NET_STATE_MAC_TABLE_MAX);
    if (!rx) {
        const char *field = s->promisc ? "promisc" : !s->allmulti ? "allmulti"
                            : s->n_uni ? "uni" : s->n_multi ? "multi"
                            : s->uni_overflow ? "uni_overflow"
                            : s->multi_overflow ? "multi_overflow" : NULL;
        if (field)
            return vdpad_fail(error, errnum, "net.%s: set without VIRTIO_NET_F_CTRL_RX", field);
    }
    if (!rx_extra) {
        const char *field = s->alluni ? "alluni" : s->nomulti ? "nomulti"
                            : s->nouni ? "nouni" : s->nobcast ? "nobcast" : NULL;
        if (field)
            return vdpad_fail(error, errnum, "net.%s: set without VIRTIO_NET_F_CTRL_RX_EXTRA",
                              field);
    }
    if (!(features & F(VIRTIO_NET_F_CTRL_VLAN))) {
        for (size_t i = 0; i < G_N_ELEMENTS(s->vlan); i++)
            if (s->vlan[i])
                return vdpad_fail(error, errnum,
                                  "net.vlans: VLAN %d without VIRTIO_NET_F_CTRL_VLAN",
                                  (int)i * 32 + __builtin_ctz(s->vlan[i]));
    }
    uint64_t negotiated_offloads = features & NET_GUEST_OFFLOAD_FEATURES;
    if (s->guest_offloads & ~negotiated_offloads)
        return vdpad_fail(error, errnum, "net.guest_offloads: 0x%" PRIx64 " has bits beyond the "
                          "negotiated guest offloads 0x%" PRIx64, s->guest_offloads,
                          negotiated_offloads);
    if (s->guest_offloads != negotiated_offloads &&
        !(features & F(VIRTIO_NET_F_CTRL_GUEST_OFFLOADS)))
        return vdpad_fail(error, errnum, "net.guest_offloads: 0x%" PRIx64 " differs from the "
                          "negotiated 0x%" PRIx64 " without VIRTIO_NET_F_CTRL_GUEST_OFFLOADS",
                          s->guest_offloads, negotiated_offloads);
    return 0;
}

static int validate(const struct device_state *st, int errnum, GError **error)
{
    if (st->version != DEVICE_STATE_VERSION)
        return vdpad_fail(error, EPROTONOSUPPORT, "version: %u is not supported (this vdpad "
                          "reads version %d)", st->version, DEVICE_STATE_VERSION);
    if (!st->device || !device_name_valid(st->device)) {
        g_autofree char *q = st->device ? jr_quote(st->device, strlen(st->device), 80) : NULL;
        return vdpad_fail(error, errnum, "device: '%s' is not a device name (1-64 of "
                          "A-Z a-z 0-9 _ . -, not starting with '.')", q ? q : "(none)");
    }
    if (st->virtio_id != VIRTIO_ID_NET)
        return vdpad_fail(error, errnum, "device_id: %u is not supported (version %d carries "
                          "net devices, id %d)", st->virtio_id, DEVICE_STATE_VERSION,
                          VIRTIO_ID_NET);
    if (st->stopped_at_us <= 0)
        return vdpad_fail(error, errnum, "stopped_at_us: %" PRId64 " is not a time",
                          st->stopped_at_us);
    if (!st->token || !token_valid(st->token))
        return vdpad_fail(error, errnum, "token: must be 1-%d printable ASCII characters "
                          "without spaces", DEVICE_STATE_TOKEN_MAX);
    return validate_net(&st->net, st->features, errnum, error);
}

int device_state_validate(const struct device_state *st, GError **error)
{
    return validate(st, EINVAL, error);
}

/* ------------------------------------------------------------------ encoding */

static struct json_object *mac_json(const uint8_t mac[6])
{
    char text[18];

    g_snprintf(text, sizeof(text), "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2],
               mac[3], mac[4], mac[5]);
    return json_object_new_string(text);
}

static struct json_object *hex64_json(uint64_t v)
{
    char text[19];

    g_snprintf(text, sizeof(text), "0x%016" PRIx64, v);
    return json_object_new_string(text);
}

static struct json_object *mac_list_json(const uint8_t (*macs)[6], unsigned n)
{
    struct json_object *a = json_object_new_array_ext((int)n);

    for (unsigned i = 0; i < n; i++)
        json_object_array_add(a, mac_json(macs[i]));
    return a;
}

static struct json_object *net_json(const struct device_state_net *n)
{
    const struct net_state *s = &n->state;
    struct json_object *o = json_object_new_object();
    struct json_object *vlans = json_object_new_array();

    json_object_object_add(o, "max_queue_pairs", json_object_new_int(n->max_queue_pairs));
    json_object_object_add(o, "mtu", json_object_new_int(n->mtu));
    json_object_object_add(o, "mac", mac_json(s->mac));
    json_object_object_add(o, "queue_pairs", json_object_new_int(s->queue_pairs));
    json_object_object_add(o, "promisc", json_object_new_boolean(s->promisc));
    json_object_object_add(o, "allmulti", json_object_new_boolean(s->allmulti));
    json_object_object_add(o, "alluni", json_object_new_boolean(s->alluni));
    json_object_object_add(o, "nomulti", json_object_new_boolean(s->nomulti));
    json_object_object_add(o, "nouni", json_object_new_boolean(s->nouni));
    json_object_object_add(o, "nobcast", json_object_new_boolean(s->nobcast));
    json_object_object_add(o, "uni", mac_list_json(s->uni, s->n_uni));
    json_object_object_add(o, "uni_overflow", json_object_new_boolean(s->uni_overflow));
    json_object_object_add(o, "multi", mac_list_json(s->multi, s->n_multi));
    json_object_object_add(o, "multi_overflow", json_object_new_boolean(s->multi_overflow));
    for (int vid = 0; vid < NET_STATE_VLAN_MAX; vid++)
        if (s->vlan[vid / 32] & (1u << (vid % 32)))
            json_object_array_add(vlans, json_object_new_int(vid));
    json_object_object_add(o, "vlans", vlans);
    json_object_object_add(o, "guest_offloads", hex64_json(s->guest_offloads));
    return o;
}

struct json_object *device_state_to_json(const struct device_state *st, GError **error)
{
    if (device_state_validate(st, error) < 0)
        return NULL;
    struct json_object *o = json_object_new_object();

    json_object_object_add(o, "version", json_object_new_int((int)st->version));
    json_object_object_add(o, "device", json_object_new_string(st->device));
    json_object_object_add(o, "device_id", json_object_new_int((int)st->virtio_id));
    json_object_object_add(o, "features", hex64_json(st->features));
    json_object_object_add(o, "stopped_at_us", json_object_new_int64(st->stopped_at_us));
    json_object_object_add(o, "token", json_object_new_string(st->token));
    json_object_object_add(o, "net", net_json(&st->net));
    return o;
}

char *device_state_encode(const struct device_state *st, size_t *len, GError **error)
{
    struct json_object *o = device_state_to_json(st, error);

    return o ? jr_text(o, len) : NULL;
}

/* ------------------------------------------------------------------ decoding */

static bool parse_mac(const char *s, uint8_t mac[6])
{
    if (strlen(s) != 17)
        return false;
    for (int i = 0; i < 6; i++) {
        const char *p = s + i * 3;
        if (!g_ascii_isxdigit(p[0]) || !g_ascii_isxdigit(p[1]) || (i < 5 && p[2] != ':'))
            return false;
        mac[i] = (uint8_t)(g_ascii_xdigit_value(p[0]) << 4 | g_ascii_xdigit_value(p[1]));
    }
    return true;
}

static int get_mac(struct json_object *obj, const char *path, const char *key, uint8_t mac[6],
                   GError **error)
{
    const char *s;
    int ret = jr_get_string(obj, path, key, 64, &s, error);

    if (ret < 0)
        return ret;
    if (!parse_mac(s, mac)) {
        g_autofree char *name = jr_path(path, key);
        g_autofree char *q = jr_quote(s, strlen(s), 32);
        return vdpad_fail(error, EBADMSG, "%s: '%s' is not a MAC address (6 bytes, "
                          "xx:xx:xx:xx:xx:xx)", name, q);
    }
    return 0;
}

static int get_mac_list(struct json_object *obj, const char *path, const char *key,
                        uint8_t (*macs)[6], unsigned *n, GError **error)
{
    struct json_object *a;
    int ret = jr_get_array(obj, path, key, NET_STATE_MAC_TABLE_MAX, &a, error);

    if (ret < 0)
        return ret;
    size_t len = json_object_array_length(a);
    for (size_t i = 0; i < len; i++) {
        g_autofree char *name = g_strdup_printf("%s.%s[%zu]", path, key, i);
        struct json_object *e = json_object_array_get_idx(a, i);
        /* wrap the element so the string getter names it */
        if (!json_object_is_type(e, json_type_string))
            return vdpad_fail(error, EBADMSG, "%s: a JSON %s where a string was expected",
                              name, json_type_to_name(json_object_get_type(e)));
        const char *s = json_object_get_string(e);
        if ((size_t)json_object_get_string_len(e) != strlen(s) || !parse_mac(s, macs[i])) {
            g_autofree char *q = jr_quote(s, (size_t)json_object_get_string_len(e), 32);
            return vdpad_fail(error, EBADMSG, "%s: '%s' is not a MAC address (6 bytes, "
                              "xx:xx:xx:xx:xx:xx)", name, q);
        }
    }
    *n = (unsigned)len;
    return 0;
}

static int get_vlans(struct json_object *obj, uint32_t *bitmap, GError **error)
{
    struct json_object *a;
    int ret = jr_get_array(obj, "net", "vlans", NET_STATE_VLAN_MAX, &a, error);

    if (ret < 0)
        return ret;
    size_t len = json_object_array_length(a);
    int64_t prev = -1;
    for (size_t i = 0; i < len; i++) {
        struct json_object *e = json_object_array_get_idx(a, i);
        if (!json_object_is_type(e, json_type_int))
            return vdpad_fail(error, EBADMSG, "net.vlans[%zu]: a JSON %s where an integer was "
                              "expected", i, json_type_to_name(json_object_get_type(e)));
        int64_t vid = json_object_get_int64(e);
        if (vid < 0 || vid >= NET_STATE_VLAN_MAX)
            return vdpad_fail(error, EBADMSG, "net.vlans[%zu]: %" PRId64 " is not a VLAN id "
                              "[0, %d]", i, vid, NET_STATE_VLAN_MAX - 1);
        if (vid <= prev)
            return vdpad_fail(error, EBADMSG, "net.vlans[%zu]: %" PRId64 " after %" PRId64
                              ": the list must be strictly ascending", i, vid, prev);
        bitmap[vid / 32] |= 1u << (vid % 32);
        prev = vid;
    }
    return 0;
}

static const char *const top_keys[] = { "version", "device", "device_id", "features",
                                        "stopped_at_us", "token", "net", NULL };
static const char *const net_keys[] = {
    "max_queue_pairs", "mtu", "mac", "queue_pairs", "promisc", "allmulti", "alluni", "nomulti",
    "nouni", "nobcast", "uni", "uni_overflow", "multi", "multi_overflow", "vlans",
    "guest_offloads", NULL
};

static int net_from_json(struct json_object *o, struct device_state_net *n, GError **error)
{
    struct net_state *s = &n->state;
    uint64_t v;
    int ret;

    if ((ret = jr_only_keys(o, "net", net_keys, error)) < 0)
        return ret;
    if ((ret = jr_get_uint(o, "net", "max_queue_pairs", 1, DEVICE_STATE_MAX_QUEUE_PAIRS, &v,
                           error)) < 0)
        return ret;
    n->max_queue_pairs = (uint16_t)v;
    if ((ret = jr_get_uint(o, "net", "mtu", 0, UINT16_MAX, &v, error)) < 0)
        return ret;
    n->mtu = (uint16_t)v;
    if ((ret = get_mac(o, "net", "mac", s->mac, error)) < 0)
        return ret;
    if ((ret = jr_get_uint(o, "net", "queue_pairs", 1, DEVICE_STATE_MAX_QUEUE_PAIRS, &v,
                           error)) < 0)
        return ret;
    s->queue_pairs = (uint16_t)v;
    struct {
        const char *key;
        bool *flag;
    } flags[] = {
        { "promisc", &s->promisc },           { "allmulti", &s->allmulti },
        { "alluni", &s->alluni },             { "nomulti", &s->nomulti },
        { "nouni", &s->nouni },               { "nobcast", &s->nobcast },
        { "uni_overflow", &s->uni_overflow }, { "multi_overflow", &s->multi_overflow },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(flags); i++)
        if ((ret = jr_get_bool(o, "net", flags[i].key, flags[i].flag, error)) < 0)
            return ret;
    if ((ret = get_mac_list(o, "net", "uni", s->uni, &s->n_uni, error)) < 0 ||
        (ret = get_mac_list(o, "net", "multi", s->multi, &s->n_multi, error)) < 0 ||
        (ret = get_vlans(o, s->vlan, error)) < 0 ||
        (ret = jr_get_hex64(o, "net", "guest_offloads", &s->guest_offloads, error)) < 0)
        return ret;
    return 0;
}

struct device_state *device_state_from_json(struct json_object *obj, const char *path,
                                            GError **error)
{
    g_autoptr(device_state) st = device_state_new();
    struct json_object *net;
    const char *s;
    uint64_t v;

    /* the version first: a newer format is reported as that, not as its first new field */
    if (jr_get_uint(obj, NULL, "version", 0, UINT32_MAX, &v, error) < 0)
        goto fail;
    if (v != DEVICE_STATE_VERSION) {
        vdpad_fail(error, EPROTONOSUPPORT, "version: %" PRIu64 " is not supported (this vdpad "
                   "reads version %d)", v, DEVICE_STATE_VERSION);
        goto fail;
    }
    st->version = (unsigned)v;
    if (jr_only_keys(obj, NULL, top_keys, error) < 0 ||
        jr_get_string(obj, NULL, "device", 64, &s, error) < 0)
        goto fail;
    st->device = g_strdup(s);
    if (jr_get_uint(obj, NULL, "device_id", 0, UINT32_MAX, &v, error) < 0)
        goto fail;
    st->virtio_id = (uint32_t)v;
    if (jr_get_hex64(obj, NULL, "features", &st->features, error) < 0 ||
        jr_get_uint(obj, NULL, "stopped_at_us", 1, STOPPED_AT_MAX, &v, error) < 0)
        goto fail;
    st->stopped_at_us = (int64_t)v;
    if (jr_get_string(obj, NULL, "token", DEVICE_STATE_TOKEN_MAX, &s, error) < 0)
        goto fail;
    st->token = g_strdup(s);
    if (jr_get_object(obj, NULL, "net", &net, error) < 0 ||
        net_from_json(net, &st->net, error) < 0 || validate(st, EBADMSG, error) < 0)
        goto fail;
    return g_steal_pointer(&st);

fail:
    if (path && path[0])
        vdpad_prefix_error(error, "%s.", path);
    return NULL;
}

struct device_state *device_state_decode(const char *text, size_t len, GError **error)
{
    struct json_object *obj = jr_parse_object(text, len, "device state", error);

    if (!obj)
        return NULL;
    struct device_state *st = device_state_from_json(obj, NULL, error);
    json_object_put(obj);
    if (!st)
        vdpad_prefix_error(error, "device state: ");
    return st;
}

bool device_state_equal(const struct device_state *a, const struct device_state *b)
{
    return a->version == b->version && g_strcmp0(a->device, b->device) == 0 &&
           a->virtio_id == b->virtio_id && a->features == b->features &&
           a->stopped_at_us == b->stopped_at_us && g_strcmp0(a->token, b->token) == 0 &&
           a->net.max_queue_pairs == b->net.max_queue_pairs && a->net.mtu == b->net.mtu &&
           net_state_equal(&a->net.state, &b->net.state);
}
