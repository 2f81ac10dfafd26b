/* mig_msg.h — the requests and responses of the migration channel (the JSON inside a frame;
 * docs/migration-channel.md).
 *
 *   {"op":"ping"}                                            -> {"ok":true}
 *   {"op":"get-state","device":"NAME","token":"T","wait_ms":N}
 *                                                            -> {"ok":true,"state":{...}}
 *   any                                                      -> {"ok":false,"code":"CODE",
 *                                                                "error":"text"}
 *
 * Parsing is strict: every field required, no unknown fields, types and ranges checked.
 * An error code the reader does not know reads as MIG_STATUS_FAILED (the text still says
 * what happened), so a newer server's codes do not turn into protocol errors.
 *
 * Ownership: parse functions fill a struct the caller clears with mig_req_clear /
 * mig_resp_clear (they own their strings and state). Threads: pure functions.
 */
#pragma once

#include <glib.h>
#include <stddef.h>
#include <stdint.h>

#include "migration/device_state.h"

#define MIG_DEFAULT_PORT 16520   /* the TCP port of the channel when an address names none */
#define MIG_WAIT_MS_MAX 600000u /* the longest wait a request may ask for (10 min) */
#define MIG_ERROR_TEXT_MAX 1024 /* bytes of an error text in a response */

enum mig_op {
    MIG_OP_PING = 1,
    MIG_OP_GET_STATE,
};

struct mig_req {
    enum mig_op op;
    char *device;     /* get-state: device_name_valid */
    char *token;      /* get-state: as a device_state token */
    uint32_t wait_ms; /* get-state: how long the server may wait for the state to be final */
};

/* Response status; the wire names are in mig_status_name. */
enum mig_status {
    MIG_STATUS_OK = 0,
    MIG_STATUS_BAD_REQUEST, /* "bad-request": the request broke the protocol */
    MIG_STATUS_NO_DEVICE,   /* "no-device": no such device, or it is not migrating */
    MIG_STATUS_BAD_TOKEN,   /* "bad-token": the token is not this migration's */
    MIG_STATUS_NOT_READY,   /* "not-ready": the state was not final within wait_ms */
    MIG_STATUS_FAILED,      /* "failed": anything else (the source failed, shutting down) */
};

struct mig_resp {
    enum mig_status status;
    char *error;                /* status != OK: the peer's text, made printable */
    struct device_state *state; /* OK to get-state */
};

void mig_req_clear(struct mig_req *req);
void mig_resp_clear(struct mig_resp *resp);

const char *mig_op_name(enum mig_op op);
const char *mig_status_name(enum mig_status status);

/* Parses a request body. Returns 0, or -EBADMSG with *error naming the field. */
int mig_req_parse(const void *body, size_t len, struct mig_req *req, GError **error);
/* The JSON of a request (g_free); *len its length. */
char *mig_req_encode(const struct mig_req *req, size_t *len);

/* Parses a response to a request of kind op (a state is required for an OK get-state and
 * refused otherwise). Returns 0, or -EBADMSG (-EPROTONOSUPPORT for a state of another
 * version) with *error. */
int mig_resp_parse(const void *body, size_t len, enum mig_op op, struct mig_resp *resp,
                   GError **error);
/* The JSON of a response (g_free); *len its length. NULL with *error if its state is not
 * valid (device_state_validate). */
char *mig_resp_encode(const struct mig_resp *resp, size_t *len, GError **error);
