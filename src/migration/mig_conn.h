/* mig_conn.h — one TLS connection of the migration channel on a GLib main context,
 * non-blocking: the handshake, sending one frame, receiving one frame, watching an idle
 * peer. Shared by the server and the client; not a public API.
 *
 * The owner asks for one operation at a time (mig_conn_handshake, _send, _receive, _idle);
 * the connection runs it from its own source on the context and reports the outcome through
 * the events, never from inside the call that asked. An event handler may free the
 * connection. Deadlines are the owner's (it knows what the whole exchange may take).
 *
 * Ownership: the connection owns its fd and its session from mig_conn_new on.
 * Threads: the thread that runs ctx; everything else is the owner's business.
 */
#pragma once

#include <glib.h>
#include <gnutls/gnutls.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mig_conn;

struct mig_conn_events {
    void (*handshaken)(void *owner);
    /* one complete frame; body borrowed until the handler returns */
    void (*received)(void *owner, const uint8_t *body, size_t len);
    void (*sent)(void *owner);
    /* the operation failed; error borrowed (mig_tls_fail's errno values, EMSGSIZE/EPROTO for
     * a bad frame, ECONNRESET for a peer that closed, EPROTO for data from an idle peer).
     * After a bad frame the connection stays usable (mig_conn_usable) for an answer. */
    void (*failed)(void *owner, const GError *error);
    /* after mig_conn_shutdown: the peer closed its side (or broke the connection) */
    void (*closed)(void *owner);
};

struct mig_conn *mig_conn_new(int fd, gnutls_session_t session, GMainContext *ctx,
                              const struct mig_conn_events *events, void *owner);
/* Closes the connection (a TLS close_notify first, if it can go out at once). */
void mig_conn_free(struct mig_conn *c);

void mig_conn_handshake(struct mig_conn *c);
/* Sends frame (header included; taken over, g_free'd). */
void mig_conn_send(struct mig_conn *c, uint8_t *frame, size_t len);
/* Receives one frame; a byte beyond it is a protocol error. */
void mig_conn_receive(struct mig_conn *c);
/* Waits for nothing: any data or the peer closing is reported as failed. The next
 * operation (a send) ends the wait. */
void mig_conn_idle(struct mig_conn *c);

/* Sends a fatal alert if it can go out at once (best effort) and stops all I/O. */
void mig_conn_alert(struct mig_conn *c, gnutls_alert_description_t alert);

/* Closes our side (a TLS close_notify unless the connection failed or alerted, then a TCP
 * FIN) and discards what the peer still sends until it closes too (closed event). Closing a
 * socket with unread data would reset the connection and could destroy our answer or alert
 * before the peer reads it. */
void mig_conn_shutdown(struct mig_conn *c);

/* Whether an operation may still be started (no TLS failure, no alert, not shut down). */
bool mig_conn_usable(const struct mig_conn *c);

gnutls_session_t mig_conn_session(struct mig_conn *c);
/* What the connection is doing, for messages: "TLS handshake", "sending", "receiving",
 * "idle". */
const char *mig_conn_activity(const struct mig_conn *c);
