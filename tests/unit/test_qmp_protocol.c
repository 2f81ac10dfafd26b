/* Unit tests: the QMP client against a scripted fake server on a socketpair — what a real
 * QEMU does not do on demand (stray ids, broken streams, old versions, odd messages). */
#include "config.h"

#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "qmp/qmp_client.h"
#include "util/error.h"

#define GREETING                                                                             \
    "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 22, \"minor\": 2, \"major\": 7}, "    \
    "\"package\": \"Debian 1:7.2+dfsg-7+deb12u18+b3\"}, \"capabilities\": [\"oob\"]}}\r\n"
#define CAPS_OK "{\"return\": {}, \"id\": 1}\r\n"

enum step_kind { SEND, EXPECT, HANGUP };

struct step {
    enum step_kind kind;
    const char *text; /* SEND: bytes (NULL: the server's big buffer); EXPECT: in the line */
};

struct fake_server {
    int fd;
    const struct step *steps;
    size_t n_steps;
    GString *big;
    GString *failure; /* what went wrong in the thread */
    GThread *thread;
};

static gboolean read_line(int fd, GString *line)
{
    char ch;

    g_string_truncate(line, 0);
    for (;;) {
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        if (poll(&pfd, 1, 5000) <= 0 || read(fd, &ch, 1) != 1)
            return FALSE;
        if (ch == '\n')
            return TRUE;
        g_string_append_c(line, ch);
    }
}

static gpointer fake_server_run(gpointer data)
{
    struct fake_server *s = data;
    g_autoptr(GString) line = g_string_new(NULL);

    for (size_t i = 0; i < s->n_steps && s->fd >= 0; i++) {
        const struct step *st = &s->steps[i];

        switch (st->kind) {
        case SEND: {
            const char *p = st->text ? st->text : s->big->str;
            size_t len = st->text ? strlen(st->text) : s->big->len;
            while (len > 0) {
                ssize_t n = send(s->fd, p, len, MSG_NOSIGNAL);
                if (n <= 0)
                    break; /* the client may have given up on us */
                p += n;
                len -= (size_t)n;
            }
            break;
        }
        case EXPECT:
            if (!read_line(s->fd, line))
                g_string_append_printf(s->failure, "step %zu: no line from the client; ", i);
            else if (!strstr(line->str, st->text))
                g_string_append_printf(s->failure, "step %zu: got %s, wanted %s; ", i, line->str,
                                       st->text);
            break;
        case HANGUP:
            close(s->fd);
            s->fd = -1;
            break;
        }
    }
    return NULL;
}

/* Starts a fake server; *client_fd gets the client's end. */
static struct fake_server *fake_server_start(const struct step *steps, size_t n_steps,
                                             int *client_fd)
{
    struct fake_server *s = g_new0(struct fake_server, 1);
    int sv[2];

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    s->fd = sv[0];
    *client_fd = sv[1];
    s->steps = steps;
    s->n_steps = n_steps;
    s->failure = g_string_new(NULL);
    s->big = g_string_new(NULL);
    return s;
}

static void fake_server_go(struct fake_server *s)
{
    s->thread = g_thread_new("fake-qmp", fake_server_run, s);
}

/* Joins the script; fails the test if it saw something it did not expect. */
static void fake_server_finish(struct fake_server *s)
{
    g_thread_join(s->thread);
    if (s->fd >= 0)
        close(s->fd);
    g_autofree char *failure = g_string_free(s->failure, FALSE);
    g_string_free(s->big, TRUE);
    g_free(s);
    if (*failure)
        fail_msg("fake server: %s", failure);
}

static struct qmp_client *connect_fake(const struct step *steps, size_t n, GError **err,
                                       struct fake_server **server)
{
    int fd;

    *server = fake_server_start(steps, n, &fd);
    fake_server_go(*server);
    return qmp_client_new_from_fd(fd, "fake", 5000, err);
}

/* Warnings the client logged, for the tests that check it says what it dropped. */
static GPtrArray *warnings;

static GLogWriterOutput record_writer(GLogLevelFlags level, const GLogField *fields,
                                      gsize n_fields, gpointer data)
{
    for (gsize i = 0; i < n_fields; i++)
        if ((level & G_LOG_LEVEL_WARNING) && strcmp(fields[i].key, "MESSAGE") == 0)
            g_ptr_array_add(warnings, g_strdup(fields[i].value));
    return g_log_writer_default(level, fields, n_fields, data);
}

static gboolean warned(const char *needle)
{
    for (guint i = 0; i < warnings->len; i++)
        if (strstr(warnings->pdata[i], needle))
            return TRUE;
    return FALSE;
}

#define assert_contains(haystack, needle)                                                   \
    do {                                                                                    \
        if (!strstr((haystack), (needle)))                                                  \
            fail_msg("\"%s\" does not contain \"%s\"", (const char *)(haystack), (needle)); \
    } while (0)

static void replies_are_matched_by_id_and_strays_ignored(void **state)
{
    const struct step steps[] = {
        { SEND, "{\"QMP\": {\"version\": {\"qemu\": " },            /* the greeting in pieces */
        { SEND, "{\"micro\": 0, \"minor\": 2, \"major\": 7}, \"package\": \"\"}, " },
        { SEND, "\"capabilities\": []}}\r\n" },
        { EXPECT, "{\"execute\":\"qmp_capabilities\",\"id\":1}" },
        { SEND, CAPS_OK },
        { EXPECT, "{\"execute\":\"query-thing\",\"arguments\":{\"path\":\"/a/b\"},\"id\":2}" },
        { SEND, "{\"return\": \"stale\", \"id\": 99}\r\n" },        /* nobody's id */
        { SEND, "{\"return\": \"anonymous\"}\r\n" },                /* no id */
        { SEND, "{\"return\": \"typed\", \"id\": \"2\"}\r\n" },     /* an id of another type */
        { SEND, "{\"event\": \"FOO\", \"data\": {\"n\": 1}, "
                "\"timestamp\": {\"seconds\": 10, \"microseconds\": 5}}\r\n" },
        { SEND, "{\"something\": \"else\"}\r\n" },                 /* no reply, no event */
        { SEND, "{\"return\": 42, \"id\": 2}\r\n" },
    };
    struct fake_server *server;
    g_autoptr(GError) err = NULL;
    g_autoptr(qmp_client) c = connect_fake(steps, G_N_ELEMENTS(steps), &err, &server);
    assert_non_null(c);
    /* an empty package adds nothing */
    assert_string_equal(qmp_client_qemu_version(c, NULL, NULL, NULL), "7.2.0");

    g_autoptr(json_object) args = json_tokener_parse("{\"path\": \"/a/b\"}");
    g_autoptr(json_object) ret = NULL;
    assert_int_equal(qmp_client_execute(c, "query-thing", args, &ret, &err), 0);
    assert_true(json_object_is_type(ret, json_type_int));
    assert_int_equal(json_object_get_int(ret), 42);
    /* args stay the caller's */
    assert_int_equal(json_object_object_length(args), 1);

    g_autoptr(qmp_event) ev = qmp_client_wait_event(c, NULL, 0, &err);
    assert_non_null(ev);
    assert_string_equal(ev->name, "FOO");
    assert_int_equal(ev->timestamp_us, 10 * G_USEC_PER_SEC + 5);
    assert_int_equal(json_object_get_int(json_object_object_get(ev->data, "n")), 1);
    assert_null(qmp_client_closed_error(c));
    /* each stray was logged with what it was */
    assert_true(warned("QMP socket fake: ignored a reply for no waiting command: "
                       "{ \"return\": \"stale\", \"id\": 99 }"));
    assert_true(warned("{ \"return\": \"anonymous\" }"));
    assert_true(warned("{ \"return\": \"typed\", \"id\": \"2\" }"));
    assert_true(warned("QMP socket fake: ignored a message that is no reply or event: "
                       "{ \"something\": \"else\" }"));
    fake_server_finish(server);
}

static void first_message_must_be_a_greeting(void **state)
{
    const struct step steps[] = { { SEND, "{\"return\": {}}\r\n" } };
    struct fake_server *server;
    g_autoptr(GError) err = NULL;

    assert_null(connect_fake(steps, G_N_ELEMENTS(steps), &err, &server));
    assert_int_equal(vdpad_error_errno(err), -EPROTO);
    assert_contains(err->message, "QMP socket fake: the first message is no QMP greeting");
    fake_server_finish(server);
}

static void qemu_older_than_7_2_is_refused(void **state)
{
    const struct step steps[] = {
        { SEND, "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 2, \"major\": 6}, "
                "\"package\": \"old\"}, \"capabilities\": []}}\r\n" },
    };
    struct fake_server *server;
    g_autoptr(GError) err = NULL;

    assert_null(connect_fake(steps, G_N_ELEMENTS(steps), &err, &server));
    assert_int_equal(vdpad_error_errno(err), -ENOTSUP);
    assert_contains(err->message, "QEMU 6.2.0 (old) is older than 7.2");
    fake_server_finish(server);
}

static void server_closing_before_the_greeting_is_reported(void **state)
{
    const struct step steps[] = { { SEND, "{\"QMP\": " }, { HANGUP, NULL } };
    struct fake_server *server;
    g_autoptr(GError) err = NULL;

    assert_null(connect_fake(steps, G_N_ELEMENTS(steps), &err, &server));
    assert_int_equal(vdpad_error_errno(err), -ECONNRESET);
    assert_string_equal(err->message, "QMP socket fake closed, no greeting");
    fake_server_finish(server);
}

static void error_replies_unknown_class_and_malformed(void **state)
{
    const struct step steps[] = {
        { SEND, GREETING },
        { EXPECT, "qmp_capabilities" },
        { SEND, CAPS_OK },
        { EXPECT, "\"id\":2" },
        { SEND, "{\"id\": 2, \"error\": {\"class\": \"NewClass\", \"desc\": \"it broke\"}}\r\n" },
        { EXPECT, "\"id\":3" },
        { SEND, "{\"id\": 3, \"error\": \"just a string\"}\r\n" },
        { EXPECT, "\"id\":4" },
        { SEND, "{\"id\": 4, \"return\": {}}\r\n" },
    };
    struct fake_server *server;
    g_autoptr(GError) err = NULL;
    g_autoptr(qmp_client) c = connect_fake(steps, G_N_ELEMENTS(steps), &err, &server);
    assert_non_null(c);

    assert_int_equal(qmp_client_execute(c, "one", NULL, NULL, &err), -EREMOTEIO);
    assert_true(g_error_matches(err, QMP_ERROR, QMP_ERROR_GENERIC));
    assert_string_equal(err->message, "NewClass: it broke (command one, QMP socket fake)");
    g_clear_error(&err);
    assert_int_equal(qmp_client_execute(c, "two", NULL, NULL, &err), -EPROTO);
    assert_contains(err->message, "QMP socket fake: malformed error reply to two");
    g_clear_error(&err);
    /* neither broke the connection */
    assert_int_equal(qmp_client_execute(c, "three", NULL, NULL, &err), 0);
    fake_server_finish(server);
}

static void garbage_breaks_the_connection_for_every_call(void **state)
{
    const struct step steps[] = {
        { SEND, GREETING },
        { EXPECT, "qmp_capabilities" },
        { SEND, CAPS_OK },
        { EXPECT, "\"id\":2" },
        { SEND, "{\"event\": \"BEFORE\"}\r\n[1]\r\n" },
    };
    struct fake_server *server;
    g_autoptr(GError) err = NULL;
    g_autoptr(qmp_client) c = connect_fake(steps, G_N_ELEMENTS(steps), &err, &server);
    assert_non_null(c);

    assert_int_equal(qmp_client_execute(c, "one", NULL, NULL, &err), -EPROTO);
    const char *want = "QMP socket fake broken: QMP stream byte";
    assert_true(g_str_has_prefix(err->message, want));
    assert_contains(err->message, "must be a JSON object");
    assert_contains(err->message, "before replying to one");
    g_clear_error(&err);
    assert_int_equal(qmp_client_execute(c, "two", NULL, NULL, &err), -EPROTO);
    assert_true(g_str_has_prefix(err->message, want));
    g_clear_error(&err);
    /* the event before the bad bytes was kept */
    g_autoptr(qmp_event) ev = qmp_client_wait_event(c, "BEFORE", 1000, &err);
    assert_non_null(ev);
    fake_server_finish(server);
}

static void oversized_message_breaks_the_connection(void **state)
{
    const struct step steps[] = {
        { SEND, GREETING },
        { EXPECT, "qmp_capabilities" },
        { SEND, CAPS_OK },
        { EXPECT, "\"id\":2" },
        { SEND, NULL },
    };
    int fd;
    struct fake_server *server = fake_server_start(steps, G_N_ELEMENTS(steps), &fd);
    g_autoptr(GError) err = NULL;

    /* a 16 MiB + 1 string in a reply */
    g_string_append(server->big, "{\"id\": 2, \"return\": \"");
    size_t prefix = server->big->len;
    g_string_set_size(server->big, prefix + (16u << 20) + 1);
    memset(server->big->str + prefix, 'x', (16u << 20) + 1);
    g_string_append(server->big, "\"}\r\n");
    fake_server_go(server);
    g_autoptr(qmp_client) c = qmp_client_new_from_fd(fd, "fake", 5000, &err);
    assert_non_null(c);

    assert_int_equal(qmp_client_execute(c, "big", NULL, NULL, &err), -EMSGSIZE);
    assert_contains(err->message, "QMP socket fake broken");
    assert_contains(err->message, "longer than 16777216 bytes");
    /* the reader stopped: the server's write fails once the client closes */
    qmp_client_free(g_steal_pointer(&c));
    fake_server_finish(server);
}

static void events_keep_what_qemu_sent_even_when_odd(void **state)
{
    const struct step steps[] = {
        { SEND, GREETING },
        { EXPECT, "qmp_capabilities" },
        { SEND, CAPS_OK "{\"event\": \"NO_TS\"}\r\n"
                "{\"event\": \"BAD_TS\", "
                "\"timestamp\": {\"seconds\": -1, \"microseconds\": -1}}\r\n"
                "{\"event\": \"HUGE_TS\", \"timestamp\": {\"seconds\": 9223372036854775807, "
                "\"microseconds\": 0}}\r\n"
                "{\"event\": \"LIST\", \"data\": [1, 2]}\r\n"
                "{\"event\": 5}\r\n" },
        { HANGUP, NULL },
    };
    struct fake_server *server;
    g_autoptr(GError) err = NULL;
    g_autoptr(qmp_client) c = connect_fake(steps, G_N_ELEMENTS(steps), &err, &server);
    assert_non_null(c);

    assert_int_equal(qmp_client_pump(c, 5000, &err), -ECONNRESET);
    g_autoptr(GPtrArray) events = qmp_client_drain_events(c);
    /* the nameless one is dropped (logged); the rest in order */
    assert_int_equal(events->len, 4);
    const char *names[] = { "NO_TS", "BAD_TS", "HUGE_TS", "LIST" };
    for (guint i = 0; i < 4; i++) {
        struct qmp_event *ev = events->pdata[i];
        assert_string_equal(ev->name, names[i]);
        assert_int_equal(ev->timestamp_us, -1);
    }
    struct qmp_event *list = events->pdata[3];
    assert_true(json_object_is_type(list->data, json_type_array));
    fake_server_finish(server);
}

int main(void)
{
    warnings = g_ptr_array_new_with_free_func(g_free);
    g_log_set_writer_func(record_writer, NULL, NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(replies_are_matched_by_id_and_strays_ignored),
        cmocka_unit_test(first_message_must_be_a_greeting),
        cmocka_unit_test(qemu_older_than_7_2_is_refused),
        cmocka_unit_test(server_closing_before_the_greeting_is_reported),
        cmocka_unit_test(error_replies_unknown_class_and_malformed),
        cmocka_unit_test(garbage_breaks_the_connection_for_every_call),
        cmocka_unit_test(oversized_message_breaks_the_connection),
        cmocka_unit_test(events_keep_what_qemu_sent_even_when_odd),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    g_ptr_array_unref(warnings);
    return failed;
}
