#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "core/device_spec.h"
#include "util/error.h"

#define DEFAULT_BLK_SIZE (128ull << 20)

const char *device_kind_name(enum device_kind kind)
{
    switch (kind) {
    case DEVICE_SIM_NET: return "net";
    case DEVICE_SIM_BLK: return "blk";
    case DEVICE_KERNEL: return "kernel";
    }
    return "?";
}

gboolean device_name_valid(const char *name)
{
    size_t len = strlen(name);

    if (len == 0 || len > 64 || name[0] == '.')
        return FALSE;
    for (size_t i = 0; i < len; i++)
        if (!g_ascii_isalnum(name[i]) && !strchr("_.-", name[i]))
            return FALSE;
    return TRUE;
}

void device_spec_free(struct device_spec *spec)
{
    if (!spec)
        return;
    g_free(spec->name);
    g_free(spec->text);
    g_free(spec->path);
    g_free(spec);
}

static gboolean parse_u64(const char *s, int base, uint64_t *out)
{
    char *end;

    if (!*s || *s == '-' || g_ascii_isspace(*s))
        return FALSE;
    errno = 0;
    guint64 v = g_ascii_strtoull(s, &end, base);
    if (errno || *end)
        return FALSE;
    *out = v;
    return TRUE;
}

/* "128M", "1G", "4096", "512K": bytes */
static gboolean parse_size(const char *s, uint64_t *out)
{
    g_autofree char *num = g_strdup(s);
    size_t len = strlen(num);
    unsigned shift = 0;

    if (len > 0) {
        switch (g_ascii_toupper(num[len - 1])) {
        case 'K': shift = 10; break;
        case 'M': shift = 20; break;
        case 'G': shift = 30; break;
        case 'T': shift = 40; break;
        }
        if (shift)
            num[len - 1] = '\0';
    }
    uint64_t v;
    if (!parse_u64(num, 10, &v) || v > (UINT64_MAX >> shift))
        return FALSE;
    *out = v << shift;
    return TRUE;
}

static gboolean parse_mac(const char *s, uint8_t mac[6])
{
    unsigned b[6];
    char tail;

    if (strlen(s) != 17 ||
        sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%c", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5], &tail) != 6)
        return FALSE;
    for (int i = 0; i < 6; i++) {
        if (!g_ascii_isxdigit(s[i * 3]) || !g_ascii_isxdigit(s[i * 3 + 1]))
            return FALSE;
        mac[i] = (uint8_t)b[i];
    }
    return !(mac[0] & 1); /* a device address is unicast */
}

/* Which keys each kind takes. */
static gboolean key_allowed(enum device_kind kind, const char *key)
{
    static const char *const net[] = { "mac", "queues", "mtu", "features", NULL };
    static const char *const blk[] = { "size", "queues", "features", NULL };
    static const char *const kernel[] = { "path", NULL };
    const char *const *keys = kind == DEVICE_SIM_NET ? net : kind == DEVICE_SIM_BLK ? blk : kernel;

    return g_strv_contains(keys, key);
}

static int apply_key(struct device_spec *spec, const char *key, const char *value, GError **error)
{
    uint64_t v;

    if (g_str_equal(key, "mac")) {
        if (!parse_mac(value, spec->mac))
            return vdpad_fail(error, EINVAL, "device %s: mac '%s' is not a unicast MAC address "
                              "like 52:54:00:12:34:56", spec->name, value);
        spec->has_mac = TRUE;
    } else if (g_str_equal(key, "queues")) {
        if (!parse_u64(value, 10, &v) || v < 1 || v > 16)
            return vdpad_fail(error, EINVAL, "device %s: queues '%s' is not in 1..16", spec->name,
                              value);
        spec->queues = (unsigned)v;
    } else if (g_str_equal(key, "mtu")) {
        if (!parse_u64(value, 10, &v) || v < 68 || v > 65535)
            return vdpad_fail(error, EINVAL, "device %s: mtu '%s' is not in 68..65535", spec->name,
                              value);
        spec->mtu = (unsigned)v;
    } else if (g_str_equal(key, "features")) {
        const char *hex = g_str_has_prefix(value, "0x") ? value + 2 : NULL;
        if (!hex || !parse_u64(hex, 16, &v) || v == 0)
            return vdpad_fail(error, EINVAL, "device %s: features '%s' is not a nonzero hex mask "
                              "like 0x1000000", spec->name, value);
        spec->features = v;
    } else if (g_str_equal(key, "size")) {
        if (!parse_size(value, &v) || v == 0 || v % 512)
            return vdpad_fail(error, EINVAL, "device %s: size '%s' is not a nonzero multiple of "
                              "512 bytes (suffixes K, M, G, T)", spec->name, value);
        spec->size = v;
    } else if (g_str_equal(key, "path")) {
        if (value[0] != '/')
            return vdpad_fail(error, EINVAL, "device %s: path '%s' is not absolute", spec->name,
                              value);
        g_free(spec->path);
        spec->path = g_strdup(value);
    }
    return 0;
}

struct device_spec *device_spec_parse(const char *text, GError **error)
{
    g_autoptr(device_spec) spec = g_new0(struct device_spec, 1);
    const char *colon = strchr(text, ':');

    if (!colon) {
        vdpad_fail(error, EINVAL, "device spec '%s': expected TYPE:NAME[,key=value...] with "
                   "TYPE net, blk or kernel", text);
        return NULL;
    }
    g_autofree char *kind = g_strndup(text, colon - text);
    if (g_str_equal(kind, "net"))
        spec->kind = DEVICE_SIM_NET;
    else if (g_str_equal(kind, "blk"))
        spec->kind = DEVICE_SIM_BLK;
    else if (g_str_equal(kind, "kernel"))
        spec->kind = DEVICE_KERNEL;
    else {
        vdpad_fail(error, EINVAL, "device spec '%s': unknown type '%s' (net, blk or kernel)",
                   text, kind);
        return NULL;
    }
    spec->text = g_strdup(text);

    g_auto(GStrv) parts = g_strsplit(colon + 1, ",", -1);
    if (!parts[0] || !device_name_valid(parts[0])) {
        vdpad_fail(error, EINVAL, "device spec '%s': name '%s' must be 1-64 characters of "
                   "A-Z a-z 0-9 _ . - and not start with '.'", text, parts[0] ? parts[0] : "");
        return NULL;
    }
    spec->name = g_strdup(parts[0]);

    g_autoptr(GHashTable) seen = g_hash_table_new(g_str_hash, g_str_equal);
    for (int i = 1; parts[i]; i++) {
        char *eq = strchr(parts[i], '=');
        if (!eq || eq == parts[i]) {
            vdpad_fail(error, EINVAL, "device %s: '%s' is not key=value", spec->name, parts[i]);
            return NULL;
        }
        *eq = '\0';
        const char *key = parts[i], *value = eq + 1;
        if (!key_allowed(spec->kind, key)) {
            vdpad_fail(error, EINVAL, "device %s: key '%s' is not one a %s device takes",
                       spec->name, key, kind);
            return NULL;
        }
        if (!g_hash_table_add(seen, (gpointer)key)) {
            vdpad_fail(error, EINVAL, "device %s: key '%s' given twice", spec->name, key);
            return NULL;
        }
        if (apply_key(spec, key, value, error) < 0)
            return NULL;
    }
    if (spec->kind == DEVICE_KERNEL && !spec->path) {
        vdpad_fail(error, EINVAL, "device %s: a kernel device needs path=/dev/vhost-vdpa-N",
                   spec->name);
        return NULL;
    }
    if (spec->kind == DEVICE_SIM_BLK && spec->size == 0)
        spec->size = DEFAULT_BLK_SIZE;
    return g_steal_pointer(&spec);
}

GPtrArray *device_spec_load_config(const char *path, GError **error)
{
    g_autoptr(GKeyFile) kf = g_key_file_new();
    g_autoptr(GError) local = NULL;

    if (!g_key_file_load_from_file(kf, path, G_KEY_FILE_NONE, &local)) {
        vdpad_fail(error, EINVAL, "config %s: %s", path, local->message);
        return NULL;
    }
    g_autoptr(GPtrArray) specs = g_ptr_array_new_with_free_func(g_free);
    g_auto(GStrv) groups = g_key_file_get_groups(kf, NULL);
    for (int i = 0; groups[i]; i++) {
        if (!g_str_has_prefix(groups[i], "device ")) {
            vdpad_fail(error, EINVAL, "config %s: unknown group [%s]; devices are [device NAME]",
                       path, groups[i]);
            return NULL;
        }
        const char *name = groups[i] + strlen("device ");
        g_autofree char *type = g_key_file_get_string(kf, groups[i], "type", NULL);
        if (!type) {
            vdpad_fail(error, EINVAL, "config %s: [%s] has no type= (net, blk or kernel)", path,
                       groups[i]);
            return NULL;
        }
        GString *spec = g_string_new(NULL);
        g_string_printf(spec, "%s:%s", type, name);
        g_auto(GStrv) keys = g_key_file_get_keys(kf, groups[i], NULL, NULL);
        for (int k = 0; keys && keys[k]; k++) {
            if (g_str_equal(keys[k], "type"))
                continue;
            g_autofree char *value = g_key_file_get_string(kf, groups[i], keys[k], NULL);
            if (value && strchr(value, ',')) {
                g_string_free(spec, TRUE);
                vdpad_fail(error, EINVAL, "config %s: [%s] %s='%s' contains a comma", path,
                           groups[i], keys[k], value);
                return NULL;
            }
            g_string_append_printf(spec, ",%s=%s", keys[k], value ? value : "");
        }
        g_ptr_array_add(specs, g_string_free(spec, FALSE));
    }
    return g_steal_pointer(&specs);
}
