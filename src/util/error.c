#include "config.h"

#include "util/error.h"

G_DEFINE_QUARK(vdpad-error-quark, vdpad_error)

int vdpad_fail(GError **error, int errnum, const char *fmt, ...)
{
    g_assert(errnum > 0);
    if (error) {
        va_list ap;

        va_start(ap, fmt);
        g_autofree char *msg = g_strdup_vprintf(fmt, ap);
        va_end(ap);
        g_set_error_literal(error, VDPAD_ERROR, errnum, msg);
    }
    return -errnum;
}

int vdpad_prefix_error(GError **error, const char *fmt, ...)
{
    if (!error || !*error)
        return -EIO;
    va_list ap;

    va_start(ap, fmt);
    g_autofree char *prefix = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_prefix_error(error, "%s", prefix);
    return vdpad_error_errno(*error);
}

int vdpad_error_errno(const GError *error)
{
    if (error && error->domain == VDPAD_ERROR && error->code > 0)
        return -error->code;
    return -EIO;
}
