#include "config.h"

#define FUSE_USE_VERSION 35
#include <fuse_lowlevel.h>

#include <errno.h>
#include <fcntl.h>
#include <glib-unix.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include "util/error.h"
#include "vhost_vdpa/fuse_front.h"
#include "vhost_vdpa/guest_mem.h"
#include "vhost_vdpa/uapi.h"

/* One file. Inode numbers are never reused within a mount. */
struct entry {
    fuse_ino_t ino;
    struct vdpa_node *node;
};

struct fuse_front {
    char *dir;
    struct node_registry *reg;
    struct fuse_session *se;
    guint source;
    struct fuse_buf buf;
    GHashTable *by_name; /* name -> struct entry (owned) */
    GHashTable *by_ino;  /* ino -> struct entry */
    fuse_ino_t next_ino;
    gboolean exited;
};

/* ------------------------------------------------------------------ memory of clients */

static int map_client_memory(void *opaque, pid_t pid, uint64_t uaddr, uint64_t size,
                             bool writable, void **local, GError **error)
{
    return guest_mem_map(pid, uaddr, size, writable, local, error);
}

static void unmap_client_memory(void *opaque, void *local, uint64_t size)
{
    guest_mem_unmap(local, size);
}

static const struct session_mem_ops client_memory = {
    .map = map_client_memory,
    .unmap = unmap_client_memory,
};

/* ------------------------------------------------------------------ inodes */

static struct entry *entry_of(struct fuse_front *f, fuse_ino_t ino)
{
    return g_hash_table_lookup(f->by_ino, &ino);
}

static void fill_attr(struct fuse_front *f, fuse_ino_t ino, const struct entry *e,
                      struct stat *st)
{
    memset(st, 0, sizeof(*st));
    st->st_ino = ino;
    if (ino == FUSE_ROOT_ID) {
        st->st_mode = S_IFDIR | 0755;
        st->st_nlink = 2;
    } else {
        st->st_mode = S_IFREG | 0600;
        st->st_nlink = 1;
        st->st_mtim.tv_sec = e->node->created_us / G_USEC_PER_SEC;
        st->st_ctim = st->st_mtim;
    }
}

static void on_node_event(struct vdpa_node *node, enum node_event ev, void *data)
{
    struct fuse_front *f = data;

    if (ev == NODE_ADDED) {
        struct entry *e = g_new0(struct entry, 1);
        e->ino = f->next_ino++;
        e->node = node;
        g_hash_table_insert(f->by_ino, &e->ino, e);
        g_hash_table_insert(f->by_name, node->name, e);
    } else if (ev == NODE_REMOVED) {
        struct entry *e = g_hash_table_lookup(f->by_name, node->name);
        if (e) {
            g_hash_table_remove(f->by_ino, &e->ino);
            g_hash_table_remove(f->by_name, node->name); /* frees e */
        }
    }
}

/* The process behind the thread that made a request. */
static pid_t caller_tgid(fuse_req_t req)
{
    pid_t tid = fuse_req_ctx(req)->pid;
    pid_t tgid = guest_mem_tgid_of(tid);

    return tgid > 0 ? tgid : tid;
}

/* ------------------------------------------------------------------ FUSE operations */

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    struct fuse_front *f = fuse_req_userdata(req);
    struct entry *e = parent == FUSE_ROOT_ID ? g_hash_table_lookup(f->by_name, name) : NULL;

    if (!e) {
        fuse_reply_err(req, ENOENT);
        return;
    }
    struct fuse_entry_param ep = { .ino = e->ino, .generation = 1 };
    fill_attr(f, e->ino, e, &ep.attr);
    fuse_reply_entry(req, &ep);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct fuse_front *f = fuse_req_userdata(req);
    struct entry *e = entry_of(f, ino);
    struct stat st;

    if (ino != FUSE_ROOT_ID && !e) {
        fuse_reply_err(req, ENOENT);
        return;
    }
    fill_attr(f, ino, e, &st);
    fuse_reply_attr(req, &st, 0);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                       struct fuse_file_info *fi)
{
    struct fuse_front *f = fuse_req_userdata(req);

    if (ino != FUSE_ROOT_ID) {
        fuse_reply_err(req, ENOTDIR);
        return;
    }
    g_autoptr(GPtrArray) nodes = node_registry_list(f->reg);
    g_autofree char *buf = g_malloc(size);
    size_t used = 0;
    /* offsets: 1 ".", 2 "..", 3.. nodes in name order */
    for (off_t i = off; i < (off_t)nodes->len + 2; i++) {
        struct stat st = { 0 };
        const char *name;
        if (i == 0) {
            name = ".";
            st.st_ino = FUSE_ROOT_ID;
            st.st_mode = S_IFDIR;
        } else if (i == 1) {
            name = "..";
            st.st_ino = FUSE_ROOT_ID;
            st.st_mode = S_IFDIR;
        } else {
            struct vdpa_node *node = nodes->pdata[i - 2];
            struct entry *e = g_hash_table_lookup(f->by_name, node->name);
            name = node->name;
            st.st_ino = e->ino;
            st.st_mode = S_IFREG;
        }
        size_t need = fuse_add_direntry(req, buf + used, size - used, name, &st, i + 1);
        if (need > size - used)
            break;
        used += need;
    }
    fuse_reply_buf(req, buf, used);
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct fuse_front *f = fuse_req_userdata(req);
    struct entry *e = entry_of(f, ino);
    g_autoptr(GError) err = NULL;

    if (!e) {
        fuse_reply_err(req, ino == FUSE_ROOT_ID ? EISDIR : ENOENT);
        return;
    }
    int ret = node_open(f->reg, e->node, caller_tgid(req), &client_memory, NULL, &err);
    if (ret < 0) {
        g_message("%s: open refused: %s", e->node->name, err->message);
        fuse_reply_err(req, -ret);
        return;
    }
    fi->fh = ino;
    fi->direct_io = 1;   /* no page cache: every write reaches us, shared mmap is refused */
    fi->nonseekable = 1;
    fi->keep_cache = 0;
    if (fuse_reply_open(req, fi) != 0)
        node_close(f->reg, e->node); /* the opener is gone already */
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct fuse_front *f = fuse_req_userdata(req);
    struct entry *e = entry_of(f, ino);

    if (e)
        node_close(f->reg, e->node);
    fuse_reply_err(req, 0);
}

static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    fuse_reply_err(req, 0);
}

static struct session *session_of(struct fuse_front *f, fuse_ino_t ino, const char **name)
{
    struct entry *e = entry_of(f, ino);

    *name = e ? e->node->name : "?";
    return e ? e->node->session : NULL;
}

/* Refusals are the client's business, but an operator wants to see them; probes for
 * optional ioctls are routine and only logged at debug level. */
static void log_refusal(const char *what, int ret, const GError *err)
{
    if (ret == -ENOTTY || ret == -EOPNOTSUPP)
        g_debug("%s: %s", what, err ? err->message : g_strerror(-ret));
    else
        g_message("%s refused (%s): %s", what, g_strerror(-ret), err ? err->message : "");
}

static void op_ioctl(fuse_req_t req, fuse_ino_t ino, unsigned int cmd, void *arg,
                     struct fuse_file_info *fi, unsigned flags, const void *in_buf,
                     size_t in_bufsz, size_t out_bufsz)
{
    struct fuse_front *f = fuse_req_userdata(req);
    const char *name;
    struct session *s = session_of(f, ino, &name);
    g_autoptr(GError) err = NULL;

    if (!s) {
        fuse_reply_err(req, EBADF);
        return;
    }
    if (flags & FUSE_IOCTL_COMPAT) {
        fuse_reply_err(req, ENOTTY); /* 32-bit clients: vhost's layouts differ */
        return;
    }
    pid_t tid = fuse_req_ctx(req)->pid;
    struct uapi_caller caller = { .tid = tid, .tgid = caller_tgid(req), .arg = (uintptr_t)arg };
    g_autofree uint8_t *out = out_bufsz ? g_malloc0(out_bufsz) : NULL;
    int ret = uapi_ioctl(s, &caller, &uapi_process_peer, cmd, in_buf, in_bufsz, out, out_bufsz,
                         &err);
    if (ret < 0) {
        g_autofree char *what = g_strdup_printf("%s: %s", name,
                                                uapi_ioctl_name(cmd) ? uapi_ioctl_name(cmd) : "ioctl");
        log_refusal(what, ret, err);
        fuse_reply_err(req, -ret);
        return;
    }
    fuse_reply_ioctl(req, ret, out, out_bufsz);
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
                     struct fuse_file_info *fi)
{
    struct fuse_front *f = fuse_req_userdata(req);
    const char *name;
    struct session *s = session_of(f, ino, &name);
    g_autoptr(GError) err = NULL;

    if (!s) {
        fuse_reply_err(req, EBADF);
        return;
    }
    struct uapi_caller caller = { .tid = fuse_req_ctx(req)->pid, .tgid = caller_tgid(req) };
    ssize_t n = uapi_write(s, &caller, buf, size, &err);
    if (n < 0) {
        g_autofree char *what = g_strdup_printf("%s: IOTLB message", name);
        log_refusal(what, (int)n, err);
        fuse_reply_err(req, (int)-n);
        return;
    }
    fuse_reply_write(req, (size_t)n);
}

/* The kernel's vhost-vdpa node has no read (EINVAL) and no poll (the default mask, which
 * FUSE gives when poll is not implemented). */
static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                    struct fuse_file_info *fi)
{
    fuse_reply_err(req, EINVAL);
}

static const struct fuse_lowlevel_ops front_ops = {
    .lookup = op_lookup,
    .getattr = op_getattr,
    .readdir = op_readdir,
    .open = op_open,
    .release = op_release,
    .flush = op_flush,
    .ioctl = op_ioctl,
    .write = op_write,
    .read = op_read,
};

/* ------------------------------------------------------------------ main loop glue */

static gboolean on_fuse_readable(gint fd, GIOCondition cond, gpointer data)
{
    struct fuse_front *f = data;
    int n = fuse_session_receive_buf(f->se, &f->buf);

    if (n == -EINTR || n == -EAGAIN)
        return G_SOURCE_CONTINUE;
    if (n <= 0 || fuse_session_exited(f->se)) {
        if (!f->exited)
            g_warning("FUSE mount %s ended (%s)", f->dir, n < 0 ? g_strerror(-n) : "unmounted");
        f->exited = TRUE;
        f->source = 0;
        return G_SOURCE_REMOVE;
    }
    fuse_session_process_buf(f->se, &f->buf);
    return G_SOURCE_CONTINUE;
}

/* A mount point left by a daemon that died answers ENOTCONN; detach it. */
static void detach_stale_mount(const char *dir)
{
    struct stat st;

    if (stat(dir, &st) < 0 && errno == ENOTCONN) {
        g_message("detaching the stale mount at %s", dir);
        umount2(dir, MNT_DETACH);
    }
}

struct fuse_front *fuse_front_new(const char *dir, struct node_registry *reg, GError **error)
{
    if (g_mkdir_with_parents(dir, 0755) < 0 && errno != EEXIST) {
        detach_stale_mount(dir);
        if (g_mkdir_with_parents(dir, 0755) < 0) {
            vdpad_fail(error, errno, "cannot create %s: %s", dir, g_strerror(errno));
            return NULL;
        }
    }
    detach_stale_mount(dir);

    g_autoptr(fuse_front) f = g_new0(struct fuse_front, 1);
    f->dir = g_strdup(dir);
    f->reg = reg;
    f->next_ino = FUSE_ROOT_ID + 1;
    f->by_ino = g_hash_table_new(g_int64_hash, g_int64_equal);
    f->by_name = g_hash_table_new_full(g_str_hash, g_str_equal, NULL, g_free);

    char arg0[] = "vdpad", arg1[] = "-o",
         arg2[] = "allow_other,default_permissions,fsname=vdpad,subtype=vdpad";
    char *argv[] = { arg0, arg1, arg2, NULL };
    struct fuse_args args = FUSE_ARGS_INIT(3, argv);
    f->se = fuse_session_new(&args, &front_ops, sizeof(front_ops), f);
    if (!f->se) {
        vdpad_fail(error, EIO, "cannot create a FUSE session (is /dev/fuse there?)");
        return NULL;
    }
    if (fuse_session_mount(f->se, dir) != 0) {
        vdpad_fail(error, EIO, "cannot mount FUSE at %s (see the message above; root needed)",
                   dir);
        fuse_session_destroy(f->se);
        f->se = NULL;
        return NULL;
    }
    f->source = g_unix_fd_add(fuse_session_fd(f->se), G_IO_IN | G_IO_ERR | G_IO_HUP,
                              on_fuse_readable, f);

    g_autoptr(GPtrArray) nodes = node_registry_list(reg);
    for (guint i = 0; i < nodes->len; i++)
        on_node_event(nodes->pdata[i], NODE_ADDED, f);
    node_registry_add_observer(reg, on_node_event, f);
    return g_steal_pointer(&f);
}

void fuse_front_free(struct fuse_front *f)
{
    if (!f)
        return;
    if (f->reg) {
        node_registry_remove_observer(f->reg, on_node_event, f);
        g_autoptr(GPtrArray) nodes = node_registry_list(f->reg);
        for (guint i = 0; i < nodes->len; i++)
            node_close(f->reg, nodes->pdata[i]);
    }
    if (f->source)
        g_source_remove(f->source);
    if (f->se) {
        fuse_session_unmount(f->se);
        fuse_session_destroy(f->se);
    }
    free(f->buf.mem);
    g_hash_table_destroy(f->by_ino);
    g_hash_table_destroy(f->by_name);
    g_free(f->dir);
    g_free(f);
}

char *fuse_front_node_path(struct fuse_front *f, const char *name)
{
    return g_build_filename(f->dir, name, NULL);
}

gboolean fuse_front_exited(struct fuse_front *f)
{
    return f->exited;
}
