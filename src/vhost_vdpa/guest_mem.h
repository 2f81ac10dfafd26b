/* guest_mem.h — the client's memory, mapped into vdpad.
 *
 * IOTLB updates name addresses in the client's address space (QEMU's view of guest RAM).
 * A vDPA device needs memory it can reach: the simulator reads it directly, and a kernel
 * vDPA device pins the pages of the process that writes its IOTLB, so vdpad maps the
 * same memory into itself and hands its own addresses on.
 *
 * How: the client's mappings are read from /proc/<pid>/maps; each VMA's backing file is
 * opened through /proc/<pid>/map_files/<start>-<end> and mapped shared at the same file
 * offset. Only shared, file-backed memory can be shared this way (memfd, hugetlbfs, a
 * shared file). Anonymous or private memory gets -EOPNOTSUPP; the session decides whether
 * that is fatal (guest RAM: it names the domain XML to add) or not (a ROM).
 * Files are mapped only from memory filesystems (memfd, tmpfs, hugetlbfs) and local disk
 * filesystems; a file on any other (FUSE, NFS...) gets -EOPNOTSUPP too, decided from
 * /proc alone: its server, which may be the client itself, could block vdpad's open()
 * and the device's page faults forever.
 *
 * Threads: called from the control thread. Needs CAP_SYS_ADMIN (map_files) and
 * CAP_SYS_PTRACE over the client (root).
 */
#pragma once

#include <glib.h>
#include <stdint.h>
#include <sys/types.h>

/* Maps [uaddr, uaddr + size) of process pid into our address space, contiguously, and
 * returns the local address of uaddr in *local. uaddr and size must be page aligned;
 * the range may span several VMAs. writable asks for a writable mapping. Returns 0 or a
 * negative errno with *error naming the pid, the address and what is wrong:
 * -EOPNOTSUPP for anonymous or private memory. */
int guest_mem_map(pid_t pid, uint64_t uaddr, uint64_t size, gboolean writable, void **local,
                  GError **error);

/* Unmaps what guest_mem_map returned (or a page-aligned part of it). */
void guest_mem_unmap(void *local, uint64_t size);

/* The thread-group id of a thread (from /proc/<tid>/status), or -errno. */
pid_t guest_mem_tgid_of(pid_t tid);
