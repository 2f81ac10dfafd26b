/* sim_segs.c — see sim_segs.h. */
#include "config.h"

#include <glib.h>
#include <stdint.h>
#include <string.h>

#include "backend/sim/sim_segs.h"

/* A position inside a segment list. */
struct seg_cursor {
    const struct vring_seg *segs;
    unsigned n, i;
    size_t off; /* inside segs[i] */
};

/* Places the cursor off bytes from the start (at the end when the list is shorter). */
static void seg_cursor_init(struct seg_cursor *c, const struct vring_seg *segs, unsigned n,
                            size_t off)
{
    c->segs = segs;
    c->n = n;
    c->i = 0;
    while (c->i < n && off >= segs[c->i].len) {
        off -= segs[c->i].len;
        c->i++;
    }
    c->off = off;
}

/* The contiguous bytes at the cursor (0 at the end). */
static size_t seg_cursor_avail(const struct seg_cursor *c, uint8_t **p)
{
    if (c->i >= c->n)
        return 0;
    *p = (uint8_t *)c->segs[c->i].addr + c->off;
    return c->segs[c->i].len - c->off;
}

static void seg_cursor_advance(struct seg_cursor *c, size_t len)
{
    c->off += len;
    while (c->i < c->n && c->off >= c->segs[c->i].len) {
        c->off -= c->segs[c->i].len;
        c->i++;
    }
}

size_t sim_segs_read(const struct vring_seg *segs, unsigned n, size_t off, void *buf, size_t len)
{
    struct seg_cursor c;
    size_t done = 0;
    uint8_t *p = NULL;

    seg_cursor_init(&c, segs, n, off);
    while (done < len) {
        size_t chunk = MIN(seg_cursor_avail(&c, &p), len - done);

        if (chunk == 0)
            break;
        memcpy((uint8_t *)buf + done, p, chunk);
        seg_cursor_advance(&c, chunk);
        done += chunk;
    }
    return done;
}

size_t sim_segs_write(const struct vring_seg *segs, unsigned n, size_t off, const void *buf,
                      size_t len)
{
    struct seg_cursor c;
    size_t done = 0;
    uint8_t *p = NULL;

    seg_cursor_init(&c, segs, n, off);
    while (done < len) {
        size_t chunk = MIN(seg_cursor_avail(&c, &p), len - done);

        if (chunk == 0)
            break;
        memcpy(p, (const uint8_t *)buf + done, chunk);
        seg_cursor_advance(&c, chunk);
        done += chunk;
    }
    return done;
}

size_t sim_segs_copy(const struct vring_seg *dst, unsigned dn, size_t doff,
                     const struct vring_seg *src, unsigned sn, size_t soff, size_t len)
{
    struct seg_cursor d, s;
    size_t done = 0;
    uint8_t *dp = NULL, *sp = NULL;

    seg_cursor_init(&d, dst, dn, doff);
    seg_cursor_init(&s, src, sn, soff);
    while (done < len) {
        size_t chunk = MIN(seg_cursor_avail(&d, &dp), seg_cursor_avail(&s, &sp));

        chunk = MIN(chunk, len - done);
        if (chunk == 0)
            break;
        /* distinct chains may still alias in guest memory: memmove is the safe copy */
        memmove(dp, sp, chunk);
        seg_cursor_advance(&d, chunk);
        seg_cursor_advance(&s, chunk);
        done += chunk;
    }
    return done;
}
