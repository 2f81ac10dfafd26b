#include "config.h"

#include <errno.h>
#include <fcntl.h>

#include "util/fd.h"

int vdpad_fd_replace_dup(int *slot, int fd)
{
    int copy = -1;

    if (fd >= 0) {
        copy = fcntl(fd, F_DUPFD_CLOEXEC, 0);
        if (copy < 0)
            return -errno;
    }
    vdpad_close_fd(*slot);
    *slot = copy;
    return 0;
}

gboolean vdpad_fd_is_eventfd(int fd)
{
    char path[64], target[64];

    g_snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    ssize_t n = readlink(path, target, sizeof(target) - 1);
    if (n < 0)
        return FALSE;
    target[n] = '\0';
    return g_str_equal(target, "anon_inode:[eventfd]");
}
