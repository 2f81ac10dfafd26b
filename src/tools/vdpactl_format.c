#include "config.h"

#include <inttypes.h>
#include <math.h>
#include <string.h>

#include "tools/vdpactl_format.h"

/* A property as text: strings as they are ("-" when empty), numbers in decimal. */
static char *prop_text(GVariant *device, const char *name)
{
    g_autoptr(GVariant) v = g_variant_lookup_value(device, name, NULL);

    if (!v)
        return g_strdup("-");
    if (g_variant_is_of_type(v, G_VARIANT_TYPE_STRING)) {
        const char *s = g_variant_get_string(v, NULL);
        return g_strdup(*s ? s : "-");
    }
    if (g_variant_is_of_type(v, G_VARIANT_TYPE_UINT32))
        return g_strdup_printf("%" PRIu32, g_variant_get_uint32(v));
    if (g_variant_is_of_type(v, G_VARIANT_TYPE_UINT64))
        return g_strdup_printf("%" PRIu64, g_variant_get_uint64(v));
    if (g_variant_is_of_type(v, G_VARIANT_TYPE_BYTE))
        return g_strdup_printf("%u", g_variant_get_byte(v));
    return g_variant_print(v, FALSE);
}

/* A pid as text: "-" for 0 (nobody). */
static char *pid_text(GVariant *device, const char *name)
{
    guint32 pid = 0;

    if (!g_variant_lookup(device, name, "u", &pid) || pid == 0)
        return g_strdup("-");
    return g_strdup_printf("%" PRIu32, pid);
}

char *vdpactl_format_table(GPtrArray *devices)
{
    static const char *const headers[] = { "NAME", "TYPE", "BACKEND", "MODE", "NODE", "OPENER",
                                           "MAC" };
    static const char *const props[] = { "Name", "Type", "Backend", "Mode", "NodePath",
                                         "OpenerPid", "MAC" };
    enum { NCOLS = G_N_ELEMENTS(headers) };
    g_autoptr(GPtrArray) cells = g_ptr_array_new_with_free_func(g_free); /* row-major */
    size_t width[NCOLS];
    GString *out = g_string_new(NULL);

    for (unsigned c = 0; c < NCOLS; c++) {
        width[c] = strlen(headers[c]);
        g_ptr_array_add(cells, g_strdup(headers[c]));
    }
    for (guint r = 0; r < devices->len; r++) {
        GVariant *dev = devices->pdata[r];
        for (unsigned c = 0; c < NCOLS; c++) {
            char *text = g_str_equal(props[c], "OpenerPid") ? pid_text(dev, props[c])
                                                             : prop_text(dev, props[c]);
            width[c] = MAX(width[c], strlen(text));
            g_ptr_array_add(cells, text);
        }
    }
    for (guint i = 0; i < cells->len; i++) {
        unsigned c = i % NCOLS;
        const char *text = cells->pdata[i];
        if (c + 1 < NCOLS)
            g_string_append_printf(out, "%-*s  ", (int)width[c], text);
        else
            g_string_append_printf(out, "%s\n", text);
    }
    return g_string_free(out, FALSE);
}

char *vdpactl_format_status(guint8 status)
{
    static const struct { guint8 bit; const char *name; } bits[] = {
        { 1, "ACKNOWLEDGE" }, { 2, "DRIVER" }, { 8, "FEATURES_OK" }, { 4, "DRIVER_OK" },
        { 64, "NEEDS_RESET" }, { 128, "FAILED" },
    };
    GString *out = g_string_new(NULL);
    guint8 known = 0;

    g_string_printf(out, "0x%02x (", status);
    if (status == 0)
        g_string_append(out, "reset");
    for (unsigned i = 0; i < G_N_ELEMENTS(bits); i++) {
        known |= bits[i].bit;
        if (status & bits[i].bit)
            g_string_append_printf(out, "%s%s", out->str[out->len - 1] == '(' ? "" : " ",
                                   bits[i].name);
    }
    if (status & ~known)
        g_string_append_printf(out, "%s0x%02x", out->str[out->len - 1] == '(' ? "" : " ",
                               status & ~known);
    g_string_append_c(out, ')');
    return g_string_free(out, FALSE);
}

static void append_counters(GString *out, GVariant *counters)
{
    GVariantIter queues;
    guint32 idx;
    GVariantIter *names;

    g_string_append(out, "QueueCounters:\n");
    if (g_variant_n_children(counters) == 0)
        g_string_append(out, "  (no queues)\n");
    g_variant_iter_init(&queues, counters);
    while (g_variant_iter_next(&queues, "(ua{st})", &idx, &names)) {
        const char *name;
        guint64 value;
        g_string_append_printf(out, "  queue %-3" PRIu32, idx);
        if (g_variant_iter_n_children(names) == 0)
            g_string_append(out, " (no counters)");
        while (g_variant_iter_next(names, "{&st}", &name, &value))
            g_string_append_printf(out, " %s=%" PRIu64, name, value);
        g_string_append_c(out, '\n');
        g_variant_iter_free(names);
    }
}

char *vdpactl_format_show(GVariant *device)
{
    /* Every property of org.vdpad1.Device, in the order a person reads them. */
    static const char *const order[] = { "Name", "Type", "Backend", "Mode", "NodePath", "MAC",
                                         "QueuePairs", "Features", "Status", "OpenerPid",
                                         "OwnerPid", "MigrationToken", "Incoming",
                                         "DirtyMarks" };
    GString *out = g_string_new(NULL);

    for (unsigned i = 0; i < G_N_ELEMENTS(order); i++) {
        const char *name = order[i];
        g_autofree char *text = NULL;
        guint64 features;
        guint8 status;

        if (g_str_equal(name, "Features") && g_variant_lookup(device, name, "t", &features))
            text = g_strdup_printf("0x%016" PRIx64, features);
        else if (g_str_equal(name, "Status") && g_variant_lookup(device, name, "y", &status))
            text = vdpactl_format_status(status);
        else if (g_str_has_suffix(name, "Pid"))
            text = pid_text(device, name);
        else
            text = prop_text(device, name);
        g_string_append_printf(out, "%-14s %s\n", name, text);
    }
    g_autoptr(GVariant) counters =
        g_variant_lookup_value(device, "QueueCounters", G_VARIANT_TYPE("a(ua{st})"));
    if (counters)
        append_counters(out, counters);
    return g_string_free(out, FALSE);
}

static json_object *counters_json(GVariant *counters)
{
    json_object *queues = json_object_new_array();
    GVariantIter it;
    guint32 idx;
    GVariantIter *names;

    g_variant_iter_init(&it, counters);
    while (g_variant_iter_next(&it, "(ua{st})", &idx, &names)) {
        json_object *q = json_object_new_object();
        json_object *c = json_object_new_object();
        const char *name;
        guint64 value;

        while (g_variant_iter_next(names, "{&st}", &name, &value))
            json_object_object_add(c, name, json_object_new_uint64(value));
        json_object_object_add(q, "Queue", json_object_new_int64(idx));
        json_object_object_add(q, "Counters", c);
        json_object_array_add(queues, q);
        g_variant_iter_free(names);
    }
    return queues;
}

json_object *vdpactl_json_double(double v)
{
    char text[64];

    if (!isfinite(v))
        return NULL; /* JSON has no NaN or infinity */
    /* three decimals (microseconds in a millisecond value), without json-c's 17 digits */
    g_ascii_formatd(text, sizeof(text), "%.3f", v);
    size_t len = strlen(text);
    while (len > 0 && text[len - 1] == '0' && strchr(text, '.') && text[len - 2] != '.')
        text[--len] = '\0';
    return json_object_new_double_s(v, text);
}

/* Stopped's bases: [{"Queue": 0, "Base": 17}, ...] */
static json_object *bases_json(GVariant *bases)
{
    json_object *array = json_object_new_array();
    GVariantIter it;
    guint32 idx;
    guint16 base;

    g_variant_iter_init(&it, bases);
    while (g_variant_iter_next(&it, "(uq)", &idx, &base)) {
        json_object *q = json_object_new_object();
        json_object_object_add(q, "Queue", json_object_new_int64(idx));
        json_object_object_add(q, "Base", json_object_new_int64(base));
        json_object_array_add(array, q);
    }
    return array;
}

json_object *vdpactl_variant_json(GVariant *v)
{
    if (g_variant_is_of_type(v, G_VARIANT_TYPE_STRING) ||
        g_variant_is_of_type(v, G_VARIANT_TYPE_OBJECT_PATH) ||
        g_variant_is_of_type(v, G_VARIANT_TYPE_SIGNATURE))
        return json_object_new_string(g_variant_get_string(v, NULL));
    if (g_variant_is_of_type(v, G_VARIANT_TYPE_UINT64))
        return json_object_new_uint64(g_variant_get_uint64(v));
    if (g_variant_is_of_type(v, G_VARIANT_TYPE_INT64))
        return json_object_new_int64(g_variant_get_int64(v));
    if (g_variant_is_of_type(v, G_VARIANT_TYPE_UINT32))
        return json_object_new_int64(g_variant_get_uint32(v));
    if (g_variant_is_of_type(v, G_VARIANT_TYPE_INT32))
        return json_object_new_int64(g_variant_get_int32(v));
    if (g_variant_is_of_type(v, G_VARIANT_TYPE_UINT16))
        return json_object_new_int64(g_variant_get_uint16(v));
    if (g_variant_is_of_type(v, G_VARIANT_TYPE_INT16))
        return json_object_new_int64(g_variant_get_int16(v));
    if (g_variant_is_of_type(v, G_VARIANT_TYPE_BYTE))
        return json_object_new_int64(g_variant_get_byte(v));
    if (g_variant_is_of_type(v, G_VARIANT_TYPE_BOOLEAN))
        return json_object_new_boolean(g_variant_get_boolean(v));
    if (g_variant_is_of_type(v, G_VARIANT_TYPE_DOUBLE))
        return vdpactl_json_double(g_variant_get_double(v));
    if (g_variant_is_of_type(v, G_VARIANT_TYPE_VARIANT)) {
        g_autoptr(GVariant) inner = g_variant_get_variant(v);
        return vdpactl_variant_json(inner);
    }
    if (g_variant_is_of_type(v, G_VARIANT_TYPE("a(ua{st})")))
        return counters_json(v);
    if (g_variant_is_of_type(v, G_VARIANT_TYPE("a(uq)")))
        return bases_json(v);
    if (g_variant_is_of_type(v, G_VARIANT_TYPE("a{s*}"))) {
        json_object *obj = json_object_new_object();
        GVariantIter it;
        const char *key;
        GVariant *value;
        g_variant_iter_init(&it, v);
        while (g_variant_iter_loop(&it, "{&s@*}", &key, &value))
            json_object_object_add(obj, key, vdpactl_variant_json(value));
        return obj;
    }
    if (g_variant_is_container(v)) { /* other arrays and tuples */
        json_object *array = json_object_new_array();
        GVariantIter it;
        GVariant *child;
        g_variant_iter_init(&it, v);
        while ((child = g_variant_iter_next_value(&it))) {
            json_object_array_add(array, vdpactl_variant_json(child));
            g_variant_unref(child);
        }
        return array;
    }
    g_autofree char *text = g_variant_print(v, TRUE); /* handles, maybe types */
    return json_object_new_string(text);
}

json_object *vdpactl_device_json(GVariant *device, const char *object_path)
{
    json_object *obj = json_object_new_object();
    GVariantIter it;
    const char *key;
    GVariant *value;

    if (object_path)
        json_object_object_add(obj, "ObjectPath", json_object_new_string(object_path));
    g_variant_iter_init(&it, device);
    while (g_variant_iter_loop(&it, "{&sv}", &key, &value))
        json_object_object_add(obj, key, vdpactl_variant_json(value));
    return obj;
}
