/* mig_service.h — the daemon's side of the migration channel.
 *
 * As a source, it answers destinations that ask for a device's state (mig_server): the
 * state the node recorded when its device stopped for the migration, once the stop that
 * ends the session named by the request's token has happened; a request that comes
 * earlier waits for it (bounded by the request's wait_ms). As a destination, it asks for
 * that state as soon as a prepared node (node_prepare_incoming) is open (mig_prefetch), and
 * hands it over when the device starts, so the session can replay it before the data
 * queues run; without an answer by then, it asks again at the start (mig_client).
 *
 * Threads: the control thread's main context. The fetch at the start blocks that thread
 * for at most MIG_SERVICE_FETCH_MS: the destination's QEMU is waiting in DRIVER_OK for it
 * anyway.
 */
#pragma once

#include <glib.h>

#include "core/node.h"

#define MIG_SERVICE_FETCH_MS 5000

struct mig_service_config {
    const char *listen;  /* "HOST:PORT" to serve as a source; NULL: destination only */
    const char *pki_dir; /* NULL: libvirt's PKI layout */
    const char *const *allowed_dns; /* client DN patterns the source admits; NULL: any */
};

struct mig_service;
typedef struct mig_service mig_service; /* for g_autoptr */

/* Starts serving (when cfg->listen) and installs the registry's state fetcher. Fails when
 * the certificates cannot be loaded or the address cannot be bound. */
struct mig_service *mig_service_start(struct node_registry *reg,
                                      const struct mig_service_config *cfg, GError **error);
void mig_service_stop(struct mig_service *svc);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(mig_service, mig_service_stop)

/* Checks that the source of a prepared destination answers and authenticates (a ping). */
int mig_service_check_source(struct mig_service *svc, const char *source, GError **error);

/* The port the source listens on (for tests with port 0), 0 when not listening. */
unsigned mig_service_port(const struct mig_service *svc);
