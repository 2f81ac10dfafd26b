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
