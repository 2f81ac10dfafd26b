/* qemu_proc.h — QEMU processes for the QMP tests.
 *
 * Each runs `qemu-system-x86_64 -nodefaults -display none -qmp unix:DIR/NAME.qmp,...` plus
 * the test's arguments, with its output in DIR/NAME.log, and dies with the test process.
 * The helpers fail the running cmocka test (fail_msg) when something does not work.
 * Threads: the test's thread (qemu_proc_kill_after may run from another).
 */
#pragma once

#include <glib.h>
#include <sys/types.h>

#include "qmp/qmp_client.h"

struct qemu_proc {
    pid_t pid;       /* 0 once reaped */
    char *name;
    char *qmp_path;
    char *log_path;
};

/* The QEMU binary: $QEMU, else qemu-system-x86_64 from PATH; NULL if there is none. */
char *qemu_binary(void);
/* A fresh directory for sockets and logs; qemu_dir_remove() deletes it and its files. */
char *qemu_dir_new(void);
void qemu_dir_remove(char *dir);

/* args: NULL-terminated, after the common ones. */
struct qemu_proc *qemu_proc_start(const char *dir, const char *name, const char *const *args);
/* Connects to its QMP socket (waiting for QEMU to create it) with the handshake. */
struct qmp_client *qemu_proc_connect(struct qemu_proc *p, int timeout_ms);
/* Sends sig; SIGKILL also reaps it. */
void qemu_proc_signal(struct qemu_proc *p, int sig);
/* Sends sig after delay_ms from a thread of its own (to interrupt a blocking call). */
GThread *qemu_proc_signal_later(struct qemu_proc *p, int sig, int delay_ms);
/* Waits up to timeout_ms for it to exit by itself; TRUE if it did (and reaps it). */
gboolean qemu_proc_wait_exit(struct qemu_proc *p, int timeout_ms);
/* Kills (if still running) and frees. */
void qemu_proc_free(struct qemu_proc *p);
typedef struct qemu_proc qemu_proc;
G_DEFINE_AUTOPTR_CLEANUP_FUNC(qemu_proc, qemu_proc_free)
