/* Unit tests: the thread that writes vdpad's migration metadata into libvirt domains
 * (src/libvirt_driver/libvirt_sync.c), against libvirt's in-process test driver
 * (test:///default: one running domain "test", shared by every connection of this process).
 * The node's owner is a child process whose command line carries what libvirt gives QEMU. */
#include "config.h"

#include <errno.h>
#include <glib.h>
#include <libvirt/libvirt.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <sys/wait.h>
#include <cmocka.h>

#include "core/node.h"
#include "libvirt_driver/domain_metadata.h"
#include "libvirt_driver/libvirt_sync.h"
#include "util/error.h"

#define URI "test:///default"
#define TEST_UUID "6695eb01-f6a4-8304-79aa-97f2502e193f" /* the test driver's domain "test" */
#define DIR "/run/vdpad-test/dev"
#define ADDRESS "hosta:16516"

struct done {
    char *node;
    char *domain;
    int result;
    char *message;
};

struct fixture {
    struct node_registry *reg;
    struct libvirt_sync *sync;
    virConnectPtr conn;
    virDomainPtr dom;
    GPid owner;
    GAsyncQueue *done; /* struct done *, pushed by the worker thread */
};

static void done_free(struct done *d)
{
    g_free(d->node);
    g_free(d->domain);
    g_free(d->message);
    g_free(d);
}

static void on_done(const char *node, const char *domain, int result, const char *message,
                    void *opaque)
{
    struct fixture *f = opaque;
    struct done *d = g_new0(struct done, 1);

    d->node = g_strdup(node);
    d->domain = g_strdup(domain);
    d->result = result;
    d->message = g_strdup(message);
    g_async_queue_push(f->done, d);
}

static struct done *wait_done(struct fixture *f, unsigned ms)
{
    return g_async_queue_timeout_pop(f->done, (guint64)ms * 1000);
}

static int no_map(void *opaque, pid_t pid, uint64_t uaddr, uint64_t size, bool writable,
                  void **local, GError **error)
{
    return vdpad_fail(error, ENOTSUP, "no client memory in this test");
}
static void no_unmap(void *opaque, void *local, uint64_t size) {}
static const struct session_mem_ops no_memory = { .map = no_map, .unmap = no_unmap };

/* A process whose command line carries args (as QEMU's carries libvirt's). */
static GPid spawn_owner(const char *const *args)
{
    g_autoptr(GPtrArray) argv = g_ptr_array_new();
    g_ptr_array_add(argv, (gpointer) "/bin/sh");
    g_ptr_array_add(argv, (gpointer) "-c");
    g_ptr_array_add(argv, (gpointer) "sleep 60; exit 0"); /* not exec'd: the arguments stay */
    for (const char *const *a = args; a && *a; a++)
        g_ptr_array_add(argv, (gpointer)*a);
    g_ptr_array_add(argv, NULL);
    GPid pid = 0;
    g_autoptr(GError) err = NULL;
    if (!g_spawn_async(NULL, (char **)argv->pdata, NULL, G_SPAWN_DO_NOT_REAP_CHILD, NULL, NULL,
                       &pid, &err))
        fail_msg("spawn: %s", err->message);
    return pid;
}

static struct libvirt_sync *start(struct fixture *f, unsigned attempts, unsigned delay_ms,
                                  const char *uri)
{
    g_autoptr(GError) err = NULL;
    struct libvirt_sync_config cfg = {
        .uri = uri, .address = ADDRESS, .dev_dir = DIR,
        .max_attempts = attempts, .first_delay_ms = delay_ms, .max_delay_ms = delay_ms * 4,
    };
    f->sync = libvirt_sync_start(f->reg, &cfg, &err);
    assert_non_null(f->sync);
    libvirt_sync_set_done(f->sync, on_done, f);
    return f->sync;
}

/* Opens the node and gives its session an owner, as QEMU's SET_OWNER does. */
static struct vdpa_node *own(struct fixture *f, const char *name, pid_t owner)
{
    g_autoptr(GError) err = NULL;
    struct vdpa_node *node = node_registry_lookup(f->reg, name);
    assert_int_equal(node_open(f->reg, node, getpid(), &no_memory, NULL, &err), 0);
    node_changed(f->reg, node); /* no owner yet: nothing is queued */
    assert_int_equal(session_set_owner(node->session, owner, &err), 0);
    node_changed(f->reg, node);
    return node;
}

static GPtrArray *metadata(struct fixture *f)
{
    char *xml = virDomainGetMetadata(f->dom, VIR_DOMAIN_METADATA_ELEMENT, VDPAD_MIG_XMLNS,
                                     VIR_DOMAIN_AFFECT_LIVE);
    if (!xml)
        return NULL;
    g_autoptr(GError) err = NULL;
    GPtrArray *d = domain_metadata_parse(xml, strlen(xml), &err);
    if (!d)
        fail_msg("the domain's element does not parse: %s: %s", err->message, xml);
    free(xml);
    return d;
}

static int setup(void **state)
{
    struct fixture *f = g_new0(struct fixture, 1);
    g_autoptr(GError) err = NULL;

    f->reg = node_registry_new();
    if (node_registry_create(f->reg, "net:n0", NULL, &err) < 0 ||
        node_registry_create(f->reg, "net:n1", NULL, &err) < 0)
        return -1;
    f->conn = virConnectOpen(URI);
    f->dom = f->conn ? virDomainLookupByName(f->conn, "test") : NULL;
    if (!f->dom)
        return -1;
    /* no element from an earlier test */
    virDomainSetMetadata(f->dom, VIR_DOMAIN_METADATA_ELEMENT, NULL, NULL, VDPAD_MIG_XMLNS,
                         VIR_DOMAIN_AFFECT_LIVE);
    f->done = g_async_queue_new_full((GDestroyNotify)done_free);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    g_clear_pointer(&f->sync, libvirt_sync_stop);
    node_registry_free(f->reg);
    if (f->owner) {
        kill(f->owner, SIGKILL);
        waitpid(f->owner, NULL, 0);
    }
    virDomainFree(f->dom);
    virConnectClose(f->conn);
    g_async_queue_unref(f->done);
    g_free(f);
    return 0;
}

static void writes_the_nodes_entry_into_the_domain_its_owner_runs(void **state)
{
    struct fixture *f = *state;
    const char *args[] = { "-name", "guest=test,debug-threads=on", "-uuid", TEST_UUID, NULL };

    f->owner = spawn_owner(args);
    start(f, 5, 50, URI);
    struct vdpa_node *node = own(f, "n0", f->owner);
    struct done *d = wait_done(f, 10000);
    assert_non_null(d);
    if (d->result != 0)
        fail_msg("%s", d->message);
    assert_string_equal(d->node, "n0");
    assert_string_equal(d->domain, "test");
    done_free(d);

    g_autoptr(GPtrArray) md = metadata(f);
    assert_non_null(md);
    assert_int_equal(md->len, 1);
    const struct vdpad_mig_device *e = md->pdata[0];
    assert_string_equal(e->node, DIR "/n0");
    assert_string_equal(e->name, "n0");
    assert_string_equal(e->source, ADDRESS);
    assert_string_equal(e->token, node->token);

    /* more changes of the same session (features, status) write nothing again */
    node_changed(f->reg, node);
    node_changed(f->reg, node);
    assert_null(wait_done(f, 300));
}

static void keeps_other_entries_and_replaces_its_own_with_each_new_session(void **state)
{
    struct fixture *f = *state;
    g_autoptr(GError) err = NULL;
    /* by name only: the older -name form, no -uuid */
    const char *args[] = { "-name", "test", NULL };
    g_autoptr(GPtrArray) before = vdpad_mig_devices_new();
    struct vdpad_mig_device other = {
        (char *)"/run/other-vdpad/x", (char *)"x", (char *)"hostc:16516", (char *)"other",
    };
    struct vdpad_mig_device stale = {
        (char *)DIR "/n0", (char *)"n0", (char *)"old-host:1", (char *)"stale-token",
    };
    assert_int_equal(domain_metadata_upsert(before, &other, &err), 0);
    assert_int_equal(domain_metadata_upsert(before, &stale, &err), 0);
    g_autofree char *xml = domain_metadata_format(before, false);
    assert_int_equal(virDomainSetMetadata(f->dom, VIR_DOMAIN_METADATA_ELEMENT, xml,
                                          VDPAD_MIG_XMLNS_PREFIX, VDPAD_MIG_XMLNS,
                                          VIR_DOMAIN_AFFECT_LIVE), 0);

    f->owner = spawn_owner(args);
    start(f, 5, 50, URI);
    struct vdpa_node *n0 = own(f, "n0", f->owner);
    struct done *d = wait_done(f, 10000);
    assert_non_null(d);
    assert_int_equal(d->result, 0);
    done_free(d);
    struct vdpa_node *n1 = own(f, "n1", f->owner); /* the domain's second NIC */
    d = wait_done(f, 10000);
    assert_non_null(d);
    assert_int_equal(d->result, 0);
    done_free(d);

    g_autoptr(GPtrArray) md = metadata(f);
    assert_int_equal(md->len, 3);
    assert_string_equal(domain_metadata_find(md, "/run/other-vdpad/x")->token, "other");
    assert_string_equal(domain_metadata_find(md, DIR "/n0")->token, n0->token);
    assert_string_equal(domain_metadata_find(md, DIR "/n0")->source, ADDRESS);
    assert_string_equal(domain_metadata_find(md, DIR "/n1")->token, n1->token);

    /* a new session on n0 (a new QEMU) has a new token, written again */
    char first[sizeof(n0->token)];
    memcpy(first, n0->token, sizeof(first));
    node_close(f->reg, n0);
    own(f, "n0", f->owner);
    assert_string_not_equal(first, n0->token);
    d = wait_done(f, 10000);
    assert_non_null(d);
    assert_int_equal(d->result, 0);
    done_free(d);
    g_autoptr(GPtrArray) after = metadata(f);
    assert_int_equal(after->len, 3);
    assert_string_equal(domain_metadata_find(after, DIR "/n0")->token, n0->token);
}

static void an_owner_that_is_no_libvirt_domain_is_given_up_at_once(void **state)
{
    struct fixture *f = *state;

    f->owner = spawn_owner(NULL);
    start(f, 5, 1000, URI);
    gint64 t0 = g_get_monotonic_time();
    own(f, "n0", f->owner);
    struct done *d = wait_done(f, 5000);
    assert_non_null(d);
    assert_int_equal(d->result, -ENOENT);
    assert_non_null(strstr(d->message, "no -name or -uuid"));
    assert_null(d->domain);
    assert_true(g_get_monotonic_time() - t0 < 900 * 1000); /* no retry */
    done_free(d);
    g_autoptr(GPtrArray) md = metadata(f);
    assert_null(md);
}

static void an_unknown_domain_is_retried_a_bounded_number_of_times(void **state)
{
    struct fixture *f = *state;
    const char *args[] = { "-name", "guest=nosuch,debug-threads=on", NULL };

    f->owner = spawn_owner(args);
    start(f, 3, 20, URI);
    gint64 t0 = g_get_monotonic_time();
    own(f, "n0", f->owner);
    struct done *d = wait_done(f, 5000);
    assert_non_null(d);
    assert_int_equal(d->result, -ENOENT);
    assert_non_null(strstr(d->message, "nosuch"));
    /* two waits between three attempts: 20 + 40 ms */
    assert_true(g_get_monotonic_time() - t0 >= 60 * 1000);
    done_free(d);
    assert_null(wait_done(f, 200)); /* and nothing more */
}

static void an_unreachable_libvirt_is_retried_then_given_up(void **state)
{
    struct fixture *f = *state;
    const char *args[] = { "-name", "guest=test", NULL };

    f->owner = spawn_owner(args);
    start(f, 2, 20, "test:///no/such/file.xml");
    own(f, "n0", f->owner);
    struct done *d = wait_done(f, 5000);
    assert_non_null(d);
    assert_true(d->result < 0);
    assert_non_null(strstr(d->message, "test:///no/such/file.xml: cannot connect to libvirt"));
    done_free(d);
}

static void closing_the_node_ends_a_job_that_is_still_retrying(void **state)
{
    struct fixture *f = *state;
    const char *args[] = { "-name", "guest=nosuch", NULL };

    f->owner = spawn_owner(args);
    start(f, 100, 2000, URI);
    struct vdpa_node *node = own(f, "n0", f->owner);
    g_usleep(200 * 1000); /* the first attempt failed; the next is 2 s away */
    gint64 t0 = g_get_monotonic_time();
    node_close(f->reg, node);
    struct done *d = wait_done(f, 1500);
    assert_non_null(d);
    assert_int_equal(d->result, -ECANCELED);
    assert_true(g_get_monotonic_time() - t0 < 1000 * 1000);
    done_free(d);
}

static void needs_an_address_destinations_can_reach(void **state)
{
    struct fixture *f = *state;
    g_autoptr(GError) err = NULL;
    struct libvirt_sync_config cfg = { .uri = URI, .address = "*:16520", .dev_dir = DIR };

    assert_null(libvirt_sync_start(f->reg, &cfg, &err));
    assert_non_null(strstr(err->message, "'*:16520' is not an address"));
    assert_non_null(strstr(err->message, "--migration-address"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(writes_the_nodes_entry_into_the_domain_its_owner_runs,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(keeps_other_entries_and_replaces_its_own_with_each_new_session,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(an_owner_that_is_no_libvirt_domain_is_given_up_at_once,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(an_unknown_domain_is_retried_a_bounded_number_of_times,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(an_unreachable_libvirt_is_retried_then_given_up,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(closing_the_node_ends_a_job_that_is_still_retrying,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(needs_an_address_destinations_can_reach, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
