/* mig_client.h — the destination side of the migration channel: asks a source vdpad for a
 * device's state over mutual TLS (docs/migration-channel.md).
 *
 * One call = one connection: connect, TLS handshake, check the server's certificate against
 * the CA and the host name in address, send one request, read one response. The whole call
 * is bounded by io_timeout_ms + the request's wait_ms. A state in the answer is decoded
 * and validated (device_state_decode) and must carry the device and token asked for.
 *
 * Asynchronous calls run on the thread-default GMainContext of the thread that starts them
 * (the daemon's control loop) and never block it: name resolution runs in GIO's resolver
 * thread, everything else is non-blocking on that context. done is called exactly once, on
 * that context, unless the call is cancelled first. The _sync variants run the same call on
 * a private context and block the calling thread (tools, tests, worker threads).
 *
 * Errors: a GError in VDPAD_ERROR with an errno code and a message that names the peer
 * and the step; mig_error_kind sorts them into what the destination decides on:
 *
 *   kind               errno                        meaning
 *   MIG_ERR_UNREACHABLE ECONNREFUSED EHOSTUNREACH   nobody accepted the connection, or the
 *                      ENETUNREACH ENXIO ...        name does not resolve: peer missing
 *   MIG_ERR_TIMEOUT    ETIMEDOUT                    no answer in time: peer late or silent
 *   MIG_ERR_CLOSED     ECONNRESET                   the peer closed before answering (busy,
 *                                                   restarting)
 *   MIG_ERR_NOT_READY  EAGAIN                       the peer answered "not-ready": the state
 *                                                   was not final within wait_ms (late)
 *   MIG_ERR_AUTH       EACCES                       we refused the server's certificate
 *                                                   (untrusted, expired, wrong host name)
 *                      EPERM                        the server refused ours (TLS alert:
 *                                                   unknown CA, not in its allow-list...)
 *   MIG_ERR_REMOTE     ENODEV ESRCH EREMOTEIO       the peer answered no-device, bad-token,
 *                                                   failed
 *   MIG_ERR_PROTOCOL   EPROTO EMSGSIZE EBADMSG      a broken frame or message, an invalid
 *                      EPROTONOSUPPORT              state, a state of another version
 *   MIG_ERR_LOCAL      anything else                our own setup or arguments
 *
 * Ownership: mig_client_new loads the client credentials (clientcert.pem and friends) once;
 * calls in flight keep them, so mig_client_free may come before they end. A mig_call
 * handle is valid until done is called or mig_call_cancel returns. The state given to done
 * belongs to the callee (device_state_free).
 * Threads: a mig_client may be used from several threads; each call belongs to the thread
 * that started it.
 */
#pragma once

#include <glib.h>
#include <stdint.h>

#include "migration/device_state.h"
#include "migration/mig_tls.h"

#define MIG_IO_TIMEOUT_MS 10000

struct mig_client_config {
    struct mig_tls_config tls; /* allowed_dns is not used by the client */
    unsigned io_timeout_ms;    /* the call without the server's wait; 0: MIG_IO_TIMEOUT_MS */
};

enum mig_error_kind {
    MIG_ERR_UNREACHABLE,
    MIG_ERR_TIMEOUT,
    MIG_ERR_CLOSED,
    MIG_ERR_NOT_READY,
    MIG_ERR_AUTH,
    MIG_ERR_REMOTE,
    MIG_ERR_PROTOCOL,
    MIG_ERR_LOCAL,
};

typedef struct mig_client mig_client;
typedef struct mig_call mig_call;

/* state: the answer to get-state (transfer full), NULL for ping and on error; error:
 * NULL on success, borrowed. */
typedef void (*mig_call_done_fn)(struct device_state *state, const GError *error,
                                 void *opaque);

mig_client *mig_client_new(const struct mig_client_config *cfg, GError **error);
void mig_client_free(mig_client *client);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(mig_client, mig_client_free)

/* address: "HOST:PORT", "[IPV6]:PORT" or "HOST" (MIG_DEFAULT_PORT); HOST is what the
 * server's certificate must name. device, token: as in a device_state; wait_ms <=
 * MIG_WAIT_MS_MAX. Bad arguments are reported through done (EINVAL), like every error. */
mig_call *mig_client_get_state(mig_client *client, const char *address, const char *device,
                               const char *token, uint32_t wait_ms, mig_call_done_fn done,
                               void *opaque);
mig_call *mig_client_ping(mig_client *client, const char *address, mig_call_done_fn done,
                          void *opaque);
/* Stops the call; done will not be called. Not from inside done. */
void mig_call_cancel(mig_call *call);

struct device_state *mig_client_get_state_sync(mig_client *client, const char *address,
                                               const char *device, const char *token,
                                               uint32_t wait_ms, GError **error);
int mig_client_ping_sync(mig_client *client, const char *address, GError **error);

enum mig_error_kind mig_error_kind(const GError *error);
const char *mig_error_kind_name(enum mig_error_kind kind);
