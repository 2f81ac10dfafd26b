/* device_state.h — the device state a migration carries from the source vdpad to the
 * destination vdpad, and its JSON form (docs/migration-channel.md has the format).
 *
 * The state is what the guest set and the destination must restore before the guest's
 * data queues run: for a net device the control-queue state (struct net_state: MAC, RX
 * mode, MAC tables, VLANs, active queue pairs, offloads) as it stood when the source
 * device stopped, plus the negotiated features and the config-space values it depends on.
 *
 * Format rules (version 1):
 *   - every field is required; a field the reader does not know is an error (a destination
 *     must not restore half a state it cannot read: a newer source writes a newer version);
 *   - the version is checked first, so a newer format is reported as such;
 *   - the state must be one a device can reach from reset under the negotiated features
 *     (device_state_validate): a decoded state replays (net_state_replay) into the
 *     destination with every command accepted.
 * Kinds: net only (virtio id 1). A blk state will be a "blk" object beside "net", with
 * the same rules.
 *
 * Ownership: device_state_new/decode return a state the caller frees with
 * device_state_free (g_autoptr(device_state)); device and token are owned strings of it.
 * Threads: plain data and pure functions.
 */
#pragma once

#include <glib.h>
#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "virtio/net_state.h"

#define DEVICE_STATE_VERSION 1
#define DEVICE_STATE_MAX_QUEUE_PAIRS 16 /* the largest max_queue_pairs accepted */
#define DEVICE_STATE_TOKEN_MAX 128      /* bytes of printable ASCII, no space */

struct device_state_net {
    uint16_t max_queue_pairs; /* the device's maximum (config space), 1..16 */
    uint16_t mtu;             /* config-space MTU when VIRTIO_NET_F_MTU is negotiated, else 0 */
    struct net_state state;   /* active queue pairs in state.queue_pairs */
};

struct device_state {
    unsigned version;      /* DEVICE_STATE_VERSION */
    char *device;          /* the source device's name (device_name_valid) */
    uint32_t virtio_id;    /* VIRTIO_ID_NET */
    uint64_t features;     /* the features the guest negotiated */
    int64_t stopped_at_us; /* source wall clock (g_get_real_time) when the device stopped, > 0 */
    char *token;           /* the migration's token, opaque */
    struct device_state_net net;
};

/* A zeroed state with version = DEVICE_STATE_VERSION. */
struct device_state *device_state_new(void);
void device_state_free(struct device_state *st);
typedef struct device_state device_state; /* for g_autoptr */
G_DEFINE_AUTOPTR_CLEANUP_FUNC(device_state, device_state_free)

struct device_state *device_state_copy(const struct device_state *st);

/* Checks every field and the consistency rules above. Returns 0 or -EINVAL with *error naming
 * the field ("net.queue_pairs: 3 is more than max_queue_pairs 2"). */
int device_state_validate(const struct device_state *st, GError **error);

/* The JSON text of a valid state (compact, fields in a fixed order), NUL-terminated, g_free
 * it; *len (may be NULL) gets its length. NULL with -EINVAL in *error if st is not valid. */
char *device_state_encode(const struct device_state *st, size_t *len, GError **error);
/* The same as a json-c object (a new reference), to embed in a message. */
struct json_object *device_state_to_json(const struct device_state *st, GError **error);

/* Parses and validates a state from JSON text (len bytes, no NUL needed). NULL with
 * -EBADMSG in *error (unreadable, unknown field, wrong type, out of range, inconsistent)
 * or -EPROTONOSUPPORT (a version other than DEVICE_STATE_VERSION); the message names the
 * field. */
struct device_state *device_state_decode(const char *text, size_t len, GError **error);
/* The same from a json-c object (borrowed). path names it in errors ("state"). */
struct device_state *device_state_from_json(struct json_object *obj, const char *path,
                                            GError **error);

/* Whether two states are the same (every field; only the MAC table entries in use). */
bool device_state_equal(const struct device_state *a, const struct device_state *b);
