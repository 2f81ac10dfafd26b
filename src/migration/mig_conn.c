#include "config.h"

#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "migration/mig_conn.h"
#include "migration/mig_frame.h"
#include "migration/mig_tls.h"
#include "util/error.h"

/* Records handled per dispatch before yielding to the other sources of the context, so a
 * peer sending a large frame fast does not starve the others. */
#define RECORDS_PER_DISPATCH 16
#define NONFATAL_RETRIES 16

enum conn_op {
    OP_NONE,
    OP_HANDSHAKE,
    OP_SEND,
    OP_RECEIVE,
    OP_IDLE,
    OP_DRAIN,
    OP_DEAD,
};

struct conn_source {
    GSource base;
    struct mig_conn *conn;
};

struct mig_conn {
    int fd;
    gnutls_session_t session;
    GSource *source;
    gpointer tag;
    const struct mig_conn_events *ev;
    void *owner;
    enum conn_op op;
    bool handshaken;
    bool broken; /* failed or alerted: no close_notify */
    uint8_t *out;
    size_t out_len, out_off;
    struct mig_frame_reader reader;
};

static void wait_for(struct mig_conn *c, GIOCondition cond)
{
    g_source_modify_unix_fd(c->source, c->tag, cond);
}

static void wait_direction(struct mig_conn *c)
{
    wait_for(c, gnutls_record_get_direction(c->session) ? G_IO_OUT : G_IO_IN);
}

/* Ends the operation and reports it; the handler may free c. session_ok: the TLS session
 * still works (a bad frame), so the owner may still send an answer. */
static void fail(struct mig_conn *c, GError *e, bool session_ok)
{
    c->op = session_ok ? OP_NONE : OP_DEAD;
    c->broken = c->broken || !session_ok;
    wait_for(c, 0);
    c->ev->failed(c->owner, e);
    g_error_free(e);
}

static void fail_tls(struct mig_conn *c, int err, const char *what)
{
    GError *e = NULL;

    mig_tls_fail(&e, c->session, err, what);
    fail(c, e, false);
}

static void fail_errno(struct mig_conn *c, int errnum, const char *msg, bool session_ok)
{
    GError *e = NULL;

    vdpad_fail(&e, errnum, "%s", msg);
    fail(c, e, session_ok);
}

static void done(struct mig_conn *c)
{
    c->op = OP_NONE;
    wait_for(c, 0);
}

static void do_handshake(struct mig_conn *c)
{
    int r;

    for (int i = 0; i < NONFATAL_RETRIES; i++) {
        r = gnutls_handshake(c->session);
        if (r == 0) {
            c->handshaken = true;
            done(c);
            c->ev->handshaken(c->owner);
            return;
        }
        if (r == GNUTLS_E_AGAIN) {
            wait_direction(c);
            return;
        }
        if (gnutls_error_is_fatal(r))
            break;
    }
    fail_tls(c, r, NULL);
}

static void do_send(struct mig_conn *c)
{
    for (int i = 0; c->out_off < c->out_len; i++) {
        if (i == RECORDS_PER_DISPATCH) {
            g_source_set_ready_time(c->source, 0);
            return;
        }
        ssize_t n = gnutls_record_send(c->session, c->out + c->out_off,
                                       c->out_len - c->out_off);
        if (n > 0) {
            c->out_off += (size_t)n;
        } else if (n == GNUTLS_E_AGAIN) {
            wait_direction(c);
            return;
        } else if (n != GNUTLS_E_INTERRUPTED) {
            fail_tls(c, n == 0 ? GNUTLS_E_PUSH_ERROR : (int)n, NULL);
            return;
        }
    }
    g_clear_pointer(&c->out, g_free);
    done(c);
    c->ev->sent(c->owner);
}

static void do_receive(struct mig_conn *c)
{
    uint8_t buf[16384];

    for (int i = 0; i < RECORDS_PER_DISPATCH; i++) {
        ssize_t n = gnutls_record_recv(c->session, buf, sizeof(buf));
        if (n == GNUTLS_E_AGAIN) {
            wait_for(c, G_IO_IN);
            return;
        }
        if (n == 0) {
            fail_errno(c, ECONNRESET, c->reader.header_len
                                          ? "the peer closed the connection inside a frame"
                                          : "the peer closed the connection", false);
            return;
        }
        if (n < 0) {
            if (gnutls_error_is_fatal((int)n)) {
                fail_tls(c, (int)n, NULL);
                return;
            }
            continue;
        }
        size_t used;
        GError *e = NULL;
        int r = mig_frame_reader_feed(&c->reader, buf, (size_t)n, &used, &e);
        if (r < 0) {
            fail(c, e, true);
            return;
        }
        if (r == 0)
            continue;
        if (used < (size_t)n || gnutls_record_check_pending(c->session) > 0) {
            fail_errno(c, EPROTO, "the peer sent bytes after its frame", true);
            return;
        }
        /* the body outlives the reader's reset, the handler may free c */
        g_autoptr(GByteArray) body = g_steal_pointer(&c->reader.body);
        mig_frame_reader_clear(&c->reader);
        done(c);
        c->ev->received(c->owner, body->data, body->len);
        return;
    }
    g_source_set_ready_time(c->source, 0); /* more to read: after the others had a turn */
}

static void do_idle(struct mig_conn *c)
{
    uint8_t buf[256];

    for (int i = 0; i < NONFATAL_RETRIES; i++) {
        ssize_t n = gnutls_record_recv(c->session, buf, sizeof(buf));
        if (n == GNUTLS_E_AGAIN) {
            wait_for(c, G_IO_IN);
            return;
        }
        if (n > 0) {
            fail_errno(c, EPROTO, "the peer sent data after its request", false);
            return;
        }
        if (n == 0) {
            fail_errno(c, ECONNRESET, "the peer closed the connection", false);
            return;
        }
        if (gnutls_error_is_fatal((int)n)) {
            fail_tls(c, (int)n, NULL);
            return;
        }
    }
    wait_for(c, G_IO_IN);
}

static void do_drain(struct mig_conn *c)
{
    uint8_t buf[4096];

    for (int i = 0; i < RECORDS_PER_DISPATCH; i++) {
        ssize_t n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n > 0)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
            wait_for(c, G_IO_IN);
            return;
        }
        c->op = OP_DEAD;
        wait_for(c, 0);
        c->ev->closed(c->owner);
        return;
    }
    g_source_set_ready_time(c->source, 0);
}

static gboolean conn_dispatch(GSource *source, GSourceFunc cb, gpointer data)
{
    struct mig_conn *c = ((struct conn_source *)source)->conn;

    g_source_set_ready_time(source, -1);
    switch (c->op) {
    case OP_HANDSHAKE: do_handshake(c); break;
    case OP_SEND: do_send(c); break;
    case OP_RECEIVE: do_receive(c); break;
    case OP_IDLE: do_idle(c); break;
    case OP_DRAIN: do_drain(c); break;
    case OP_NONE:
    case OP_DEAD: wait_for(c, 0); break;
    }
    return G_SOURCE_CONTINUE;
}

static GSourceFuncs conn_source_funcs = {
    .dispatch = conn_dispatch,
};

struct mig_conn *mig_conn_new(int fd, gnutls_session_t session, GMainContext *ctx,
                              const struct mig_conn_events *events, void *owner)
{
    struct mig_conn *c = g_new0(struct mig_conn, 1);

    c->fd = fd;
    c->session = session;
    c->ev = events;
    c->owner = owner;
    mig_frame_reader_init(&c->reader);
    c->source = g_source_new(&conn_source_funcs, sizeof(struct conn_source));
    ((struct conn_source *)c->source)->conn = c;
    g_source_set_name(c->source, "vdpad migration connection");
    c->tag = g_source_add_unix_fd(c->source, fd, 0);
    g_source_attach(c->source, ctx);
    return c;
}

void mig_conn_free(struct mig_conn *c)
{
    if (!c)
        return;
    if (c->handshaken && !c->broken)
        gnutls_bye(c->session, GNUTLS_SHUT_WR); /* best effort: never waits */
    g_source_destroy(c->source);
    g_source_unref(c->source);
    gnutls_deinit(c->session);
    close(c->fd);
    mig_frame_reader_clear(&c->reader);
    g_free(c->out);
    g_free(c);
}

static void start(struct mig_conn *c, enum conn_op op)
{
    g_assert(c->op == OP_NONE || c->op == OP_IDLE); /* idle ends when there is work */
    c->op = op;
    wait_for(c, 0);
    g_source_set_ready_time(c->source, 0);
}

void mig_conn_handshake(struct mig_conn *c)
{
    start(c, OP_HANDSHAKE);
}

void mig_conn_send(struct mig_conn *c, uint8_t *frame, size_t len)
{
    g_free(c->out);
    c->out = frame;
    c->out_len = len;
    c->out_off = 0;
    start(c, OP_SEND);
}

void mig_conn_receive(struct mig_conn *c)
{
    mig_frame_reader_clear(&c->reader);
    start(c, OP_RECEIVE);
}

void mig_conn_idle(struct mig_conn *c)
{
    start(c, OP_IDLE);
}

void mig_conn_alert(struct mig_conn *c, gnutls_alert_description_t alert)
{
    /* non-blocking: it goes out now or not at all */
    gnutls_alert_send(c->session, GNUTLS_AL_FATAL, alert);
    c->broken = true;
    c->op = OP_DEAD;
    wait_for(c, 0);
}

void mig_conn_shutdown(struct mig_conn *c)
{
    if (c->handshaken && !c->broken)
        gnutls_bye(c->session, GNUTLS_SHUT_WR); /* best effort: never waits */
    c->broken = true; /* no second close_notify at free */
    shutdown(c->fd, SHUT_WR);
    c->op = OP_DRAIN;
    wait_for(c, 0);
    g_source_set_ready_time(c->source, 0);
}

bool mig_conn_usable(const struct mig_conn *c)
{
    return !c->broken && (c->op == OP_NONE || c->op == OP_IDLE);
}

gnutls_session_t mig_conn_session(struct mig_conn *c)
{
    return c->session;
}

const char *mig_conn_activity(const struct mig_conn *c)
{
    switch (c->op) {
    case OP_HANDSHAKE: return "TLS handshake";
    case OP_SEND: return "sending";
    case OP_RECEIVE: return "receiving";
    case OP_IDLE: return "idle";
    case OP_DRAIN: return "closing";
    default: return "idle";
    }
}
