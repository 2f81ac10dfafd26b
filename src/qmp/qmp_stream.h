/* qmp_stream.h — splits a QMP byte stream into JSON messages.
 *
 * Bytes go in as they come off the socket, in pieces of any size; complete top-level JSON
 * objects come out in order. JSON whitespace between messages is skipped (QEMU ends each
 * message with CR LF, but nothing here depends on lines). Anything else breaks the stream
 * for good: malformed JSON, a top-level value that is not an object, a NUL byte or a string that
 * is not UTF-8 (escaped NULs included), a value nested deeper than QMP_STREAM_MAX_DEPTH
 * (the message itself is depth 1), or a message longer than the limit.
 *
 * Ownership: qmp_stream_next() gives the caller the one reference to each message.
 * Threads: a stream is used by one thread at a time; it has no locks and no I/O.
 */
#pragma once

#include <glib.h>
#include <json-c/json.h>
#include <stddef.h>
#include <stdint.h>

#define QMP_STREAM_DEFAULT_MAX_MESSAGE (16u << 20) /* bytes */
#define QMP_STREAM_MAX_DEPTH 64

struct qmp_stream;
typedef struct qmp_stream qmp_stream; /* for g_autoptr */

/* max_message: the longest message accepted, in bytes (> 0). */
struct qmp_stream *qmp_stream_new(size_t max_message);
void qmp_stream_free(struct qmp_stream *s);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(qmp_stream, qmp_stream_free)

/* Parses len bytes. Each message they complete is queued for qmp_stream_next().
 * Returns 0, or -EPROTO (bad input) / -EMSGSIZE (too long) with an error naming the stream
 * offset; the stream is then broken and every later call fails with the same error.
 * Messages completed before the bad byte stay queued. */
int qmp_stream_feed(struct qmp_stream *s, const void *buf, size_t len, GError **error);

/* The oldest complete message (a JSON object; the caller owns the reference), or NULL. */
json_object *qmp_stream_next(struct qmp_stream *s);

gboolean qmp_stream_broken(const struct qmp_stream *s);
/* Bytes of the message being parsed so far (0 between messages). */
size_t qmp_stream_partial_bytes(const struct qmp_stream *s);
/* Bytes consumed since the start (the offset errors name). */
uint64_t qmp_stream_offset(const struct qmp_stream *s);
