/* mig_server.h — the source side of the migration channel: a TLS server on the GLib main
 * loop that hands out device states (docs/migration-channel.md).
 *
 * One request per connection. The server does the TLS handshake, checks the client's
 * certificate (mig_tls.h), reads one request and answers "ping" itself. A "get-state"
 * request goes to the owner's on_request callback as a mig_request, which the owner
 * answers when it can — at once if the device's state is final, later when the source
 * device stops — with mig_request_reply_state or mig_request_reply_error. If the answer
 * has not come when the request's wait (wait_ms, capped by max_wait_ms) ends, the server
 * answers "not-ready" itself.
 *
 * Nothing blocks: every connection is non-blocking on the context; a client is dropped
 * if its handshake or its request takes longer than the timeouts, if it sends anything
 * after its request, and connections beyond max_connections are closed at accept (the
 * client sees the connection close during the TLS handshake). Peers are logged by address
 * and certificate DN; no key material or certificate is ever logged.
 *
 * Ownership: mig_server_new returns the server; mig_server_free closes the listening
 * sockets and every connection (pending requests are cancelled, see below). A mig_request
 * given to on_request belongs to the owner until it answers it: exactly one reply call
 * per request, which releases it. A request can end before the owner answers (its wait
 * ran out, the client went away, the server was freed): the cancel callback (if set) says
 * so, and the owner's later reply is dropped (returns FALSE) but still releases it.
 *
 * Threads: everything runs on the context's thread (the daemon's control thread);
 * every function here must be called from it.
 */
#pragma once

#include <glib.h>
#include <stdint.h>

#include "migration/device_state.h"
#include "migration/mig_msg.h"
#include "migration/mig_tls.h"

#define MIG_HANDSHAKE_TIMEOUT_MS 10000
#define MIG_REQUEST_TIMEOUT_MS 10000
#define MIG_MAX_CONNECTIONS 64

struct mig_server_config {
    /* "HOST:PORT", "[IPV6]:PORT", "HOST" (MIG_DEFAULT_PORT); "*:PORT" for every address.
     * HOST may be a name (resolved once, here). Port 0: any free port (mig_server_port). */
    const char *listen;
    struct mig_tls_config tls;
    unsigned handshake_timeout_ms; /* accept to the end of the handshake; 0: default */
    unsigned request_timeout_ms;   /* handshake to the whole request, and the answer's send;
                                      0: default */
    unsigned max_wait_ms;          /* cap on a request's wait_ms; 0: MIG_WAIT_MS_MAX */
    unsigned max_connections;      /* 0: default */
    GMainContext *context;         /* NULL: the thread-default context */
};

typedef struct mig_server mig_server;
typedef struct mig_request mig_request;

/* A get-state request from an authenticated peer. */
typedef void (*mig_request_fn)(mig_request *req, void *opaque);
typedef void (*mig_request_cancel_fn)(mig_request *req, void *data);

/* Listens on cfg->listen. Fails with the errno of bind/listen or of the TLS setup, and a
 * message naming the address or the file. */
mig_server *mig_server_new(const struct mig_server_config *cfg, mig_request_fn on_request,
                           void *opaque, GError **error);
void mig_server_free(mig_server *server);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(mig_server, mig_server_free)

/* The TCP port the server listens on. */
uint16_t mig_server_port(const mig_server *server);
/* Connections open now (handshaking, reading, waiting or answering). */
unsigned mig_server_connections(const mig_server *server);

/* The request, valid until it is answered. */
const char *mig_request_device(const mig_request *req);
const char *mig_request_token(const mig_request *req);
uint32_t mig_request_wait_ms(const mig_request *req); /* after the server's cap */
const char *mig_request_peer(const mig_request *req);    /* "192.0.2.1:40000", "[::1]:40000" */
const char *mig_request_peer_dn(const mig_request *req); /* the client certificate's DN */

/* Called (once, on the context) if the request ends before the owner answers it. */
void mig_request_set_cancel(mig_request *req, mig_request_cancel_fn fn, void *data);

/* Answers with st (copied), which must be valid and carry the request's device and token
 * (otherwise the peer gets "failed" and a warning is logged). Releases req. Returns TRUE
 * if the answer goes out, FALSE if the request had already ended. */
gboolean mig_request_reply_state(mig_request *req, const struct device_state *st);
/* Answers with an error (status != MIG_STATUS_OK). Releases req. */
gboolean mig_request_reply_error(mig_request *req, enum mig_status status, const char *fmt,
                                 ...) G_GNUC_PRINTF(3, 4);
