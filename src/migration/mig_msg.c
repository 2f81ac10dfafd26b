#include "config.h"

#include <string.h>

#include "core/device_spec.h"
#include "migration/json_read.h"
#include "migration/mig_msg.h"
#include "util/error.h"

static const char *const status_names[] = {
    [MIG_STATUS_OK] = "ok",
    [MIG_STATUS_BAD_REQUEST] = "bad-request",
    [MIG_STATUS_NO_DEVICE] = "no-device",
    [MIG_STATUS_BAD_TOKEN] = "bad-token",
    [MIG_STATUS_NOT_READY] = "not-ready",
    [MIG_STATUS_FAILED] = "failed",
};

const char *mig_status_name(enum mig_status status)
{
    if ((size_t)status < G_N_ELEMENTS(status_names))
        return status_names[status];
    return "failed";
}

const char *mig_op_name(enum mig_op op)
{
    return op == MIG_OP_PING ? "ping" : op == MIG_OP_GET_STATE ? "get-state" : "?";
}

void mig_req_clear(struct mig_req *req)
{
    g_free(req->device);
    g_free(req->token);
    memset(req, 0, sizeof(*req));
}

void mig_resp_clear(struct mig_resp *resp)
{
    g_free(resp->error);
    device_state_free(resp->state);
    memset(resp, 0, sizeof(*resp));
}

/* ------------------------------------------------------------------ requests */

static const char *const ping_keys[] = { "op", NULL };
static const char *const get_state_keys[] = { "op", "device", "token", "wait_ms", NULL };

static int req_from_json(struct json_object *o, struct mig_req *req, GError **error)
{
    const char *op, *s;
    uint64_t v;
    int ret;

    if ((ret = jr_get_string(o, NULL, "op", 32, &op, error)) < 0)
        return ret;
    if (g_str_equal(op, "ping")) {
        req->op = MIG_OP_PING;
        return jr_only_keys(o, NULL, ping_keys, error);
    }
    if (!g_str_equal(op, "get-state")) {
        g_autofree char *q = jr_quote(op, strlen(op), 32);
        return vdpad_fail(error, EBADMSG, "op: '%s' is not an operation (ping, get-state)", q);
    }
    req->op = MIG_OP_GET_STATE;
    if ((ret = jr_only_keys(o, NULL, get_state_keys, error)) < 0 ||
        (ret = jr_get_string(o, NULL, "device", 64, &s, error)) < 0)
        return ret;
    if (!device_name_valid(s)) {
        g_autofree char *q = jr_quote(s, strlen(s), 80);
        return vdpad_fail(error, EBADMSG, "device: '%s' is not a device name", q);
    }
    req->device = g_strdup(s);
    if ((ret = jr_get_string(o, NULL, "token", DEVICE_STATE_TOKEN_MAX, &s, error)) < 0)
        return ret;
    for (const char *p = s; *p; p++)
        if (*p < 0x21 || *p > 0x7e)
            return vdpad_fail(error, EBADMSG, "token: must be printable ASCII without spaces");
    req->token = g_strdup(s);
    if ((ret = jr_get_uint(o, NULL, "wait_ms", 0, MIG_WAIT_MS_MAX, &v, error)) < 0)
        return ret;
    req->wait_ms = (uint32_t)v;
    return 0;
}

int mig_req_parse(const void *body, size_t len, struct mig_req *req, GError **error)
{
    memset(req, 0, sizeof(*req));
    struct json_object *o = jr_parse_object(body, len, "request", error);

    if (!o)
        return -EBADMSG;
    int ret = req_from_json(o, req, error);
    json_object_put(o);
    if (ret < 0) {
        mig_req_clear(req);
        return vdpad_prefix_error(error, "request: ");
    }
    return 0;
}

char *mig_req_encode(const struct mig_req *req, size_t *len)
{
    struct json_object *o = json_object_new_object();

    json_object_object_add(o, "op", json_object_new_string(mig_op_name(req->op)));
    if (req->op == MIG_OP_GET_STATE) {
        json_object_object_add(o, "device", json_object_new_string(req->device));
        json_object_object_add(o, "token", json_object_new_string(req->token));
        json_object_object_add(o, "wait_ms", json_object_new_int64(req->wait_ms));
    }
    return jr_text(o, len);
}

/* ------------------------------------------------------------------ responses */

static const char *const ok_keys[] = { "ok", NULL };
static const char *const ok_state_keys[] = { "ok", "state", NULL };
static const char *const error_keys[] = { "ok", "code", "error", NULL };

static enum mig_status status_from_name(const char *name)
{
    for (size_t i = MIG_STATUS_BAD_REQUEST; i < G_N_ELEMENTS(status_names); i++)
        if (g_str_equal(name, status_names[i]))
            return (enum mig_status)i;
    return MIG_STATUS_FAILED; /* a newer peer's code: its text still says what happened */
}

static int resp_from_json(struct json_object *o, enum mig_op op, struct mig_resp *resp,
                          GError **error)
{
    bool ok;
    const char *s;
    int ret;

    if ((ret = jr_get_bool(o, NULL, "ok", &ok, error)) < 0)
        return ret;
    if (!ok) {
        if ((ret = jr_only_keys(o, NULL, error_keys, error)) < 0 ||
            (ret = jr_get_string(o, NULL, "code", 32, &s, error)) < 0)
            return ret;
        resp->status = status_from_name(s);
        if ((ret = jr_get_string(o, NULL, "error", MIG_ERROR_TEXT_MAX, &s, error)) < 0)
            return ret;
        resp->error = jr_printable(s, MIG_ERROR_TEXT_MAX);
        return 0;
    }
    resp->status = MIG_STATUS_OK;
    if (op == MIG_OP_PING)
        return jr_only_keys(o, NULL, ok_keys, error);
    struct json_object *state;
    if ((ret = jr_only_keys(o, NULL, ok_state_keys, error)) < 0 ||
        (ret = jr_get_object(o, NULL, "state", &state, error)) < 0)
        return ret;
    resp->state = device_state_from_json(state, "state", error);
    return resp->state ? 0 : vdpad_error_errno(error ? *error : NULL);
}

int mig_resp_parse(const void *body, size_t len, enum mig_op op, struct mig_resp *resp,
                   GError **error)
{
    memset(resp, 0, sizeof(*resp));
    struct json_object *o = jr_parse_object(body, len, "response", error);

    if (!o)
        return -EBADMSG;
    GError *local = NULL;
    int ret = resp_from_json(o, op, resp, &local);
    json_object_put(o);
    if (ret < 0) {
        ret = vdpad_error_errno(local);
        mig_resp_clear(resp);
        g_prefix_error(&local, "response: ");
        g_propagate_error(error, local);
        return ret;
    }
    return 0;
}

char *mig_resp_encode(const struct mig_resp *resp, size_t *len, GError **error)
{
    struct json_object *o = json_object_new_object();

    json_object_object_add(o, "ok", json_object_new_boolean(resp->status == MIG_STATUS_OK));
    if (resp->status != MIG_STATUS_OK) {
        g_autofree char *text = jr_printable(resp->error && resp->error[0] ? resp->error
                                                                          : "(no detail)",
                                             MIG_ERROR_TEXT_MAX);
        json_object_object_add(o, "code", json_object_new_string(mig_status_name(resp->status)));
        json_object_object_add(o, "error", json_object_new_string(text));
    } else if (resp->state) {
        struct json_object *st = device_state_to_json(resp->state, error);
        if (!st) {
            json_object_put(o);
            return NULL;
        }
        json_object_object_add(o, "state", st);
    }
    return jr_text(o, len);
}
