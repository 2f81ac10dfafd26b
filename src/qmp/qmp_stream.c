#include "config.h"

#include <limits.h>
#include <string.h>

#include "qmp/qmp_json.h"
#include "qmp/qmp_stream.h"
#include "util/error.h"

struct qmp_stream {
    json_tokener *tok;
    size_t max_message;
    size_t partial;      /* bytes of the current message so far; 0 between messages */
    uint64_t offset;     /* stream offset of the next byte */
    GQueue messages;     /* json_object *, oldest first */
    int broken_errno;    /* 0 while healthy */
    char *broken_msg;
};

struct qmp_stream *qmp_stream_new(size_t max_message)
{
    g_return_val_if_fail(max_message > 0, NULL);
    struct qmp_stream *s = g_new0(struct qmp_stream, 1);

    s->tok = json_tokener_new_ex(QMP_STREAM_MAX_DEPTH);
    /* Strict JSON; several objects in a row are ours to split. Not json-c's UTF-8 check:
     * json-c 0.16 refuses a character split across two calls (see strings_valid_utf8). */
    json_tokener_set_flags(s->tok, JSON_TOKENER_STRICT | JSON_TOKENER_ALLOW_TRAILING_CHARS);
    s->max_message = max_message;
    g_queue_init(&s->messages);
    return s;
}

void qmp_stream_free(struct qmp_stream *s)
{
    if (!s)
        return;
    json_tokener_free(s->tok);
    g_queue_clear_full(&s->messages, qmp_json_unref);
    g_free(s->broken_msg);
    g_free(s);
}

static int stream_break(struct qmp_stream *s, int errnum, GError **error, const char *fmt, ...)
    G_GNUC_PRINTF(4, 5);

static int stream_break(struct qmp_stream *s, int errnum, GError **error, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    s->broken_msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    s->broken_errno = errnum;
    return vdpad_fail(error, errnum, "%s", s->broken_msg);
}

static gboolean is_json_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Every key and string is UTF-8 without NUL (so C and GLib can use them as they are). The
 * tokener bounds the depth of the recursion. */
static gboolean strings_valid_utf8(json_object *obj)
{
    switch (json_object_get_type(obj)) {
    case json_type_string:
        return g_utf8_validate(json_object_get_string(obj), json_object_get_string_len(obj),
                               NULL);
    case json_type_array:
        for (size_t i = 0; i < json_object_array_length(obj); i++)
            if (!strings_valid_utf8(json_object_array_get_idx(obj, i)))
                return FALSE;
        return TRUE;
    case json_type_object: {
        json_object_object_foreach(obj, key, val)
        {
            if (!g_utf8_validate(key, -1, NULL) || !strings_valid_utf8(val))
                return FALSE;
        }
        return TRUE;
    }
    default:
        return TRUE;
    }
}

int qmp_stream_feed(struct qmp_stream *s, const void *buf, size_t len, GError **error)
{
    const char *p = buf;

    if (s->broken_errno)
        return vdpad_fail(error, s->broken_errno, "%s", s->broken_msg);
    while (len > 0) {
        if (s->partial == 0) {
            while (len > 0 && is_json_space(*p)) {
                p++;
                len--;
                s->offset++;
            }
            if (len == 0)
                break;
            if (*p != '{')
                return stream_break(s, EPROTO, error,
                                    "QMP stream byte %" G_GUINT64_FORMAT
                                    ": a message must be a JSON object, it starts with 0x%02x",
                                    s->offset, (unsigned char)*p);
        }
        /* json-c takes an int length and treats NUL as the end of input: hand it neither
         * more than the message may still grow by nor a NUL (never valid in JSON text). */
        size_t chunk = MIN(len, MIN(s->max_message - s->partial, (size_t)INT_MAX));
        const char *nul = memchr(p, '\0', chunk);

        if (nul == p)
            return stream_break(s, EPROTO, error,
                                "QMP stream byte %" G_GUINT64_FORMAT ": NUL byte in a message",
                                s->offset);
        if (nul)
            chunk = (size_t)(nul - p);

        json_object *obj = json_tokener_parse_ex(s->tok, p, (int)chunk);
        enum json_tokener_error jerr = json_tokener_get_error(s->tok);
        size_t used = json_tokener_get_parse_end(s->tok);

        /* Errors name where the message starts: where json-c notices trouble depends on
         * how the bytes were split. */
        if (jerr != json_tokener_success && jerr != json_tokener_continue) {
            json_object_put(obj);
            return stream_break(s, EPROTO, error,
                                "QMP stream byte %" G_GUINT64_FORMAT
                                ": malformed JSON in the message starting there (%s)",
                                s->offset - s->partial, json_tokener_error_desc(jerr));
        }
        if (!obj && used != chunk) /* json-c wants more only after taking all it got */
            return stream_break(s, EPROTO, error,
                                "QMP stream byte %" G_GUINT64_FORMAT
                                ": the parser stopped early in the message starting there",
                                s->offset - s->partial);
        g_assert(used <= chunk);
        p += used;
        len -= used;
        s->offset += used;
        if (obj) {
            /* the message began with '{', so json-c can only have built an object */
            g_assert(json_object_is_type(obj, json_type_object));
            if (!strings_valid_utf8(obj)) {
                json_object_put(obj);
                return stream_break(s, EPROTO, error,
                                    "QMP stream byte %" G_GUINT64_FORMAT
                                    ": a string is not UTF-8 or holds a NUL",
                                    s->offset - s->partial - used);
            }
            g_queue_push_tail(&s->messages, obj);
            json_tokener_reset(s->tok);
            s->partial = 0;
            continue;
        }
        s->partial += used;
        if (s->partial >= s->max_message)
            return stream_break(s, EMSGSIZE, error,
                                "QMP stream byte %" G_GUINT64_FORMAT
                                ": message longer than %zu bytes",
                                s->offset, s->max_message);
    }
    return 0;
}

json_object *qmp_stream_next(struct qmp_stream *s)
{
    return g_queue_pop_head(&s->messages);
}

gboolean qmp_stream_broken(const struct qmp_stream *s)
{
    return s->broken_errno != 0;
}

size_t qmp_stream_partial_bytes(const struct qmp_stream *s)
{
    return s->partial;
}

uint64_t qmp_stream_offset(const struct qmp_stream *s)
{
    return s->offset;
}
