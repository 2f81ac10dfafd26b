/* Fuzz target: what a migration peer reads from the network — the frame reader fed in
 * pieces of varying size, then the request and response parsers on a complete frame.
 * Invariants: the reader never takes more than it is given nor more than one frame, an error
 * is final and says why, and whatever parses re-encodes to something that parses the same. */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "migration/mig_frame.h"
#include "migration/mig_msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_request(const uint8_t *body, size_t len)
{
    struct mig_req req, again;

    if (mig_req_parse(body, len, &req, NULL) < 0)
        return;
    size_t n;
    g_autofree char *text = mig_req_encode(&req, &n);
    if (mig_req_parse(text, n, &again, NULL) < 0 || again.op != req.op ||
        again.wait_ms != req.wait_ms || g_strcmp0(again.device, req.device) != 0 ||
        g_strcmp0(again.token, req.token) != 0)
        __builtin_trap();
    mig_req_clear(&req);
    mig_req_clear(&again);
}

static void check_response(const uint8_t *body, size_t len, enum mig_op op)
{
    struct mig_resp resp, again;
    g_autoptr(GError) err = NULL;

    if (mig_resp_parse(body, len, op, &resp, &err) < 0) {
        if (!err || !err->message[0])
            __builtin_trap();
        return;
    }
    size_t n;
    g_autofree char *text = mig_resp_encode(&resp, &n, NULL);
    if (!text || mig_resp_parse(text, n, op, &again, NULL) < 0 || again.status != resp.status ||
        g_strcmp0(again.error, resp.error) != 0 || !again.state != !resp.state ||
        (resp.state && !device_state_equal(resp.state, again.state)))
        __builtin_trap();
    mig_resp_clear(&resp);
    mig_resp_clear(&again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    /* the first byte seeds the piece sizes, as TCP and TLS would cut the stream */
    uint32_t seed = data[0] * 2654435761u + 1;
    struct mig_frame_reader r;
    size_t off = 1;
    int ret = 0;

    mig_frame_reader_init(&r);
    while (off < size && ret == 0) {
        seed = seed * 1103515245u + 12345u;
        size_t piece = 1 + (seed >> 16) % 64, used;
        if (piece > size - off)
            piece = size - off;
        g_autoptr(GError) err = NULL;
        ret = mig_frame_reader_feed(&r, data + off, piece, &used, &err);
        if (used > piece)
            __builtin_trap();
        if (ret < 0 && (!err || !err->message[0]))
            __builtin_trap();
        off += used;
        if (ret == 0 && used != piece)
            __builtin_trap(); /* an unfinished frame takes everything */
    }
    if (ret == 1) {
        size_t len, used;
        const uint8_t *body = mig_frame_reader_body(&r, &len);
        if (!body || len == 0 || len > MIG_FRAME_MAX)
            __builtin_trap();
        /* a complete reader takes nothing more */
        if (mig_frame_reader_feed(&r, data, size, &used, NULL) != 1 || used != 0)
            __builtin_trap();
        check_request(body, len);
        check_response(body, len, MIG_OP_PING);
        check_response(body, len, MIG_OP_GET_STATE);
    }
    mig_frame_reader_clear(&r);
    return 0;
}
