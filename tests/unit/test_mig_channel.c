/* Unit tests: the migration channel end to end over loopback (mig_server.c, mig_client.c,
 * mig_tls.c, mig_conn.c) with certificates made by certtool: good exchanges over IPv4 and
 * IPv6, late and never-final states, every way authentication fails, peers that are missing,
 * silent, hostile or many, and logs free of key material.
 *
 * The server and the asynchronous client share the test thread's default main context;
 * blocking peers written with plain GnuTLS (to send what vdpad never would) run in threads
 * while the loop runs. */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <gio/gio.h>
#include <glib.h>
#include <glib/gstdio.h>
#include <gnutls/gnutls.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_net.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "log_capture.h"
#include "mig_test_pki.h"
#include "migration/mig_client.h"
#include "migration/mig_frame.h"
#include "migration/mig_server.h"
#include "util/error.h"

#define F(bit) (1ull << (bit))
#define TOKEN "mig-7f3a"

static char *pki_root;
/* ------------------------------------------------------------------ helpers */

static char *dir(const char *identity)
{
    return mig_test_pki_dir(pki_root, identity);
}

static void spin_ms(unsigned ms)
{
    gint64 end = g_get_monotonic_time() + (gint64)ms * 1000;

    while (g_get_monotonic_time() < end)
        g_main_context_iteration(NULL, FALSE), g_usleep(1000);
}

/* Runs the loop until *flag is set or ms pass; returns whether it was set. */
static bool spin_until(const int *flag, unsigned ms)
{
    gint64 end = g_get_monotonic_time() + (gint64)ms * 1000;

    while (!g_atomic_int_get(flag) && g_get_monotonic_time() < end)
        if (!g_main_context_iteration(NULL, FALSE))
            g_usleep(500);
    return g_atomic_int_get(flag);
}

static struct device_state *make_state(const char *device, bool big)
{
    static const uint8_t mac[6] = { 0x52, 0x54, 0x00, 0xaa, 0xbb, 0xcc };
    struct device_state *st = device_state_new();

    st->device = g_strdup(device);
    st->virtio_id = VIRTIO_ID_NET;
    st->features = F(VIRTIO_F_VERSION_1) | F(VIRTIO_NET_F_CTRL_VQ) | F(VIRTIO_NET_F_CTRL_RX) |
                   F(VIRTIO_NET_F_CTRL_VLAN) | F(VIRTIO_NET_F_MQ) | F(VIRTIO_NET_F_MTU) |
                   F(VIRTIO_NET_F_CTRL_MAC_ADDR) | F(1);
    st->stopped_at_us = g_get_real_time();
    st->token = g_strdup(TOKEN);
    st->net.max_queue_pairs = 4;
    st->net.mtu = 9000;
    net_state_reset(&st->net.state, mac, st->features);
    st->net.state.queue_pairs = 3;
    st->net.state.allmulti = false;
    st->net.state.n_multi = 1;
    memcpy(st->net.state.multi[0], (uint8_t[6]){ 0x01, 0x00, 0x5e, 0, 0, 0xfb }, 6);
    if (big) { /* every VLAN and full tables: a response of several TLS records */
        memset(st->net.state.vlan, 0xff, sizeof(st->net.state.vlan));
        st->net.state.n_uni = st->net.state.n_multi = NET_STATE_MAC_TABLE_MAX;
        for (int i = 0; i < NET_STATE_MAC_TABLE_MAX; i++) {
            memcpy(st->net.state.uni[i], (uint8_t[6]){ 0x02, 0, 0, 0, 1, (uint8_t)i }, 6);
            memcpy(st->net.state.multi[i], (uint8_t[6]){ 0x01, 0, 0, 0, 1, (uint8_t)i }, 6);
        }
    } else {
        st->net.state.vlan[0] = 1u << 10;
    }
    return st;
}

/* ------------------------------------------------------------------ the server side */

enum answer_mode {
    ANSWER_NOW,   /* the state is final: answer inside the callback */
    ANSWER_LATER, /* the source device stops after later_ms */
    ANSWER_NEVER, /* keep the request (held) */
};

struct fixture {
    mig_server *server;
    GHashTable *states; /* device name -> struct device_state */
    enum answer_mode mode;
    unsigned later_ms;
    GPtrArray *held; /* mig_request *, not answered yet */
    int requests;
    int cancels;
};

static void on_cancel(mig_request *req, void *data)
{
    struct fixture *f = data;

    g_atomic_int_inc(&f->cancels);
}

struct later {
    struct fixture *f;
    mig_request *req;
};

static gboolean answer_later(gpointer data)
{
    struct later *l = data;
    struct device_state *st = g_hash_table_lookup(l->f->states, mig_request_device(l->req));

    g_ptr_array_remove(l->f->held, l->req);
    mig_request_reply_state(l->req, st);
    g_free(l);
    return G_SOURCE_REMOVE;
}

static void on_request(mig_request *req, void *opaque)
{
    struct fixture *f = opaque;
    struct device_state *st = g_hash_table_lookup(f->states, mig_request_device(req));

    f->requests++;
    mig_request_set_cancel(req, on_cancel, f);
    assert_string_equal(mig_request_peer_dn(req), "C=GB,O=vdpad test,CN=client1");
    if (!g_str_equal(mig_request_token(req), TOKEN)) {
        mig_request_reply_error(req, MIG_STATUS_BAD_TOKEN, "token %s is not this migration's",
                                mig_request_token(req));
        return;
    }
    if (!st) {
        mig_request_reply_error(req, MIG_STATUS_NO_DEVICE, "no device %s",
                                mig_request_device(req));
        return;
    }
    switch (f->mode) {
    case ANSWER_NOW:
        assert_true(mig_request_reply_state(req, st));
        break;
    case ANSWER_LATER: {
        struct later *l = g_new0(struct later, 1);
        l->f = f;
        l->req = req;
        g_ptr_array_add(f->held, req);
        g_timeout_add(f->later_ms, answer_later, l);
        break;
    }
    case ANSWER_NEVER:
        g_ptr_array_add(f->held, req);
        break;
    }
}

struct server_opts {
    const char *listen;
    const char *identity;
    const char *const *allowed_dns;
    unsigned handshake_timeout_ms, request_timeout_ms, max_connections;
};

static int setup_with(void **state, const struct server_opts *o)
{
    struct fixture *f = g_new0(struct fixture, 1);
    g_autofree char *d = dir(o->identity ? o->identity : "server");
    struct mig_server_config cfg = {
        .listen = o->listen ? o->listen : "127.0.0.1:0",
        .tls = { .pki_dir = d, .allowed_dns = o->allowed_dns },
        .handshake_timeout_ms = o->handshake_timeout_ms ? o->handshake_timeout_ms : 800,
        .request_timeout_ms = o->request_timeout_ms ? o->request_timeout_ms : 800,
        .max_connections = o->max_connections,
    };
    g_autoptr(GError) err = NULL;

    f->states = g_hash_table_new_full(g_str_hash, g_str_equal, NULL,
                                      (GDestroyNotify)device_state_free);
    struct device_state *a = make_state("vdpa0", false), *b = make_state("big0", true);
    g_hash_table_insert(f->states, a->device, a);
    g_hash_table_insert(f->states, b->device, b);
    f->held = g_ptr_array_new();
    f->server = mig_server_new(&cfg, on_request, f, &err);
    if (!f->server)
        fail_msg("mig_server_new: %s", err->message);
    *state = f;
    return 0;
}

static int setup(void **state)
{
    return setup_with(state, &(struct server_opts){ 0 });
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    if (f->server)
        mig_server_free(f->server);
    /* requests still held end with the server: answering now only releases them */
    for (guint i = 0; i < f->held->len; i++)
        assert_false(mig_request_reply_error(f->held->pdata[i], MIG_STATUS_FAILED, "late"));
    g_ptr_array_unref(f->held);
    g_hash_table_unref(f->states);
    spin_ms(20); /* let cancelled client operations come back */
    g_free(f);
    return 0;
}

static char *addr_of(struct fixture *f, const char *host)
{
    return g_strdup_printf(strchr(host, ':') ? "[%s]:%u" : "%s:%u", host,
                           mig_server_port(f->server));
}

/* Runs the loop until the server has no connection left, at most ms. */
static bool spin_until_no_connections(struct fixture *f, unsigned ms)
{
    gint64 end = g_get_monotonic_time() + (gint64)ms * 1000;

    while (mig_server_connections(f->server) > 0 && g_get_monotonic_time() < end)
        if (!g_main_context_iteration(NULL, FALSE))
            g_usleep(1000);
    return mig_server_connections(f->server) == 0;
}

/* ------------------------------------------------------------------ the client side */

static mig_client *new_client(const char *identity, unsigned io_timeout_ms)
{
    g_autofree char *d = dir(identity);
    struct mig_client_config cfg = { .tls = { .pki_dir = d }, .io_timeout_ms = io_timeout_ms };
    g_autoptr(GError) err = NULL;
    mig_client *c = mig_client_new(&cfg, &err);

    if (!c)
        fail_msg("mig_client_new(%s): %s", identity, err->message);
    return c;
}

struct result {
    int done;
    struct device_state *state;
    GError *error;
    gint64 started, took_ms;
};

static void result_done(struct device_state *st, const GError *error, void *opaque)
{
    struct result *r = opaque;

    r->state = st;
    r->error = error ? g_error_copy(error) : NULL;
    r->took_ms = (g_get_monotonic_time() - r->started) / 1000;
    g_atomic_int_set(&r->done, 1);
}

static void result_clear(struct result *r)
{
    device_state_free(r->state);
    g_clear_error(&r->error);
}

/* get-state through the async API, run to the end. */
static void get_state(mig_client *c, const char *address, const char *device, uint32_t wait_ms,
                      struct result *r)
{
    memset(r, 0, sizeof(*r));
    r->started = g_get_monotonic_time();
    mig_client_get_state(c, address, device, TOKEN, wait_ms, result_done, r);
    if (!spin_until(&r->done, 20000))
        fail_msg("get-state %s from %s: no result in 20 s", device, address);
}

static void expect_error(const struct result *r, int errnum, enum mig_error_kind kind,
                         const char *word)
{
    if (!r->error)
        fail_msg("expected errno %d, got success", errnum);
    if (vdpad_error_errno(r->error) != -errnum || mig_error_kind(r->error) != kind ||
        (word && !strstr(r->error->message, word)))
        fail_msg("got errno %d kind %s: %s\nwanted errno %d kind %s with '%s'",
                 -vdpad_error_errno(r->error), mig_error_kind_name(mig_error_kind(r->error)),
                 r->error->message, errnum, mig_error_kind_name(kind), word ? word : "");
    assert_null(r->state);
}

/* ------------------------------------------------------------------ good exchanges */

static void check_exchange(struct fixture *f, const char *host, const char *device)
{
    g_autoptr(mig_client) c = new_client("client", 5000);
    g_autofree char *a = addr_of(f, host);
    struct result r;
    struct device_state *want = g_hash_table_lookup(f->states, device);

    get_state(c, a, device, 0, &r);
    if (r.error)
        fail_msg("%s: %s", a, r.error->message);
    assert_true(device_state_equal(r.state, want));
    /* byte-exact: what came decodes to what re-encodes to the source's encoding */
    g_autofree char *sent = device_state_encode(want, NULL, NULL);
    g_autofree char *got = device_state_encode(r.state, NULL, NULL);
    assert_string_equal(sent, got);
    result_clear(&r);
}

static void state_goes_over_ipv4_byte_exact(void **state)
{
    struct fixture *f = *state;

    check_exchange(f, "127.0.0.1", "vdpa0");
    check_exchange(f, "127.0.0.1", "big0"); /* ~25 KiB: several TLS records */
    assert_int_equal(f->requests, 2);
    /* the server logged the peer by address and DN */
    assert_true(log_capture_has("127.0.0.1:"));
    assert_true(log_capture_has("C=GB,O=vdpad test,CN=client1"));
}

static int setup_ipv6(void **state)
{
    return setup_with(state, &(struct server_opts){ .listen = "[::1]:0" });
}

static void state_goes_over_ipv6_byte_exact(void **state)
{
    struct fixture *f = *state;

    check_exchange(f, "::1", "vdpa0");
    check_exchange(f, "::1", "big0");
    assert_true(log_capture_has("[::1]:"));
}

static int setup_localhost(void **state)
{
    return setup_with(state, &(struct server_opts){ .listen = "localhost:0" });
}

/* A DNS name: the certificate's dNSName matches; the server listens on all its addresses. */
static void state_goes_to_a_host_name(void **state)
{
    struct fixture *f = *state;

    check_exchange(f, "localhost", "vdpa0");
}

static void ping_answers_ok(void **state)
{
    struct fixture *f = *state;
    g_autoptr(mig_client) c = new_client("client", 5000);
    g_autofree char *a = addr_of(f, "127.0.0.1");
    struct result r = { .started = g_get_monotonic_time() };

    mig_client_ping(c, a, result_done, &r);
    assert_true(spin_until(&r.done, 10000));
    assert_null(r.error);
    assert_null(r.state);
    assert_int_equal(f->requests, 0); /* the server answers pings itself */
}

static void unknown_device_and_wrong_token_are_the_peers_refusals(void **state)
{
    struct fixture *f = *state;
    g_autoptr(mig_client) c = new_client("client", 5000);
    g_autofree char *a = addr_of(f, "127.0.0.1");
    struct result r = { .started = g_get_monotonic_time() };

    get_state(c, a, "nosuch", 0, &r);
    expect_error(&r, ENODEV, MIG_ERR_REMOTE, "the peer answered no-device: no device nosuch");
    result_clear(&r);

    memset(&r, 0, sizeof(r));
    mig_client_get_state(c, a, "vdpa0", "other-token", 0, result_done, &r);
    assert_true(spin_until(&r.done, 10000));
    expect_error(&r, ESRCH, MIG_ERR_REMOTE, "bad-token");
    result_clear(&r);
}

static void sync_call_from_another_thread_gets_the_state(void **state);

/* ------------------------------------------------------------------ waiting */

static void state_final_later_is_sent_when_it_is(void **state)
{
    struct fixture *f = *state;
    g_autoptr(mig_client) c = new_client("client", 2000);
    g_autofree char *a = addr_of(f, "127.0.0.1");
    struct result r;

    f->mode = ANSWER_LATER;
    f->later_ms = 300;
    get_state(c, a, "vdpa0", 3000, &r);
    if (r.error)
        fail_msg("%s", r.error->message);
    assert_true(device_state_equal(r.state, g_hash_table_lookup(f->states, "vdpa0")));
    assert_true(r.took_ms >= 300);
    assert_int_equal(f->cancels, 0);
    result_clear(&r);
}

static void state_never_final_is_not_ready_after_wait_ms(void **state)
{
    struct fixture *f = *state;
    g_autoptr(mig_client) c = new_client("client", 2000);
    g_autofree char *a = addr_of(f, "127.0.0.1");
    struct result r;

    f->mode = ANSWER_NEVER;
    get_state(c, a, "vdpa0", 400, &r);
    expect_error(&r, EAGAIN, MIG_ERR_NOT_READY, "not-ready: the state of vdpa0 was not final "
                 "within 400 ms");
    assert_true(r.took_ms >= 400 && r.took_ms < 2000);
    /* the owner was told, and its late answer goes nowhere */
    assert_int_equal(f->cancels, 1);
    assert_int_equal(f->held->len, 1);
    assert_false(mig_request_reply_state(f->held->pdata[0],
                                         g_hash_table_lookup(f->states, "vdpa0")));
    g_ptr_array_set_size(f->held, 0);
    result_clear(&r);
}

static void a_cancelled_call_cancels_the_pending_request(void **state)
{
    struct fixture *f = *state;
    g_autoptr(mig_client) c = new_client("client", 2000);
    g_autofree char *a = addr_of(f, "127.0.0.1");
    struct result r = { 0 };

    f->mode = ANSWER_NEVER;
    mig_call *call = mig_client_get_state(c, a, "vdpa0", TOKEN, 10000, result_done, &r);
    gint64 end = g_get_monotonic_time() + 5000000;
    while (f->held->len == 0 && g_get_monotonic_time() < end)
        g_main_context_iteration(NULL, TRUE);
    assert_int_equal(f->held->len, 1);
    mig_call_cancel(call);
    assert_true(spin_until(&f->cancels, 3000)); /* the server saw the client go */
    assert_false(r.done);                       /* and done never came */
    assert_false(mig_request_reply_error(f->held->pdata[0], MIG_STATUS_FAILED, "x"));
    g_ptr_array_set_size(f->held, 0);
    assert_true(spin_until_no_connections(f, 5000));
}

/* ------------------------------------------------------------------ authentication */

static void client_certificate_from_another_ca_is_refused(void **state)
{
    struct fixture *f = *state;
    g_autoptr(mig_client) c = new_client("client-otherca", 3000);
    g_autofree char *a = addr_of(f, "127.0.0.1");
    struct result r;

    get_state(c, a, "vdpa0", 0, &r);
    expect_error(&r, EPERM, MIG_ERR_AUTH, "the peer refused our certificate");
    assert_int_equal(f->requests, 0);
    assert_true(log_capture_has("refused 127.0.0.1:"));
    assert_true(log_capture_has("client's certificate (C=GB,O=vdpad test,CN=client1) is not trusted"));
    result_clear(&r);
}

static int setup_otherca_server(void **state)
{
    return setup_with(state, &(struct server_opts){ .identity = "server-otherca" });
}

static void server_certificate_from_another_ca_is_refused(void **state)
{
    struct fixture *f = *state;
    g_autoptr(mig_client) c = new_client("client", 3000);
    g_autofree char *a = addr_of(f, "127.0.0.1");
    struct result r;

    get_state(c, a, "vdpa0", 0, &r);
    expect_error(&r, EACCES, MIG_ERR_AUTH,
                 "the server's certificate (O=vdpad test,CN=localhost) is not trusted");
    assert_non_null(strstr(r.error->message, "TLS handshake"));
    assert_int_equal(f->requests, 0); /* no request went to an untrusted server */
    result_clear(&r);
}

static int setup_wronghost_server(void **state)
{
    return setup_with(state, &(struct server_opts){ .identity = "server-wronghost" });
}

static void server_certificate_for_another_host_is_refused(void **state)
{
    struct fixture *f = *state;
    g_autoptr(mig_client) c = new_client("client", 3000);
    g_autofree char *a = addr_of(f, "127.0.0.1");
    struct result r;

    get_state(c, a, "vdpa0", 0, &r);
    expect_error(&r, EACCES, MIG_ERR_AUTH, "is not for the host name '127.0.0.1'");
    assert_int_equal(f->requests, 0);
    result_clear(&r);
}

static const char *const allow_client_star[] = { "C=GB,O=vdpad test,CN=client*", NULL };

static int setup_allow_list(void **state)
{
    return setup_with(state, &(struct server_opts){ .allowed_dns = allow_client_star });
}

static void client_dn_outside_the_allow_list_is_refused(void **state)
{
    struct fixture *f = *state;
    g_autoptr(mig_client) good = new_client("client", 3000);
    g_autoptr(mig_client) bad = new_client("client-intruder", 3000);
    g_autofree char *a = addr_of(f, "127.0.0.1");
    struct result r;

    get_state(bad, a, "vdpa0", 0, &r);
    expect_error(&r, EPERM, MIG_ERR_AUTH, "the peer refused our certificate (TLS alert "
                 "'Access was denied')");
    assert_true(log_capture_has("the client's DN 'C=GB,O=vdpad test,CN=intruder' is not in the "
                        "allowed DN list"));
    result_clear(&r);
    get_state(good, a, "vdpa0", 0, &r); /* the pattern lets client1 in */
    assert_null(r.error);
    result_clear(&r);
    assert_int_equal(f->requests, 1);
}

static const char *const allow_nobody[] = { NULL };

static int setup_empty_allow_list(void **state)
{
    return setup_with(state, &(struct server_opts){ .allowed_dns = allow_nobody });
}

static void an_empty_allow_list_lets_nobody_in(void **state)
{
    struct fixture *f = *state;
    g_autoptr(mig_client) c = new_client("client", 3000);
    g_autofree char *a = addr_of(f, "127.0.0.1");
    struct result r;

    get_state(c, a, "vdpa0", 0, &r);
    expect_error(&r, EPERM, MIG_ERR_AUTH, NULL);
    result_clear(&r);
}

static void dn_patterns_are_globs_on_the_whole_dn(void **state)
{
    static const char *const p[] = { "C=GB,O=vdpad test,CN=client?", "C=*,O=Other,CN=*", NULL };

    assert_true(mig_tls_dn_allowed(p, "C=GB,O=vdpad test,CN=client1"));
    assert_false(mig_tls_dn_allowed(p, "C=GB,O=vdpad test,CN=client10"));
    assert_false(mig_tls_dn_allowed(p, "C=GBX,O=vdpad test,CN=client1"));
    assert_true(mig_tls_dn_allowed(p, "C=FR,O=Other,CN=anyone"));
    assert_false(mig_tls_dn_allowed(p, "c=FR,O=Other,CN=anyone")); /* exact, like libvirt */
}

/* Expired certificates: our own are refused when loaded, naming the file; a peer's is
 * refused at the handshake (raw_client_exchange below sends one). */
static void expired_own_certificates_fail_at_load_naming_the_file(void **state)
{
    g_autofree char *sd = dir("server-expired");
    g_autofree char *cd = dir("client-expired");
    struct mig_server_config scfg = { .listen = "127.0.0.1:0", .tls = { .pki_dir = sd } };
    struct mig_client_config ccfg = { .tls = { .pki_dir = cd } };
    g_autoptr(GError) serr = NULL;
    g_autoptr(GError) cerr = NULL;

    assert_null(mig_server_new(&scfg, on_request, NULL, &serr));
    assert_non_null(strstr(serr->message, "servercert.pem"));
    assert_non_null(strstr(serr->message, "expired"));
    assert_null(mig_client_new(&ccfg, &cerr));
    assert_non_null(strstr(cerr->message, "clientcert.pem"));
    assert_non_null(strstr(cerr->message, "expired"));
}

static void missing_pki_files_are_named(void **state)
{
    g_autofree char *empty = g_dir_make_tmp("vdpad-nopki-XXXXXX", NULL);
    struct mig_client_config cfg = { .tls = { .pki_dir = empty } };
    g_autoptr(GError) err = NULL;
    g_autofree char *ca = g_build_filename(empty, "cacert.pem", NULL);

    assert_null(mig_client_new(&cfg, &err));
    assert_int_equal(vdpad_error_errno(err), -ENOENT);
    assert_non_null(strstr(err->message, ca));
    g_rmdir(empty);
}

/* libvirt's layout: root uses /etc/pki; a user's ~/.pki/libvirt comes first, each of the CA
 * and the certificate+key pair falling back to /etc/pki on its own. */
static void pki_layout_follows_libvirt(void **state)
{
    g_autofree char *home = g_dir_make_tmp("vdpad-home-XXXXXX", NULL);
    g_autofree char *user = g_build_filename(home, ".pki", "libvirt", NULL);
    g_autofree char *src = dir("client");
    struct mig_pki_paths p;
    g_autoptr(GError) err = NULL;

    /* a pki_dir holds everything */
    assert_int_equal(mig_pki_locate_for(MIG_ROLE_CLIENT, src, NULL, &p, NULL), 0);
    assert_true(g_str_has_suffix(p.cert, "/client/clientcert.pem"));
    assert_true(g_str_has_suffix(p.key, "/client/clientkey.pem"));
    assert_true(g_str_has_suffix(p.ca_cert, "/client/cacert.pem"));
    assert_null(p.ca_crl); /* optional, absent */
    mig_pki_paths_clear(&p);

    /* the user's CA only: it is used, the identity falls back to root's (absent here) */
    g_mkdir_with_parents(user, 0700);
    g_autofree char *ca_src = g_build_filename(src, "cacert.pem", NULL);
    g_autofree char *ca_dst = g_build_filename(user, "cacert.pem", NULL);
    g_autofree char *text = NULL;
    size_t len;
    assert_true(g_file_get_contents(ca_src, &text, &len, NULL));
    assert_true(g_file_set_contents(ca_dst, text, (gssize)len, NULL));
    int ret = mig_pki_locate_for(MIG_ROLE_CLIENT, NULL, home, &p, &err);
    if (g_file_test("/etc/pki/libvirt/clientcert.pem", G_FILE_TEST_EXISTS)) {
        assert_int_equal(ret, 0);
        assert_string_equal(p.cert, "/etc/pki/libvirt/clientcert.pem");
        mig_pki_paths_clear(&p);
    } else {
        assert_int_equal(ret, -ENOENT);
        assert_non_null(strstr(err->message, "/etc/pki/libvirt/clientcert.pem"));
        assert_non_null(strstr(err->message, "/etc/pki/libvirt/private/clientkey.pem"));
    }
    g_clear_error(&err);

    /* the user's certificate without its key is an error naming both */
    g_autofree char *cert_dst = g_build_filename(user, "clientcert.pem", NULL);
    assert_true(g_file_set_contents(cert_dst, "x", 1, NULL));
    assert_int_equal(mig_pki_locate_for(MIG_ROLE_CLIENT, NULL, home, &p, &err), -EINVAL);
    assert_non_null(strstr(err->message, "clientkey.pem does not"));
    g_clear_error(&err);

    /* with the key too, everything is the user's */
    g_autofree char *key_dst = g_build_filename(user, "clientkey.pem", NULL);
    assert_true(g_file_set_contents(key_dst, "x", 1, NULL));
    assert_int_equal(mig_pki_locate_for(MIG_ROLE_CLIENT, NULL, home, &p, NULL), 0);
    assert_string_equal(p.cert, cert_dst);
    assert_string_equal(p.key, key_dst);
    assert_string_equal(p.ca_cert, ca_dst);
    mig_pki_paths_clear(&p);

    /* root's layout, by name (whether the files exist here or not) */
    ret = mig_pki_locate_for(MIG_ROLE_SERVER, NULL, NULL, &p, &err);
    if (ret == 0) {
        assert_string_equal(p.cert, "/etc/pki/libvirt/servercert.pem");
        assert_string_equal(p.key, "/etc/pki/libvirt/private/serverkey.pem");
        assert_string_equal(p.ca_cert, "/etc/pki/CA/cacert.pem");
        mig_pki_paths_clear(&p);
    } else {
        assert_non_null(strstr(err->message, "/etc/pki/"));
    }
    mig_test_pki_remove(home);
}

/* ------------------------------------------------------------------ missing and silent peers */

static void nobody_listening_is_connection_refused(void **state)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof(sin);

    assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    getsockname(fd, (struct sockaddr *)&sin, &len);
    close(fd); /* a port nobody listens on */
    g_autoptr(mig_client) c = new_client("client", 3000);
    g_autofree char *a = g_strdup_printf("127.0.0.1:%u", ntohs(sin.sin_port));
    struct result r;

    get_state(c, a, "vdpa0", 0, &r);
    expect_error(&r, ECONNREFUSED, MIG_ERR_UNREACHABLE, "connecting");
    assert_true(r.took_ms < 2000);
    result_clear(&r);
}

/* A listening socket that never accepts: TCP connects, TLS never starts. */
static void a_peer_that_never_handshakes_times_out(void **state)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof(sin);

    assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    assert_int_equal(listen(fd, 8), 0);
    getsockname(fd, (struct sockaddr *)&sin, &len);
    g_autoptr(mig_client) c = new_client("client", 600);
    g_autofree char *a = g_strdup_printf("127.0.0.1:%u", ntohs(sin.sin_port));
    struct result r;

    get_state(c, a, "vdpa0", 0, &r);
    expect_error(&r, ETIMEDOUT, MIG_ERR_TIMEOUT, "TLS handshake: no answer within 600 ms");
    assert_true(r.took_ms >= 600 && r.took_ms < 3000);
    result_clear(&r);
    close(fd);
}

static void bad_arguments_come_back_through_done(void **state)
{
    g_autoptr(mig_client) c = new_client("client", 1000);
    struct result r = { 0 };

    mig_client_get_state(c, "127.0.0.1:1", "bad/name", TOKEN, 0, result_done, &r);
    assert_false(r.done); /* never from inside the call */
    assert_true(spin_until(&r.done, 1000));
    expect_error(&r, EINVAL, MIG_ERR_LOCAL, "not a device name");
    result_clear(&r);
    memset(&r, 0, sizeof(r));
    mig_client_get_state(c, "127.0.0.1:1", "vdpa0", "has space", 0, result_done, &r);
    assert_true(spin_until(&r.done, 1000));
    expect_error(&r, EINVAL, MIG_ERR_LOCAL, "token");
    result_clear(&r);
    memset(&r, 0, sizeof(r));
    mig_client_get_state(c, "[::1", "vdpa0", TOKEN, 0, result_done, &r);
    assert_true(spin_until(&r.done, 1000));
    expect_error(&r, EINVAL, MIG_ERR_LOCAL, "not an address");
    result_clear(&r);
}

/* ------------------------------------------------------------------ raw peers */

/* A blocking TLS peer written with GnuTLS directly, to send what vdpad never sends. */
struct raw {
    int fd;
    gnutls_session_t s;
    gnutls_certificate_credentials_t creds;
};

static int tcp_connect(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(port),
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };

    assert_true(fd >= 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    return fd;
}

static void raw_creds(struct raw *r, const char *identity, const char *role)
{
    g_autofree char *d = dir(identity);
    g_autofree char *cert = g_strdup_printf("%s/%scert.pem", d, role);
    g_autofree char *key = g_strdup_printf("%s/%skey.pem", d, role);

    gnutls_certificate_allocate_credentials(&r->creds);
    assert_true(gnutls_certificate_set_x509_key_file(r->creds, cert, key,
                                                     GNUTLS_X509_FMT_PEM) >= 0);
}

/* Connects and handshakes as a client (no checks of the server: not the point here). */
static int raw_client(struct raw *r, uint16_t port, const char *identity)
{
    raw_creds(r, identity, "client");
    r->fd = tcp_connect(port);
    gnutls_init(&r->s, GNUTLS_CLIENT);
    gnutls_set_default_priority(r->s);
    gnutls_credentials_set(r->s, GNUTLS_CRD_CERTIFICATE, r->creds);
    gnutls_transport_set_int(r->s, r->fd);
    int ret;
    do
        ret = gnutls_handshake(r->s);
    while (ret < 0 && !gnutls_error_is_fatal(ret));
    return ret;
}

static void raw_close(struct raw *r)
{
    if (r->s)
        gnutls_deinit(r->s);
    if (r->fd >= 0)
        close(r->fd);
    gnutls_certificate_free_credentials(r->creds);
}

/* Reads until the peer closes; returns what came, *last the GnuTLS code that ended it. */
static GByteArray *raw_read_all(struct raw *r, int *last)
{
    GByteArray *all = g_byte_array_new();
    uint8_t buf[4096];
    ssize_t n;

    while ((n = gnutls_record_recv(r->s, buf, sizeof(buf))) > 0 || n == GNUTLS_E_AGAIN ||
           n == GNUTLS_E_INTERRUPTED)
        if (n > 0)
            g_byte_array_append(all, buf, (guint)n);
    *last = (int)n;
    return all;
}

struct raw_job {
    uint16_t port;
    const char *identity;
    GByteArray *send;       /* sent after the handshake */
    GByteArray *send_later; /* sent 300 ms after that */
    int handshake;
    GByteArray *got;
    int last;
    gnutls_alert_description_t alert;
    int done;
};

static gpointer raw_client_job(gpointer data)
{
    struct raw_job *j = data;
    struct raw r = { .fd = -1 };

    j->handshake = raw_client(&r, j->port, j->identity);
    if (j->handshake == 0) {
        if (j->send && j->send->len)
            gnutls_record_send(r.s, j->send->data, j->send->len);
        if (j->send_later) {
            g_usleep(300000);
            gnutls_record_send(r.s, j->send_later->data, j->send_later->len);
        }
        j->got = raw_read_all(&r, &j->last);
        if (j->last == GNUTLS_E_FATAL_ALERT_RECEIVED)
            j->alert = gnutls_alert_get(r.s);
    }
    raw_close(&r);
    g_atomic_int_set(&j->done, 1);
    g_main_context_wakeup(NULL);
    return NULL;
}

/* Runs a raw client against the server while the loop serves it. */
static void run_raw_client(struct raw_job *j)
{
    GThread *t = g_thread_new("raw-client", raw_client_job, j);

    if (!spin_until(&j->done, 10000))
        fail_msg("raw client did not finish");
    g_thread_join(t);
}

/* The response in a frame a raw client got, parsed. */
static void parse_raw_response(const GByteArray *got, struct mig_resp *resp)
{
    struct mig_frame_reader fr;
    size_t used, len;

    assert_non_null(got);
    mig_frame_reader_init(&fr);
    assert_int_equal(mig_frame_reader_feed(&fr, got->data, got->len, &used, NULL), 1);
    assert_int_equal(used, got->len); /* one frame and nothing after */
    const uint8_t *body = mig_frame_reader_body(&fr, &len);
    assert_int_equal(mig_resp_parse(body, len, MIG_OP_GET_STATE, resp, NULL), 0);
    mig_frame_reader_clear(&fr);
}

static GByteArray *bytes(const void *data, size_t len)
{
    GByteArray *a = g_byte_array_new();

    g_byte_array_append(a, data, (guint)len);
    return a;
}

static void server_refuses_an_oversized_frame_with_bad_request(void **state)
{
    struct fixture *f = *state;
    uint8_t hdr[4] = { 0x00, 0x10, 0x00, 0x01 }; /* 1 MiB + 1 */
    struct raw_job j = { .port = mig_server_port(f->server), .identity = "client",
                         .send = bytes(hdr, 4) };
    struct mig_resp resp;

    run_raw_client(&j);
    assert_int_equal(j.handshake, 0);
    parse_raw_response(j.got, &resp);
    assert_int_equal(resp.status, MIG_STATUS_BAD_REQUEST);
    assert_non_null(strstr(resp.error, "1048577 bytes, more than the 1048576"));
    assert_int_equal(j.last, 0); /* then a clean close_notify */
    assert_int_equal(f->requests, 0);
    mig_resp_clear(&resp);
    g_byte_array_unref(j.send);
    g_byte_array_unref(j.got);
}

static void server_refuses_malformed_requests_with_bad_request(void **state)
{
    struct fixture *f = *state;
    static const char *const bodies[] = {
        "{not json",
        "{\"op\":\"get-state\",\"device\":\"vdpa0\",\"token\":\"" TOKEN "\",\"wait_ms\":0,"
        "\"extra\":1}",
        "{\"op\":\"format-disk\"}",
        "[]",
    };
    static const char *const words[] = { "invalid JSON", "extra: unknown field",
                                          "'format-disk' is not an operation", "array" };

    for (size_t i = 0; i < G_N_ELEMENTS(bodies); i++) {
        size_t len;
        g_autofree uint8_t *frame = mig_frame_encode(bodies[i], strlen(bodies[i]), &len);
        struct raw_job j = { .port = mig_server_port(f->server), .identity = "client",
                             .send = bytes(frame, len) };
        struct mig_resp resp;
        run_raw_client(&j);
        parse_raw_response(j.got, &resp);
        assert_int_equal(resp.status, MIG_STATUS_BAD_REQUEST);
        if (!strstr(resp.error, words[i]))
            fail_msg("%s: %s", bodies[i], resp.error);
        mig_resp_clear(&resp);
        g_byte_array_unref(j.send);
        g_byte_array_unref(j.got);
    }
    /* a zero-length frame too */
    uint8_t zero[4] = { 0 };
    struct raw_job j = { .port = mig_server_port(f->server), .identity = "client",
                         .send = bytes(zero, 4) };
    struct mig_resp resp;
    run_raw_client(&j);
    parse_raw_response(j.got, &resp);
    assert_int_equal(resp.status, MIG_STATUS_BAD_REQUEST);
    mig_resp_clear(&resp);
    g_byte_array_unref(j.send);
    g_byte_array_unref(j.got);
    assert_int_equal(f->requests, 0);
}

/* Bytes after the request in the same read: a bad request. Bytes while the request waits:
 * the connection is dropped and the pending request cancelled. */
static void server_refuses_bytes_after_the_request(void **state)
{
    struct fixture *f = *state;
    static const char body[] = "{\"op\":\"get-state\",\"device\":\"vdpa0\",\"token\":\"" TOKEN
                               "\",\"wait_ms\":5000}";
    size_t len;
    g_autofree uint8_t *frame = mig_frame_encode(body, strlen(body), &len);
    struct mig_resp resp;

    f->mode = ANSWER_NEVER;
    struct raw_job j = { .port = mig_server_port(f->server), .identity = "client",
                         .send = bytes(frame, len) };
    g_byte_array_append(j.send, (const uint8_t *)"junk", 4);
    run_raw_client(&j);
    parse_raw_response(j.got, &resp);
    assert_int_equal(resp.status, MIG_STATUS_BAD_REQUEST);
    assert_non_null(strstr(resp.error, "the peer sent bytes after its frame"));
    assert_int_equal(f->requests, 0);
    mig_resp_clear(&resp);
    g_byte_array_unref(j.send);
    g_byte_array_unref(j.got);

    struct raw_job k = { .port = mig_server_port(f->server), .identity = "client",
                         .send = bytes(frame, len), .send_later = bytes("junk", 4) };
    run_raw_client(&k);
    assert_int_equal(k.handshake, 0);
    assert_int_equal(k.got->len, 0); /* no answer */
    assert_int_equal(f->requests, 1);
    assert_int_equal(f->cancels, 1);
    assert_true(log_capture_has("gone while waiting for the state of vdpa0: the peer sent data after "
                        "its request"));
    g_byte_array_unref(k.send);
    g_byte_array_unref(k.send_later);
    g_byte_array_unref(k.got);
}

static void server_refuses_an_expired_client_certificate(void **state)
{
    struct fixture *f = *state;
    struct raw_job j = { .port = mig_server_port(f->server), .identity = "client-expired" };

    run_raw_client(&j);
    /* TLS 1.3: the handshake ends on the client's side before the server checks */
    if (j.handshake == 0) {
        assert_int_equal(j.last, GNUTLS_E_FATAL_ALERT_RECEIVED);
        g_byte_array_unref(j.got);
    } else {
        assert_int_equal(j.handshake, GNUTLS_E_FATAL_ALERT_RECEIVED);
    }
    assert_int_equal(j.alert, GNUTLS_A_CERTIFICATE_EXPIRED);
    assert_true(log_capture_has("(C=GB,O=vdpad test,CN=client1) is not trusted: The certificate is "
                        "NOT trusted. The certificate chain uses expired certificate."));
    assert_int_equal(f->requests, 0);
}

/* A fake source: after the handshake it reads the request and sends scripted bytes. */
struct fake_server {
    int lfd;
    uint16_t port;
    GByteArray *answer;
    int done;
};

static gpointer fake_server_job(gpointer data)
{
    struct fake_server *fs = data;
    struct raw r = { .fd = accept(fs->lfd, NULL, NULL) };

    raw_creds(&r, "server", "server");
    gnutls_init(&r.s, GNUTLS_SERVER);
    gnutls_set_default_priority(r.s);
    gnutls_credentials_set(r.s, GNUTLS_CRD_CERTIFICATE, r.creds);
    gnutls_certificate_server_set_request(r.s, GNUTLS_CERT_REQUEST);
    gnutls_transport_set_int(r.s, r.fd);
    int ret;
    do
        ret = gnutls_handshake(r.s);
    while (ret < 0 && !gnutls_error_is_fatal(ret));
    if (ret == 0) {
        uint8_t buf[4096];
        struct mig_frame_reader fr;
        size_t used;
        mig_frame_reader_init(&fr);
        ssize_t n;
        while ((n = gnutls_record_recv(r.s, buf, sizeof(buf))) > 0 &&
               mig_frame_reader_feed(&fr, buf, (size_t)n, &used, NULL) == 0)
            ;
        mig_frame_reader_clear(&fr);
        for (guint off = 0; off < fs->answer->len;) {
            ssize_t s = gnutls_record_send(r.s, fs->answer->data + off, fs->answer->len - off);
            if (s <= 0)
                break;
            off += (guint)s;
        }
        gnutls_bye(r.s, GNUTLS_SHUT_WR);
        while (gnutls_record_recv(r.s, buf, sizeof(buf)) > 0)
            ;
    }
    raw_close(&r);
    g_atomic_int_set(&fs->done, 1);
    g_main_context_wakeup(NULL);
    return NULL;
}

/* Asks a fake source that answers with answer; returns the client's result. */
static void ask_fake_server(GByteArray *answer, struct result *res)
{
    struct fake_server fs = { .answer = answer };
    struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof(sin);

    fs.lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_int_equal(bind(fs.lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    assert_int_equal(listen(fs.lfd, 4), 0);
    getsockname(fs.lfd, (struct sockaddr *)&sin, &len);
    GThread *t = g_thread_new("fake-server", fake_server_job, &fs);
    g_autoptr(mig_client) c = new_client("client", 3000);
    g_autofree char *a = g_strdup_printf("127.0.0.1:%u", ntohs(sin.sin_port));
    get_state(c, a, "vdpa0", 0, res);
    spin_until(&fs.done, 5000);
    g_thread_join(t);
    close(fs.lfd);
}

static GByteArray *framed(const char *body)
{
    size_t len;
    g_autofree uint8_t *frame = mig_frame_encode(body, strlen(body), &len);

    return bytes(frame, len);
}

static void client_refuses_oversized_malformed_and_foreign_answers(void **state)
{
    struct result r;
    uint8_t big[4] = { 0xff, 0xff, 0xff, 0xff };
    g_autoptr(GByteArray) a1 = bytes(big, 4);
    g_autoptr(GByteArray) a2 = framed("{\"ok\":true,\"state\":{\"version\":1}");
    g_autoptr(device_state) other = make_state("vdpa9", false);
    g_autofree char *st = device_state_encode(other, NULL, NULL);
    g_autofree char *body = g_strdup_printf("{\"ok\":true,\"state\":%s}", st);
    g_autoptr(GByteArray) a3 = framed(body);
    g_autoptr(GByteArray) a4 = framed("{\"ok\":true,\"state\":{\"version\":2}}");

    ask_fake_server(a1, &r);
    expect_error(&r, EMSGSIZE, MIG_ERR_PROTOCOL, "4294967295 bytes, more than the 1048576");
    result_clear(&r);
    ask_fake_server(a2, &r);
    expect_error(&r, EBADMSG, MIG_ERR_PROTOCOL, "response: truncated JSON");
    result_clear(&r);
    ask_fake_server(a3, &r);
    expect_error(&r, EPROTO, MIG_ERR_PROTOCOL, "the answer carries the state of vdpa9");
    result_clear(&r);
    ask_fake_server(a4, &r);
    expect_error(&r, EPROTONOSUPPORT, MIG_ERR_PROTOCOL, "state.version: 2 is not supported");
    result_clear(&r);
}

/* ------------------------------------------------------------------ many and slow peers */

static void many_concurrent_clients_all_get_their_state(void **state)
{
    struct fixture *f = *state;
    enum { N = 48 };
    g_autoptr(mig_client) c = new_client("client", 10000);
    g_autofree char *a = addr_of(f, "127.0.0.1");
    struct result r[N];

    f->mode = ANSWER_LATER; /* all of them wait at the same time */
    f->later_ms = 200;
    for (int i = 0; i < N; i++) {
        memset(&r[i], 0, sizeof(r[i]));
        r[i].started = g_get_monotonic_time();
        mig_client_get_state(c, a, i % 2 ? "vdpa0" : "big0", TOKEN, 5000, result_done, &r[i]);
    }
    for (int i = 0; i < N; i++) {
        if (!spin_until(&r[i].done, 20000))
            fail_msg("client %d: no result", i);
        if (r[i].error)
            fail_msg("client %d: %s", i, r[i].error->message);
        assert_string_equal(r[i].state->device, i % 2 ? "vdpa0" : "big0");
        result_clear(&r[i]);
    }
    assert_int_equal(f->requests, N);
    assert_true(spin_until_no_connections(f, 5000));
}

static int setup_short_timeouts(void **state)
{
    return setup_with(state, &(struct server_opts){ .handshake_timeout_ms = 1500,
                                                    .request_timeout_ms = 1500 });
}

/* Clients that connect and send nothing (no TLS at all, or TLS and no request) do not hold
 * up another client, and are dropped after the timeouts. */
static void silent_clients_do_not_stall_others_and_are_dropped(void **state)
{
    struct fixture *f = *state;
    int idle[3];
    /* static: the thread must not outlive a frame it writes into, even if an assert fails */
    static struct raw_job quiet;

    quiet = (struct raw_job){ .port = mig_server_port(f->server), .identity = "client" };

    for (int i = 0; i < 3; i++)
        idle[i] = tcp_connect(mig_server_port(f->server));
    GThread *t = g_thread_new("quiet", raw_client_job, &quiet); /* handshakes, then waits */
    spin_ms(100);
    assert_int_equal(mig_server_connections(f->server), 4);

    g_autoptr(mig_client) c = new_client("client", 5000);
    g_autofree char *a = addr_of(f, "127.0.0.1");
    struct result r;
    get_state(c, a, "vdpa0", 0, &r);
    assert_null(r.error);
    result_clear(&r);
    /* served while all the silent ones were still there: once our own connection has
     * closed, exactly they remain */
    gint64 end = g_get_monotonic_time() + G_USEC_PER_SEC;
    while (mig_server_connections(f->server) > 4 && g_get_monotonic_time() < end)
        g_main_context_iteration(NULL, FALSE);
    assert_int_equal(mig_server_connections(f->server), 4);

    /* the silent ones go after their timeouts */
    assert_true(spin_until(&quiet.done, 6000));
    g_thread_join(t);
    assert_int_equal(quiet.handshake, 0);
    assert_int_equal(quiet.got->len, 0);
    g_byte_array_unref(quiet.got);
    assert_true(spin_until_no_connections(f, 5000));
    assert_true(log_capture_has("timed out (TLS handshake)"));
    assert_true(log_capture_has("timed out (reading the request)"));
    for (int i = 0; i < 3; i++)
        close(idle[i]);
}

static int setup_two_connections(void **state)
{
    return setup_with(state, &(struct server_opts){ .max_connections = 2,
                                                    .handshake_timeout_ms = 400 });
}

static void connections_over_the_maximum_are_closed_at_once(void **state)
{
    struct fixture *f = *state;
    int idle[2];

    for (int i = 0; i < 2; i++)
        idle[i] = tcp_connect(mig_server_port(f->server));
    spin_ms(50);
    g_autoptr(mig_client) c = new_client("client", 3000);
    g_autofree char *a = addr_of(f, "127.0.0.1");
    struct result r;
    get_state(c, a, "vdpa0", 0, &r);
    expect_error(&r, ECONNRESET, MIG_ERR_CLOSED, "TLS handshake: the peer closed");
    result_clear(&r);
    assert_true(log_capture_has("connections open (the maximum)"));
    assert_true(spin_until_no_connections(f, 5000)); /* the idle ones time out */
    get_state(c, a, "vdpa0", 0, &r);
    assert_null(r.error);
    result_clear(&r);
    for (int i = 0; i < 2; i++)
        close(idle[i]);
}

/* ------------------------------------------------------------------ the blocking client */

struct sync_job {
    char *address;
    struct device_state *state;
    GError *error;
    int ping;
    int done;
};

static gpointer sync_job(gpointer data)
{
    struct sync_job *j = data;
    mig_client *c = new_client("client", 5000);

    j->ping = mig_client_ping_sync(c, j->address, &j->error);
    if (j->ping == 0)
        j->state = mig_client_get_state_sync(c, j->address, "vdpa0", TOKEN, 0, &j->error);
    mig_client_free(c);
    g_atomic_int_set(&j->done, 1);
    g_main_context_wakeup(NULL);
    return NULL;
}

static void sync_call_from_another_thread_gets_the_state(void **state)
{
    struct fixture *f = *state;
    struct sync_job j = { .address = addr_of(f, "127.0.0.1") };
    GThread *t = g_thread_new("sync-client", sync_job, &j);

    assert_true(spin_until(&j.done, 10000));
    g_thread_join(t);
    if (j.error)
        fail_msg("%s", j.error->message);
    assert_int_equal(j.ping, 0);
    assert_true(device_state_equal(j.state, g_hash_table_lookup(f->states, "vdpa0")));
    device_state_free(j.state);
    g_free(j.address);
}

/* ------------------------------------------------------------------ secrets */

/* Runs last: nothing logged during all the tests above carries a line of a private key or a
 * whole certificate. */
static void logs_never_contain_key_material_or_certificates(void **state)
{
    static const char *const ids[] = { "server", "client", "client-intruder", "client-otherca",
                                       "server-otherca", "server-wronghost", "client-expired",
                                       "server-expired" };
    unsigned checked = 0;

    assert_true(log_capture_len() > 1000); /* the tests did log */
    for (size_t i = 0; i < G_N_ELEMENTS(ids); i++) {
        for (int k = 0; k < 4; k++) {
            static const char *const files[] = { "serverkey.pem", "clientkey.pem",
                                                 "servercert.pem", "clientcert.pem" };
            g_autofree char *d = dir(ids[i]);
            g_autofree char *path = g_build_filename(d, files[k], NULL);
            g_autofree char *text = NULL;
            if (!g_file_get_contents(path, &text, NULL, NULL))
                continue;
            g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
            for (char **l = lines; *l; l++) {
                if (strlen(*l) < 16 || g_str_has_prefix(*l, "-----"))
                    continue;
                if (log_capture_has(*l))
                    fail_msg("a line of %s is in the log", path);
                checked++;
            }
        }
    }
    assert_true(checked > 20);
}

int main(void)
{
    g_autoptr(GError) err = NULL;

    log_capture_start();
    g_setenv("G_MESSAGES_DEBUG", "all", TRUE);
    pki_root = mig_test_pki_create(&err);
    if (!pki_root) {
        fprintf(stderr, "cannot make the test PKI (is gnutls-bin installed?): %s\n",
                err->message);
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(state_goes_over_ipv4_byte_exact, setup, teardown),
        cmocka_unit_test_setup_teardown(state_goes_over_ipv6_byte_exact, setup_ipv6, teardown),
        cmocka_unit_test_setup_teardown(state_goes_to_a_host_name, setup_localhost, teardown),
        cmocka_unit_test_setup_teardown(ping_answers_ok, setup, teardown),
        cmocka_unit_test_setup_teardown(unknown_device_and_wrong_token_are_the_peers_refusals,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(sync_call_from_another_thread_gets_the_state, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(state_final_later_is_sent_when_it_is, setup, teardown),
        cmocka_unit_test_setup_teardown(state_never_final_is_not_ready_after_wait_ms, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_cancelled_call_cancels_the_pending_request, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(client_certificate_from_another_ca_is_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(server_certificate_from_another_ca_is_refused,
                                        setup_otherca_server, teardown),
        cmocka_unit_test_setup_teardown(server_certificate_for_another_host_is_refused,
                                        setup_wronghost_server, teardown),
        cmocka_unit_test_setup_teardown(client_dn_outside_the_allow_list_is_refused,
                                        setup_allow_list, teardown),
        cmocka_unit_test_setup_teardown(an_empty_allow_list_lets_nobody_in,
                                        setup_empty_allow_list, teardown),
        cmocka_unit_test(dn_patterns_are_globs_on_the_whole_dn),
        cmocka_unit_test(expired_own_certificates_fail_at_load_naming_the_file),
        cmocka_unit_test(missing_pki_files_are_named),
        cmocka_unit_test(pki_layout_follows_libvirt),
        cmocka_unit_test(nobody_listening_is_connection_refused),
        cmocka_unit_test(a_peer_that_never_handshakes_times_out),
        cmocka_unit_test(bad_arguments_come_back_through_done),
        cmocka_unit_test_setup_teardown(server_refuses_an_oversized_frame_with_bad_request,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(server_refuses_malformed_requests_with_bad_request,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(server_refuses_bytes_after_the_request, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(server_refuses_an_expired_client_certificate, setup,
                                        teardown),
        cmocka_unit_test(client_refuses_oversized_malformed_and_foreign_answers),
        cmocka_unit_test_setup_teardown(many_concurrent_clients_all_get_their_state, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(silent_clients_do_not_stall_others_and_are_dropped,
                                        setup_short_timeouts, teardown),
        cmocka_unit_test_setup_teardown(connections_over_the_maximum_are_closed_at_once,
                                        setup_two_connections, teardown),
        cmocka_unit_test(logs_never_contain_key_material_or_certificates),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    mig_test_pki_remove(pki_root);
    g_free(pki_root);
    return failed;
}
