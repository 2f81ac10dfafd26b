/* libvirt_sync.c — writes vdpad's migration metadata into libvirt domains, off the control
 * thread (see the header for why). */
#include "config.h"

#include "libvirt_driver/libvirt_sync.h"

#include <errno.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <string.h>

#include "libvirt_driver/domain_metadata.h"
#include "libvirt_driver/qemu_cmdline.h"
#include "util/error.h"

struct job {
    char *name;  /* node name */
    char *node;  /* node path */
    char *token; /* the session's */
    pid_t owner;
    unsigned attempts;
    unsigned delay_ms;
    gint64 due_us; /* g_get_monotonic_time() */
};

struct libvirt_sync {
    struct node_registry *reg;
    char *uri;
    char *address;
    char *dev_dir;
    unsigned max_attempts, first_delay_ms, max_delay_ms;
    libvirt_sync_done_fn done;
    void *done_opaque;

    GThread *thread;
    GMutex lock;
    GCond cond;
    bool quit;              /* under lock */
    GPtrArray *jobs;        /* struct job *, under lock */
    GHashTable *live;       /* node name -> token of its session with an owner, under lock */

    virConnectPtr conn;     /* worker thread only */
};

static void job_free(struct job *j)
{
    g_free(j->name);
    g_free(j->node);
    g_free(j->token);
    g_free(j);
}

/* ------------------------------------------------------------------ the control thread */

static void on_node_event(struct vdpa_node *node, enum node_event event, void *data)
{
    struct libvirt_sync *s = data;
    pid_t owner = node->session ? session_owner(node->session) : 0;

    g_mutex_lock(&s->lock);
    if (event == NODE_CLOSED || event == NODE_REMOVED) {
        g_hash_table_remove(s->live, node->name); /* its job, queued or retrying, ends */
        g_cond_signal(&s->cond);
    } else if ((event == NODE_CHANGED || event == NODE_OPENED) && owner > 0) {
        const char *queued = g_hash_table_lookup(s->live, node->name);
        if (!queued || !g_str_equal(queued, node->token)) {
            struct job *j = g_new0(struct job, 1);
            j->name = g_strdup(node->name);
            j->node = g_build_filename(s->dev_dir, node->name, NULL);
            j->token = g_strdup(node->token);
            j->owner = owner;
            j->delay_ms = s->first_delay_ms;
            j->due_us = g_get_monotonic_time();
            g_hash_table_insert(s->live, g_strdup(node->name), g_strdup(node->token));
            g_ptr_array_add(s->jobs, j);
            g_cond_signal(&s->cond);
        }
    }
    g_mutex_unlock(&s->lock);
}

/* ------------------------------------------------------------------ the worker thread */

static void ignore_libvirt_error(void *opaque, virErrorPtr err)
{
    /* errors are read with virGetLastError and reported by us, with the node named */
}

static bool job_live(struct libvirt_sync *s, const struct job *j)
{
    const char *token = g_hash_table_lookup(s->live, j->name);
    return token && g_str_equal(token, j->token);
}

static int libvirt_fail(GError **error, const char *what)
{
    virErrorPtr e = virGetLastError();
    int code = e ? e->code : VIR_ERR_INTERNAL_ERROR;
    int err;

    switch (code) {
    case VIR_ERR_NO_DOMAIN: err = ENOENT; break;
    case VIR_ERR_OPERATION_TIMEOUT: err = ETIMEDOUT; break;
    case VIR_ERR_NO_CONNECT:
    case VIR_ERR_SYSTEM_ERROR:
    case VIR_ERR_RPC:
    case VIR_ERR_AUTH_FAILED: err = ECONNREFUSED; break;
    default: err = EIO; break;
    }
    vdpad_fail(error, err, "%s: %s", what, e && e->message ? e->message : "failed");
    virResetLastError();
    return -err;
}

static void drop_connection(struct libvirt_sync *s)
{
    if (s->conn) {
        virConnectClose(s->conn);
        s->conn = NULL;
    }
}

static virDomainPtr find_domain(struct libvirt_sync *s, const struct qemu_identity *id,
                                GError **error)
{
    virDomainPtr dom = NULL;

    if (id->uuid)
        dom = virDomainLookupByUUIDString(s->conn, id->uuid);
    if (!dom && id->name) {
        virResetLastError();
        dom = virDomainLookupByName(s->conn, id->name);
    }
    if (!dom)
        libvirt_fail(error, id->uuid ? "looking up the domain by UUID and name"
                                     : "looking up the domain by name");
    return dom;
}

/* Replaces this node's entry in the domain's element. */
static int update_domain(struct libvirt_sync *s, virDomainPtr dom, const struct job *j,
                         const char *domain, bool *permanent, GError **error)
{
    g_autoptr(GPtrArray) devices = NULL;
    char *old = virDomainGetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT, VDPAD_MIG_XMLNS,
                                     VIR_DOMAIN_AFFECT_LIVE);
    if (old) {
        g_autoptr(GError) bad = NULL;
        devices = domain_metadata_parse(old, strlen(old), &bad);
        if (!devices)
            g_warning("%s: domain %s: replacing vdpad's metadata element, which is invalid: %s",
                      j->name, domain, bad->message);
        free(old);
    } else {
        virErrorPtr e = virGetLastError();
        if (!e || e->code != VIR_ERR_NO_DOMAIN_METADATA)
            return libvirt_fail(error, "reading its metadata");
        virResetLastError();
    }
    if (!devices)
        devices = vdpad_mig_devices_new();
    struct vdpad_mig_device mine = {
        .node = j->node, .name = j->name, .source = s->address, .token = j->token,
    };
    int ret = domain_metadata_upsert(devices, &mine, error);
    if (ret < 0) {
        *permanent = true;
        return ret;
    }
    g_autofree char *xml = domain_metadata_format(devices, false);
    if (virDomainSetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT, xml, VDPAD_MIG_XMLNS_PREFIX,
                             VDPAD_MIG_XMLNS, VIR_DOMAIN_AFFECT_LIVE) < 0)
        return libvirt_fail(error, "setting its metadata");
    return 0;
}

/* One attempt. *permanent: retrying cannot help. */
static int write_metadata(struct libvirt_sync *s, const struct job *j, char **domain,
                          bool *permanent, GError **error)
{
    struct qemu_identity id;
    int ret = qemu_process_identity(j->owner, &id, error);

    *permanent = ret < 0; /* gone, or not a libvirt domain */
    if (ret < 0)
        return ret;
    if (!s->conn) {
        s->conn = virConnectOpen(s->uri);
        if (!s->conn) {
            ret = libvirt_fail(error, "cannot connect to libvirt");
            vdpad_prefix_error(error, "%s: ", s->uri);
            qemu_identity_clear(&id);
            return ret;
        }
    }
    virDomainPtr dom = find_domain(s, &id, error);
    if (!dom) {
        vdpad_prefix_error(error, "owner pid %d (%s%s%s): ", (int)j->owner,
                           id.name ? id.name : "", id.name && id.uuid ? " " : "",
                           id.uuid ? id.uuid : "");
        ret = -ENOENT;
    } else {
        *domain = g_strdup(virDomainGetName(dom));
        ret = update_domain(s, dom, j, *domain, permanent, error);
        if (ret < 0 && !*permanent)
            vdpad_prefix_error(error, "domain %s: ", *domain);
        virDomainFree(dom);
    }
    qemu_identity_clear(&id);
    /* a dead connection is reopened at the next attempt */
    if (ret < 0 && s->conn && virConnectIsAlive(s->conn) != 1)
        drop_connection(s);
    return ret;
}

static void finish(struct libvirt_sync *s, const struct job *j, const char *domain, int result,
                   const char *message)
{
    if (s->done)
        s->done(j->name, domain, result, message, s->done_opaque);
}

/* Runs one due job with the lock released; returns whether it is to be retried. */
static bool run_job(struct libvirt_sync *s, struct job *j)
{
    g_autoptr(GError) err = NULL;
    g_autofree char *domain = NULL;
    bool permanent = false;
    int ret = write_metadata(s, j, &domain, &permanent, &err);

    j->attempts++;
    if (ret == 0) {
        g_message("%s: domain %s: migration metadata set (source %s, attempt %u)", j->name,
                  domain, s->address, j->attempts);
        finish(s, j, domain, 0, NULL);
        return false;
    }
    if (permanent || j->attempts >= s->max_attempts) {
        if (ret == -ENOENT && permanent)
            g_info("%s: no libvirt domain to describe: %s", j->name, err->message);
        else
            g_warning("%s: cannot write the migration metadata%s: %s", j->name,
                      permanent ? "" : " (giving up)", err->message);
        finish(s, j, domain, ret, err->message);
        return false;
    }
    g_info("%s: migration metadata, attempt %u failed (retrying in %u ms): %s", j->name,
           j->attempts, j->delay_ms, err->message);
    j->due_us = g_get_monotonic_time() + (gint64)j->delay_ms * 1000;
    j->delay_ms = MIN(j->delay_ms * 2, s->max_delay_ms);
    return true;
}

static gpointer worker(gpointer data)
{
    struct libvirt_sync *s = data;

    g_mutex_lock(&s->lock);
    while (!s->quit) {
        /* drop the jobs of ended sessions; find the one due first */
        struct job *next = NULL;
        for (guint i = 0; i < s->jobs->len;) {
            struct job *j = s->jobs->pdata[i];
            if (!job_live(s, j)) {
                g_ptr_array_remove_index(s->jobs, i);
                g_mutex_unlock(&s->lock);
                g_debug("%s: session ended before its migration metadata was written", j->name);
                finish(s, j, NULL, -ECANCELED, "the session ended");
                job_free(j);
                g_mutex_lock(&s->lock);
                continue;
            }
            if (!next || j->due_us < next->due_us)
                next = j;
            i++;
        }
        if (s->quit) /* set while the lock was dropped above */
            break;
        if (!next) {
            g_cond_wait(&s->cond, &s->lock);
            continue;
        }
        if (next->due_us > g_get_monotonic_time()) {
            g_cond_wait_until(&s->cond, &s->lock, next->due_us);
            continue;
        }
        g_ptr_array_remove(s->jobs, next);
        g_mutex_unlock(&s->lock);
        bool again = run_job(s, next);
        g_mutex_lock(&s->lock);
        if (again)
            g_ptr_array_add(s->jobs, next);
        else
            job_free(next);
    }
    g_mutex_unlock(&s->lock);
    drop_connection(s);
    return NULL;
}

/* ------------------------------------------------------------------ start, stop */

struct libvirt_sync *libvirt_sync_start(struct node_registry *reg,
                                        const struct libvirt_sync_config *cfg, GError **error)
{
    if (!cfg->address || !vdpad_mig_address_valid(cfg->address)) {
        vdpad_fail(error, EINVAL, "libvirt: '%s' is not an address migration destinations can "
                   "reach (HOST:PORT, no wildcard); set --migration-address",
                   cfg->address ? cfg->address : "");
        return NULL;
    }
    if (!cfg->dev_dir || cfg->dev_dir[0] != '/') {
        vdpad_fail(error, EINVAL, "libvirt: the node directory must be absolute");
        return NULL;
    }
    static gsize initialised;
    if (g_once_init_enter(&initialised)) {
        if (virInitialize() < 0)
            g_warning("libvirt: virInitialize failed");
        virSetErrorFunc(NULL, ignore_libvirt_error);
        g_once_init_leave(&initialised, 1);
    }
    struct libvirt_sync *s = g_new0(struct libvirt_sync, 1);
    s->reg = reg;
    s->uri = g_strdup(cfg->uri ? cfg->uri : LIBVIRT_SYNC_DEFAULT_URI);
    s->address = g_strdup(cfg->address);
    s->dev_dir = g_strdup(cfg->dev_dir);
    s->max_attempts = cfg->max_attempts ? cfg->max_attempts : 10;
    s->first_delay_ms = cfg->first_delay_ms ? cfg->first_delay_ms : 250;
    s->max_delay_ms = MAX(cfg->max_delay_ms ? cfg->max_delay_ms : 8000, s->first_delay_ms);
    g_mutex_init(&s->lock);
    g_cond_init(&s->cond);
    s->jobs = g_ptr_array_new();
    s->live = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    s->thread = g_thread_new("vdpad-libvirt", worker, s);
    node_registry_add_observer(reg, on_node_event, s);
    g_message("libvirt: writing migration metadata into domains on %s (source %s)", s->uri,
              s->address);
    return s;
}

void libvirt_sync_set_done(struct libvirt_sync *sync, libvirt_sync_done_fn fn, void *opaque)
{
    g_mutex_lock(&sync->lock);
    sync->done = fn;
    sync->done_opaque = opaque;
    g_mutex_unlock(&sync->lock);
}

void libvirt_sync_stop(struct libvirt_sync *s)
{
    if (!s)
        return;
    node_registry_remove_observer(s->reg, on_node_event, s);
    g_mutex_lock(&s->lock);
    s->quit = true;
    g_cond_signal(&s->cond);
    g_mutex_unlock(&s->lock);
    g_thread_join(s->thread);
    for (guint i = 0; i < s->jobs->len; i++)
        job_free(s->jobs->pdata[i]);
    g_ptr_array_unref(s->jobs);
    g_hash_table_unref(s->live);
    g_mutex_clear(&s->lock);
    g_cond_clear(&s->cond);
    g_free(s->uri);
    g_free(s->address);
    g_free(s->dev_dir);
    g_free(s);
}
