/* mig_prefetch.h — a prepared destination asks its source for the device state early, so
 * the TLS connection and handshake are not part of the device downtime.
 *
 * As soon as a node is both open (the destination QEMU runs with -incoming) and prepared
 * (node->incoming), a get-state call goes to the source with the longest wait
 * (MIG_WAIT_MS_MAX). The source answers it when its device stops for the migration, which
 * is before the destination's device starts; the state is kept until then. At the start
 * the fetcher takes it (mig_prefetch_take); when no answer is there yet (or the call
 * failed), the fetcher asks the source itself, as it would without this.
 *
 * An entry is dropped when its node closes or goes, when the node is no longer prepared
 * or prepared for another source, device or token, and once taken. A call whose wait ran
 * out ("not-ready": a migration longer than the wait) is made again; any other failure is
 * logged and left to the start's own call.
 *
 * Threads: the control thread's main context (node events, the calls, the fetcher).
 * Ownership: the prefetcher borrows the client; a taken state is the caller's.
 */
#pragma once

#include <glib.h>

#include "core/node.h"
#include "migration/device_state.h"
#include "migration/mig_client.h"

struct mig_prefetch;
typedef struct mig_prefetch mig_prefetch; /* for g_autoptr */

struct mig_prefetch *mig_prefetch_new(mig_client *client);
/* Cancels the calls in flight. */
void mig_prefetch_free(struct mig_prefetch *pf);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(mig_prefetch, mig_prefetch_free)

/* Follows the registry's events (called from the service's observer). */
void mig_prefetch_node_event(struct mig_prefetch *pf, struct vdpa_node *node,
                             enum node_event event);

/* The state the source sent early for node's prepared source, device and token (transfer
 * full), with in *age_ms how long ago it came; NULL when there is none yet. Either way the
 * node's entry is used up (a call still in flight is cancelled). */
struct device_state *mig_prefetch_take(struct mig_prefetch *pf, struct vdpa_node *node,
                                       double *age_ms);
