#include "config.h"

#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include "dbus/dbus_access.h"

bool dbus_caller_from_credentials(GVariant *credentials, struct dbus_caller *caller)
{
    guint32 uid, pid;
    g_autoptr(GVariant) gids = NULL;

    *caller = (struct dbus_caller){ 0 };
    if (!g_variant_lookup(credentials, "UnixUserID", "u", &uid))
        return false;
    caller->uid = (uid_t)uid;
    if (g_variant_lookup(credentials, "ProcessID", "u", &pid))
        caller->pid = (pid_t)pid;
    gids = g_variant_lookup_value(credentials, "UnixGroupIDs", G_VARIANT_TYPE("au"));
    if (gids) {
        gsize n;
        const guint32 *v = g_variant_get_fixed_array(gids, &n, sizeof(guint32));
        caller->has_gids = true;
        caller->gids = g_array_sized_new(FALSE, FALSE, sizeof(gid_t), (guint)n);
        for (gsize i = 0; i < n; i++) {
            gid_t g = (gid_t)v[i];
            g_array_append_val(caller->gids, g);
        }
    }
    return true;
}

void dbus_caller_clear(struct dbus_caller *caller)
{
    if (caller->gids)
        g_array_unref(caller->gids);
    *caller = (struct dbus_caller){ 0 };
}

bool dbus_access_lookup_group(gid_t *gid)
{
    struct group grp, *found = NULL;
    char buf[4096];

    if (getgrnam_r(VDPAD_GROUP, &grp, buf, sizeof(buf), &found) != 0 || !found)
        return false;
    *gid = found->gr_gid;
    return true;
}

/* The caller's groups from the user database: its primary group and every group that
 * lists its user name. */
static bool user_in_group(uid_t uid, gid_t gid)
{
    struct passwd pw, *found = NULL;
    char buf[4096];

    if (getpwuid_r(uid, &pw, buf, sizeof(buf), &found) != 0 || !found)
        return false;
    if (found->pw_gid == gid)
        return true;
    int n = 64;
    for (int attempt = 0; attempt < 4; attempt++) {
        g_autofree gid_t *groups = g_new(gid_t, n);
        int got = n;
        if (getgrouplist(found->pw_name, found->pw_gid, groups, &got) >= 0) {
            for (int i = 0; i < got; i++)
                if (groups[i] == gid)
                    return true;
            return false;
        }
        n = got > n ? got : n * 2; /* too small: got says how many there are */
    }
    return false;
}

bool dbus_access_may_modify(const struct dbus_caller *caller, uid_t daemon_uid,
                            bool has_group, gid_t vdpad_gid)
{
    if (caller->uid == 0 || caller->uid == daemon_uid)
        return true;
    if (!has_group)
        return false;
    if (caller->has_gids) {
        for (guint i = 0; i < caller->gids->len; i++)
            if (g_array_index(caller->gids, gid_t, i) == vdpad_gid)
                return true;
        return false;
    }
    return user_in_group(caller->uid, vdpad_gid);
}
