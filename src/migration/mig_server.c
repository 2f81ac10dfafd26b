#include "config.h"

#include <arpa/inet.h>
#include <gio/gio.h>
#include <glib-unix.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "migration/mig_conn.h"
#include "migration/mig_frame.h"
#include "migration/mig_server.h"
#include "util/error.h"
#include "util/fd.h"

/* How long a closing connection waits for the peer to close its side. */
#define MIG_LINGER_MS 2000

struct listener {
    int fd;
    GSource *source;
};

struct mig_server {
    mig_tls *tls;
    GMainContext *ctx;
    GArray *listeners; /* struct listener */
    GHashTable *conns; /* struct srv_conn * set */
    uint16_t port;
    unsigned handshake_timeout_ms, request_timeout_ms, max_wait_ms, max_connections;
    mig_request_fn on_request;
    void *opaque;
};

struct srv_conn {
    mig_server *server;
    struct mig_conn *conn;
    char *peer; /* address:port */
    char *dn;   /* after the handshake */
    GSource *timer;
    const char *phase; /* what the timer bounds, for messages */
    mig_request *req;  /* a get-state waiting for its answer */
};

struct mig_request {
    int refs;             /* the owner's until its reply, the connection's until it ends */
    struct srv_conn *sc;  /* NULL once the request ended */
    char *device, *token, *peer, *dn;
    uint32_t wait_ms;
    mig_request_cancel_fn cancel;
    void *cancel_data;
};

/* ------------------------------------------------------------------ requests */

static void request_unref(mig_request *req)
{
    if (--req->refs > 0)
        return;
    g_free(req->device);
    g_free(req->token);
    g_free(req->peer);
    g_free(req->dn);
    g_free(req);
}

const char *mig_request_device(const mig_request *req) { return req->device; }
const char *mig_request_token(const mig_request *req) { return req->token; }
uint32_t mig_request_wait_ms(const mig_request *req) { return req->wait_ms; }
const char *mig_request_peer(const mig_request *req) { return req->peer; }
const char *mig_request_peer_dn(const mig_request *req) { return req->dn; }

void mig_request_set_cancel(mig_request *req, mig_request_cancel_fn fn, void *data)
{
    req->cancel = fn;
    req->cancel_data = data;
}

/* Detaches the pending request from its connection. by_owner: the owner answered it (no
 * cancel callback). */
static void end_request(struct srv_conn *sc, gboolean by_owner)
{
    mig_request *req = sc->req;

    if (!req)
        return;
    sc->req = NULL;
    req->sc = NULL;
    if (!by_owner && req->cancel)
        req->cancel(req, req->cancel_data);
    request_unref(req);
}

/* ------------------------------------------------------------------ connections */

static void close_conn(struct srv_conn *sc)
{
    end_request(sc, FALSE);
    if (sc->timer) {
        g_source_destroy(sc->timer);
        g_source_unref(sc->timer);
    }
    mig_conn_free(sc->conn);
    g_hash_table_remove(sc->server->conns, sc);
    g_free(sc->peer);
    g_free(sc->dn);
    g_free(sc);
}

static const char *who(const struct srv_conn *sc)
{
    return sc->dn ? sc->dn : "unauthenticated";
}

static void send_response(struct srv_conn *sc, const struct mig_resp *resp);

static gboolean on_timer(gpointer data)
{
    struct srv_conn *sc = data;

    if (sc->req) {
        mig_request *req = sc->req;
        g_warning("migration channel: %s (%s): the state of %s was not final within %u ms",
                  sc->peer, who(sc), req->device, req->wait_ms);
        struct mig_resp resp = { .status = MIG_STATUS_NOT_READY };
        resp.error = g_strdup_printf("the state of %s was not final within %u ms", req->device,
                                     req->wait_ms);
        end_request(sc, FALSE);
        send_response(sc, &resp);
        g_free(resp.error);
        return G_SOURCE_REMOVE;
    }
    if (g_str_equal(sc->phase, "closing")) /* the answer went out; the peer lingers */
        g_debug("migration channel: %s: closed without waiting for the peer", sc->peer);
    else
        g_warning("migration channel: %s (%s): timed out (%s)", sc->peer, who(sc), sc->phase);
    close_conn(sc);
    return G_SOURCE_REMOVE;
}

/* Bounds what comes next by ms; replaces the previous bound. */
static void arm(struct srv_conn *sc, unsigned ms, const char *phase)
{
    if (sc->timer) {
        g_source_destroy(sc->timer);
        g_source_unref(sc->timer);
    }
    sc->phase = phase;
    sc->timer = g_timeout_source_new(ms);
    g_source_set_callback(sc->timer, on_timer, sc, NULL);
    g_source_attach(sc->timer, sc->server->ctx);
}

/* Ends the connection once the peer has read what we sent (mig_conn_shutdown). */
static void linger(struct srv_conn *sc)
{
    arm(sc, MIN(sc->server->request_timeout_ms, MIG_LINGER_MS), "closing");
    mig_conn_shutdown(sc->conn);
}

static void send_response(struct srv_conn *sc, const struct mig_resp *resp)
{
    g_autoptr(GError) err = NULL;
    size_t len;
    g_autofree char *body = mig_resp_encode(resp, &len, &err);

    if (!body) { /* the state was checked before; a bug if it happens */
        g_warning("migration channel: %s: cannot encode the answer: %s", sc->peer,
                  err->message);
        char text[] = "internal error";
        struct mig_resp failed = { .status = MIG_STATUS_FAILED, .error = text };
        body = mig_resp_encode(&failed, &len, NULL);
    }
    uint8_t *frame = mig_frame_encode(body, len, &len);
    arm(sc, sc->server->request_timeout_ms, "sending the answer");
    mig_conn_send(sc->conn, frame, len);
}

static void reply_error(struct srv_conn *sc, enum mig_status status, const char *text)
{
    struct mig_resp resp = { .status = status, .error = (char *)text };

    send_response(sc, &resp);
}

static void on_handshaken(void *owner)
{
    struct srv_conn *sc = owner;
    mig_server *s = sc->server;
    g_autoptr(GError) err = NULL;
    gnutls_alert_description_t alert;

    if (mig_tls_verify_peer(s->tls, mig_conn_session(sc->conn), NULL, &sc->dn, &alert,
                            &err) < 0) {
        g_warning("migration channel: refused %s: %s", sc->peer, err->message);
        mig_conn_alert(sc->conn, alert);
        linger(sc);
        return;
    }
    g_info("migration channel: %s authenticated as %s", sc->peer, sc->dn);
    arm(sc, s->request_timeout_ms, "reading the request");
    mig_conn_receive(sc->conn);
}

static void on_received(void *owner, const uint8_t *body, size_t len)
{
    struct srv_conn *sc = owner;
    mig_server *s = sc->server;
    g_autoptr(GError) err = NULL;
    struct mig_req r;

    if (mig_req_parse(body, len, &r, &err) < 0) {
        g_warning("migration channel: %s (%s): %s", sc->peer, who(sc), err->message);
        reply_error(sc, MIG_STATUS_BAD_REQUEST, err->message);
        return;
    }
    if (r.op == MIG_OP_PING) {
        g_info("migration channel: %s (%s): ping", sc->peer, who(sc));
        struct mig_resp ok = { .status = MIG_STATUS_OK };
        send_response(sc, &ok);
        mig_req_clear(&r);
        return;
    }
    mig_request *req = g_new0(mig_request, 1);
    req->refs = 2;
    req->sc = sc;
    req->device = g_steal_pointer(&r.device);
    req->token = g_steal_pointer(&r.token);
    req->wait_ms = MIN(r.wait_ms, s->max_wait_ms);
    req->peer = g_strdup(sc->peer);
    req->dn = g_strdup(sc->dn);
    mig_req_clear(&r);
    sc->req = req;
    g_message("migration channel: %s (%s) asks for the state of %s (wait %u ms)", sc->peer,
              who(sc), req->device, req->wait_ms);
    arm(sc, req->wait_ms, "waiting for the state");
    mig_conn_idle(sc->conn); /* a client that goes away cancels the request */
    s->on_request(req, s->opaque);
}

static void on_sent(void *owner)
{
    linger(owner); /* one exchange per connection */
}

static void on_closed(void *owner)
{
    close_conn(owner);
}

static void on_failed(void *owner, const GError *error)
{
    struct srv_conn *sc = owner;

    if (sc->req) {
        g_warning("migration channel: %s (%s): gone while waiting for the state of %s: %s",
                  sc->peer, who(sc), sc->req->device, error->message);
    } else if (mig_conn_usable(sc->conn)) {
        /* a bad frame in a working session: say so before closing */
        g_warning("migration channel: %s (%s): %s: %s", sc->peer, who(sc), sc->phase,
                  error->message);
        reply_error(sc, MIG_STATUS_BAD_REQUEST, error->message);
        return;
    } else {
        g_warning("migration channel: %s (%s): %s: %s", sc->peer, who(sc), sc->phase,
                  error->message);
    }
    close_conn(sc);
}

static const struct mig_conn_events srv_events = {
    .handshaken = on_handshaken,
    .received = on_received,
    .sent = on_sent,
    .failed = on_failed,
    .closed = on_closed,
};

static gboolean deliver(mig_request *req, struct mig_resp *resp)
{
    struct srv_conn *sc = req->sc;

    if (!sc) { /* ended already: the answer has nowhere to go */
        request_unref(req);
        return FALSE;
    }
    end_request(sc, TRUE);
    send_response(sc, resp);
    request_unref(req);
    return TRUE;
}

gboolean mig_request_reply_state(mig_request *req, const struct device_state *st)
{
    g_autoptr(GError) err = NULL;
    struct mig_resp resp = { .status = MIG_STATUS_OK, .state = (struct device_state *)st };

    if (g_strcmp0(st->device, req->device) != 0 || g_strcmp0(st->token, req->token) != 0) {
        g_warning("migration channel: %s: the answer to a request for %s carries the state of "
                  "%s or another token", req->peer, req->device, st->device ? st->device : "?");
        return mig_request_reply_error(req, MIG_STATUS_FAILED, "internal error");
    }
    if (device_state_validate(st, &err) < 0) {
        g_warning("migration channel: %s: the state of %s is not valid: %s", req->peer,
                  req->device, err->message);
        return mig_request_reply_error(req, MIG_STATUS_FAILED, "the state of %s is not valid",
                                       req->device);
    }
    if (req->sc)
        g_message("migration channel: sending the state of %s to %s (%s)", req->device,
                  req->peer, req->dn);
    return deliver(req, &resp);
}

gboolean mig_request_reply_error(mig_request *req, enum mig_status status, const char *fmt, ...)
{
    va_list ap;

    g_return_val_if_fail(status != MIG_STATUS_OK, FALSE);
    va_start(ap, fmt);
    g_autofree char *text = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    if (req->sc)
        g_message("migration channel: answering %s (%s) for %s: %s: %s", req->peer, req->dn,
                  req->device, mig_status_name(status), text);
    struct mig_resp resp = { .status = status, .error = text };
    return deliver(req, &resp);
}

/* ------------------------------------------------------------------ accepting */

static char *format_peer(const struct sockaddr *sa, socklen_t len)
{
    char host[NI_MAXHOST], serv[NI_MAXSERV];

    if (getnameinfo(sa, len, host, sizeof(host), serv, sizeof(serv),
                    NI_NUMERICHOST | NI_NUMERICSERV) != 0)
        return g_strdup("(unknown address)");
    return sa->sa_family == AF_INET6 ? g_strdup_printf("[%s]:%s", host, serv)
                                     : g_strdup_printf("%s:%s", host, serv);
}

static void accept_one(mig_server *s, int fd, char *peer)
{
    g_autoptr(GError) err = NULL;
    gnutls_session_t session;

    if (g_hash_table_size(s->conns) >= s->max_connections) {
        g_warning("migration channel: refusing %s: %u connections open (the maximum)", peer,
                  g_hash_table_size(s->conns));
        close(fd);
        g_free(peer);
        return;
    }
    if (mig_tls_session_new(s->tls, fd, NULL, &session, &err) < 0) {
        g_warning("migration channel: %s: %s", peer, err->message);
        close(fd);
        g_free(peer);
        return;
    }
    struct srv_conn *sc = g_new0(struct srv_conn, 1);
    sc->server = s;
    sc->peer = peer;
    sc->conn = mig_conn_new(fd, session, s->ctx, &srv_events, sc);
    g_hash_table_add(s->conns, sc);
    g_debug("migration channel: connection from %s", peer);
    arm(sc, s->handshake_timeout_ms, "TLS handshake");
    mig_conn_handshake(sc->conn);
}

static gboolean on_listen_ready(gint fd, GIOCondition cond, gpointer data)
{
    mig_server *s = data;

    /* a bounded batch per wakeup: the other sources get their turn under a flood */
    for (int i = 0; i < 32; i++) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        int c = accept4(fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (c < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
                errno != ECONNABORTED)
                g_warning("migration channel: accept: %s", g_strerror(errno));
            break;
        }
        int one = 1;
        setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        accept_one(s, c, format_peer((struct sockaddr *)&ss, len));
    }
    return G_SOURCE_CONTINUE;
}

/* ------------------------------------------------------------------ listening */

static int parse_listen(const char *text, char **host, uint16_t *port, GError **error)
{
    g_autoptr(GError) perr = NULL;

    if (g_str_has_prefix(text, "*:") || g_str_equal(text, "*")) {
        /* every address: a name GLib's parser would not take */
        g_autofree char *fake = g_strconcat("any", text + 1, NULL);
        g_autoptr(GSocketConnectable) a = g_network_address_parse(fake, MIG_DEFAULT_PORT,
                                                                   &perr);
        if (!a)
            return vdpad_fail(error, EINVAL, "listen address '%s': %s", text, perr->message);
        *host = NULL;
        *port = g_network_address_get_port(G_NETWORK_ADDRESS(a));
        return 0;
    }
    g_autoptr(GSocketConnectable) a = g_network_address_parse(text, MIG_DEFAULT_PORT, &perr);
    if (!a)
        return vdpad_fail(error, EINVAL, "listen address '%s': %s", text, perr->message);
    *host = g_strdup(g_network_address_get_hostname(G_NETWORK_ADDRESS(a)));
    *port = g_network_address_get_port(G_NETWORK_ADDRESS(a));
    return 0;
}

static void set_port(struct sockaddr *sa, uint16_t port)
{
    if (sa->sa_family == AF_INET6)
        ((struct sockaddr_in6 *)sa)->sin6_port = htons(port);
    else
        ((struct sockaddr_in *)sa)->sin_port = htons(port);
}

static int listen_on(mig_server *s, const struct addrinfo *ai, const char *text,
                     GError **error)
{
    g_auto(vdpad_fd) fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                                 ai->ai_protocol);
    int one = 1;
    struct sockaddr_storage ss;
    g_autofree char *addr = NULL;

    if (fd < 0)
        return vdpad_fail(error, errno, "listen address '%s': socket: %s", text,
                          g_strerror(errno));
    memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
    if (s->port)
        set_port((struct sockaddr *)&ss, s->port);
    addr = format_peer((struct sockaddr *)&ss, ai->ai_addrlen);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    /* each family on its own socket, so "*" can bind both */
    if (ai->ai_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&ss, ai->ai_addrlen) < 0 || listen(fd, 64) < 0) {
        int e = errno;
        return vdpad_fail(error, e, "listen address '%s': %s: %s", text, addr, g_strerror(e));
    }
    if (!s->port) {
        socklen_t len = sizeof(ss);
        getsockname(fd, (struct sockaddr *)&ss, &len);
        s->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                 : ((struct sockaddr_in *)&ss)->sin_port);
    }
    struct listener l = { .fd = vdpad_steal_fd(&fd) };
    l.source = g_unix_fd_source_new(l.fd, G_IO_IN);
    g_source_set_callback(l.source, (GSourceFunc)(void (*)(void))on_listen_ready, s, NULL);
    g_source_attach(l.source, s->ctx);
    g_array_append_val(s->listeners, l);
    g_info("migration channel: listening on %s", addr);
    return 0;
}

static int start_listening(mig_server *s, const char *text, GError **error)
{
    g_autofree char *host = NULL;
    uint16_t port = 0;
    int ret = parse_listen(text, &host, &port, error);

    if (ret < 0)
        return ret;
    struct addrinfo hints = {
        .ai_flags = AI_PASSIVE | AI_NUMERICSERV,
        .ai_socktype = SOCK_STREAM,
    };
    struct addrinfo *res = NULL;
    char portstr[8];
    g_snprintf(portstr, sizeof(portstr), "%u", port);
    int gai = getaddrinfo(host, portstr, &hints, &res);
    if (gai != 0)
        return vdpad_fail(error, ENXIO, "listen address '%s': %s", text, gai_strerror(gai));
    s->port = port;
    for (struct addrinfo *ai = res; ai && ret == 0; ai = ai->ai_next)
        if (ai->ai_family == AF_INET || ai->ai_family == AF_INET6)
            ret = listen_on(s, ai, text, error);
    freeaddrinfo(res);
    if (ret == 0 && s->listeners->len == 0)
        ret = vdpad_fail(error, EADDRNOTAVAIL, "listen address '%s': no IPv4 or IPv6 address",
                         text);
    return ret;
}

mig_server *mig_server_new(const struct mig_server_config *cfg, mig_request_fn on_request,
                           void *opaque, GError **error)
{
    mig_tls *tls = mig_tls_new(MIG_ROLE_SERVER, &cfg->tls, error);

    if (!tls) {
        vdpad_prefix_error(error, "migration channel: ");
        return NULL;
    }
    mig_server *s = g_new0(mig_server, 1);
    s->tls = tls;
    s->ctx = cfg->context ? g_main_context_ref(cfg->context)
                          : g_main_context_ref_thread_default();
    s->listeners = g_array_new(FALSE, FALSE, sizeof(struct listener));
    s->conns = g_hash_table_new(NULL, NULL);
    s->handshake_timeout_ms = cfg->handshake_timeout_ms ? cfg->handshake_timeout_ms
                                                        : MIG_HANDSHAKE_TIMEOUT_MS;
    s->request_timeout_ms = cfg->request_timeout_ms ? cfg->request_timeout_ms
                                                    : MIG_REQUEST_TIMEOUT_MS;
    s->max_wait_ms = cfg->max_wait_ms ? MIN(cfg->max_wait_ms, MIG_WAIT_MS_MAX)
                                      : MIG_WAIT_MS_MAX;
    s->max_connections = cfg->max_connections ? cfg->max_connections : MIG_MAX_CONNECTIONS;
    s->on_request = on_request;
    s->opaque = opaque;
    if (start_listening(s, cfg->listen ? cfg->listen : "*", error) < 0) {
        vdpad_prefix_error(error, "migration channel: ");
        mig_server_free(s);
        return NULL;
    }
    g_message("migration channel: serving device states on port %u as %s", s->port,
              mig_tls_own_dn(tls));
    return s;
}

void mig_server_free(mig_server *s)
{
    if (!s)
        return;
    for (guint i = 0; i < s->listeners->len; i++) {
        struct listener *l = &g_array_index(s->listeners, struct listener, i);
        g_source_destroy(l->source);
        g_source_unref(l->source);
        close(l->fd);
    }
    g_array_unref(s->listeners);
    /* close_conn removes from the table: take them out first */
    GList *conns = g_hash_table_get_keys(s->conns);
    for (GList *l = conns; l; l = l->next)
        close_conn(l->data);
    g_list_free(conns);
    g_hash_table_unref(s->conns);
    mig_tls_unref(s->tls);
    g_main_context_unref(s->ctx);
    g_free(s);
}

uint16_t mig_server_port(const mig_server *s)
{
    return s->port;
}

unsigned mig_server_connections(const mig_server *s)
{
    return g_hash_table_size(s->conns);
}
