/* Fuzz target: arbitrary bytes as what a QMP server sends.
 *
 * 1. The stream parser, fed the bytes whole, one at a time and in odd pieces, must yield
 *    the same messages and the same verdict each way (every message an object).
 * 2. The client, on a socketpair with a fake server playing the bytes (struct player),
 *    blocking and from a GLib main loop: whatever the bytes, the handshake, commands and
 *    event waits end with an answer or an error that says why, never with a timeout: the
 *    server hangs up in the end, and the client must notice.
 */
#include "config.h"

#include <poll.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "qmp/qmp_client.h"
#include "qmp/qmp_stream.h"
#include "util/error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                          \
    do {                                                                                     \
        if (!(cond))                                                                         \
            __builtin_trap();                                                                \
    } while (0)

struct parse_result {
    GPtrArray *messages; /* json_object * */
    int ret;
    char *error;
};

static struct parse_result parse_in_pieces(const uint8_t *data, size_t size, size_t piece)
{
    struct parse_result r = { g_ptr_array_new_with_free_func(qmp_json_unref), 0, NULL };
    g_autoptr(qmp_stream) s = qmp_stream_new(QMP_STREAM_DEFAULT_MAX_MESSAGE);

    for (size_t off = 0; off < size && r.ret == 0; off += piece) {
        g_autoptr(GError) err = NULL;
        json_object *m;

        r.ret = qmp_stream_feed(s, data + off, MIN(piece, size - off), &err);
        while ((m = qmp_stream_next(s))) {
            CHECK(json_object_is_type(m, json_type_object));
            g_ptr_array_add(r.messages, m);
        }
        if (r.ret < 0) {
            CHECK(err && err->message[0] && qmp_stream_broken(s));
            r.error = g_strdup(err->message);
            /* broken for good */
            g_autoptr(GError) again = NULL;
            CHECK(qmp_stream_feed(s, "{}", 2, &again) == r.ret);
            CHECK(qmp_stream_next(s) == NULL);
        }
    }
    return r;
}

/* The same verdict: json-c's reason (in parentheses) may depend on the split, where the
 * bad message starts may not. */
static void same_result(const struct parse_result *a, const struct parse_result *b)
{
    CHECK(a->ret == b->ret);
    if (a->error)
        CHECK(strcspn(a->error, "(") == strcspn(b->error, "(") &&
              strncmp(a->error, b->error, strcspn(a->error, "(")) == 0);
    CHECK(a->messages->len == b->messages->len);
    for (guint i = 0; i < a->messages->len; i++)
        CHECK(json_object_equal(a->messages->pdata[i], b->messages->pdata[i]));
}

static void free_result(struct parse_result *r)
{
    g_ptr_array_unref(r->messages);
    g_free(r->error);
}

static void fuzz_parser(const uint8_t *data, size_t size)
{
    struct parse_result whole = parse_in_pieces(data, size, size ? size : 1);
    struct parse_result bytes = parse_in_pieces(data, size, 1);
    struct parse_result odd = parse_in_pieces(data, size, 1 + size % 13);

    same_result(&whole, &bytes);
    same_result(&whole, &odd);
    free_result(&whole);
    free_result(&bytes);
    free_result(&odd);
}

/* Any error is fine but a timeout: the stream's end was there to be seen. */
static void check_error(int ret, const GError *err)
{
    CHECK(ret < 0 && err && err->message[0]);
    CHECK(ret != -ETIMEDOUT);
}

/* The fake server plays the input in segments split at 0xFF bytes (QMP never sends one):
 * segment 0 at once (the greeting), segment 1 once the client sent qmp_capabilities (its
 * reply), segment k just before the client's command with id k. So a reply in segment k
 * meets its command as with a real server. Commands get 1 ms: their segment is in the
 * socket before they are sent, and the client reads at least once before giving up, so a
 * reply that is there is found and one that is not times out (the one timeout allowed).
 * Only the handshake depends on timing: when
 * qmp_capabilities does not come within PACE_MS of the greeting, or the handshake does not
 * end within PACE_MS of the reply, the rest is sent at once (nobody waits for nothing).
 * After the last segment the server hangs up (shuts down its writing side).
 * Segments go out whole or not at all (the socket buffer holds any input libFuzzer makes). */
#define PACE_MS 5

struct player {
    int fd;        /* the server's end */
    const uint8_t *next, *end;
    gboolean hung_up;
    GMutex lock;   /* for handshake_over */
    GCond cond;
    gboolean handshake_over;
};

static void play_next(struct player *pl)
{
    if (pl->hung_up)
        return;
    const uint8_t *sep = memchr(pl->next, 0xff, (size_t)(pl->end - pl->next));
    const uint8_t *stop = sep ? sep : pl->end;

    send(pl->fd, pl->next, (size_t)(stop - pl->next), MSG_NOSIGNAL | MSG_DONTWAIT);
    pl->next = sep ? sep + 1 : pl->end;
    if (!sep) {
        shutdown(pl->fd, SHUT_WR);
        pl->hung_up = TRUE;
    }
}

static void play_rest(struct player *pl)
{
    while (!pl->hung_up)
        play_next(pl);
}

/* Waits for a command line from the client; FALSE if none came within PACE_MS. */
static gboolean line_arrives(int fd)
{
    char buf[256];
    gint64 deadline = g_get_monotonic_time() + PACE_MS * 1000;

    for (;;) {
        gint64 left_ms = (deadline - g_get_monotonic_time()) / 1000;
        struct pollfd pfd = { .fd = fd, .events = POLLIN };

        if (left_ms <= 0 || poll(&pfd, 1, (int)left_ms) <= 0)
            return FALSE;
        ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n <= 0)
            return FALSE; /* the client gave up */
        if (memchr(buf, '\n', (size_t)n))
            return TRUE;
    }
}

/* The handshake's half of the server (the client blocks in it, so a thread plays it). */
static gpointer play_handshake(gpointer data)
{
    struct player *pl = data;

    play_next(pl);
    if (!line_arrives(pl->fd)) {
        play_rest(pl);
        return NULL;
    }
    play_next(pl);
    gint64 deadline = g_get_monotonic_time() + PACE_MS * 1000;
    gboolean over;
    g_mutex_lock(&pl->lock);
    while (!pl->handshake_over && g_cond_wait_until(&pl->cond, &pl->lock, deadline))
        ;
    over = pl->handshake_over;
    g_mutex_unlock(&pl->lock);
    if (!over)
        play_rest(pl);
    return NULL;
}

/* A connected client, or NULL (having checked its error). */
static struct qmp_client *start_session(struct player *pl, const uint8_t *data, size_t size)
{
    int sv[2];
    int bufsize = 1 << 20;

    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &bufsize, sizeof(bufsize));
    *pl = (struct player){ .fd = sv[0], .next = data, .end = data + size };
    g_mutex_init(&pl->lock);
    g_cond_init(&pl->cond);

    GThread *server = g_thread_new("fake-qmp", play_handshake, pl);
    g_autoptr(GError) err = NULL;
    struct qmp_client *c = qmp_client_new_from_fd(sv[1], "fuzz", 5000, &err);

    g_mutex_lock(&pl->lock);
    pl->handshake_over = TRUE;
    g_cond_signal(&pl->cond);
    g_mutex_unlock(&pl->lock);
    g_thread_join(server);
    g_mutex_clear(&pl->lock);
    g_cond_clear(&pl->cond);
    if (!c) {
        check_error(-1, err);
        close(pl->fd);
    }
    return c;
}

static void fuzz_client_blocking(const uint8_t *data, size_t size)
{
    struct player pl;
    struct qmp_client *c = start_session(&pl, data, size);

    if (!c)
        return;
    qmp_client_set_timeout(c, 1);
    for (int i = 0; i < 3; i++) {
        g_autoptr(json_object) ret = NULL;
        g_autoptr(GError) cmd_err = NULL;

        play_next(&pl);
        int r = qmp_client_execute(c, i == 1 ? "query-status" : "query-migrate", NULL, &ret,
                                   &cmd_err);
        if (r < 0)
            CHECK(cmd_err && cmd_err->message[0]);
        else
            CHECK(!cmd_err);
        g_autoptr(qmp_event) ev = qmp_client_wait_event(c, NULL, 0, NULL);
        if (ev)
            CHECK(ev->name && ev->timestamp_us >= -1);
    }
    qmp_client_peek_event(c);
    g_autoptr(GPtrArray) events = qmp_client_drain_events(c);
    for (guint i = 0; i < events->len; i++)
        CHECK(((struct qmp_event *)events->pdata[i])->name != NULL);
    CHECK(qmp_client_peek_event(c) == NULL);

    /* the server hangs up: that shows, long before 5 s pass */
    play_rest(&pl);
    g_autoptr(GError) wait_err = NULL;
    g_autoptr(qmp_event) ev = qmp_client_wait_event(c, "MIGRATION", 5000, &wait_err);
    if (!ev) {
        check_error(-1, wait_err);
        CHECK(qmp_client_closed_error(c) != NULL);
    }
    qmp_client_free(c);
    close(pl.fd);
}

static const char *const async_commands[] = { "query-status", "query-migrate", "stop" };

struct async_state {
    struct player *pl;
    int done;
    int closed;
};

static void on_event(struct qmp_client *c, const struct qmp_event *ev, void *data)
{
    CHECK(ev->name != NULL);
}

static void on_closed(struct qmp_client *c, const GError *why, void *data)
{
    struct async_state *st = data;

    CHECK(why && why->message[0]);
    st->closed++;
}

static void on_done(struct qmp_client *c, json_object *result, const GError *error, void *data)
{
    struct async_state *st = data;

    CHECK(!error || !result); /* both NULL: a JSON null returned */
    if (error)
        CHECK(error->message[0]);
    /* one command at a time, each after its segment */
    if (++st->done < (int)G_N_ELEMENTS(async_commands)) {
        play_next(st->pl);
        qmp_client_execute_async(c, async_commands[st->done], NULL, on_done, st);
    } else {
        play_rest(st->pl);
    }
}

static void fuzz_client_main_loop(const uint8_t *data, size_t size)
{
    struct player pl;
    struct qmp_client *c = start_session(&pl, data, size);

    if (!c)
        return;
    g_autoptr(GMainContext) ctx = g_main_context_new();
    struct async_state st = { .pl = &pl };

    qmp_client_set_timeout(c, 1);
    qmp_client_attach(c, ctx, on_event, on_closed, &st);
    play_next(&pl);
    qmp_client_execute_async(c, async_commands[0], NULL, on_done, &st);
    /* the server hangs up after the last command, which ends whatever is left */
    while (st.done < (int)G_N_ELEMENTS(async_commands) || !st.closed)
        g_main_context_iteration(ctx, TRUE);
    CHECK(st.closed == 1);
    qmp_client_free(c);
    close(pl.fd);
}

static GLogWriterOutput quiet(GLogLevelFlags level, const GLogField *fields, gsize n_fields,
                              gpointer data)
{
    return G_LOG_WRITER_HANDLED;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static gboolean init;

    if (!init) {
        g_log_set_writer_func(quiet, NULL, NULL); /* the client logs what it drops */
        init = TRUE;
    }
    fuzz_parser(data, size);
    fuzz_client_blocking(data, size);
    fuzz_client_main_loop(data, size);
    return 0;
}
