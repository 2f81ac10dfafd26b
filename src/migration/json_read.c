#include "config.h"

#include <inttypes.h>
#include <string.h>

#include "migration/json_read.h"
#include "util/error.h"

char *jr_quote(const char *text, size_t len, size_t max)
{
    GString *s = g_string_sized_new(MIN(len, max) + 4);

    for (size_t i = 0; i < len && i < max; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c >= 0x20 && c < 0x7f && c != '\\' && c != '\'')
            g_string_append_c(s, (char)c);
        else
            g_string_append_printf(s, "\\x%02x", c);
    }
    if (len > max)
        g_string_append(s, "...");
    return g_string_free(s, FALSE);
}

char *jr_printable(const char *text, size_t max)
{
    g_autofree char *valid = g_utf8_make_valid(text, -1); /* bad bytes become U+FFFD */
    size_t len = strlen(valid);

    if (len > max) {
        len = max;
        /* back off to a character boundary: continuation bytes are 10xxxxxx */
        while (len > 0 && ((unsigned char)valid[len] & 0xc0) == 0x80)
            len--;
    }
    char *s = g_strndup(valid, len);
    for (char *p = s; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    return s;
}

char *jr_path(const char *path, const char *key)
{
    return path && path[0] ? g_strdup_printf("%s.%s", path, key) : g_strdup(key);
}

char *jr_text(struct json_object *o, size_t *len)
{
    size_t n;
    const char *text = json_object_to_json_string_length(
        o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &n);
    char *copy = g_strndup(text, n);

    json_object_put(o);
    if (len)
        *len = n;
    return copy;
}

struct json_object *jr_parse_object(const char *text, size_t len, const char *what,
                                    GError **error)
{
    if (len > INT32_MAX) {
        vdpad_fail(error, EBADMSG, "%s: %zu bytes is too long", what, len);
        return NULL;
    }
    struct json_tokener *tok = json_tokener_new_ex(JR_MAX_DEPTH);
    if (!tok) {
        vdpad_fail(error, ENOMEM, "%s: cannot allocate a JSON parser", what);
        return NULL;
    }
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    struct json_object *obj = json_tokener_parse_ex(tok, text, (int)len);
    enum json_tokener_error jerr = json_tokener_get_error(tok);
    size_t end = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);

    if (!obj) {
        if (jerr == json_tokener_continue)
            vdpad_fail(error, EBADMSG, "%s: truncated JSON (%zu bytes)", what, len);
        else
            vdpad_fail(error, EBADMSG, "%s: invalid JSON at byte %zu: %s", what, end,
                       json_tokener_error_desc(jerr));
        return NULL;
    }
    /* strict mode already refuses anything but whitespace after the value */
    if (end != len) {
        json_object_put(obj);
        vdpad_fail(error, EBADMSG, "%s: %zu bytes after the JSON object", what, len - end);
        return NULL;
    }
    if (!json_object_is_type(obj, json_type_object)) {
        vdpad_fail(error, EBADMSG, "%s: a JSON %s where an object was expected", what,
                   json_type_to_name(json_object_get_type(obj)));
        json_object_put(obj);
        return NULL;
    }
    return obj;
}

int jr_only_keys(struct json_object *obj, const char *path, const char *const *allowed,
                 GError **error)
{
    json_object_object_foreach(obj, key, val) {
        (void)val;
        if (!g_strv_contains(allowed, key)) {
            g_autofree char *q = jr_quote(key, strlen(key), 64);
            g_autofree char *name = jr_path(path, q);
            return vdpad_fail(error, EBADMSG, "%s: unknown field", name);
        }
    }
    return 0;
}

static const char *expected(json_type type)
{
    switch (type) {
    case json_type_int: return "an integer";
    case json_type_array: return "an array";
    case json_type_object: return "an object";
    case json_type_boolean: return "a boolean";
    default: return "a string";
    }
}

/* The value of key, or an error saying it is missing. */
static int get(struct json_object *obj, const char *path, const char *key, json_type type,
               struct json_object **out, GError **error)
{
    g_autofree char *name = jr_path(path, key);
    struct json_object *v = NULL;

    if (!json_object_object_get_ex(obj, key, &v))
        return vdpad_fail(error, EBADMSG, "%s: missing", name);
    if (!json_object_is_type(v, type))
        return vdpad_fail(error, EBADMSG, "%s: a JSON %s where %s was expected", name,
                          json_type_to_name(json_object_get_type(v)), expected(type));
    *out = v;
    return 0;
}

int jr_get_uint(struct json_object *obj, const char *path, const char *key, uint64_t min,
                uint64_t max, uint64_t *out, GError **error)
{
    struct json_object *v;
    int ret = get(obj, path, key, json_type_int, &v, error);

    if (ret < 0)
        return ret;
    /* json-c clamps what does not fit 64 bits; the bounds here are far inside them */
    int64_t i = json_object_get_int64(v);
    if (i < 0 || (uint64_t)i < min || (uint64_t)i > max) {
        g_autofree char *name = jr_path(path, key);
        return vdpad_fail(error, EBADMSG, "%s: %" PRId64 " is out of range [%" PRIu64
                          ", %" PRIu64 "]", name, i, min, max);
    }
    *out = (uint64_t)i;
    return 0;
}

int jr_get_bool(struct json_object *obj, const char *path, const char *key, bool *out,
                GError **error)
{
    struct json_object *v;
    int ret = get(obj, path, key, json_type_boolean, &v, error);

    if (ret < 0)
        return ret;
    *out = json_object_get_boolean(v);
    return 0;
}

int jr_get_string(struct json_object *obj, const char *path, const char *key, size_t max_len,
                  const char **out, GError **error)
{
    struct json_object *v;
    int ret = get(obj, path, key, json_type_string, &v, error);

    if (ret < 0)
        return ret;
    const char *s = json_object_get_string(v);
    size_t len = (size_t)json_object_get_string_len(v);
    g_autofree char *name = jr_path(path, key);
    if (len == 0)
        return vdpad_fail(error, EBADMSG, "%s: empty", name);
    if (len > max_len)
        return vdpad_fail(error, EBADMSG, "%s: %zu bytes, longer than %zu", name, len, max_len);
    if (strlen(s) != len)
        return vdpad_fail(error, EBADMSG, "%s: contains a NUL character", name);
    *out = s;
    return 0;
}

int jr_get_hex64(struct json_object *obj, const char *path, const char *key, uint64_t *out,
                 GError **error)
{
    const char *s;
    int ret = jr_get_string(obj, path, key, 18, &s, error);

    if (ret < 0)
        return ret;
    size_t len = strlen(s);
    bool ok = len > 2 && s[0] == '0' && s[1] == 'x';
    uint64_t value = 0;
    for (size_t i = 2; ok && i < len; i++) {
        if (!g_ascii_isxdigit(s[i]))
            ok = false;
        else
            value = value << 4 | (uint64_t)g_ascii_xdigit_value(s[i]);
    }
    if (!ok) {
        g_autofree char *name = jr_path(path, key);
        g_autofree char *q = jr_quote(s, len, 32);
        return vdpad_fail(error, EBADMSG,
                          "%s: '%s' is not a 64-bit mask (\"0x\" and 1-16 hex digits)", name, q);
    }
    *out = value;
    return 0;
}

int jr_get_object(struct json_object *obj, const char *path, const char *key,
                  struct json_object **out, GError **error)
{
    return get(obj, path, key, json_type_object, out, error);
}

int jr_get_array(struct json_object *obj, const char *path, const char *key, size_t max_len,
                 struct json_object **out, GError **error)
{
    int ret = get(obj, path, key, json_type_array, out, error);

    if (ret < 0)
        return ret;
    size_t n = json_object_array_length(*out);
    if (n > max_len) {
        g_autofree char *name = jr_path(path, key);
        return vdpad_fail(error, EBADMSG, "%s: %zu entries, more than %zu", name, n, max_len);
    }
    return 0;
}
