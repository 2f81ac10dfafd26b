#include "config.h"

#include <string.h>

#include "migration/mig_frame.h"
#include "util/error.h"

void mig_frame_reader_init(struct mig_frame_reader *r)
{
    memset(r, 0, sizeof(*r));
}

void mig_frame_reader_clear(struct mig_frame_reader *r)
{
    if (r->body)
        g_byte_array_unref(r->body);
    mig_frame_reader_init(r);
}

static int check_length(struct mig_frame_reader *r, GError **error)
{
    uint32_t n = (uint32_t)r->header[0] << 24 | (uint32_t)r->header[1] << 16 |
                 (uint32_t)r->header[2] << 8 | r->header[3];

    if (n == 0)
        return vdpad_fail(error, EPROTO, "frame of length 0");
    if (n > MIG_FRAME_MAX)
        return vdpad_fail(error, EMSGSIZE, "frame of %u bytes, more than the %u allowed", n,
                          MIG_FRAME_MAX);
    r->body_len = n;
    /* start small; the buffer grows with what the peer really sends */
    r->body = g_byte_array_sized_new(MIN(n, 4096u));
    return 0;
}

int mig_frame_reader_feed(struct mig_frame_reader *r, const uint8_t *data, size_t len,
                          size_t *used, GError **error)
{
    size_t taken = 0;

    *used = 0;
    if (r->complete)
        return 1;
    if (r->header_len == MIG_FRAME_HEADER && !r->body) /* a refused header */
        return check_length(r, error);
    if (r->header_len < MIG_FRAME_HEADER) {
        size_t n = MIN(len, MIG_FRAME_HEADER - r->header_len);
        memcpy(r->header + r->header_len, data, n);
        r->header_len += n;
        taken = n;
        *used = taken;
        if (r->header_len < MIG_FRAME_HEADER)
            return 0;
        int ret = check_length(r, error);
        if (ret < 0)
            return ret;
    }
    size_t n = MIN(len - taken, (size_t)r->body_len - r->body->len);
    g_byte_array_append(r->body, data + taken, (guint)n);
    taken += n;
    *used = taken;
    if (r->body->len == r->body_len)
        r->complete = true;
    return r->complete ? 1 : 0;
}

const uint8_t *mig_frame_reader_body(const struct mig_frame_reader *r, size_t *len)
{
    if (!r->complete) {
        *len = 0;
        return NULL;
    }
    *len = r->body->len;
    return r->body->data;
}

uint8_t *mig_frame_encode(const void *body, size_t body_len, size_t *out_len)
{
    g_assert(body_len >= 1 && body_len <= MIG_FRAME_MAX);
    uint8_t *buf = g_malloc(MIG_FRAME_HEADER + body_len);

    buf[0] = (uint8_t)(body_len >> 24);
    buf[1] = (uint8_t)(body_len >> 16);
    buf[2] = (uint8_t)(body_len >> 8);
    buf[3] = (uint8_t)body_len;
    memcpy(buf + MIG_FRAME_HEADER, body, body_len);
    *out_len = MIG_FRAME_HEADER + body_len;
    return buf;
}
