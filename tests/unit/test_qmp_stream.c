/* Unit tests: the QMP stream parser (bytes in, JSON objects out). */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include "qmp/qmp_json.h"
#include "qmp/qmp_stream.h"

/* What QEMU 7.2 sends, CR LF and all, with strings that look like JSON structure. */
static const char greeting[] =
    "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 22, \"minor\": 2, \"major\": 7}, "
    "\"package\": \"Debian 1:7.2+dfsg-7+deb12u18+b3\"}, \"capabilities\": [\"oob\"]}}\r\n";
static const char tricky[] =
    "{\"id\": 7, \"error\": {\"class\": \"GenericError\", "
    "\"desc\": \"bad } { ] [ \\\" \\\\ \\/ \\u007b \\u00e9 \\ud83d\\ude00 "
    "caf\xc3\xa9 \\n\\t,:\"}}\r\n";
static const char event[] =
    "{\"timestamp\": {\"seconds\": 1700000000, \"microseconds\": 374679}, "
    "\"event\": \"MIGRATION\", \"data\": {\"status\": \"active\"}}\r\n";

static json_object *parse_whole(const char *text)
{
    json_object *obj = json_tokener_parse(text);

    assert_non_null(obj);
    return obj;
}

/* Feeds text in pieces of the given sizes (the last repeats) and collects every message. */
static GPtrArray *feed_in_pieces(struct qmp_stream *s, const char *text, size_t len,
                                 size_t piece)
{
    GPtrArray *out = g_ptr_array_new_with_free_func(qmp_json_unref);

    for (size_t off = 0; off < len; off += piece) {
        g_autoptr(GError) err = NULL;

        if (qmp_stream_feed(s, text + off, MIN(piece, len - off), &err) < 0)
            fail_msg("feeding %zu bytes at %zu: %s", MIN(piece, len - off), off, err->message);
        json_object *m;
        while ((m = qmp_stream_next(s)))
            g_ptr_array_add(out, m);
    }
    return out;
}

static void message_split_at_every_byte_boundary_parses_the_same(void **state)
{
    const char *const texts[] = { greeting, tricky, event };

    for (size_t t = 0; t < G_N_ELEMENTS(texts); t++) {
        size_t len = strlen(texts[t]);
        json_object *want = parse_whole(texts[t]);

        for (size_t cut = 0; cut <= len; cut++) {
            g_autoptr(qmp_stream) s = qmp_stream_new(QMP_STREAM_DEFAULT_MAX_MESSAGE);
            g_autoptr(GError) err = NULL;

            if (qmp_stream_feed(s, texts[t], cut, &err) < 0 ||
                qmp_stream_feed(s, "", 0, &err) < 0)
                fail_msg("text %zu cut at %zu: %s", t, cut, err->message);
            json_object *early = qmp_stream_next(s);
            /* a message is complete exactly when its closing brace has arrived */
            if (cut < len - 2)
                assert_null(early);
            if (qmp_stream_feed(s, texts[t] + cut, len - cut, &err) < 0)
                fail_msg("text %zu cut at %zu, second part: %s", t, cut, err->message);
            json_object *got = early ? early : qmp_stream_next(s);
            assert_non_null(got);
            assert_true(json_object_equal(got, want));
            assert_null(qmp_stream_next(s));
            assert_int_equal(qmp_stream_partial_bytes(s), 0);
            assert_int_equal(qmp_stream_offset(s), len);
            json_object_put(got);
        }
        json_object_put(want);
    }
}

static void byte_at_a_time_stream_yields_each_message_in_order(void **state)
{
    g_autofree char *text = g_strconcat(greeting, "{\"return\": {}}\r\n", event, tricky, NULL);
    g_autoptr(qmp_stream) s = qmp_stream_new(QMP_STREAM_DEFAULT_MAX_MESSAGE);
    g_autoptr(GPtrArray) got = feed_in_pieces(s, text, strlen(text), 1);

    assert_int_equal(got->len, 4);
    assert_true(json_object_object_get_ex(got->pdata[0], "QMP", NULL));
    assert_true(json_object_object_get_ex(got->pdata[1], "return", NULL));
    assert_true(json_object_object_get_ex(got->pdata[2], "event", NULL));
    json_object *err, *desc;
    assert_true(json_object_object_get_ex(got->pdata[3], "error", &err));
    assert_true(json_object_object_get_ex(err, "desc", &desc));
    /* escapes decoded, braces inside the string left alone */
    assert_string_equal(json_object_get_string(desc),
                        "bad } { ] [ \" \\ / { \xc3\xa9 \xf0\x9f\x98\x80 caf\xc3\xa9 \n\t,:");
}

static void several_messages_in_one_read_come_out_in_order(void **state)
{
    const char text[] = "{\"return\": {}, \"id\": 1}{\"return\": 2, \"id\": 2}"
                        "{\"event\": \"STOP\"}\r\n{\"return\": [], \"id\": 3}";
    g_autoptr(qmp_stream) s = qmp_stream_new(QMP_STREAM_DEFAULT_MAX_MESSAGE);
    g_autoptr(GPtrArray) got = feed_in_pieces(s, text, strlen(text), sizeof(text));

    assert_int_equal(got->len, 4);
    json_object *id;
    assert_true(json_object_object_get_ex(got->pdata[0], "id", &id));
    assert_int_equal(json_object_get_int(id), 1);
    assert_true(json_object_object_get_ex(got->pdata[1], "id", &id));
    assert_int_equal(json_object_get_int(id), 2);
    assert_true(json_object_object_get_ex(got->pdata[2], "event", NULL));
    assert_true(json_object_object_get_ex(got->pdata[3], "id", &id));
    assert_int_equal(json_object_get_int(id), 3);
}

static void whitespace_between_messages_is_skipped(void **state)
{
    const char text[] = " \r\n\t {\"a\": 1}\r\n\r\n   \t{\"b\":\n2}\n\n   ";
    g_autoptr(qmp_stream) s = qmp_stream_new(QMP_STREAM_DEFAULT_MAX_MESSAGE);

    for (size_t piece = 1; piece <= sizeof(text); piece++) {
        g_autoptr(qmp_stream) t = qmp_stream_new(QMP_STREAM_DEFAULT_MAX_MESSAGE);
        g_autoptr(GPtrArray) got = feed_in_pieces(t, text, strlen(text), piece);

        assert_int_equal(got->len, 2);
        assert_int_equal(qmp_stream_partial_bytes(t), 0);
        assert_false(qmp_stream_broken(t));
    }
    /* whitespace alone is no message and no error */
    g_autoptr(GError) err = NULL;
    assert_int_equal(qmp_stream_feed(s, "\r\n  \t\n", 6, &err), 0);
    assert_null(qmp_stream_next(s));
}

/* Feeds text whole; expects errnum and an error message containing what. */
static void expect_broken(struct qmp_stream *s, const char *text, size_t len, int errnum,
                          const char *what)
{
    g_autoptr(GError) err = NULL;

    assert_int_equal(qmp_stream_feed(s, text, len, &err), -errnum);
    assert_non_null(err);
    if (!strstr(err->message, what))
        fail_msg("error \"%s\" does not say \"%s\"", err->message, what);
    assert_true(qmp_stream_broken(s));
}

static void garbage_after_a_message_breaks_the_stream_for_good(void **state)
{
    g_autoptr(qmp_stream) s = qmp_stream_new(QMP_STREAM_DEFAULT_MAX_MESSAGE);
    const char text[] = "{\"return\": {}}\r\nxyz{\"return\": {}}";

    expect_broken(s, text, strlen(text), EPROTO, "byte 16:");
    /* the message before the garbage was delivered */
    json_object *m = qmp_stream_next(s);
    assert_non_null(m);
    json_object_put(m);
    assert_null(qmp_stream_next(s));
    /* later input, even valid, fails with the same error */
    g_autoptr(GError) err = NULL;
    assert_int_equal(qmp_stream_feed(s, "{}", 2, &err), -EPROTO);
    assert_non_null(strstr(err->message, "byte 16:"));
    assert_null(qmp_stream_next(s));
}

static void malformed_json_inside_a_message_is_an_error(void **state)
{
    const char *const bad[] = {
        "{\"a\": }", "{\"a\" 1}", "{\"a\": 1,}", "{\"a\": tru}",
        "{\"a\": 01}", "{\"a\": \"\\x\"}", "{\"a\": [1 2]}", "{}}",
    };

    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_autoptr(qmp_stream) s = qmp_stream_new(QMP_STREAM_DEFAULT_MAX_MESSAGE);
        g_autoptr(GError) err = NULL;
        int ret = qmp_stream_feed(s, bad[i], strlen(bad[i]), &err);

        if (ret != -EPROTO)
            fail_msg("\"%s\" gave %d, not -EPROTO", bad[i], ret);
        assert_true(qmp_stream_broken(s));
        /* "{}}" yields its object before the stray brace */
        json_object_put(qmp_stream_next(s));
    }
}

static void non_object_top_level_values_are_rejected(void **state)
{
    const char *const bad[] = { "[1, 2]", "\"str\"", "42", "null", "true", "}" };

    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_autoptr(qmp_stream) s = qmp_stream_new(QMP_STREAM_DEFAULT_MAX_MESSAGE);

        expect_broken(s, bad[i], strlen(bad[i]), EPROTO, "must be a JSON object");
        assert_null(qmp_stream_next(s));
    }
}

static void nul_bytes_are_rejected_inside_and_between_messages(void **state)
{
    const char inside[] = "{\"a\": \"x\0y\"}";
    const char between[] = "{\"a\": 1}\0{\"a\": 2}";
    g_autoptr(qmp_stream) s = qmp_stream_new(QMP_STREAM_DEFAULT_MAX_MESSAGE);
    g_autoptr(qmp_stream) t = qmp_stream_new(QMP_STREAM_DEFAULT_MAX_MESSAGE);

    expect_broken(s, inside, sizeof(inside) - 1, EPROTO, "byte 8: NUL");
    assert_null(qmp_stream_next(s));
    expect_broken(t, between, sizeof(between) - 1, EPROTO, "0x00");
    json_object *m = qmp_stream_next(t);
    assert_non_null(m);
    json_object_put(m);
}

static void invalid_utf8_or_escaped_nul_in_a_string_is_rejected(void **state)
{
    const char *const bad[] = {
        "{\"a\": \"\xc3\x28\"}",           /* a broken two-byte sequence */
        "{\"a\": [\"ok\", \"\xff\"]}",     /* in an array */
        "{\"\xc3\": 1}",                   /* in a key */
        "{\"a\": \"x\\u0000y\"}",         /* an escaped NUL */
    };

    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_autoptr(qmp_stream) s = qmp_stream_new(QMP_STREAM_DEFAULT_MAX_MESSAGE);

        expect_broken(s, bad[i], strlen(bad[i]), EPROTO, "byte 0: a string is not UTF-8");
        assert_null(qmp_stream_next(s));
    }
}

static void message_of_exactly_the_limit_passes_one_more_byte_fails(void **state)
{
    char text[65];

    /* {"s":"xxx...x"} of exactly 64 bytes */
    memset(text, 'x', 64);
    memcpy(text, "{\"s\":\"", 6);
    memcpy(text + 62, "\"}", 2);
    text[64] = '\0';
    for (size_t piece = 1; piece <= 64; piece *= 2) {
        g_autoptr(qmp_stream) s = qmp_stream_new(64);
        g_autoptr(GPtrArray) got = feed_in_pieces(s, text, 64, piece);

        assert_int_equal(got->len, 1);
    }
    /* 65 bytes: refused once the 64th byte leaves it unfinished, in any piece size */
    char longer[66];
    memcpy(longer, text, 62);
    memcpy(longer + 62, "x\"}", 4);
    for (size_t piece = 1; piece <= 65; piece++) {
        g_autoptr(qmp_stream) s = qmp_stream_new(64);
        g_autoptr(GError) err = NULL;
        int ret = 0;

        for (size_t off = 0; off < 65 && ret == 0; off += piece)
            ret = qmp_stream_feed(s, longer + off, MIN(piece, 65 - off), &err);
        assert_int_equal(ret, -EMSGSIZE);
        assert_non_null(strstr(err->message, "longer than 64 bytes"));
        assert_null(qmp_stream_next(s));
    }
}

static void default_limit_refuses_a_16mib_message(void **state)
{
    const size_t piece = 1 << 20;
    g_autofree char *chunk = g_malloc(piece);
    g_autoptr(qmp_stream) s = qmp_stream_new(QMP_STREAM_DEFAULT_MAX_MESSAGE);
    g_autoptr(GError) err = NULL;
    int ret;

    memset(chunk, 'a', piece);
    assert_int_equal(qmp_stream_feed(s, "{\"s\": \"", 7, &err), 0);
    size_t fed = 7;
    while ((ret = qmp_stream_feed(s, chunk, piece, &err)) == 0) {
        fed += piece;
        assert_true(fed < QMP_STREAM_DEFAULT_MAX_MESSAGE + piece);
    }
    assert_int_equal(ret, -EMSGSIZE);
    assert_true(fed <= QMP_STREAM_DEFAULT_MAX_MESSAGE);
    assert_non_null(strstr(err->message, "longer than 16777216 bytes"));
}

static void nesting_deeper_than_the_limit_is_rejected(void **state)
{
    GString *ok = g_string_new("{\"a\":");
    GString *deep = g_string_new("{\"a\":");

    /* depth QMP_STREAM_MAX_DEPTH (the object, 62 arrays, the number) passes; one more fails */
    for (int i = 2; i < QMP_STREAM_MAX_DEPTH; i++)
        g_string_append(ok, "[");
    g_string_append(ok, "1");
    for (int i = 2; i < QMP_STREAM_MAX_DEPTH; i++)
        g_string_append(ok, "]");
    g_string_append(ok, "}");
    for (int i = 2; i <= QMP_STREAM_MAX_DEPTH; i++)
        g_string_append(deep, "[");
    g_string_append(deep, "1");

    g_autoptr(qmp_stream) s = qmp_stream_new(QMP_STREAM_DEFAULT_MAX_MESSAGE);
    g_autoptr(GPtrArray) got = feed_in_pieces(s, ok->str, ok->len, ok->len);
    assert_int_equal(got->len, 1);

    g_autoptr(qmp_stream) t = qmp_stream_new(QMP_STREAM_DEFAULT_MAX_MESSAGE);
    expect_broken(t, deep->str, deep->len, EPROTO, "nesting too deep");
    g_string_free(ok, TRUE);
    g_string_free(deep, TRUE);
}

static void partial_bytes_count_the_unfinished_message(void **state)
{
    g_autoptr(qmp_stream) s = qmp_stream_new(QMP_STREAM_DEFAULT_MAX_MESSAGE);
    g_autoptr(GError) err = NULL;

    assert_int_equal(qmp_stream_feed(s, "\r\n{\"a\":", 7, &err), 0);
    assert_int_equal(qmp_stream_partial_bytes(s), 5);
    assert_int_equal(qmp_stream_feed(s, " 1}{", 4, &err), 0);
    assert_int_equal(qmp_stream_partial_bytes(s), 1);
    assert_int_equal(qmp_stream_offset(s), 11);
    json_object *m = qmp_stream_next(s);
    assert_non_null(m);
    json_object_put(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(message_split_at_every_byte_boundary_parses_the_same),
        cmocka_unit_test(byte_at_a_time_stream_yields_each_message_in_order),
        cmocka_unit_test(several_messages_in_one_read_come_out_in_order),
        cmocka_unit_test(whitespace_between_messages_is_skipped),
        cmocka_unit_test(garbage_after_a_message_breaks_the_stream_for_good),
        cmocka_unit_test(malformed_json_inside_a_message_is_an_error),
        cmocka_unit_test(non_object_top_level_values_are_rejected),
        cmocka_unit_test(nul_bytes_are_rejected_inside_and_between_messages),
        cmocka_unit_test(invalid_utf8_or_escaped_nul_in_a_string_is_rejected),
        cmocka_unit_test(message_of_exactly_the_limit_passes_one_more_byte_fails),
        cmocka_unit_test(default_limit_refuses_a_16mib_message),
        cmocka_unit_test(nesting_deeper_than_the_limit_is_rejected),
        cmocka_unit_test(partial_bytes_count_the_unfinished_message),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
