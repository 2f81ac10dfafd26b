/* qemu_cmdline.h — which libvirt domain a QEMU process runs, from its command line.
 *
 * libvirt 9.0 starts QEMU with `-name guest=NAME,debug-threads=on` (a comma in NAME doubled)
 * and `-uuid UUID`; older libvirt wrote `-name NAME`. The UUID is the better key (unique,
 * no escaping); the name is the fallback.
 *
 * Ownership: qemu_identity owns its strings. Threads: any.
 */
#pragma once

#include <glib.h>
#include <sys/types.h>

struct qemu_identity {
    char *name; /* the domain name, or NULL */
    char *uuid; /* canonical 8-4-4-4-12 lower/upper hex, or NULL */
};

/* Reads argv as /proc/PID/cmdline holds it (each argument NUL-terminated). Sets what it finds;
 * -ENOENT with *error when there is neither -name nor -uuid (not a libvirt domain). */
int qemu_cmdline_identity(const char *argv, size_t len, struct qemu_identity *id,
                          GError **error);
/* The same from /proc/PID/cmdline; -ESRCH when the process is gone. */
int qemu_process_identity(pid_t pid, struct qemu_identity *id, GError **error);
void qemu_identity_clear(struct qemu_identity *id);
