#include "config.h"

#include <errno.h>
#include <string.h>

#include "dbus/dbus_migration.h"
#include "dbus/dbus_names.h"
#include "migration/mig_client.h"
#include "util/error.h"

/* Source checks at once; more wait for a free worker. */
#define CHECK_THREADS 4
#define SOURCE_MAX 255
#define TOKEN_MAX 128

struct dbus_migration {
    struct node_registry *reg;
    struct mig_service *mig;
    GThreadPool *pool;
    GCancellable *stopping; /* cancelled at free: replies no longer touch dm */
    GMainContext *ctx;      /* the control thread's */
};

/* One PrepareIncoming between the check of its source and its answer. */
struct prepare_job {
    struct dbus_migration *dm; /* only while stopping is not cancelled */
    GCancellable *stopping;    /* a reference */
    struct mig_service *mig;
    GDBusMethodInvocation *inv;
    char *name, *source, *device, *token;
    GError *error; /* the check's */
};

static void job_free(struct prepare_job *job)
{
    g_object_unref(job->stopping);
    g_free(job->name);
    g_free(job->source);
    g_free(job->device);
    g_free(job->token);
    g_clear_error(&job->error);
    g_free(job);
}

static void return_error(GDBusMethodInvocation *inv, const GError *err)
{
    g_dbus_method_invocation_return_dbus_error(inv, vdpad_dbus_error_name(err), err->message);
}

/* Printable ASCII, no spaces: what the channel accepts in a token, and what an address
 * can hold. */
static bool printable_word(const char *s, size_t max)
{
    size_t len = strlen(s);

    if (len == 0 || len > max)
        return false;
    for (size_t i = 0; i < len; i++)
        if (s[i] <= ' ' || s[i] > '~')
            return false;
    return true;
}

static int check_args(const char *name, const char *source, const char *device,
                      const char *token, GError **error)
{
    if (!printable_word(source, SOURCE_MAX))
        return vdpad_fail(error, EINVAL, "%s: PrepareIncoming: the source '%s' must be the "
                          "source vdpad's migration channel as HOST:PORT", name, source);
    if (!device_name_valid(device))
        return vdpad_fail(error, EINVAL, "%s: PrepareIncoming: '%s' is not a device name (1-64 "
                          "of A-Z a-z 0-9 _ . -, not starting with '.')", name, device);
    if (!printable_word(token, TOKEN_MAX))
        return vdpad_fail(error, EINVAL, "%s: PrepareIncoming: the token must be 1-%d printable "
                          "characters without spaces (the source device's MigrationToken)",
                          name, TOKEN_MAX);
    return 0;
}

/* The node, or NULL with *error; a running device cannot be prepared. */
static struct vdpa_node *preparable_node(struct dbus_migration *dm, const char *name,
                                         GError **error)
{
    struct vdpa_node *node = node_registry_lookup(dm->reg, name);

    if (!node) {
        vdpad_fail(error, ENOENT, "no device named %s", name);
        return NULL;
    }
    if (node->session && (session_get_status(node->session) & 0x4 /* DRIVER_OK */)) {
        vdpad_fail(error, EBUSY, "%s: a client runs the device (pid %d); prepare it before the "
                   "destination starts", name, (int)session_opener(node->session));
        return NULL;
    }
    return node;
}

/* What a failed source check means, for the reply. */
static const char *source_problem(const GError *err)
{
    switch (mig_error_kind(err)) {
    case MIG_ERR_UNREACHABLE:
        return "the source vdpad is unreachable (nothing accepts connections there: is it "
               "started with --migration-listen on that address?)";
    case MIG_ERR_TIMEOUT:
        return "the source vdpad did not answer in time";
    case MIG_ERR_CLOSED:
        return "the source closed the connection before answering";
    case MIG_ERR_AUTH:
        return err->code == EPERM
                   ? "the source refused our certificate (not authenticated: another CA, "
                     "expired, or not in its --migration-allowed-dn list)"
                   : "the source is not authenticated (its certificate is not from our CA, "
                     "has expired, or does not name that host)";
    case MIG_ERR_REMOTE:
        return "the source refused the check";
    case MIG_ERR_PROTOCOL:
        return "the source does not speak the migration protocol";
    case MIG_ERR_NOT_READY:
    case MIG_ERR_LOCAL:
        break;
    }
    return "the source cannot be checked";
}

static void finish_prepare(struct prepare_job *job)
{
    g_autoptr(GError) err = NULL;

    if (g_cancellable_is_cancelled(job->stopping)) {
        g_dbus_method_invocation_return_dbus_error(job->inv, VDPAD_DBUS_ERROR_FAILED,
                                                   "vdpad is stopping");
        return;
    }
    struct dbus_migration *dm = job->dm;
    if (job->error) {
        /* keep the channel's errno: EACCES/EPERM must not read as a D-Bus access refusal,
         * and vdpad_dbus_error_name maps them to Failed */
        vdpad_fail(&err, -vdpad_error_errno(job->error), "%s: cannot prepare for a migration "
                   "from %s: %s; %s", job->name, job->source, source_problem(job->error),
                   job->error->message);
        g_message("D-Bus: PrepareIncoming(%s) refused: %s", job->name, err->message);
        return_error(job->inv, err);
        return;
    }
    struct vdpa_node *node = preparable_node(dm, job->name, &err);
    if (!node || node_prepare_incoming(dm->reg, node, job->source, job->device, job->token,
                                       &err) < 0) {
        return_error(job->inv, err);
        return;
    }
    g_dbus_method_invocation_return_value(job->inv, NULL);
}

static gboolean on_checked(gpointer data)
{
    struct prepare_job *job = data;

    finish_prepare(job);
    job_free(job);
    return G_SOURCE_REMOVE;
}

/* Worker thread: dm stays alive until the pool is freed, which waits for this. */
static void check_source(gpointer data, gpointer pool_data)
{
    struct prepare_job *job = data;
    struct dbus_migration *dm = pool_data;

    mig_service_check_source(job->mig, job->source, &job->error);
    GSource *done = g_idle_source_new();
    g_source_set_callback(done, on_checked, job, NULL);
    g_source_attach(done, dm->ctx);
    g_source_unref(done);
}

static void prepare(struct dbus_migration *dm, GDBusMethodInvocation *inv, const char *name)
{
    g_autoptr(GError) err = NULL;
    const char *source, *device, *token;

    g_variant_get(g_dbus_method_invocation_get_parameters(inv), "(&s&s&s)", &source, &device,
                  &token);
    if (check_args(name, source, device, token, &err) < 0 ||
        !preparable_node(dm, name, &err)) {
        return_error(inv, err);
        return;
    }
    if (!dm->mig) {
        vdpad_fail(&err, ENOTCONN, "%s: this vdpad has no migration channel: start it with "
                   "--pki-dir/--migration-listen", name);
        return_error(inv, err);
        return;
    }
    struct prepare_job *job = g_new0(struct prepare_job, 1);
    job->dm = dm;
    job->stopping = g_object_ref(dm->stopping);
    job->mig = dm->mig;
    job->inv = inv;
    job->name = g_strdup(name);
    job->source = g_strdup(source);
    job->device = g_strdup(device);
    job->token = g_strdup(token);
    g_thread_pool_push(dm->pool, job, NULL); /* cannot fail: the pool makes threads lazily */
}

static void cancel(struct dbus_migration *dm, GDBusMethodInvocation *inv, const char *name)
{
    g_autoptr(GError) err = NULL;
    struct vdpa_node *node = node_registry_lookup(dm->reg, name);

    if (!node) {
        vdpad_fail(&err, ENOENT, "no device named %s", name);
        return_error(inv, err);
        return;
    }
    if (node->incoming) {
        g_message("%s: no longer prepared to receive %s's state from %s", name,
                  node->incoming->device, node->incoming->source);
        node_cancel_incoming(node);
        node_changed(dm->reg, node);
    }
    g_dbus_method_invocation_return_value(inv, NULL);
}

void dbus_migration_call(struct dbus_migration *dm, GDBusMethodInvocation *inv,
                         const char *name)
{
    const char *method = g_dbus_method_invocation_get_method_name(inv);

    if (g_str_equal(method, "PrepareIncoming"))
        prepare(dm, inv, name);
    else
        cancel(dm, inv, name);
}

struct dbus_migration *dbus_migration_new(struct node_registry *reg)
{
    struct dbus_migration *dm = g_new0(struct dbus_migration, 1);

    dm->reg = reg;
    dm->stopping = g_cancellable_new();
    dm->ctx = g_main_context_ref_thread_default();
    dm->pool = g_thread_pool_new(check_source, dm, CHECK_THREADS, FALSE, NULL);
    return dm;
}

void dbus_migration_set_channel(struct dbus_migration *dm, struct mig_service *mig)
{
    dm->mig = mig;
}

void dbus_migration_free(struct dbus_migration *dm)
{
    if (!dm)
        return;
    g_cancellable_cancel(dm->stopping);
    g_thread_pool_free(dm->pool, FALSE, TRUE); /* the checks in flight end first */
    g_object_unref(dm->stopping);
    g_main_context_unref(dm->ctx);
    g_free(dm);
}
