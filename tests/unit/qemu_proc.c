/* QEMU processes for the QMP tests (see qemu_proc.h). */
#include "config.h"

#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "qemu_proc.h"
#include "util/error.h"

char *qemu_binary(void)
{
    const char *env = g_getenv("QEMU");

    if (env && *env)
        return g_file_test(env, G_FILE_TEST_IS_EXECUTABLE) ? g_strdup(env) : NULL;
    return g_find_program_in_path("qemu-system-x86_64");
}

char *qemu_dir_new(void)
{
    g_autoptr(GError) err = NULL;
    char *dir = g_dir_make_tmp("vdpad-qmp-XXXXXX", &err);

    if (!dir)
        fail_msg("cannot make a temporary directory: %s", err->message);
    return dir;
}

void qemu_dir_remove(char *dir)
{
    g_autoptr(GDir) d = dir ? g_dir_open(dir, 0, NULL) : NULL;
    const char *name;

    while (d && (name = g_dir_read_name(d))) {
        g_autofree char *path = g_build_filename(dir, name, NULL);
        unlink(path);
    }
    if (dir)
        rmdir(dir);
    g_free(dir);
}

/* The last lines of the process's log, for failure messages. */
static char *log_tail(const struct qemu_proc *p)
{
    g_autofree char *text = NULL;

    if (!g_file_get_contents(p->log_path, &text, NULL, NULL) || !*text)
        return g_strdup("(no output)");
    size_t len = strlen(text);
    return g_strdup(text + (len > 600 ? len - 600 : 0));
}

struct qemu_proc *qemu_proc_start(const char *dir, const char *name, const char *const *args)
{
    g_autofree char *bin = qemu_binary();

    if (!bin)
        fail_msg("qemu-system-x86_64 not found (PATH or $QEMU): install qemu-system-x86");
    struct qemu_proc *p = g_new0(struct qemu_proc, 1);
    p->name = g_strdup(name);
    p->qmp_path = g_strdup_printf("%s/%s.qmp", dir, name);
    p->log_path = g_strdup_printf("%s/%s.log", dir, name);

    g_autoptr(GPtrArray) argv = g_ptr_array_new_with_free_func(g_free);
    g_ptr_array_add(argv, g_strdup(bin));
    const char *const common[] = { "-nodefaults", "-display", "none", "-qmp" };
    for (size_t i = 0; i < G_N_ELEMENTS(common); i++)
        g_ptr_array_add(argv, g_strdup(common[i]));
    g_ptr_array_add(argv, g_strdup_printf("unix:%s,server=on,wait=off", p->qmp_path));
    for (size_t i = 0; args && args[i]; i++)
        g_ptr_array_add(argv, g_strdup(args[i]));
    g_ptr_array_add(argv, NULL);

    int log_fd = open(p->log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    assert_true(log_fd >= 0);
    pid_t parent = getpid();
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* only async-signal-safe calls from here */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        int null_fd = open("/dev/null", O_RDONLY);
        dup2(null_fd, 0);
        dup2(log_fd, 1);
        dup2(log_fd, 2);
        execv((const char *)argv->pdata[0], (char *const *)argv->pdata);
        _exit(127);
    }
    close(log_fd);
    p->pid = pid;
    return p;
}

struct qmp_client *qemu_proc_connect(struct qemu_proc *p, int timeout_ms)
{
    gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;
    int status;

    /* QEMU creates the socket while it starts; until then connecting fails */
    while (!g_file_test(p->qmp_path, G_FILE_TEST_EXISTS)) {
        if (p->pid && waitpid(p->pid, &status, WNOHANG) == p->pid) {
            p->pid = 0;
            g_autofree char *tail = log_tail(p);
            fail_msg("QEMU %s exited before creating its QMP socket: %s", p->name, tail);
        }
        if (g_get_monotonic_time() > deadline) {
            g_autofree char *tail = log_tail(p);
            fail_msg("QEMU %s created no QMP socket in %d ms: %s", p->name, timeout_ms, tail);
        }
        g_usleep(10000);
    }
    g_autoptr(GError) err = NULL;
    struct qmp_client *c;

    /* the socket exists from bind(), connections are accepted from listen() */
    for (;;) {
        int left_ms = (int)MAX((deadline - g_get_monotonic_time()) / 1000, 1);

        c = qmp_client_connect(p->qmp_path, left_ms, &err);
        if (c || vdpad_error_errno(err) != -ECONNREFUSED || g_get_monotonic_time() > deadline)
            break;
        g_clear_error(&err);
        g_usleep(10000);
    }
    if (!c) {
        g_autofree char *tail = log_tail(p);
        fail_msg("QMP to QEMU %s: %s; its log: %s", p->name, err->message, tail);
    }
    return c;
}

void qemu_proc_signal(struct qemu_proc *p, int sig)
{
    if (!p->pid)
        return;
    kill(p->pid, sig);
    if (sig == SIGKILL) {
        waitpid(p->pid, NULL, 0);
        p->pid = 0;
    }
}

struct delayed_signal {
    pid_t pid;
    int sig;
    int delay_ms;
};

static gpointer signal_thread(gpointer data)
{
    struct delayed_signal *d = data;

    g_usleep((gulong)d->delay_ms * 1000);
    kill(d->pid, d->sig); /* the test thread reaps it */
    g_free(d);
    return NULL;
}

GThread *qemu_proc_signal_later(struct qemu_proc *p, int sig, int delay_ms)
{
    struct delayed_signal *d = g_new(struct delayed_signal, 1);

    assert_true(p->pid > 0);
    d->pid = p->pid;
    d->sig = sig;
    d->delay_ms = delay_ms;
    return g_thread_new("qemu-signal", signal_thread, d);
}

gboolean qemu_proc_wait_exit(struct qemu_proc *p, int timeout_ms)
{
    gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;

    while (p->pid) {
        if (waitpid(p->pid, NULL, WNOHANG) == p->pid) {
            p->pid = 0;
            break;
        }
        if (g_get_monotonic_time() > deadline)
            return FALSE;
        g_usleep(10000);
    }
    return TRUE;
}

void qemu_proc_free(struct qemu_proc *p)
{
    if (!p)
        return;
    qemu_proc_signal(p, SIGKILL);
    unlink(p->qmp_path);
    g_free(p->name);
    g_free(p->qmp_path);
    g_free(p->log_path);
    g_free(p);
}
