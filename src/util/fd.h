/* fd.h — file descriptors with GLib's cleanup idiom.
 *
 *   g_auto(vdpad_fd) fd = open(...);      closed at end of scope unless stolen
 *   return vdpad_steal_fd(&fd);           hands ownership to the caller
 */
#pragma once

#include <glib.h>
#include <unistd.h>

typedef int vdpad_fd;

static inline void vdpad_close_fd(vdpad_fd fd)
{
    if (fd >= 0) {
        int saved = errno;
        close(fd);
        errno = saved;
    }
}
G_DEFINE_AUTO_CLEANUP_FREE_FUNC(vdpad_fd, vdpad_close_fd, -1)

static inline int vdpad_steal_fd(int *fd)
{
    int ret = *fd;
    *fd = -1;
    return ret;
}

/* Replaces *slot with a dup of fd (or -1 for fd < 0), closing the old one. Returns 0 or -errno. */
int vdpad_fd_replace_dup(int *slot, int fd);

/* Whether fd is an eventfd (what vhost's kick/call/config fds must be). */
gboolean vdpad_fd_is_eventfd(int fd);
