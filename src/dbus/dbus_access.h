/* dbus_access.h — who may change vdpad's devices over D-Bus.
 *
 * On the system bus the policy (data/org.vdpad1.conf) already lets only root and the group
 * vdpad call CreateDevice and DestroyDevice. vdpad checks again itself, from the caller's
 * credentials as the bus daemon reports them (GetConnectionCredentials: UnixUserID,
 * ProcessID, UnixGroupIDs), so that a bus without that policy (a session bus, a private
 * bus) does not open the door: allowed are uid 0, the daemon's own uid (which could
 * ptrace the daemon anyway), and members of the group vdpad. When the bus does not
 * report the caller's groups, its supplementary groups come from the group database
 * (getgrouplist), as dbus-daemon itself evaluates group="" rules.
 *
 * Threads: pure functions, except dbus_access_lookup_group (reads the group database).
 */
#pragma once

#include <glib.h>
#include <stdbool.h>
#include <sys/types.h>

#define VDPAD_GROUP "vdpad"

struct dbus_caller {
    uid_t uid;
    pid_t pid;      /* 0 when the bus did not say */
    bool has_gids;  /* the bus reported the groups */
    GArray *gids;   /* gid_t; primary and supplementary */
};

/* The caller described by a GetConnectionCredentials reply (a{sv}); false if it lacks
 * UnixUserID. Free the result with dbus_caller_clear. */
bool dbus_caller_from_credentials(GVariant *credentials, struct dbus_caller *caller);
void dbus_caller_clear(struct dbus_caller *caller);

/* The gid of the group vdpad, or false when there is none. */
bool dbus_access_lookup_group(gid_t *gid);

/* Whether caller may change devices: uid 0, uid == daemon_uid, or a member of
 * vdpad_gid (ignored when has_group is false). Reads the group database for the
 * caller's groups when the bus did not report them. */
bool dbus_access_may_modify(const struct dbus_caller *caller, uid_t daemon_uid,
                            bool has_group, gid_t vdpad_gid);
