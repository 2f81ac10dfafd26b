#include "config.h"

#include <fcntl.h>
#include <stdbool.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "util/error.h"
#include "util/fd.h"
#include "vhost_vdpa/guest_mem.h"

/* One line of /proc/<pid>/maps. */
struct vma {
    uint64_t start, end, offset;
    char perms[5];
    unsigned dev_major, dev_minor; /* of the file's filesystem, as the kernel knows it */
    unsigned long inode;
    char path[256];
};

static bool parse_maps_line(const char *line, struct vma *v)
{
    int path_at = 0;

    v->path[0] = '\0';
    if (sscanf(line, "%" SCNx64 "-%" SCNx64 " %4s %" SCNx64 " %x:%x %lu %n", &v->start, &v->end,
               v->perms, &v->offset, &v->dev_major, &v->dev_minor, &v->inode, &path_at) < 7)
        return false;
    if (path_at > 0) {
        g_strlcpy(v->path, line + path_at, sizeof(v->path));
        g_strchomp(v->path);
    }
    return true;
}

/* Filesystems whose files vdpad opens and maps: memory (tmpfs, hugetlbfs; memfds, which
 * live on internal mounts, are recognised apart) and local disk filesystems (libvirt's
 * file-backed guest RAM). A file anywhere else (FUSE, NFS...) has a server behind it, which
 * the client may run itself: vdpad's open() and the device's page faults would wait on it,
 * and with them every node. */
static const char *const mappable_fs[] = {
    "tmpfs", "hugetlbfs", "ext2", "ext3", "ext4", "xfs", "btrfs", NULL,
};

/* from linux/memfd.h, whose other names clash with glibc's */
#ifndef MFD_HUGE_SHIFT
#define MFD_HUGE_SHIFT 26
#endif

/* The devices of the kernel's internal memfd mounts (shmem, and hugetlbfs per page size),
 * learned from memfds of our own. */
static bool is_memfd_device(dev_t dev)
{
    static const unsigned kinds[] = { 0, MFD_HUGETLB, MFD_HUGETLB | (21u << MFD_HUGE_SHIFT),
                                      MFD_HUGETLB | (30u << MFD_HUGE_SHIFT) };
    static dev_t devs[G_N_ELEMENTS(kinds)];
    static gsize probed;

    if (g_once_init_enter(&probed)) {
        for (size_t i = 0; i < G_N_ELEMENTS(kinds); i++) {
            struct stat st;
            g_auto(vdpad_fd) fd = memfd_create("vdpad-probe", MFD_CLOEXEC | kinds[i]);
            devs[i] = fd >= 0 && fstat(fd, &st) == 0 ? st.st_dev : (dev_t)-1;
        }
        g_once_init_leave(&probed, 1);
    }
    for (size_t i = 0; i < G_N_ELEMENTS(devs); i++)
        if (devs[i] != (dev_t)-1 && devs[i] == dev)
            return true;
    return false;
}

/* The type of the filesystem on device major:minor, as mounted in process pid's view; NULL
 * when pid has no such mount. Reads /proc only: the filesystem itself is not asked. */
static char *fs_type_of(pid_t pid, unsigned major, unsigned minor)
{
    g_autofree char *path = g_strdup_printf("/proc/%d/mountinfo", (int)pid);
    g_autofree char *text = NULL;
    g_autofree char *want = g_strdup_printf(" %u:%u ", major, minor);

    if (!g_file_get_contents(path, &text, NULL, NULL))
        return NULL;
    g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
    for (char **l = lines; *l; l++) {
        const char *sep = strstr(*l, " - ");
        if (!sep || !strstr(*l, want) || strstr(*l, want) > sep)
            continue;
        g_auto(GStrv) f = g_strsplit(sep + 3, " ", 2);
        if (f[0] && f[0][0])
            return g_strdup(f[0]);
    }
    return NULL;
}

/* Maps the part [from, to) of VMA v over our reservation at local_base (for uaddr). */
static int map_vma_part(pid_t pid, const struct vma *v, uint64_t from, uint64_t to,
                        uint64_t uaddr, uint8_t *local_base, gboolean writable, GError **error)
{
    if (v->inode == 0 || v->perms[3] != 's')
        return vdpad_fail(error, EOPNOTSUPP,
                          "pid %d: memory at 0x%" PRIx64 "-0x%" PRIx64 " (%s, %s) is %s, not "
                          "shared and file-backed", (int)pid, v->start, v->end, v->perms,
                          v->path[0] ? v->path : "anonymous",
                          v->inode == 0 ? "anonymous" : "a private mapping");
    if (!is_memfd_device(makedev(v->dev_major, v->dev_minor))) {
        g_autofree char *type = fs_type_of(pid, v->dev_major, v->dev_minor);
        if (!type || !g_strv_contains(mappable_fs, type))
            return vdpad_fail(error, EOPNOTSUPP,
                              "pid %d: memory at 0x%" PRIx64 "-0x%" PRIx64 " is a file (%s) on %s "
                              "filesystem %u:%u, which vdpad does not map: only memory "
                              "(memfd, tmpfs, hugetlbfs) and local disk filesystems",
                              (int)pid, v->start, v->end, v->path[0] ? v->path : "?",
                              type ? type : "an unmounted", v->dev_major, v->dev_minor);
    }

    g_autofree char *link = g_strdup_printf("/proc/%d/map_files/%" PRIx64 "-%" PRIx64,
                                            (int)pid, v->start, v->end);
    g_auto(vdpad_fd) fd = open(link, (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC);
    if (fd < 0)
        return vdpad_fail(error, errno, "pid %d: cannot open the file behind 0x%" PRIx64
                          " (%s): %s", (int)pid, v->start, link, g_strerror(errno));

    uint64_t file_off = v->offset + (from - v->start);
    void *want = local_base + (from - uaddr);
    int prot = PROT_READ | (writable ? PROT_WRITE : 0);
    void *got = mmap(want, to - from, prot, MAP_SHARED | MAP_FIXED, fd, (off_t)file_off);
    if (got == MAP_FAILED)
        return vdpad_fail(error, errno, "pid %d: mmap of %s at offset 0x%" PRIx64
                          " length 0x%" PRIx64 " failed: %s", (int)pid, v->path, file_off,
                          to - from, g_strerror(errno));
    return 0;
}

int guest_mem_map(pid_t pid, uint64_t uaddr, uint64_t size, gboolean writable, void **local,
                  GError **error)
{
    long page = sysconf(_SC_PAGESIZE);

    if (size == 0 || uaddr % page || size % page || uaddr + size < uaddr)
        return vdpad_fail(error, EINVAL, "pid %d: range 0x%" PRIx64 "+0x%" PRIx64
                          " is empty, wraps or is not page aligned", (int)pid, uaddr, size);

    g_autofree char *maps_path = g_strdup_printf("/proc/%d/maps", (int)pid);
    FILE *maps = fopen(maps_path, "re");
    if (!maps)
        return vdpad_fail(error, errno, "pid %d: cannot read %s: %s", (int)pid, maps_path,
                          g_strerror(errno));

    /* Reserve a contiguous window, then map each VMA's part over it. */
    uint8_t *base = mmap(NULL, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                         -1, 0);
    if (base == MAP_FAILED) {
        fclose(maps);
        return vdpad_fail(error, errno, "pid %d: cannot reserve 0x%" PRIx64 " bytes: %s",
                          (int)pid, size, g_strerror(errno));
    }

    uint64_t covered = uaddr; /* everything below is mapped */
    char line[512];
    int ret = 0;
    while (covered < uaddr + size && fgets(line, sizeof(line), maps)) {
        struct vma v;
        if (!parse_maps_line(line, &v) || v.end <= covered)
            continue;
        if (v.start > covered)
            break; /* a hole */
        uint64_t to = MIN(v.end, uaddr + size);
        ret = map_vma_part(pid, &v, covered, to, uaddr, base, writable, error);
        if (ret < 0)
            break;
        covered = to;
    }
    fclose(maps);

    if (ret == 0 && covered < uaddr + size)
        ret = vdpad_fail(error, EFAULT, "pid %d: address 0x%" PRIx64 " (in 0x%" PRIx64
                         "+0x%" PRIx64 ") is not mapped", (int)pid, covered, uaddr, size);
    if (ret < 0) {
        munmap(base, size);
        return ret;
    }
    *local = base;
    return 0;
}

void guest_mem_unmap(void *local, uint64_t size)
{
    if (local && size && munmap(local, size) < 0)
        g_warning("client memory at %p (0x%" PRIx64 " bytes) stays mapped: munmap: %s", local,
                  size, g_strerror(errno));
}

pid_t guest_mem_tgid_of(pid_t tid)
{
    g_autofree char *path = g_strdup_printf("/proc/%d/status", (int)tid);
    g_autofree char *text = NULL;

    if (!g_file_get_contents(path, &text, NULL, NULL))
        return -ESRCH;
    const char *p = strstr(text, "\nTgid:");
    if (!p)
        return -ESRCH;
    return (pid_t)strtol(p + 6, NULL, 10);
}
