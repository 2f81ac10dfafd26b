#include "config.h"

#include <errno.h>
#include <string.h>

#include "dbus/dbus_names.h"
#include "util/error.h"

char *vdpad_dbus_escape_path_element(const char *s)
{
    GString *out = g_string_new(NULL);

    if (!*s)
        g_string_append_c(out, '_');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (g_ascii_isalnum(*p))
            g_string_append_c(out, (char)*p);
        else
            g_string_append_printf(out, "_%02x", *p);
    }
    return g_string_free(out, FALSE);
}

char *vdpad_dbus_device_path(const char *name)
{
    g_autofree char *element = vdpad_dbus_escape_path_element(name);

    return g_strconcat(VDPAD_DBUS_DEVICE_PATH_PREFIX, element, NULL);
}

char *vdpad_dbus_device_name_from_path(const char *path)
{
    const size_t prefix = strlen(VDPAD_DBUS_DEVICE_PATH_PREFIX);

    if (!g_str_has_prefix(path, VDPAD_DBUS_DEVICE_PATH_PREFIX) || !path[prefix])
        return NULL;
    const char *p = path + prefix;
    if (g_str_equal(p, "_"))
        return g_strdup("");
    GString *name = g_string_new(NULL);
    while (*p) {
        int hi, lo;
        if (g_ascii_isalnum(*p)) {
            g_string_append_c(name, *p++);
        } else if (*p == '_' && (hi = g_ascii_xdigit_value(p[1])) >= 0 &&
                   (lo = g_ascii_xdigit_value(p[2])) >= 0 && (hi || lo)) {
            g_string_append_c(name, (char)(hi << 4 | lo));
            p += 3;
        } else {
            g_string_free(name, TRUE);
            return NULL;
        }
    }
    return g_string_free(name, FALSE);
}

const char *vdpad_dbus_error_name(const GError *error)
{
    if (!error || error->domain != VDPAD_ERROR)
        return VDPAD_DBUS_ERROR_FAILED;
    switch (error->code) {
    case EEXIST:
        return VDPAD_DBUS_ERROR_EXISTS;
    case ENOENT:
    case ENODEV:
        return VDPAD_DBUS_ERROR_NOT_FOUND;
    case EBUSY:
        return VDPAD_DBUS_ERROR_BUSY;
    case EINVAL:
    case ERANGE:
    case ENAMETOOLONG:
        return VDPAD_DBUS_ERROR_INVALID_ARGUMENT;
    default:
        return VDPAD_DBUS_ERROR_FAILED;
    }
}
