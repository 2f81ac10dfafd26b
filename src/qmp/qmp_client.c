#include "config.h"

#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "qmp/qmp_client.h"
#include "qmp/qmp_stream.h"
#include "util/error.h"
#include "util/fd.h"

G_DEFINE_QUARK(qmp-error-quark, qmp_error)

#define READ_CHUNK 16384
#define READS_PER_CALL 64 /* then callers get to check their deadlines */
#define LOG_EXCERPT "%.200s"

struct qmp_call {
    guint64 id;
    char *command;
    gint64 deadline;     /* g_get_monotonic_time() */
    gboolean done;
    guint64 seq;         /* arrival order of the completion */
    json_object *result; /* "return", on success */
    GError *error;
    qmp_done_fn done_fn; /* NULL for a blocking call */
    void *done_data;
};

struct queued_event {
    guint64 seq;
    struct qmp_event *ev;
};

struct qmp_client {
    int refs;     /* 1, plus 1 while the source dispatches */
    gboolean freed;
    int fd;       /* -1 once closed */
    char *path;
    struct qmp_stream *stream;
    GByteArray *out; /* commands not yet written */
    int timeout_ms;
    guint64 next_id;
    guint64 next_seq;
    GHashTable *calls; /* &call->id → call, awaiting replies (not owned) */
    GQueue events;     /* struct queued_event *, oldest first */
    GQueue completed;  /* async calls done, awaiting their callback (owned) */
    GError *closed;
    guint64 closed_seq;
    gboolean closed_delivered;
    gboolean greeted;
    int qemu_major, qemu_minor, qemu_micro;
    char *qemu_version;

    GSource *source;
    gpointer fd_tag;
    qmp_event_fn on_event;
    qmp_closed_fn on_closed;
    void *cb_data;
};

struct qmp_source {
    GSource base;
    struct qmp_client *c;
};

void qmp_event_free(struct qmp_event *ev)
{
    if (!ev)
        return;
    g_free(ev->name);
    json_object_put(ev->data);
    g_free(ev);
}

static void call_free(struct qmp_call *call)
{
    g_free(call->command);
    json_object_put(call->result);
    g_clear_error(&call->error);
    g_free(call);
}

static void queued_event_free(struct queued_event *qe)
{
    qmp_event_free(qe->ev);
    g_free(qe);
}

static enum qmp_error_class error_class_code(const char *name)
{
    static const struct {
        const char *name;
        enum qmp_error_class code;
    } classes[] = {
        { "CommandNotFound", QMP_ERROR_COMMAND_NOT_FOUND },
        { "DeviceNotActive", QMP_ERROR_DEVICE_NOT_ACTIVE },
        { "DeviceNotFound", QMP_ERROR_DEVICE_NOT_FOUND },
        { "KVMMissingCap", QMP_ERROR_KVM_MISSING_CAP },
    };

    for (size_t i = 0; i < G_N_ELEMENTS(classes); i++)
        if (strcmp(name, classes[i].name) == 0)
            return classes[i].code;
    return QMP_ERROR_GENERIC;
}

/* --- the connection's end ------------------------------------------------------------ */

static void update_fd_events(struct qmp_client *c)
{
    if (c->source && c->fd_tag)
        g_source_modify_unix_fd(c->source, c->fd_tag,
                                G_IO_IN | G_IO_HUP | G_IO_ERR | (c->out->len ? G_IO_OUT : 0));
}

static void complete_call(struct qmp_client *c, struct qmp_call *call)
{
    call->done = TRUE;
    call->seq = c->next_seq++;
    if (call->done_fn)
        g_queue_push_tail(&c->completed, call);
}

static gint compare_ids(gconstpointer a, gconstpointer b)
{
    guint64 x = ((const struct qmp_call *)a)->id, y = ((const struct qmp_call *)b)->id;

    return x < y ? -1 : x > y;
}

/* Marks the connection ended for why (once); every call waiting for a reply fails. */
static void close_connection(struct qmp_client *c, int errnum, const char *fmt, ...)
    G_GNUC_PRINTF(3, 4);

static void close_connection(struct qmp_client *c, int errnum, const char *fmt, ...)
{
    if (c->closed)
        return;
    va_list ap;

    va_start(ap, fmt);
    g_autofree char *why = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    c->closed = g_error_new_literal(VDPAD_ERROR, errnum, why);
    if (c->source && c->fd_tag)
        g_source_remove_unix_fd(c->source, c->fd_tag);
    c->fd_tag = NULL;
    vdpad_close_fd(c->fd);
    c->fd = -1;
    g_byte_array_set_size(c->out, 0);

    /* failed in the order they were sent */
    g_autoptr(GList) waiting = g_list_sort(g_hash_table_get_values(c->calls), compare_ids);
    g_hash_table_steal_all(c->calls);
    for (GList *l = waiting; l; l = l->next) {
        struct qmp_call *call = l->data;

        call->error = g_error_new(VDPAD_ERROR, errnum, "%s before replying to %s", why,
                                  call->command);
        complete_call(c, call);
    }
    c->closed_seq = c->next_seq++;
    g_debug("%s", why);
}

/* --- incoming messages ---------------------------------------------------------------- */

static void handle_greeting(struct qmp_client *c, json_object *msg)
{
    json_object *version = qmp_json_member(qmp_json_member(msg, "QMP", json_type_object),
                                           "version", json_type_object);
    json_object *qemu = qmp_json_member(version, "qemu", json_type_object);
    gint64 major, minor, micro;

    if (!qemu || !qmp_json_int(qemu, "major", &major) || !qmp_json_int(qemu, "minor", &minor) ||
        !qmp_json_int(qemu, "micro", &micro) || major < 0 || major > G_MAXINT || minor < 0 ||
        minor > G_MAXINT || micro < 0 || micro > G_MAXINT) {
        close_connection(c, EPROTO,
                         "QMP socket %s: the first message is no QMP greeting: " LOG_EXCERPT,
                         c->path, json_object_to_json_string(msg));
        return;
    }
    const char *package = qmp_json_string(version, "package");

    c->qemu_major = (int)major;
    c->qemu_minor = (int)minor;
    c->qemu_micro = (int)micro;
    c->qemu_version = g_strdup_printf("%d.%d.%d%s%s%s", c->qemu_major, c->qemu_minor,
                                      c->qemu_micro, package && *package ? " (" : "",
                                      package && *package ? package : "",
                                      package && *package ? ")" : "");
    if (major < QMP_MIN_QEMU_MAJOR || (major == QMP_MIN_QEMU_MAJOR && minor < QMP_MIN_QEMU_MINOR)) {
        close_connection(c, ENOTSUP,
                         "QMP socket %s: QEMU %s is older than %d.%d, the oldest supported",
                         c->path, c->qemu_version, QMP_MIN_QEMU_MAJOR, QMP_MIN_QEMU_MINOR);
        return;
    }
    c->greeted = TRUE;
}

static void handle_event(struct qmp_client *c, json_object *msg, const char *name)
{
    struct qmp_event *ev = g_new0(struct qmp_event, 1);
    json_object *data, *ts = qmp_json_member(msg, "timestamp", json_type_object);
    gint64 sec, usec;

    ev->name = g_strdup(name);
    if (json_object_object_get_ex(msg, "data", &data))
        ev->data = json_object_get(data);
    ev->timestamp_us = -1;
    if (qmp_json_int(ts, "seconds", &sec) && qmp_json_int(ts, "microseconds", &usec) &&
        sec >= 0 && sec < G_MAXINT64 / G_USEC_PER_SEC - 1 && usec >= 0 && usec < G_USEC_PER_SEC)
        ev->timestamp_us = sec * G_USEC_PER_SEC + usec;

    struct queued_event *qe = g_new(struct queued_event, 1);
    qe->seq = c->next_seq++;
    qe->ev = ev;
    g_queue_push_tail(&c->events, qe);
}

static void handle_reply(struct qmp_client *c, json_object *msg)
{
    json_object *id = qmp_json_member(msg, "id", json_type_int);
    guint64 key = id ? (guint64)json_object_get_int64(id) : 0;
    struct qmp_call *call = id ? g_hash_table_lookup(c->calls, &key) : NULL;

    if (!call) {
        g_warning("QMP socket %s: ignored a reply for no waiting command: " LOG_EXCERPT, c->path,
                  json_object_to_json_string(msg));
        return;
    }
    g_hash_table_remove(c->calls, &key);

    json_object *ret;
    if (json_object_object_get_ex(msg, "return", &ret)) {
        call->result = json_object_get(ret);
    } else {
        json_object *err = qmp_json_member(msg, "error", json_type_object);
        const char *cls = qmp_json_string(err, "class");
        const char *desc = qmp_json_string(err, "desc");

        if (cls && desc)
            call->error = g_error_new(QMP_ERROR, error_class_code(cls),
                                      "%s: %s (command %s, QMP socket %s)", cls, desc,
                                      call->command, c->path);
        else
            call->error = g_error_new(VDPAD_ERROR, EPROTO,
                                      "QMP socket %s: malformed error reply to %s: " LOG_EXCERPT,
                                      c->path, call->command, json_object_to_json_string(msg));
    }
    complete_call(c, call);
}

/* Takes msg. */
static void handle_message(struct qmp_client *c, json_object *msg)
{
    const char *event = qmp_json_string(msg, "event");

    if (!c->greeted)
        handle_greeting(c, msg);
    else if (event)
        handle_event(c, msg, event);
    else if (json_object_object_get_ex(msg, "return", NULL) ||
             json_object_object_get_ex(msg, "error", NULL))
        handle_reply(c, msg);
    else
        g_warning("QMP socket %s: ignored a message that is no reply or event: " LOG_EXCERPT,
                  c->path, json_object_to_json_string(msg));
    json_object_put(msg);
}

static void read_input(struct qmp_client *c)
{
    char buf[READ_CHUNK];

    for (int i = 0; i < READS_PER_CALL && c->fd >= 0; i++) {
        ssize_t n = read(c->fd, buf, sizeof(buf));

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n < 0 && errno != ECONNRESET) {
            close_connection(c, errno, "QMP socket %s closed: read: %s", c->path,
                             g_strerror(errno));
            return;
        }
        /* a peer that dies with our command unread resets instead of closing */
        if (n <= 0) {
            close_connection(c, ECONNRESET, "QMP socket %s closed", c->path);
            return;
        }
        g_autoptr(GError) err = NULL;
        int ret = qmp_stream_feed(c->stream, buf, (size_t)n, &err);
        json_object *msg;

        /* the messages before a bad byte still count (replies among them) */
        while (!c->closed && (msg = qmp_stream_next(c->stream)))
            handle_message(c, msg);
        if (ret < 0)
            close_connection(c, -ret, "QMP socket %s broken: %s", c->path, err->message);
    }
}

/* --- outgoing commands ---------------------------------------------------------------- */

static void flush_out(struct qmp_client *c)
{
    while (c->fd >= 0 && c->out->len > 0) {
        ssize_t n = send(c->fd, c->out->data, c->out->len, MSG_NOSIGNAL | MSG_DONTWAIT);

        if (n < 0 && errno == ENOTSOCK)
            n = write(c->fd, c->out->data, c->out->len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n < 0) {
            if (errno == EPIPE || errno == ECONNRESET)
                close_connection(c, ECONNRESET, "QMP socket %s closed", c->path);
            else
                close_connection(c, errno, "QMP socket %s closed: write: %s", c->path,
                                 g_strerror(errno));
            return;
        }
        g_byte_array_remove_range(c->out, 0, (guint)n);
    }
    update_fd_events(c);
}

/* Registers call and queues its command; a failure to write ends the connection (and so
 * completes the call). */
static void send_command(struct qmp_client *c, struct qmp_call *call, json_object *args)
{
    g_autoptr(json_object) msg = json_object_new_object();

    json_object_object_add(msg, "execute", json_object_new_string(call->command));
    if (args)
        json_object_object_add(msg, "arguments", json_object_get(args));
    json_object_object_add(msg, "id", json_object_new_int64((gint64)call->id));

    size_t len;
    const char *text = json_object_to_json_string_length(
        msg, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
    g_byte_array_append(c->out, (const guint8 *)text, (guint)len);
    g_byte_array_append(c->out, (const guint8 *)"\n", 1);
    g_hash_table_insert(c->calls, &call->id, call);
    flush_out(c);
}

static struct qmp_call *call_new(struct qmp_client *c, const char *cmd)
{
    struct qmp_call *call = g_new0(struct qmp_call, 1);

    call->id = c->next_id++;
    call->command = g_strdup(cmd);
    call->deadline = g_get_monotonic_time() + (gint64)c->timeout_ms * 1000;
    return call;
}

/* --- blocking waits ------------------------------------------------------------------- */

typedef gboolean (*wait_done_fn)(struct qmp_client *c, void *ctx);

/* Serves the socket until done() holds, the deadline passes or the connection ends; reads
 * at least once, even past the deadline. Returns whether done() held. */
static gboolean wait_until(struct qmp_client *c, gint64 deadline, wait_done_fn done, void *ctx)
{
    for (gboolean first = TRUE;; first = FALSE) {
        if (done(c, ctx))
            return TRUE;
        if (c->fd < 0)
            return FALSE;
        gint64 now = g_get_monotonic_time();
        if (now >= deadline && !first)
            return FALSE;

        int ms = now >= deadline ? 0 : (int)MIN((deadline - now + 999) / 1000, G_MAXINT);
        struct pollfd pfd = { .fd = c->fd, .events = POLLIN | (c->out->len ? POLLOUT : 0) };
        int r = poll(&pfd, 1, ms);

        if (r < 0 && errno != EINTR) {
            close_connection(c, errno, "QMP socket %s closed: poll: %s", c->path,
                             g_strerror(errno));
        } else if (r > 0) {
            if (pfd.revents & POLLOUT)
                flush_out(c);
            if (pfd.revents & (POLLIN | POLLHUP | POLLERR | POLLNVAL))
                read_input(c);
        }
    }
}

static gboolean call_is_done(struct qmp_client *c, void *ctx)
{
    return ((struct qmp_call *)ctx)->done;
}

static gboolean is_greeted(struct qmp_client *c, void *ctx)
{
    return c->greeted;
}

static gboolean never(struct qmp_client *c, void *ctx)
{
    return FALSE;
}

struct event_wanted {
    const char *name;
    GList *found;
};

static gboolean event_queued(struct qmp_client *c, void *ctx)
{
    struct event_wanted *w = ctx;

    for (GList *l = c->events.head; l; l = l->next) {
        struct queued_event *qe = l->data;

        if (!w->name || strcmp(qe->ev->name, w->name) == 0) {
            w->found = l;
            return TRUE;
        }
    }
    return FALSE;
}

static int fail_closed(struct qmp_client *c, const char *what, GError **error)
{
    g_set_error(error, VDPAD_ERROR, c->closed->code, "%s, %s", c->closed->message, what);
    return -c->closed->code;
}

/* --- public: life ------------------------------------------------------------------- */

static struct qmp_client *client_new(int fd, const char *label)
{
    struct qmp_client *c = g_new0(struct qmp_client, 1);

    c->refs = 1;
    c->fd = fd;
    c->path = g_strdup(label);
    c->stream = qmp_stream_new(QMP_STREAM_DEFAULT_MAX_MESSAGE);
    c->out = g_byte_array_new();
    c->timeout_ms = QMP_DEFAULT_TIMEOUT_MS;
    c->next_id = 1;
    c->calls = g_hash_table_new(g_int64_hash, g_int64_equal);
    g_queue_init(&c->events);
    g_queue_init(&c->completed);
    return c;
}

static void client_unref(struct qmp_client *c)
{
    if (--c->refs > 0)
        return;
    qmp_stream_free(c->stream);
    g_byte_array_unref(c->out);
    g_hash_table_unref(c->calls);
    g_clear_error(&c->closed);
    g_free(c->qemu_version);
    g_free(c->path);
    g_free(c);
}

void qmp_client_free(struct qmp_client *c)
{
    if (!c)
        return;
    qmp_client_detach(c);
    c->freed = TRUE;
    vdpad_close_fd(c->fd);
    c->fd = -1;
    /* blocking calls cannot be waiting (one thread); async ones are dropped */
    GHashTableIter it;
    gpointer call;
    g_hash_table_iter_init(&it, c->calls);
    while (g_hash_table_iter_next(&it, NULL, &call)) {
        g_hash_table_iter_steal(&it);
        call_free(call);
    }
    g_queue_clear_full(&c->completed, (GDestroyNotify)(void (*)(void))call_free);
    g_queue_clear_full(&c->events, (GDestroyNotify)(void (*)(void))queued_event_free);
    client_unref(c);
}

/* Takes fd; reads the greeting and negotiates capabilities by deadline (timeout_ms is
 * what the caller asked for, for messages). */
static struct qmp_client *client_handshake(int fd, const char *label, gint64 deadline,
                                           int timeout_ms, GError **error)
{
    int flags = fcntl(fd, F_GETFL);

    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0 ||
        fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
        int e = errno;
        vdpad_close_fd(fd);
        vdpad_fail(error, e, "QMP socket %s: fcntl: %s", label, g_strerror(e));
        return NULL;
    }
    g_autoptr(qmp_client) c = client_new(fd, label);

    if (!wait_until(c, deadline, is_greeted, NULL)) {
        if (c->closed)
            fail_closed(c, "no greeting", error);
        else
            vdpad_fail(error, ETIMEDOUT,
                       "QMP socket %s: no greeting within %d ms (is another client connected?)",
                       c->path, timeout_ms);
        return NULL;
    }
    gint64 left_ms = (deadline - g_get_monotonic_time()) / 1000;
    c->timeout_ms = (int)CLAMP(left_ms, 1, timeout_ms);
    if (qmp_client_execute(c, "qmp_capabilities", NULL, NULL, error) < 0)
        return NULL;
    c->timeout_ms = QMP_DEFAULT_TIMEOUT_MS;
    return g_steal_pointer(&c);
}

struct qmp_client *qmp_client_new_from_fd(int fd, const char *label, int timeout_ms,
                                          GError **error)
{
    g_return_val_if_fail(fd >= 0 && label && timeout_ms > 0, NULL);
    return client_handshake(fd, label, g_get_monotonic_time() + (gint64)timeout_ms * 1000,
                            timeout_ms, error);
}

struct qmp_client *qmp_client_connect(const char *path, int timeout_ms, GError **error)
{
    g_return_val_if_fail(path && timeout_ms > 0, NULL);
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;

    if (strlen(path) >= sizeof(addr.sun_path)) {
        vdpad_fail(error, ENAMETOOLONG, "QMP socket %s: the path is longer than %zu bytes", path,
                   sizeof(addr.sun_path) - 1);
        return NULL;
    }
    strcpy(addr.sun_path, path);
    g_auto(vdpad_fd) fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        vdpad_fail(error, errno, "QMP socket %s: socket: %s", path, g_strerror(errno));
        return NULL;
    }
    /* A unix connect does not block on a full backlog when non-blocking: it fails with
     * EAGAIN, and QEMU drains its backlog only when its client leaves. Retry to the deadline. */
    while (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN || g_get_monotonic_time() >= deadline) {
            vdpad_fail(error, errno, "QMP socket %s: connect: %s", path, g_strerror(errno));
            return NULL;
        }
        g_usleep(10000);
    }
    return client_handshake(vdpad_steal_fd(&fd), path, deadline, timeout_ms, error);
}

const char *qmp_client_path(const struct qmp_client *c)
{
    return c->path;
}

const char *qmp_client_qemu_version(const struct qmp_client *c, int *major, int *minor,
                                    int *micro)
{
    if (major)
        *major = c->qemu_major;
    if (minor)
        *minor = c->qemu_minor;
    if (micro)
        *micro = c->qemu_micro;
    return c->qemu_version;
}

const GError *qmp_client_closed_error(const struct qmp_client *c)
{
    return c->closed;
}

void qmp_client_set_timeout(struct qmp_client *c, int timeout_ms)
{
    g_return_if_fail(timeout_ms > 0);
    c->timeout_ms = timeout_ms;
}

/* --- public: blocking calls ------------------------------------------------------------ */

int qmp_client_execute(struct qmp_client *c, const char *cmd, json_object *args,
                       json_object **result, GError **error)
{
    g_return_val_if_fail(c && cmd, -EINVAL);
    g_return_val_if_fail(!args || json_object_is_type(args, json_type_object), -EINVAL);
    if (result)
        *result = NULL;
    if (c->closed) {
        g_autofree char *what = g_strdup_printf("cannot run %s", cmd);
        return fail_closed(c, what, error);
    }

    struct qmp_call *call = call_new(c, cmd);
    int ret = 0;

    send_command(c, call, args);
    if (!wait_until(c, call->deadline, call_is_done, call)) {
        g_hash_table_remove(c->calls, &call->id);
        ret = vdpad_fail(error, ETIMEDOUT, "QMP socket %s: no reply to %s within %d ms", c->path,
                         cmd, c->timeout_ms);
    } else if (call->error) {
        ret = call->error->domain == QMP_ERROR ? -EREMOTEIO : vdpad_error_errno(call->error);
        g_propagate_error(error, g_steal_pointer(&call->error));
    } else if (result) {
        *result = g_steal_pointer(&call->result);
    }
    call_free(call);
    return ret;
}

const struct qmp_event *qmp_client_peek_event(struct qmp_client *c)
{
    if (c->fd >= 0)
        read_input(c);
    struct queued_event *qe = g_queue_peek_head(&c->events);

    return qe ? qe->ev : NULL;
}

GPtrArray *qmp_client_drain_events(struct qmp_client *c)
{
    GPtrArray *out = g_ptr_array_new_with_free_func((GDestroyNotify)(void (*)(void))qmp_event_free);
    struct queued_event *qe;

    if (c->fd >= 0)
        read_input(c);
    while ((qe = g_queue_pop_head(&c->events))) {
        g_ptr_array_add(out, g_steal_pointer(&qe->ev));
        g_free(qe);
    }
    return out;
}

struct qmp_event *qmp_client_wait_event(struct qmp_client *c, const char *name, int timeout_ms,
                                        GError **error)
{
    g_return_val_if_fail(timeout_ms >= 0, NULL);
    struct event_wanted want = { .name = name };
    gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;

    if (!wait_until(c, deadline, event_queued, &want)) {
        if (c->closed) {
            g_autofree char *what = g_strdup_printf("no %s event", name ? name : "further");
            fail_closed(c, what, error);
        } else {
            vdpad_fail(error, ETIMEDOUT, "QMP socket %s: no %s%sevent within %d ms", c->path,
                       name ? name : "", name ? " " : "", timeout_ms);
        }
        return NULL;
    }
    struct queued_event *qe = want.found->data;
    struct qmp_event *ev = g_steal_pointer(&qe->ev);

    g_queue_delete_link(&c->events, want.found);
    g_free(qe);
    return ev;
}

int qmp_client_pump(struct qmp_client *c, int timeout_ms, GError **error)
{
    g_return_val_if_fail(timeout_ms >= 0, -EINVAL);
    wait_until(c, g_get_monotonic_time() + (gint64)timeout_ms * 1000, never, NULL);
    if (c->closed)
        return fail_closed(c, "stopped waiting", error);
    return 0;
}

/* --- public: main loop -------------------------------------------------------------- */

static gint64 next_async_deadline(struct qmp_client *c)
{
    gint64 first = G_MAXINT64;
    GHashTableIter it;
    gpointer value;

    g_hash_table_iter_init(&it, c->calls);
    while (g_hash_table_iter_next(&it, NULL, &value)) {
        struct qmp_call *call = value;

        if (call->done_fn)
            first = MIN(first, call->deadline);
    }
    return first;
}

static void expire_async_calls(struct qmp_client *c, gint64 now)
{
    GHashTableIter it;
    gpointer value;
    GPtrArray *expired = g_ptr_array_new();

    g_hash_table_iter_init(&it, c->calls);
    while (g_hash_table_iter_next(&it, NULL, &value)) {
        struct qmp_call *call = value;

        if (call->done_fn && call->deadline <= now) {
            g_hash_table_iter_steal(&it);
            g_ptr_array_add(expired, call);
        }
    }
    for (guint i = 0; i < expired->len; i++) {
        struct qmp_call *call = expired->pdata[i];

        call->error = g_error_new(VDPAD_ERROR, ETIMEDOUT, "QMP socket %s: no reply to %s in time",
                                  c->path, call->command);
        complete_call(c, call);
    }
    g_ptr_array_free(expired, TRUE);
}

enum delivery { DELIVER_NONE, DELIVER_EVENT, DELIVER_COMPLETION, DELIVER_CLOSED };

/* What the callbacks get next: the oldest of event, completion and end. */
static enum delivery next_delivery(struct qmp_client *c)
{
    enum delivery what = DELIVER_NONE;
    guint64 seq = G_MAXUINT64;
    struct queued_event *qe = g_queue_peek_head(&c->events);
    struct qmp_call *call = g_queue_peek_head(&c->completed);

    if (c->freed || !c->source)
        return DELIVER_NONE;
    if (c->on_event && qe && qe->seq < seq) {
        what = DELIVER_EVENT;
        seq = qe->seq;
    }
    if (call && call->seq < seq) {
        what = DELIVER_COMPLETION;
        seq = call->seq;
    }
    if (c->closed && !c->closed_delivered && c->on_closed && c->closed_seq < seq)
        what = DELIVER_CLOSED;
    return what;
}

static void deliver(struct qmp_client *c)
{
    for (;;) {
        switch (next_delivery(c)) {
        case DELIVER_NONE:
            return;
        case DELIVER_EVENT: {
            struct queued_event *qe = g_queue_pop_head(&c->events);

            c->on_event(c, qe->ev, c->cb_data);
            queued_event_free(qe);
            break;
        }
        case DELIVER_COMPLETION: {
            struct qmp_call *call = g_queue_pop_head(&c->completed);

            call->done_fn(c, call->error ? NULL : call->result, call->error, call->done_data);
            call_free(call);
            break;
        }
        case DELIVER_CLOSED:
            c->closed_delivered = TRUE;
            c->on_closed(c, c->closed, c->cb_data);
            break;
        }
    }
}

static gboolean source_prepare(GSource *source, gint *timeout)
{
    struct qmp_client *c = ((struct qmp_source *)source)->c;
    gint64 deadline = next_async_deadline(c);
    gint64 now = g_get_monotonic_time();

    *timeout = -1;
    if (next_delivery(c) != DELIVER_NONE || deadline <= now) {
        *timeout = 0;
        return TRUE;
    }
    if (deadline != G_MAXINT64)
        *timeout = (gint)MIN((deadline - now + 999) / 1000, G_MAXINT);
    return FALSE;
}

static gboolean source_check(GSource *source)
{
    struct qmp_client *c = ((struct qmp_source *)source)->c;

    return next_delivery(c) != DELIVER_NONE ||
           (c->fd_tag && g_source_query_unix_fd(source, c->fd_tag)) ||
           next_async_deadline(c) <= g_get_monotonic_time();
}

static gboolean source_dispatch(GSource *source, GSourceFunc cb, gpointer data)
{
    struct qmp_client *c = ((struct qmp_source *)source)->c;

    c->refs++;
    if (c->fd_tag) {
        GIOCondition rev = g_source_query_unix_fd(source, c->fd_tag);

        if (rev & G_IO_OUT)
            flush_out(c);
        if (rev & (G_IO_IN | G_IO_HUP | G_IO_ERR | G_IO_NVAL))
            read_input(c);
    }
    expire_async_calls(c, g_get_monotonic_time());
    deliver(c);
    client_unref(c);
    return G_SOURCE_CONTINUE;
}

static GSourceFuncs source_funcs = {
    .prepare = source_prepare,
    .check = source_check,
    .dispatch = source_dispatch,
};

void qmp_client_attach(struct qmp_client *c, GMainContext *ctx, qmp_event_fn on_event,
                       qmp_closed_fn on_closed, void *data)
{
    g_return_if_fail(!c->source);
    GSource *source = g_source_new(&source_funcs, sizeof(struct qmp_source));

    ((struct qmp_source *)source)->c = c;
    g_source_set_name(source, "qmp");
    c->source = source;
    c->on_event = on_event;
    c->on_closed = on_closed;
    c->cb_data = data;
    if (c->fd >= 0) {
        c->fd_tag = g_source_add_unix_fd(source, c->fd, G_IO_IN);
        update_fd_events(c);
    }
    g_source_attach(source, ctx);
}

void qmp_client_detach(struct qmp_client *c)
{
    if (!c->source)
        return;
    g_source_destroy(c->source);
    g_source_unref(c->source);
    c->source = NULL;
    c->fd_tag = NULL;
    c->on_event = NULL;
    c->on_closed = NULL;
    c->cb_data = NULL;
}

void qmp_client_execute_async(struct qmp_client *c, const char *cmd, json_object *args,
                              qmp_done_fn done, void *data)
{
    g_return_if_fail(c && cmd && done && c->source);
    g_return_if_fail(!args || json_object_is_type(args, json_type_object));
    struct qmp_call *call = call_new(c, cmd);

    call->done_fn = done;
    call->done_data = data;
    if (c->closed) {
        call->error = g_error_new(VDPAD_ERROR, c->closed->code, "%s, cannot run %s",
                                  c->closed->message, cmd);
        complete_call(c, call);
        return;
    }
    send_command(c, call, args);
}
