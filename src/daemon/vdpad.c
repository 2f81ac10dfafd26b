/* vdpad — serves vhost-vdpa device nodes backed by simulated or real vDPA devices. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <glib-unix.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "core/node.h"
#include "dbus/dbus_service.h"
#include "libvirt_driver/domain_metadata.h"
#include "libvirt_driver/libvirt_sync.h"
#include "migration/mig_service.h"
#include "util/error.h"
#include "util/fd.h"
#include "util/log.h"
#include "vhost_vdpa/fuse_front.h"

#define DEFAULT_DEV_DIR "/run/vdpad/dev"

struct options {
    char *dev_dir;
    char *config;
    char **devices;
    gboolean foreground;
    char *log_level;
    char *bus;
    char *migration_listen;
    char *pki_dir;
    char **allowed_dns;
    char *migration_address;
    gboolean libvirt;
    char *libvirt_uri;
    gboolean version;
};

static int parse_bus(const char *name, GBusType *bus, gboolean *none)
{
    *none = FALSE;
    if (!name || g_str_equal(name, "system"))
        *bus = G_BUS_TYPE_SYSTEM;
    else if (g_str_equal(name, "session"))
        *bus = G_BUS_TYPE_SESSION;
    else if (g_str_equal(name, "none"))
        *none = TRUE;
    else
        return -EINVAL;
    return 0;
}

/* Refuses a second daemon on the same directory: a lock file beside it (the directory
 * itself is covered by the mount, so it cannot carry the lock). */
static int lock_dev_dir(const char *dir, GError **error)
{
    g_autofree char *parent = g_path_get_dirname(dir);
    g_autofree char *path = g_strconcat(dir, ".lock", NULL);

    if (g_mkdir_with_parents(parent, 0755) < 0)
        return vdpad_fail(error, errno, "cannot create %s: %s", parent, g_strerror(errno));
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return vdpad_fail(error, errno, "cannot open the lock file %s: %s", path, g_strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        int err = errno;
        close(fd);
        return vdpad_fail(error, err == EWOULDBLOCK ? EBUSY : err,
                          "another vdpad serves %s (lock %s is held)", dir, path);
    }
    return fd; /* held for the daemon's life */
}

static gboolean on_signal(gpointer loop)
{
    g_message("signal received, stopping");
    g_main_loop_quit(loop);
    return G_SOURCE_CONTINUE;
}

static gboolean watch_front(gpointer data)
{
    void **args = data;

    if (fuse_front_exited(args[0])) {
        g_main_loop_quit(args[1]);
        return G_SOURCE_REMOVE;
    }
    return G_SOURCE_CONTINUE;
}

/* Without --foreground: the parent waits until the child is serving (or failed) and
 * exits with its status, so `vdpad ...` returns when the nodes exist. */
static int ready_fd = -1;

static void report_ready(const char *error_text)
{
    if (ready_fd < 0)
        return;
    const char *msg = error_text ? error_text : "";
    ssize_t ignored = write(ready_fd, msg, strlen(msg) + 1);
    (void)ignored;
    close(ready_fd);
    ready_fd = -1;
    if (!error_text) {
        int null = open("/dev/null", O_RDWR);
        if (null >= 0) {
            dup2(null, STDIN_FILENO);
            dup2(null, STDOUT_FILENO);
            close(null);
        }
    }
}

static int daemonize(void)
{
    int pipefd[2];

    if (pipe2(pipefd, O_CLOEXEC) < 0)
        return -errno;
    pid_t pid = fork();
    if (pid < 0)
        return -errno;
    if (pid > 0) {
        close(pipefd[1]);
        char buf[1024] = "";
        ssize_t n = read(pipefd[0], buf, sizeof(buf) - 1);
        if (n <= 0) {
            fprintf(stderr, "vdpad: the daemon exited during start-up\n");
            _exit(1);
        }
        buf[n] = '\0';
        _exit(buf[0] ? 1 : 0);
    }
    close(pipefd[0]);
    ready_fd = pipefd[1];
    setsid();
    return 0;
}

/* Everything the daemon holds while it serves, torn down in reverse order. */
struct daemon {
    int lock_fd;
    struct node_registry *reg;
    struct fuse_front *front;
    struct mig_service *mig;
    struct libvirt_sync *libvirt;
    struct dbus_service *svc;
};

static void daemon_teardown(struct daemon *d)
{
    /* D-Bus first, then the sessions (devices reset) and the mount, then the devices. */
    g_clear_pointer(&d->svc, dbus_service_stop);
    g_clear_pointer(&d->libvirt, libvirt_sync_stop);
    g_clear_pointer(&d->mig, mig_service_stop);
    g_clear_pointer(&d->front, fuse_front_free);
    g_clear_pointer(&d->reg, node_registry_free);
    if (d->lock_fd >= 0)
        close(d->lock_fd);
    d->lock_fd = -1;
}

static int daemon_setup(struct daemon *d, struct options *opt, const char *dir, GBusType bus,
                        gboolean no_bus, GError **error)
{
    d->lock_fd = lock_dev_dir(dir, error);
    if (d->lock_fd < 0)
        return d->lock_fd;
    d->reg = node_registry_new();
    node_registry_set_own_dir(d->reg, dir);
    if (opt->config) {
        g_autoptr(GPtrArray) specs = device_spec_load_config(opt->config, error);
        if (!specs)
            return -EINVAL;
        for (guint i = 0; i < specs->len; i++) {
            int ret = node_registry_create(d->reg, specs->pdata[i], NULL, error);
            if (ret < 0)
                return ret;
        }
    }
    for (char **spec = opt->devices; spec && *spec; spec++) {
        int ret = node_registry_create(d->reg, *spec, NULL, error);
        if (ret < 0)
            return ret;
    }
    d->front = fuse_front_new(dir, d->reg, error);
    if (!d->front)
        return -EIO;
    /* the channel needs certificates; without any migration option vdpad runs without it
     * (a destination then cannot restore, and says so) */
    if (opt->migration_listen || opt->pki_dir) {
        struct mig_service_config mcfg = {
            .listen = opt->migration_listen, .pki_dir = opt->pki_dir,
            .allowed_dns = (const char *const *)opt->allowed_dns,
        };
        d->mig = mig_service_start(d->reg, &mcfg, error);
        if (!d->mig)
            return -EIO;
    }
    /* with libvirt: tell each domain where its destination gets the device state */
    if (opt->libvirt || opt->libvirt_uri) {
        const char *address = opt->migration_address;
        if (!address && opt->migration_listen && vdpad_mig_address_valid(opt->migration_listen))
            address = opt->migration_listen;
        if (!address)
            return vdpad_fail(error, EINVAL, "--libvirt needs the address destinations reach this "
                              "vdpad's migration channel at: --migration-address HOST:PORT (or a "
                              "--migration-listen that is not a wildcard)");
        struct libvirt_sync_config lcfg = {
            .uri = opt->libvirt_uri, .address = address, .dev_dir = dir,
        };
        d->libvirt = libvirt_sync_start(d->reg, &lcfg, error);
        if (!d->libvirt)
            return -EINVAL;
    }
    if (!no_bus) {
        d->svc = dbus_service_start(bus, d->reg, d->front, error);
        if (!d->svc)
            return -EIO;
        dbus_service_set_migration(d->svc, d->mig);
    }
    return 0;
}

static int run(struct options *opt)
{
    g_autoptr(GError) err = NULL;
    struct daemon d = { .lock_fd = -1 };
    GBusType bus = G_BUS_TYPE_SYSTEM; /* set by parse_bus; gcc cannot tell */
    gboolean no_bus;

    if (parse_bus(opt->bus, &bus, &no_bus) < 0) {
        g_printerr("vdpad: --bus must be system, session or none\n");
        report_ready("bad --bus");
        return 2;
    }
    g_autofree char *dir = g_canonicalize_filename(opt->dev_dir ? opt->dev_dir : DEFAULT_DEV_DIR,
                                                   NULL);
    if (daemon_setup(&d, opt, dir, bus, no_bus, &err) < 0) {
        g_printerr("vdpad: %s\n", err ? err->message : "start-up failed");
        report_ready(err ? err->message : "start-up failed");
        daemon_teardown(&d);
        return 1;
    }

    g_autoptr(GMainLoop) loop = g_main_loop_new(NULL, FALSE);
    guint sigterm = g_unix_signal_add(SIGTERM, on_signal, loop);
    guint sigint = g_unix_signal_add(SIGINT, on_signal, loop);
    void *watch_args[2] = { d.front, loop };
    guint watch = g_timeout_add(200, watch_front, watch_args);

    g_autoptr(GPtrArray) nodes = node_registry_list(d.reg);
    g_message("serving %u device node%s in %s%s%s", nodes->len, nodes->len == 1 ? "" : "s", dir,
              no_bus ? "" : ", D-Bus name org.vdpad1 on the ",
              no_bus ? "" : (bus == G_BUS_TYPE_SYSTEM ? "system bus" : "session bus"));
    report_ready(NULL);
    g_main_loop_run(loop);

    g_source_remove(sigterm);
    g_source_remove(sigint);
    if (!fuse_front_exited(d.front))
        g_source_remove(watch);
    daemon_teardown(&d);
    g_message("stopped");
    return 0;
}

int main(int argc, char **argv)
{
    struct options opt = { 0 };
    GOptionEntry entries[] = {
        { "dev-dir", 0, 0, G_OPTION_ARG_FILENAME, &opt.dev_dir,
          "Directory of the device nodes (default " DEFAULT_DEV_DIR ")", "DIR" },
        { "config", 0, 0, G_OPTION_ARG_FILENAME, &opt.config,
          "Devices from a config file ([device NAME] groups)", "FILE" },
        { "device", 0, 0, G_OPTION_ARG_STRING_ARRAY, &opt.devices,
          "A device: net:NAME[,mac=M][,queues=N][,mtu=N][,features=0xHEX], "
          "blk:NAME[,size=128M][,queues=N] or kernel:NAME,path=/dev/vhost-vdpa-N", "SPEC" },
        { "foreground", 'f', 0, G_OPTION_ARG_NONE, &opt.foreground,
          "Stay in the foreground (default: detach once serving)", NULL },
        { "log-level", 0, 0, G_OPTION_ARG_STRING, &opt.log_level,
          "error, warning, message (default), info or debug", "LEVEL" },
        { "bus", 0, 0, G_OPTION_ARG_STRING, &opt.bus,
          "D-Bus to serve on: system (default), session or none", "BUS" },
        { "migration-listen", 0, 0, G_OPTION_ARG_STRING, &opt.migration_listen,
          "Serve device states to migration destinations on HOST:PORT (mutual TLS)",
          "HOST:PORT" },
        { "pki-dir", 0, 0, G_OPTION_ARG_FILENAME, &opt.pki_dir,
          "Certificates for the migration channel, libvirt.s pkipath layout (cacert.pem, "
          "servercert.pem, serverkey.pem, clientcert.pem, clientkey.pem); "
          "default: libvirt's own /etc/pki layout", "DIR" },
        { "migration-allowed-dn", 0, 0, G_OPTION_ARG_STRING_ARRAY, &opt.allowed_dns,
          "Admit only destinations whose certificate DN matches PATTERN (repeatable; "
          "* and ? wildcards, as libvirt's tls_allowed_dn_list)", "PATTERN" },
        { "migration-address", 0, 0, G_OPTION_ARG_STRING, &opt.migration_address,
          "The address destinations reach this vdpad's migration channel at, written into "
          "libvirt domains (default: --migration-listen unless it is a wildcard)", "HOST:PORT" },
        { "libvirt", 0, 0, G_OPTION_ARG_NONE, &opt.libvirt,
          "Write migration metadata into the libvirt domains that use the nodes (on "
          LIBVIRT_SYNC_DEFAULT_URI ")", NULL },
        { "libvirt-uri", 0, 0, G_OPTION_ARG_STRING, &opt.libvirt_uri,
          "The same on another libvirt connection (implies --libvirt)", "URI" },
        { "version", 0, 0, G_OPTION_ARG_NONE, &opt.version, "Print the version and exit", NULL },
        { NULL },
    };
    g_autoptr(GOptionContext) ctx = g_option_context_new("- serve vhost-vdpa device nodes");
    g_autoptr(GError) err = NULL;

    g_option_context_add_main_entries(ctx, entries, NULL);
    g_option_context_set_description(ctx,
        "Each device becomes a node DIR/NAME that QEMU (-netdev vhost-vdpa,vhostdev=DIR/NAME)\n"
        "and libvirt (<interface type='vdpa'><source dev='DIR/NAME'/>) use like\n"
        "/dev/vhost-vdpa-N. Guest RAM must be shared memory (memfd). See vdpad(8).");
    if (!g_option_context_parse(ctx, &argc, &argv, &err)) {
        g_printerr("vdpad: %s (see vdpad --help)\n", err->message);
        return 2;
    }
    if (opt.version) {
        printf("vdpad %s\n", PACKAGE_VERSION);
        return 0;
    }
    if (argc > 1) {
        g_printerr("vdpad: unexpected argument '%s' (see vdpad --help)\n", argv[1]);
        return 2;
    }
    GLogLevelFlags level = G_LOG_LEVEL_MESSAGE;
    if (opt.log_level && !vdpad_log_parse_level(opt.log_level, &level)) {
        g_printerr("vdpad: --log-level must be error, warning, message, info or debug\n");
        return 2;
    }
    vdpad_log_init("vdpad", level);
    if (!opt.foreground && daemonize() < 0) {
        g_printerr("vdpad: cannot detach: %s\n", g_strerror(errno));
        return 1;
    }
    int rc = run(&opt);
    g_free(opt.dev_dir);
    g_free(opt.config);
    g_strfreev(opt.devices);
    g_free(opt.log_level);
    g_free(opt.bus);
    g_free(opt.migration_listen);
    g_free(opt.pki_dir);
    g_strfreev(opt.allowed_dns);
    g_free(opt.migration_address);
    g_free(opt.libvirt_uri);
    return rc;
}
