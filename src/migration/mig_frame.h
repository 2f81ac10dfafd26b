/* mig_frame.h — the frames of the migration channel: a 4-byte big-endian length, then that
 * many bytes of JSON. A length of 0 or over MIG_FRAME_MAX is a protocol violation.
 *
 * The reader takes bytes as they arrive and grows its buffer with the bytes actually
 * received, so a peer that announces a large frame and sends nothing costs nothing.
 *
 * Ownership: the reader owns its buffer (mig_frame_reader_clear frees it); the body returned
 * by mig_frame_reader_body is borrowed from it. Threads: plain data; the owner serialises.
 */
#pragma once

#include <glib.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MIG_FRAME_HEADER 4
#define MIG_FRAME_MAX (1u << 20) /* body bytes */

struct mig_frame_reader {
    uint8_t header[MIG_FRAME_HEADER];
    size_t header_len;
    uint32_t body_len;
    GByteArray *body;
    bool complete;
};

void mig_frame_reader_init(struct mig_frame_reader *r);
void mig_frame_reader_clear(struct mig_frame_reader *r);

/* Takes bytes from data up to the end of one frame; *used gets how many were taken (the rest
 * belongs to whatever follows). Returns 1 when the frame is complete, 0 when more bytes are
 * needed, -EMSGSIZE for a length over MIG_FRAME_MAX or -EPROTO for a length of 0 (with
 * *error). After 1 or an error, further calls take nothing and return the same. */
int mig_frame_reader_feed(struct mig_frame_reader *r, const uint8_t *data, size_t len,
                          size_t *used, GError **error);

/* The body of a complete frame (NULL before), *len its length. */
const uint8_t *mig_frame_reader_body(const struct mig_frame_reader *r, size_t *len);

/* Header + body in one new buffer (g_free), *out_len its length. body_len must be in
 * [1, MIG_FRAME_MAX]. */
uint8_t *mig_frame_encode(const void *body, size_t body_len, size_t *out_len);
