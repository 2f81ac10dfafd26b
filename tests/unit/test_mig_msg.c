/* Unit tests: the migration channel's frames (mig_frame.c) and its requests and responses
 * (mig_msg.c). */
#include "config.h"

#include <errno.h>
#include <glib.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_net.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include "migration/mig_frame.h"
#include "migration/mig_msg.h"
#include "util/error.h"

/* ------------------------------------------------------------------ frames */

static void frame_read_whole_and_byte_by_byte_give_the_same_body(void **state)
{
    static const char body[] = "{\"op\":\"ping\"}";
    size_t len;
    g_autofree uint8_t *frame = mig_frame_encode(body, strlen(body), &len);

    assert_int_equal(len, 4 + strlen(body));
    assert_memory_equal(frame, ((uint8_t[]){ 0, 0, 0, 13 }), 4);

    struct mig_frame_reader r;
    size_t used, blen;
    mig_frame_reader_init(&r);
    assert_int_equal(mig_frame_reader_feed(&r, frame, len, &used, NULL), 1);
    assert_int_equal(used, len);
    const uint8_t *b = mig_frame_reader_body(&r, &blen);
    assert_int_equal(blen, strlen(body));
    assert_memory_equal(b, body, blen);
    mig_frame_reader_clear(&r);

    mig_frame_reader_init(&r);
    for (size_t i = 0; i < len; i++) {
        assert_null(mig_frame_reader_body(&r, &blen));
        int ret = mig_frame_reader_feed(&r, frame + i, 1, &used, NULL);
        assert_int_equal(used, 1);
        assert_int_equal(ret, i + 1 == len ? 1 : 0);
    }
    b = mig_frame_reader_body(&r, &blen);
    assert_memory_equal(b, body, blen);
    /* a complete reader takes nothing more */
    assert_int_equal(mig_frame_reader_feed(&r, frame, len, &used, NULL), 1);
    assert_int_equal(used, 0);
    mig_frame_reader_clear(&r);
}

static void frame_reader_stops_at_the_end_of_the_frame(void **state)
{
    uint8_t data[] = { 0, 0, 0, 2, '{', '}', 0xde, 0xad };
    struct mig_frame_reader r;
    size_t used;

    mig_frame_reader_init(&r);
    assert_int_equal(mig_frame_reader_feed(&r, data, sizeof(data), &used, NULL), 1);
    assert_int_equal(used, 6);
    mig_frame_reader_clear(&r);
}

static void frame_length_zero_is_a_protocol_error(void **state)
{
    uint8_t data[] = { 0, 0, 0, 0, '{' };
    struct mig_frame_reader r;
    size_t used;
    g_autoptr(GError) err = NULL;

    mig_frame_reader_init(&r);
    assert_int_equal(mig_frame_reader_feed(&r, data, sizeof(data), &used, &err), -EPROTO);
    assert_non_null(strstr(err->message, "length 0"));
    /* and stays refused */
    assert_int_equal(mig_frame_reader_feed(&r, data, sizeof(data), &used, NULL), -EPROTO);
    mig_frame_reader_clear(&r);
}

static void frame_over_one_mib_is_refused_from_its_header_alone(void **state)
{
    uint32_t n = MIG_FRAME_MAX + 1;
    uint8_t hdr[4] = { (uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n };
    struct mig_frame_reader r;
    size_t used;
    g_autoptr(GError) err = NULL;

    mig_frame_reader_init(&r);
    assert_int_equal(mig_frame_reader_feed(&r, hdr, 3, &used, NULL), 0);
    assert_int_equal(mig_frame_reader_feed(&r, hdr + 3, 1, &used, &err), -EMSGSIZE);
    assert_non_null(strstr(err->message, "1048577 bytes, more than the 1048576"));
    assert_null(r.body); /* nothing was allocated for it */
    mig_frame_reader_clear(&r);

    /* 0xffffffff as well */
    uint8_t big[4] = { 0xff, 0xff, 0xff, 0xff };
    mig_frame_reader_init(&r);
    assert_int_equal(mig_frame_reader_feed(&r, big, 4, &used, NULL), -EMSGSIZE);
    mig_frame_reader_clear(&r);
}

static void frame_of_exactly_one_mib_is_read(void **state)
{
    g_autofree char *body = g_malloc(MIG_FRAME_MAX);
    size_t len, used, blen;
    struct mig_frame_reader r;

    memset(body, ' ', MIG_FRAME_MAX);
    g_autofree uint8_t *frame = mig_frame_encode(body, MIG_FRAME_MAX, &len);
    mig_frame_reader_init(&r);
    /* in 16 KiB pieces, as TLS records come */
    for (size_t off = 0; off < len; off += used) {
        int ret = mig_frame_reader_feed(&r, frame + off, MIN(16384, len - off), &used, NULL);
        assert_true(ret >= 0);
    }
    assert_non_null(mig_frame_reader_body(&r, &blen));
    assert_int_equal(blen, MIG_FRAME_MAX);
    mig_frame_reader_clear(&r);
}

/* A peer that announces a large frame and sends little costs what it sent, not what it
 * announced. */
static void frame_buffer_grows_with_what_arrives(void **state)
{
    uint8_t hdr[4] = { 0, 0x10, 0, 0 }; /* exactly 1 MiB announced */
    uint8_t some[100] = { 0 };
    struct mig_frame_reader r;
    size_t used;

    mig_frame_reader_init(&r);
    assert_int_equal(mig_frame_reader_feed(&r, hdr, 4, &used, NULL), 0);
    assert_int_equal(mig_frame_reader_feed(&r, some, sizeof(some), &used, NULL), 0);
    assert_true(r.body->len == sizeof(some));
    assert_true(r.body->len < 8192);
    mig_frame_reader_clear(&r);
}

/* ------------------------------------------------------------------ requests */

static void request_round_trips(void **state)
{
    char device[] = "vdpa0", token[] = "tok-1";
    struct mig_req get = { .op = MIG_OP_GET_STATE, .device = device, .token = token,
                           .wait_ms = 2500 };
    struct mig_req ping = { .op = MIG_OP_PING };
    struct mig_req back;
    size_t len;
    g_autofree char *text = mig_req_encode(&get, &len);

    assert_string_equal(text, "{\"op\":\"get-state\",\"device\":\"vdpa0\",\"token\":\"tok-1\","
                              "\"wait_ms\":2500}");
    assert_int_equal(mig_req_parse(text, len, &back, NULL), 0);
    assert_int_equal(back.op, MIG_OP_GET_STATE);
    assert_string_equal(back.device, "vdpa0");
    assert_string_equal(back.token, "tok-1");
    assert_int_equal(back.wait_ms, 2500);
    mig_req_clear(&back);

    g_autofree char *ptext = mig_req_encode(&ping, &len);
    assert_string_equal(ptext, "{\"op\":\"ping\"}");
    assert_int_equal(mig_req_parse(ptext, len, &back, NULL), 0);
    assert_int_equal(back.op, MIG_OP_PING);
    assert_null(back.device);
    mig_req_clear(&back);
}

static void request_parse_refuses_naming_the_field(void **state)
{
    static const struct {
        const char *text, *word;
    } cases[] = {
        { "{\"op\":\"reboot\"}", "op: 'reboot' is not an operation" },
        { "{}", "op: missing" },
        { "{\"op\":\"ping\",\"device\":\"x\"}", "device: unknown field" },
        { "{\"op\":\"get-state\",\"token\":\"t\",\"wait_ms\":1}", "device: missing" },
        { "{\"op\":\"get-state\",\"device\":\"d\",\"wait_ms\":1}", "token: missing" },
        { "{\"op\":\"get-state\",\"device\":\"d\",\"token\":\"t\"}", "wait_ms: missing" },
        { "{\"op\":\"get-state\",\"device\":\"d\",\"token\":\"t\",\"wait_ms\":600001}",
          "wait_ms: 600001 is out of range" },
        { "{\"op\":\"get-state\",\"device\":\"d\",\"token\":\"t\",\"wait_ms\":-1}",
          "wait_ms: -1 is out of range" },
        { "{\"op\":\"get-state\",\"device\":\"../x\",\"token\":\"t\",\"wait_ms\":1}",
          "device: '../x' is not a device name" },
        { "{\"op\":\"get-state\",\"device\":\"d\",\"token\":\"a b\",\"wait_ms\":1}",
          "token: must be printable" },
        { "{\"op\":\"get-state\",\"device\":\"d\",\"token\":\"t\",\"wait_ms\":1,\"x\":0}",
          "x: unknown field" },
        { "{\"op\":1}", "op: a JSON int where a string" },
        { "[\"ping\"]", "a JSON array where an object" },
        { "{\"op\":\"ping\"", "truncated" },
    };

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        struct mig_req req;
        g_autoptr(GError) err = NULL;
        int ret = mig_req_parse(cases[i].text, strlen(cases[i].text), &req, &err);
        if (ret != -EBADMSG || !strstr(err->message, cases[i].word) ||
            !g_str_has_prefix(err->message, "request: "))
            fail_msg("%s: %d %s", cases[i].text, ret, err ? err->message : "");
        assert_null(req.device);
        assert_null(req.token);
    }
}

/* ------------------------------------------------------------------ responses */

static struct device_state *small_state(void)
{
    static const uint8_t mac[6] = { 0x52, 0x54, 0, 1, 2, 3 };
    struct device_state *st = device_state_new();

    st->device = g_strdup("vdpa0");
    st->virtio_id = VIRTIO_ID_NET;
    st->features = 1ull << VIRTIO_F_VERSION_1 | 1ull << VIRTIO_NET_F_CTRL_VQ;
    st->stopped_at_us = 5;
    st->token = g_strdup("tok-1");
    st->net.max_queue_pairs = 1;
    net_state_reset(&st->net.state, mac, st->features);
    return st;
}

static void response_with_state_round_trips(void **state)
{
    g_autoptr(device_state) st = small_state();
    struct mig_resp resp = { .status = MIG_STATUS_OK, .state = st };
    struct mig_resp back;
    size_t len;
    g_autoptr(GError) err = NULL;
    g_autofree char *text = mig_resp_encode(&resp, &len, &err);

    assert_non_null(text);
    assert_true(g_str_has_prefix(text, "{\"ok\":true,\"state\":{\"version\":1,"));
    assert_int_equal(mig_resp_parse(text, len, MIG_OP_GET_STATE, &back, &err), 0);
    assert_int_equal(back.status, MIG_STATUS_OK);
    assert_true(device_state_equal(back.state, st));
    mig_resp_clear(&back);

    /* the same text answers no ping: a state there is an unknown field */
    assert_int_equal(mig_resp_parse(text, len, MIG_OP_PING, &back, NULL), -EBADMSG);
}

static void response_ok_without_state_is_refused_for_get_state(void **state)
{
    static const char text[] = "{\"ok\":true}";
    struct mig_resp back;
    g_autoptr(GError) err = NULL;

    assert_int_equal(mig_resp_parse(text, strlen(text), MIG_OP_PING, &back, NULL), 0);
    assert_null(back.state);
    assert_int_equal(mig_resp_parse(text, strlen(text), MIG_OP_GET_STATE, &back, &err),
                     -EBADMSG);
    assert_non_null(strstr(err->message, "response: state: missing"));
}

static void response_errors_round_trip_with_their_codes(void **state)
{
    for (enum mig_status s = MIG_STATUS_BAD_REQUEST; s <= MIG_STATUS_FAILED; s++) {
        struct mig_resp resp = { .status = s, .error = (char *)"what happened" };
        struct mig_resp back;
        size_t len;
        g_autofree char *text = mig_resp_encode(&resp, &len, NULL);
        g_autofree char *want = g_strdup_printf("{\"ok\":false,\"code\":\"%s\",\"error\":"
                                                "\"what happened\"}", mig_status_name(s));
        assert_string_equal(text, want);
        assert_int_equal(mig_resp_parse(text, len, MIG_OP_GET_STATE, &back, NULL), 0);
        assert_int_equal(back.status, s);
        assert_string_equal(back.error, "what happened");
        mig_resp_clear(&back);
    }
}

static void response_unknown_code_reads_as_failed_and_text_is_made_printable(void **state)
{
    static const char text[] = "{\"ok\":false,\"code\":\"on-fire\",\"error\":\"a\\nb\\u001bc\"}";
    struct mig_resp back;

    assert_int_equal(mig_resp_parse(text, strlen(text), MIG_OP_GET_STATE, &back, NULL), 0);
    assert_int_equal(back.status, MIG_STATUS_FAILED);
    assert_string_equal(back.error, "a?b?c");
    mig_resp_clear(&back);
}

static void response_encode_keeps_error_text_valid_and_bounded(void **state)
{
    g_autofree char *long_text = g_strnfill(3000, 'x');
    char bad[] = "bad \xff byte and a\ttab";
    struct mig_resp resp = { .status = MIG_STATUS_FAILED, .error = long_text };
    struct mig_resp back;
    size_t len;
    g_autofree char *t1 = mig_resp_encode(&resp, &len, NULL);

    assert_int_equal(mig_resp_parse(t1, len, MIG_OP_PING, &back, NULL), 0);
    assert_int_equal(strlen(back.error), MIG_ERROR_TEXT_MAX);
    mig_resp_clear(&back);
    resp.error = bad;
    g_autofree char *t2 = mig_resp_encode(&resp, &len, NULL);
    assert_int_equal(mig_resp_parse(t2, len, MIG_OP_PING, &back, NULL), 0);
    assert_string_equal(back.error, "bad \xef\xbf\xbd byte and a?tab");
    mig_resp_clear(&back);
}

static void response_encode_refuses_an_invalid_state(void **state)
{
    g_autoptr(device_state) st = small_state();
    struct mig_resp resp = { .status = MIG_STATUS_OK, .state = st };
    g_autoptr(GError) err = NULL;

    st->net.state.queue_pairs = 3;
    assert_null(mig_resp_encode(&resp, NULL, &err));
    assert_non_null(strstr(err->message, "net.queue_pairs: 3"));
}

static void response_with_a_bad_state_names_the_field_under_state(void **state)
{
    static const char text[] =
        "{\"ok\":true,\"state\":{\"version\":1,\"device\":\"vdpa0\",\"device_id\":1,"
        "\"features\":\"0x0\",\"stopped_at_us\":5,\"token\":\"t\",\"net\":{\"bogus\":1}}}";
    static const char v9[] = "{\"ok\":true,\"state\":{\"version\":9}}";
    struct mig_resp back;
    g_autoptr(GError) err = NULL;
    g_autoptr(GError) err9 = NULL;

    assert_int_equal(mig_resp_parse(text, strlen(text), MIG_OP_GET_STATE, &back, &err),
                     -EBADMSG);
    assert_string_equal(err->message, "response: state.net.bogus: unknown field");
    assert_int_equal(mig_resp_parse(v9, strlen(v9), MIG_OP_GET_STATE, &back, &err9),
                     -EPROTONOSUPPORT);
    assert_non_null(strstr(err9->message, "state.version: 9 is not supported"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(frame_read_whole_and_byte_by_byte_give_the_same_body),
        cmocka_unit_test(frame_reader_stops_at_the_end_of_the_frame),
        cmocka_unit_test(frame_length_zero_is_a_protocol_error),
        cmocka_unit_test(frame_over_one_mib_is_refused_from_its_header_alone),
        cmocka_unit_test(frame_of_exactly_one_mib_is_read),
        cmocka_unit_test(frame_buffer_grows_with_what_arrives),
        cmocka_unit_test(request_round_trips),
        cmocka_unit_test(request_parse_refuses_naming_the_field),
        cmocka_unit_test(response_with_state_round_trips),
        cmocka_unit_test(response_ok_without_state_is_refused_for_get_state),
        cmocka_unit_test(response_errors_round_trip_with_their_codes),
        cmocka_unit_test(response_unknown_code_reads_as_failed_and_text_is_made_printable),
        cmocka_unit_test(response_encode_keeps_error_text_valid_and_bounded),
        cmocka_unit_test(response_encode_refuses_an_invalid_state),
        cmocka_unit_test(response_with_a_bad_state_names_the_field_under_state),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
