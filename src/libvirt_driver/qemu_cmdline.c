/* qemu_cmdline.c — the domain name and UUID on a QEMU command line. */
#include "config.h"

#include "libvirt_driver/qemu_cmdline.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "util/error.h"

#define MAX_NAME 1024

/* The guest name in a -name value: "guest=NAME,..." or "NAME,..." (QEMU's implied key),
 * with ",," standing for a comma. NULL if the value names none. */
static char *name_from_value(const char *v)
{
    GString *item = g_string_new(NULL);
    char *found = NULL;
    bool first = true;

    for (const char *c = v;; c++) {
        if (*c == ',' && c[1] == ',') {
            g_string_append_c(item, ',');
            c++;
            continue;
        }
        if (*c && *c != ',') {
            g_string_append_c(item, *c);
            continue;
        }
        /* end of an item */
        if (g_str_has_prefix(item->str, "guest="))
            found = g_strdup(item->str + strlen("guest="));
        else if (first && !strchr(item->str, '='))
            found = g_strdup(item->str);
        first = false;
        g_string_truncate(item, 0);
        if (found || !*c)
            break;
    }
    g_string_free(item, TRUE);
    if (found && (!*found || strlen(found) > MAX_NAME))
        g_clear_pointer(&found, g_free);
    return found;
}

static bool uuid_valid(const char *s)
{
    if (strlen(s) != 36)
        return false;
    for (int i = 0; i < 36; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : !g_ascii_isxdigit(s[i]))
            return false;
    }
    return true;
}

int qemu_cmdline_identity(const char *argv, size_t len, struct qemu_identity *id,
                          GError **error)
{
    *id = (struct qemu_identity){ 0 };
    g_autoptr(GPtrArray) args = g_ptr_array_new();
    size_t start = 0;

    for (size_t i = 0; i < len; i++)
        if (argv[i] == '\0') {
            g_ptr_array_add(args, (gpointer)(argv + start));
            start = i + 1;
        }
    /* a last argument without its NUL (a truncated read) is not trusted */
    for (guint i = 0; i + 1 < args->len; i++) {
        const char *a = args->pdata[i], *v = args->pdata[i + 1];
        if ((g_str_equal(a, "-name") || g_str_equal(a, "--name")) && !id->name) {
            id->name = name_from_value(v);
            i++;
        } else if ((g_str_equal(a, "-uuid") || g_str_equal(a, "--uuid")) && !id->uuid) {
            if (uuid_valid(v))
                id->uuid = g_strdup(v);
            i++;
        }
    }
    if (!id->name && !id->uuid)
        return vdpad_fail(error, ENOENT, "%s: no -name or -uuid on the command line (not a "
                          "libvirt domain)", args->len ? (const char *)args->pdata[0] : "?");
    return 0;
}

int qemu_process_identity(pid_t pid, struct qemu_identity *id, GError **error)
{
    g_autofree char *path = g_strdup_printf("/proc/%d/cmdline", (int)pid);
    g_autofree char *buf = NULL;
    gsize len = 0;
    g_autoptr(GError) err = NULL;

    *id = (struct qemu_identity){ 0 };
    if (!g_file_get_contents(path, &buf, &len, &err))
        return vdpad_fail(error, ESRCH, "pid %d: cannot read its command line: %s", (int)pid,
                          err->message);
    if (len == 0)
        return vdpad_fail(error, ESRCH, "pid %d has exited (empty command line)", (int)pid);
    int ret = qemu_cmdline_identity(buf, len, id, error);
    if (ret < 0)
        vdpad_prefix_error(error, "pid %d: ", (int)pid);
    return ret;
}

void qemu_identity_clear(struct qemu_identity *id)
{
    g_clear_pointer(&id->name, g_free);
    g_clear_pointer(&id->uuid, g_free);
}
