/* Unit tests: a prepared destination asks its source for the state early (mig_prefetch.c),
 * against a real migration-channel server on loopback with test certificates. The server's
 * handler plays the source: it holds each request (the source device has not stopped) until
 * the test answers it. The nodes are bare structs: the prefetcher reads only a node's name,
 * whether it is open, and its preparation. */
#include "config.h"

#include <errno.h>
#include <glib.h>
#include <linux/virtio_ids.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "log_capture.h"
#include "mig_test_pki.h"
#include "migration/mig_client.h"
#include "migration/mig_msg.h"
#include "migration/mig_prefetch.h"
#include "migration/mig_server.h"

static char *pki_root;

struct fixture {
    mig_server *server;
    mig_client *client;
    mig_prefetch *pf;
    GPtrArray *held;       /* mig_request *, not answered */
    GPtrArray *tokens;     /* char *: the token of every request, in order */
    unsigned last_wait_ms;
    int cancels;
    bool refuse;           /* answer bad-token at once */
    char *source;          /* the server's address */
    char device[8], token[8], name[8];
    struct node_incoming in;
    struct vdpa_node node;
};

/* the request ended before the source answered it; the owner still releases it */
static void on_cancel(mig_request *req, void *data)
{
    struct fixture *f = data;

    g_ptr_array_remove(f->held, req);
    f->cancels++;
    assert_false(mig_request_reply_error(req, MIG_STATUS_FAILED, "ended"));
}

static void on_request(mig_request *req, void *opaque)
{
    struct fixture *f = opaque;

    g_ptr_array_add(f->tokens, g_strdup(mig_request_token(req)));
    f->last_wait_ms = mig_request_wait_ms(req);
    if (f->refuse) {
        mig_request_reply_error(req, MIG_STATUS_BAD_TOKEN, "token %s names no session",
                                mig_request_token(req));
        return;
    }
    mig_request_set_cancel(req, on_cancel, f);
    g_ptr_array_add(f->held, req);
}

static void spin_until(bool (*cond)(struct fixture *), struct fixture *f, const char *what)
{
    gint64 end = g_get_monotonic_time() + 5 * G_USEC_PER_SEC;

    while (!cond(f)) {
        if (g_get_monotonic_time() > end)
            fail_msg("waited 5 s for %s", what);
        if (!g_main_context_iteration(NULL, FALSE))
            g_usleep(500);
    }
}

static void spin_ms(unsigned ms)
{
    gint64 end = g_get_monotonic_time() + (gint64)ms * 1000;

    while (g_get_monotonic_time() < end)
        if (!g_main_context_iteration(NULL, FALSE))
            g_usleep(500);
}

static bool one_request(struct fixture *f) { return f->tokens->len >= 1; }
static bool two_requests(struct fixture *f) { return f->tokens->len >= 2; }
static bool one_cancel(struct fixture *f) { return f->cancels >= 1; }
static bool two_cancels(struct fixture *f) { return f->cancels >= 2; }
static bool answer_kept(struct fixture *f) { return log_capture_has("kept for"); }
static bool gave_up(struct fixture *f) { return log_capture_has("early for"); }

static struct device_state *source_state(const char *token)
{
    struct device_state *st = device_state_new();

    st->device = g_strdup("vdpa0");
    st->token = g_strdup(token);
    st->virtio_id = VIRTIO_ID_NET;
    st->features = 1ull << 32;
    st->stopped_at_us = g_get_real_time();
    st->net.max_queue_pairs = 1;
    net_state_reset(&st->net.state, (uint8_t[6]){ 0x52, 0x54, 0, 1, 2, 3 }, st->features);
    return st;
}

static int setup_with_wait(void **state, unsigned max_wait_ms)
{
    struct fixture *f = g_new0(struct fixture, 1);
    g_autofree char *server_dir = mig_test_pki_dir(pki_root, "server");
    g_autofree char *client_dir = mig_test_pki_dir(pki_root, "client");
    struct mig_server_config scfg = { .listen = "127.0.0.1:0", .tls = { .pki_dir = server_dir },
                                      .max_wait_ms = max_wait_ms };
    struct mig_client_config ccfg = { .tls = { .pki_dir = client_dir } };
    g_autoptr(GError) err = NULL;

    f->held = g_ptr_array_new();
    f->tokens = g_ptr_array_new_with_free_func(g_free);
    if (!(f->server = mig_server_new(&scfg, on_request, f, &err)) ||
        !(f->client = mig_client_new(&ccfg, &err)))
        fail_msg("channel: %s", err->message);
    f->pf = mig_prefetch_new(f->client);
    f->source = g_strdup_printf("localhost:%u", mig_server_port(f->server));
    strcpy(f->device, "vdpa0");
    strcpy(f->token, "tok-1");
    strcpy(f->name, "n0");
    f->in = (struct node_incoming){ .source = f->source, .device = f->device, .token = f->token };
    f->node.name = f->name;
    f->node.incoming = &f->in;
    f->node.session = (struct session *)f; /* open: any non-NULL session */
    log_capture_clear();
    *state = f;
    return 0;
}

static int setup(void **state)
{
    return setup_with_wait(state, 0);
}

static int setup_short_wait(void **state)
{
    return setup_with_wait(state, 100);
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    mig_prefetch_free(f->pf);
    spin_ms(20); /* the cancelled calls' connections close */
    mig_server_free(f->server); /* ends the requests still held (on_cancel) */
    assert_int_equal(f->held->len, 0);
    mig_client_free(f->client);
    g_ptr_array_unref(f->held);
    g_ptr_array_unref(f->tokens);
    g_free(f->source);
    g_free(f);
    return 0;
}

static void the_answer_at_the_stop_is_kept_for_the_start(void **state)
{
    struct fixture *f = *state;
    double age_ms = -1;

    /* prepared before QEMU opened the node (libvirt's hook): nothing is asked yet */
    f->node.session = NULL;
    mig_prefetch_node_event(f->pf, &f->node, NODE_CHANGED);
    spin_ms(50);
    assert_int_equal(f->tokens->len, 0);
    f->node.session = (struct session *)f;
    mig_prefetch_node_event(f->pf, &f->node, NODE_OPENED);
    spin_until(one_request, f, "the early request");
    assert_string_equal(f->tokens->pdata[0], "tok-1");
    assert_int_equal(f->last_wait_ms, MIG_WAIT_MS_MAX);
    /* events that change nothing of the preparation ask nothing more */
    mig_prefetch_node_event(f->pf, &f->node, NODE_CHANGED);
    spin_ms(50);
    assert_int_equal(f->tokens->len, 1);

    /* the source stops: it answers */
    g_autoptr(device_state) st = source_state("tok-1");
    assert_true(mig_request_reply_state(f->held->pdata[0], st));
    g_ptr_array_remove_index(f->held, 0);
    spin_until(answer_kept, f, "the answer");

    g_usleep(2000);
    g_autoptr(device_state) got = mig_prefetch_take(f->pf, &f->node, &age_ms);
    assert_non_null(got);
    assert_string_equal(got->device, "vdpa0");
    assert_string_equal(got->token, "tok-1");
    assert_true(age_ms >= 2.0 && age_ms < 5000);
    assert_null(mig_prefetch_take(f->pf, &f->node, &age_ms)); /* used up */
}

static void a_start_before_the_answer_takes_nothing_and_ends_the_call(void **state)
{
    struct fixture *f = *state;
    double age_ms = 0;

    mig_prefetch_node_event(f->pf, &f->node, NODE_OPENED);
    spin_until(one_request, f, "the early request");
    assert_null(mig_prefetch_take(f->pf, &f->node, &age_ms));
    spin_until(one_cancel, f, "the source to see the request end");
    assert_int_equal(f->held->len, 0);
    /* no second early request for the same preparation */
    mig_prefetch_node_event(f->pf, &f->node, NODE_CHANGED);
    spin_ms(50);
    assert_int_equal(f->tokens->len, 1);
}

static void a_new_preparation_asks_again_and_closing_forgets(void **state)
{
    struct fixture *f = *state;
    double age_ms = 0;

    mig_prefetch_node_event(f->pf, &f->node, NODE_OPENED);
    spin_until(one_request, f, "the first request");
    strcpy(f->token, "tok-2");
    mig_prefetch_node_event(f->pf, &f->node, NODE_CHANGED);
    spin_until(two_requests, f, "the request for the new preparation");
    spin_until(one_cancel, f, "the first request to end");
    assert_string_equal(f->tokens->pdata[1], "tok-2");

    /* an answer for the old preparation would not count; the node closes */
    mig_prefetch_node_event(f->pf, &f->node, NODE_CLOSED);
    spin_until(two_cancels, f, "the second request to end");
    assert_null(mig_prefetch_take(f->pf, &f->node, &age_ms));

    /* a cancelled preparation (CancelIncoming) asks nothing */
    f->node.incoming = NULL;
    mig_prefetch_node_event(f->pf, &f->node, NODE_OPENED);
    spin_ms(50);
    assert_int_equal(f->tokens->len, 2);
}

static void a_wait_that_runs_out_is_asked_again(void **state)
{
    struct fixture *f = *state; /* the server caps waits at 100 ms */
    double age_ms = 0;

    mig_prefetch_node_event(f->pf, &f->node, NODE_OPENED);
    spin_until(two_requests, f, "a second request after not-ready");
    assert_int_equal(f->last_wait_ms, 100);
    g_autoptr(device_state) st = source_state("tok-1");
    while (f->held->len == 0) /* between a not-ready and the next request */
        g_main_context_iteration(NULL, TRUE);
    assert_true(mig_request_reply_state(f->held->pdata[0], st));
    g_ptr_array_remove_index(f->held, 0);
    spin_until(answer_kept, f, "the answer");
    g_autoptr(device_state) got = mig_prefetch_take(f->pf, &f->node, &age_ms);
    assert_non_null(got);
}

static void a_refusal_leaves_it_to_the_start(void **state)
{
    struct fixture *f = *state;
    double age_ms = 0;

    f->refuse = true;
    mig_prefetch_node_event(f->pf, &f->node, NODE_OPENED);
    spin_until(gave_up, f, "the early request's failure");
    assert_true(log_capture_has("bad-token"));
    assert_null(mig_prefetch_take(f->pf, &f->node, &age_ms));
    spin_ms(50);
    assert_int_equal(f->tokens->len, 1); /* not asked again */
}

static int make_pki(void **state)
{
    g_autoptr(GError) err = NULL;

    log_capture_start();
    if (!(pki_root = mig_test_pki_create(&err))) {
        fprintf(stderr, "cannot make the test PKI: %s\n", err->message);
        return -1;
    }
    return 0;
}

static int remove_pki(void **state)
{
    mig_test_pki_remove(pki_root);
    g_free(pki_root);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(the_answer_at_the_stop_is_kept_for_the_start, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_start_before_the_answer_takes_nothing_and_ends_the_call,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(a_new_preparation_asks_again_and_closing_forgets, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_wait_that_runs_out_is_asked_again, setup_short_wait,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_refusal_leaves_it_to_the_start, setup, teardown),
    };
    return cmocka_run_group_tests(tests, make_pki, remove_pki);
}
