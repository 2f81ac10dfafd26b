#include "config.h"

#include <fcntl.h>
#include <gio/gio.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/device_spec.h"
#include "migration/mig_client.h"
#include "migration/mig_conn.h"
#include "migration/mig_frame.h"
#include "migration/mig_msg.h"
#include "util/error.h"

struct mig_client {
    mig_tls *tls;
    unsigned io_timeout_ms;
};

struct mig_call {
    int refs; /* the caller's until done or cancel; the connect operation's while it runs */
    mig_tls *tls;
    GMainContext *ctx;
    char *address; /* as given, for messages */
    char *host;    /* what the server's certificate must name */
    struct mig_req req;
    unsigned budget_ms;
    GCancellable *cancellable;
    struct mig_conn *conn;
    GSource *timer;
    GSource *early; /* reports an error found before any I/O */
    GError *early_error;
    const char *step;
    mig_call_done_fn done;
    void *opaque;
    bool finished;
    int *alive; /* the sync wrapper counts calls not yet freed */
};

mig_client *mig_client_new(const struct mig_client_config *cfg, GError **error)
{
    mig_tls *tls = mig_tls_new(MIG_ROLE_CLIENT, &cfg->tls, error);

    if (!tls) {
        vdpad_prefix_error(error, "migration channel: ");
        return NULL;
    }
    mig_client *c = g_new0(mig_client, 1);
    c->tls = tls;
    c->io_timeout_ms = cfg->io_timeout_ms ? cfg->io_timeout_ms : MIG_IO_TIMEOUT_MS;
    return c;
}

void mig_client_free(mig_client *c)
{
    if (!c)
        return;
    mig_tls_unref(c->tls);
    g_free(c);
}

/* ------------------------------------------------------------------ the call */

static void call_unref(mig_call *call)
{
    if (--call->refs > 0)
        return;
    if (call->alive)
        (*call->alive)--;
    mig_tls_unref(call->tls);
    g_main_context_unref(call->ctx);
    g_free(call->address);
    g_free(call->host);
    mig_req_clear(&call->req);
    g_clear_object(&call->cancellable);
    g_clear_error(&call->early_error);
    g_free(call);
}

static void drop_source(GSource **s)
{
    if (*s) {
        g_source_destroy(*s);
        g_source_unref(*s);
        *s = NULL;
    }
}

/* Ends the call: releases its I/O, then reports (unless cancelled). */
static void finish(mig_call *call, struct device_state *st, GError *error)
{
    if (call->finished) {
        device_state_free(st);
        return;
    }
    call->finished = true;
    drop_source(&call->timer);
    drop_source(&call->early);
    g_cancellable_cancel(call->cancellable);
    g_clear_pointer(&call->conn, mig_conn_free);
    if (call->done)
        call->done(st, error, call->opaque);
    else
        device_state_free(st);
    call_unref(call);
}

/* finish() with an error named after the peer and the step. */
static void fail(mig_call *call, const GError *cause)
{
    GError *e = g_error_copy(cause);

    g_prefix_error(&e, "migration peer %s: %s: ", call->address, call->step);
    finish(call, NULL, e);
    g_error_free(e);
}

static void fail_errno(mig_call *call, int errnum, const char *fmt, ...) G_GNUC_PRINTF(3, 4);
static void fail_errno(mig_call *call, int errnum, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    g_autofree char *msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_autoptr(GError) e = NULL;
    vdpad_fail(&e, errnum, "%s", msg);
    fail(call, e);
}

static gboolean on_deadline(gpointer data)
{
    mig_call *call = data;

    fail_errno(call, ETIMEDOUT, "no answer within %u ms", call->budget_ms);
    return G_SOURCE_REMOVE;
}

static gboolean on_early_error(gpointer data)
{
    mig_call *call = data;
    GError *e = g_steal_pointer(&call->early_error);

    finish(call, NULL, e);
    g_error_free(e);
    return G_SOURCE_REMOVE;
}

static void on_handshaken(void *owner)
{
    mig_call *call = owner;
    g_autoptr(GError) err = NULL;
    g_autofree char *dn = NULL;
    gnutls_alert_description_t alert;

    if (mig_tls_verify_peer(call->tls, mig_conn_session(call->conn), call->host, &dn, &alert,
                            &err) < 0) {
        mig_conn_alert(call->conn, alert);
        fail(call, err);
        return;
    }
    g_debug("migration channel: %s authenticated as %s", call->address, dn);
    size_t len;
    g_autofree char *body = mig_req_encode(&call->req, &len);
    uint8_t *frame = mig_frame_encode(body, len, &len);
    call->step = "sending the request";
    mig_conn_send(call->conn, frame, len);
}

static void on_sent(void *owner)
{
    mig_call *call = owner;

    call->step = "waiting for the answer";
    mig_conn_receive(call->conn);
}

static int status_errno(enum mig_status status)
{
    switch (status) {
    case MIG_STATUS_NOT_READY: return EAGAIN;
    case MIG_STATUS_NO_DEVICE: return ENODEV;
    case MIG_STATUS_BAD_TOKEN: return ESRCH;
    case MIG_STATUS_BAD_REQUEST: return EPROTO; /* the peer says we broke the protocol */
    default: return EREMOTEIO;
    }
}

static void on_received(void *owner, const uint8_t *body, size_t len)
{
    mig_call *call = owner;
    g_autoptr(GError) err = NULL;
    struct mig_resp resp;

    call->step = "reading the answer";
    if (mig_resp_parse(body, len, call->req.op, &resp, &err) < 0) {
        fail(call, err);
        return;
    }
    if (resp.status != MIG_STATUS_OK) {
        fail_errno(call, status_errno(resp.status), "the peer answered %s: %s",
                   mig_status_name(resp.status), resp.error);
        mig_resp_clear(&resp);
        return;
    }
    struct device_state *st = g_steal_pointer(&resp.state);
    mig_resp_clear(&resp);
    if (st && (!g_str_equal(st->device, call->req.device) ||
               !g_str_equal(st->token, call->req.token))) {
        fail_errno(call, EPROTO, "the answer carries the state of %s (token %s), not of %s "
                   "(token %s)", st->device, st->token, call->req.device, call->req.token);
        device_state_free(st);
        return;
    }
    finish(call, st, NULL);
}

static void on_failed(void *owner, const GError *error)
{
    fail(owner, error);
}

static void on_closed(void *owner)
{
    fail_errno(owner, ECONNRESET, "the peer closed the connection"); /* no drain here */
}

static const struct mig_conn_events client_events = {
    .handshaken = on_handshaken,
    .received = on_received,
    .sent = on_sent,
    .failed = on_failed,
    .closed = on_closed,
};

static int connect_errno(const GError *e)
{
    if (e->domain == G_IO_ERROR) {
        switch (e->code) {
        case G_IO_ERROR_CONNECTION_REFUSED: return ECONNREFUSED;
        case G_IO_ERROR_HOST_UNREACHABLE: return EHOSTUNREACH;
        case G_IO_ERROR_NETWORK_UNREACHABLE: return ENETUNREACH;
        case G_IO_ERROR_TIMED_OUT: return ETIMEDOUT;
        case G_IO_ERROR_NOT_FOUND:
        case G_IO_ERROR_HOST_NOT_FOUND: return ENXIO;
        default: break;
        }
    }
    if (e->domain == G_RESOLVER_ERROR)
        return ENXIO;
    return EHOSTUNREACH; /* whatever else kept us from connecting */
}

static void on_connected(GObject *source, GAsyncResult *res, gpointer data)
{
    mig_call *call = data;
    g_autoptr(GError) err = NULL;
    GSocketConnection *conn = g_socket_client_connect_finish(G_SOCKET_CLIENT(source), res, &err);

    if (call->finished) { /* timed out or cancelled meanwhile */
        g_clear_object(&conn);
        call_unref(call);
        return;
    }
    if (!conn) {
        fail_errno(call, connect_errno(err), "%s", err->message);
        call_unref(call);
        return;
    }
    /* our own fd: the connection object goes, the socket stays */
    int fd = fcntl(g_socket_get_fd(g_socket_connection_get_socket(conn)), F_DUPFD_CLOEXEC, 3);
    int saved = errno;
    g_object_unref(conn);
    if (fd < 0) {
        fail_errno(call, saved, "dup: %s", g_strerror(saved));
        call_unref(call);
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    gnutls_session_t session;
    if (mig_tls_session_new(call->tls, fd, call->host, &session, &err) < 0) {
        close(fd);
        fail(call, err);
        call_unref(call);
        return;
    }
    call->conn = mig_conn_new(fd, session, call->ctx, &client_events, call);
    call->step = "TLS handshake";
    mig_conn_handshake(call->conn);
    call_unref(call);
}

static mig_call *call_start(mig_client *client, const char *address, struct mig_req *req,
                            GError *arg_error, mig_call_done_fn done, void *opaque, int *alive)
{
    mig_call *call = g_new0(mig_call, 1);
    g_autoptr(GSocketConnectable) where = NULL;

    call->refs = 1;
    call->tls = mig_tls_ref(client->tls);
    call->ctx = g_main_context_ref_thread_default();
    call->address = g_strdup(address ? address : "(none)");
    call->req = *req;
    call->budget_ms = client->io_timeout_ms + (req->op == MIG_OP_GET_STATE ? req->wait_ms : 0);
    call->cancellable = g_cancellable_new();
    call->step = "connecting";
    call->done = done;
    call->opaque = opaque;
    call->alive = alive;
    if (!arg_error && address) {
        g_autoptr(GError) perr = NULL;
        where = g_network_address_parse(address, MIG_DEFAULT_PORT, &perr);
        if (!where)
            vdpad_fail(&arg_error, EINVAL, "migration peer '%s': not an address: %s",
                       address, perr->message);
        else
            call->host = g_strdup(g_network_address_get_hostname(G_NETWORK_ADDRESS(where)));
    } else if (!arg_error) {
        vdpad_fail(&arg_error, EINVAL, "migration peer: no address");
    }
    if (arg_error) { /* reported from the loop like every other error */
        call->early_error = arg_error;
        call->early = g_idle_source_new();
        g_source_set_callback(call->early, on_early_error, call, NULL);
        g_source_attach(call->early, call->ctx);
        return call;
    }
    call->timer = g_timeout_source_new(call->budget_ms);
    g_source_set_callback(call->timer, on_deadline, call, NULL);
    g_source_attach(call->timer, call->ctx);

    g_autoptr(GSocketClient) sc = g_socket_client_new();
    g_socket_client_set_enable_proxy(sc, FALSE);
    call->refs++; /* for on_connected */
    g_socket_client_connect_async(sc, where, call->cancellable, on_connected, call);
    return call;
}

static bool token_valid(const char *token)
{
    size_t len = token ? strlen(token) : 0;

    if (len == 0 || len > DEVICE_STATE_TOKEN_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if (token[i] < 0x21 || token[i] > 0x7e)
            return false;
    return true;
}

static GError *check_get_state_args(const char *device, const char *token, uint32_t wait_ms)
{
    GError *e = NULL;

    if (!device || !device_name_valid(device))
        vdpad_fail(&e, EINVAL, "get-state: '%s' is not a device name", device ? device : "");
    else if (!token_valid(token))
        vdpad_fail(&e, EINVAL, "get-state %s: the token must be 1-%d printable ASCII "
                   "characters without spaces", device, DEVICE_STATE_TOKEN_MAX);
    else if (wait_ms > MIG_WAIT_MS_MAX)
        vdpad_fail(&e, EINVAL, "get-state %s: wait_ms %u is more than %u", device, wait_ms,
                   MIG_WAIT_MS_MAX);
    return e;
}

static mig_call *get_state(mig_client *client, const char *address, const char *device,
                           const char *token, uint32_t wait_ms, mig_call_done_fn done,
                           void *opaque, int *alive)
{
    GError *e = check_get_state_args(device, token, wait_ms);
    struct mig_req req = { .op = MIG_OP_GET_STATE, .wait_ms = wait_ms };

    if (!e) {
        req.device = g_strdup(device);
        req.token = g_strdup(token);
    }
    return call_start(client, address, &req, e, done, opaque, alive);
}

mig_call *mig_client_get_state(mig_client *client, const char *address, const char *device,
                               const char *token, uint32_t wait_ms, mig_call_done_fn done,
                               void *opaque)
{
    return get_state(client, address, device, token, wait_ms, done, opaque, NULL);
}

mig_call *mig_client_ping(mig_client *client, const char *address, mig_call_done_fn done,
                          void *opaque)
{
    struct mig_req req = { .op = MIG_OP_PING };

    return call_start(client, address, &req, NULL, done, opaque, NULL);
}

void mig_call_cancel(mig_call *call)
{
    call->done = NULL;
    finish(call, NULL, NULL);
}

/* ------------------------------------------------------------------ blocking */

struct sync_result {
    bool done;
    int alive;
    struct device_state *state;
    GError *error;
};

static void sync_done(struct device_state *st, const GError *error, void *opaque)
{
    struct sync_result *r = opaque;

    r->done = true;
    r->state = st;
    if (error)
        r->error = g_error_copy(error);
}

/* Runs the call started by start on a private context until it is over, including the
 * cancelled connect it may leave behind. */
static void run_sync(struct sync_result *r, GMainContext *ctx)
{
    while (!r->done || r->alive > 0)
        g_main_context_iteration(ctx, TRUE);
}

struct device_state *mig_client_get_state_sync(mig_client *client, const char *address,
                                               const char *device, const char *token,
                                               uint32_t wait_ms, GError **error)
{
    struct sync_result r = { .alive = 1 };
    GMainContext *ctx = g_main_context_new();

    g_main_context_push_thread_default(ctx);
    get_state(client, address, device, token, wait_ms, sync_done, &r, &r.alive);
    run_sync(&r, ctx);
    g_main_context_pop_thread_default(ctx);
    g_main_context_unref(ctx);
    if (r.error) {
        g_propagate_error(error, r.error);
        return NULL;
    }
    return r.state;
}

int mig_client_ping_sync(mig_client *client, const char *address, GError **error)
{
    struct sync_result r = { .alive = 1 };
    GMainContext *ctx = g_main_context_new();
    struct mig_req req = { .op = MIG_OP_PING };

    g_main_context_push_thread_default(ctx);
    call_start(client, address, &req, NULL, sync_done, &r, &r.alive);
    run_sync(&r, ctx);
    g_main_context_pop_thread_default(ctx);
    g_main_context_unref(ctx);
    if (r.error) {
        int ret = vdpad_error_errno(r.error);
        g_propagate_error(error, r.error);
        return ret;
    }
    return 0;
}

/* ------------------------------------------------------------------ errors */

enum mig_error_kind mig_error_kind(const GError *error)
{
    switch (-vdpad_error_errno(error)) {
    case ECONNREFUSED:
    case EHOSTUNREACH:
    case ENETUNREACH:
    case EHOSTDOWN:
    case ENETDOWN:
    case EADDRNOTAVAIL:
    case ENXIO: return MIG_ERR_UNREACHABLE;
    case ETIMEDOUT: return MIG_ERR_TIMEOUT;
    case ECONNRESET:
    case EPIPE: return MIG_ERR_CLOSED;
    case EAGAIN: return MIG_ERR_NOT_READY;
    case EACCES:
    case EPERM: return MIG_ERR_AUTH;
    case ENODEV:
    case ESRCH:
    case EREMOTEIO: return MIG_ERR_REMOTE;
    case EPROTO:
    case EMSGSIZE:
    case EBADMSG:
    case EPROTONOSUPPORT: return MIG_ERR_PROTOCOL;
    default: return MIG_ERR_LOCAL;
    }
}

const char *mig_error_kind_name(enum mig_error_kind kind)
{
    static const char *const names[] = {
        [MIG_ERR_UNREACHABLE] = "unreachable", [MIG_ERR_TIMEOUT] = "timeout",
        [MIG_ERR_CLOSED] = "closed",           [MIG_ERR_NOT_READY] = "not-ready",
        [MIG_ERR_AUTH] = "auth",               [MIG_ERR_REMOTE] = "remote",
        [MIG_ERR_PROTOCOL] = "protocol",       [MIG_ERR_LOCAL] = "local",
    };
    return (size_t)kind < G_N_ELEMENTS(names) ? names[kind] : "?";
}
