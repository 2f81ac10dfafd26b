/* Unit tests: the device state codec (src/migration/device_state.c): round trips of random
 * states, the documented JSON, and the decoder's refusals naming the field. */
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

#include "migration/device_state.h"
#include "util/error.h"

#define F(bit) (1ull << (bit))
#define ALL_CTRL                                                                            \
    (F(VIRTIO_NET_F_CTRL_VQ) | F(VIRTIO_NET_F_CTRL_RX) | F(VIRTIO_NET_F_CTRL_RX_EXTRA) |    \
     F(VIRTIO_NET_F_CTRL_VLAN) | F(VIRTIO_NET_F_CTRL_MAC_ADDR) | F(VIRTIO_NET_F_MQ) |       \
     F(VIRTIO_NET_F_CTRL_GUEST_OFFLOADS) | F(VIRTIO_NET_F_MTU) | F(VIRTIO_F_VERSION_1))

static const uint8_t mac0[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };

/* A fixed state with a bit of everything, and its JSON (the documented form). */
static struct device_state *sample(void)
{
    struct device_state *st = device_state_new();

    st->device = g_strdup("vdpa0");
    st->virtio_id = VIRTIO_ID_NET;
    st->features = ALL_CTRL | F(1) | F(7);
    st->stopped_at_us = 1700000000123456;
    st->token = g_strdup("mig-42");
    st->net.max_queue_pairs = 4;
    st->net.mtu = 1500;
    net_state_reset(&st->net.state, mac0, st->features);
    st->net.state.queue_pairs = 2;
    st->net.state.promisc = true;
    st->net.state.nobcast = true;
    st->net.state.n_uni = 1;
    memcpy(st->net.state.uni[0], (uint8_t[6]){ 0x02, 0, 0, 0, 0, 1 }, 6);
    st->net.state.n_multi = 2;
    memcpy(st->net.state.multi[0], (uint8_t[6]){ 0x01, 0, 0x5e, 0, 0, 1 }, 6);
    memcpy(st->net.state.multi[1], (uint8_t[6]){ 0x33, 0x33, 0, 0, 0, 1 }, 6);
    st->net.state.vlan[0] = 1u << 5;
    st->net.state.vlan[4095 / 32] = 1u << (4095 % 32);
    st->net.state.guest_offloads = F(1);
    return st;
}

static const char sample_json[] =
    "{\"version\":1,\"device\":\"vdpa0\",\"device_id\":1,\"features\":\"0x0000000100de008e\","
    "\"stopped_at_us\":1700000000123456,\"token\":\"mig-42\",\"net\":{\"max_queue_pairs\":4,"
    "\"mtu\":1500,\"mac\":\"52:54:00:12:34:56\",\"queue_pairs\":2,\"promisc\":true,"
    "\"allmulti\":true,\"alluni\":false,\"nomulti\":false,\"nouni\":false,\"nobcast\":true,"
    "\"uni\":[\"02:00:00:00:00:01\"],\"uni_overflow\":false,\"multi\":[\"01:00:5e:00:00:01\","
    "\"33:33:00:00:00:01\"],\"multi_overflow\":false,\"vlans\":[5,4095],"
    "\"guest_offloads\":\"0x0000000000000002\"}}";

/* Decodes text, expects failure with errnum and a message containing each of the words. */
static void expect_refusal(const char *text, int errnum, const char *word1, const char *word2)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(device_state) st = device_state_decode(text, strlen(text), &err);

    assert_null(st);
    assert_non_null(err);
    if (vdpad_error_errno(err) != -errnum || (word1 && !strstr(err->message, word1)) ||
        (word2 && !strstr(err->message, word2)))
        fail_msg("for %s\n  got errno %d: %s\n  wanted errno %d with '%s' '%s'", text,
                 -vdpad_error_errno(err), err->message, errnum, word1, word2 ? word2 : "");
}

/* The sample's JSON with one substring replaced. */
static char *sample_with(const char *from, const char *to)
{
    const char *at = strstr(sample_json, from);

    assert_non_null(at);
    return g_strdup_printf("%.*s%s%s", (int)(at - sample_json), sample_json, to,
                           at + strlen(from));
}

/* ------------------------------------------------------------------ the format */

static void encode_writes_the_documented_json(void **state)
{
    g_autoptr(device_state) st = sample();
    g_autoptr(GError) err = NULL;
    size_t len;
    g_autofree char *text = device_state_encode(st, &len, &err);

    assert_non_null(text);
    assert_string_equal(text, sample_json);
    assert_int_equal(len, strlen(sample_json));
}

static void decode_of_the_documented_json_gives_the_sample(void **state)
{
    g_autoptr(device_state) want = sample();
    g_autoptr(GError) err = NULL;
    g_autoptr(device_state) got = device_state_decode(sample_json, strlen(sample_json), &err);

    assert_non_null(got);
    assert_true(device_state_equal(got, want));
    /* the decoder needs no NUL: a length that stops before the end is truncated JSON */
    g_autoptr(device_state) cut = device_state_decode(sample_json, strlen(sample_json) - 1, NULL);
    assert_null(cut);
}

static void decode_accepts_upper_case_hex_and_short_masks(void **state)
{
    g_autofree char *a = sample_with("\"0x0000000100de008e\"", "\"0x100DE008E\"");
    g_autofree char *b = sample_with("52:54:00:12:34:56", "52:54:00:12:34:5A");
    g_autoptr(device_state) sa = device_state_decode(a, strlen(a), NULL);
    g_autoptr(device_state) sb = device_state_decode(b, strlen(b), NULL);

    assert_non_null(sa);
    assert_true(sa->features == (ALL_CTRL | F(1) | F(7)));
    assert_non_null(sb);
    assert_int_equal(sb->net.state.mac[5], 0x5a);
}

/* ------------------------------------------------------------------ refusals */

static void decode_refuses_other_versions_before_anything_else(void **state)
{
    /* version 2 with a field version 1 does not know: the version is what is reported */
    g_autofree char *v2 = sample_with("\"version\":1,", "\"version\":2,\"blk\":{},");
    expect_refusal(v2, EPROTONOSUPPORT, "version: 2 is not supported", NULL);
    g_autofree char *v0 = sample_with("\"version\":1,", "\"version\":0,");
    expect_refusal(v0, EPROTONOSUPPORT, "version: 0", NULL);
    g_autofree char *vs = sample_with("\"version\":1,", "\"version\":\"1\",");
    expect_refusal(vs, EBADMSG, "version: a JSON string where an integer", NULL);
}

static void decode_refuses_unknown_fields_naming_them(void **state)
{
    g_autofree char *top = sample_with("\"device_id\":1,", "\"device_id\":1,\"colour\":\"red\",");
    expect_refusal(top, EBADMSG, "colour: unknown field", NULL);
    g_autofree char *net = sample_with("\"mtu\":1500,", "\"mtu\":1500,\"rss\":true,");
    expect_refusal(net, EBADMSG, "net.rss: unknown field", NULL);
    /* a hostile key is quoted safely */
    g_autofree char *ctl = sample_with("\"mtu\":1500,", "\"mtu\":1500,\"a\\nb\\u0001\":1,");
    expect_refusal(ctl, EBADMSG, "net.a\\x0ab\\x01: unknown field", NULL);
}

/* Every field of the sample, removed in turn, is reported missing by name. */
static void decode_refuses_each_missing_field_by_name(void **state)
{
    static const char *const top[] = { "version", "device", "device_id", "features",
                                       "stopped_at_us", "token", "net" };
    static const char *const net[] = {
        "max_queue_pairs", "mtu", "mac", "queue_pairs", "promisc", "allmulti", "alluni",
        "nomulti", "nouni", "nobcast", "uni", "uni_overflow", "multi", "multi_overflow",
        "vlans", "guest_offloads"
    };
    g_autoptr(device_state) st = sample();

    for (size_t i = 0; i < G_N_ELEMENTS(top) + G_N_ELEMENTS(net); i++) {
        bool in_net = i >= G_N_ELEMENTS(top);
        const char *key = in_net ? net[i - G_N_ELEMENTS(top)] : top[i];
        struct json_object *o = device_state_to_json(st, NULL);
        json_object_object_del(in_net ? json_object_object_get(o, "net") : o, key);
        const char *text = json_object_to_json_string(o);
        g_autofree char *want = g_strdup_printf("%s%s: missing", in_net ? "net." : "", key);
        if (g_str_equal(key, "version"))
            expect_refusal(text, EBADMSG, "version: missing", NULL);
        else
            expect_refusal(text, EBADMSG, want, NULL);
        json_object_put(o);
    }
}

static void decode_refuses_wrong_types_naming_the_field(void **state)
{
    static const struct {
        const char *from, *to, *word;
    } cases[] = {
        { "\"device_id\":1", "\"device_id\":1.0", "device_id: a JSON double" },
        { "\"device\":\"vdpa0\"", "\"device\":5", "device: a JSON int" },
        { "\"promisc\":true", "\"promisc\":1", "net.promisc: a JSON int where a boolean" },
        { "\"uni\":[\"02:00:00:00:00:01\"]", "\"uni\":\"02:00:00:00:00:01\"",
          "net.uni: a JSON string where an array" },
        { "\"uni\":[\"02:00:00:00:00:01\"]", "\"uni\":[2]", "net.uni[0]: a JSON int" },
        { "\"vlans\":[5,4095]", "\"vlans\":[5,\"6\"]", "net.vlans[1]: a JSON string" },
        { "\"features\":\"0x0000000100de008e\"", "\"features\":4303224962",
          "features: a JSON int where a string" },
    };

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autofree char *text = sample_with(cases[i].from, cases[i].to);
        expect_refusal(text, EBADMSG, cases[i].word, NULL);
    }
    g_autoptr(device_state) st = sample();
    struct json_object *o = device_state_to_json(st, NULL);
    json_object_object_add(o, "net", json_object_new_array());
    expect_refusal(json_object_to_json_string(o), EBADMSG, "net: a JSON array where an object",
                   NULL);
    json_object_put(o);
}

static void decode_checks_ranges_naming_the_field(void **state)
{
    static const struct {
        const char *from, *to, *word;
    } cases[] = {
        { "52:54:00:12:34:56", "52:54:00:12:34", "net.mac: '52:54:00:12:34' is not a MAC" },
        { "52:54:00:12:34:56", "52:54:00:12:34:56:78", "net.mac:" },
        { "52:54:00:12:34:56", "52-54-00-12-34-56", "net.mac:" },
        { "02:00:00:00:00:01", "02:00:00:00:00:0g", "net.uni[0]:" },
        { "\"vlans\":[5,4095]", "\"vlans\":[5,4096]", "net.vlans[1]: 4096 is not a VLAN id" },
        { "\"vlans\":[5,4095]", "\"vlans\":[-1]", "net.vlans[0]: -1" },
        { "\"vlans\":[5,4095]", "\"vlans\":[5,5]", "net.vlans[1]: 5 after 5" },
        { "\"vlans\":[5,4095]", "\"vlans\":[7,5]", "strictly ascending" },
        { "\"queue_pairs\":2", "\"queue_pairs\":5", "net.queue_pairs: 5 is out of range" },
        { "\"queue_pairs\":2", "\"queue_pairs\":0", "net.queue_pairs: 0 is out of range" },
        { "\"max_queue_pairs\":4", "\"max_queue_pairs\":17", "net.max_queue_pairs: 17" },
        { "\"max_queue_pairs\":4", "\"max_queue_pairs\":0", "net.max_queue_pairs: 0" },
        { "\"mtu\":1500", "\"mtu\":67", "net.mtu: 67 is out of range" },
        { "\"mtu\":1500", "\"mtu\":65536", "net.mtu: 65536" },
        { "\"device\":\"vdpa0\"", "\"device\":\".hidden\"", "device: '.hidden' is not a device" },
        { "\"device\":\"vdpa0\"", "\"device\":\"a/b\"", "device: 'a/b'" },
        { "\"device_id\":1", "\"device_id\":2", "device_id: 2 is not supported" },
        { "\"token\":\"mig-42\"", "\"token\":\"two words\"", "token: must be" },
        { "\"token\":\"mig-42\"", "\"token\":\"\"", "token: empty" },
        { "\"stopped_at_us\":1700000000123456", "\"stopped_at_us\":0", "stopped_at_us: 0" },
        { "\"stopped_at_us\":1700000000123456", "\"stopped_at_us\":99999999999999999999",
          "stopped_at_us:" },
        { "\"0x0000000100de008e\"", "\"0x10000000100de008e\"", "features:" },
        { "\"0x0000000100de008e\"", "\"100de008e\"", "features: '100de008e' is not a 64-bit" },
        { "\"0x0000000100de008e\"", "\"0x\"", "features: '0x'" },
        { "\"0x0000000000000002\"", "\"0x0000000000000400\"",
          "net.guest_offloads: 0x400 has bits beyond" },
    };

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autofree char *text = sample_with(cases[i].from, cases[i].to);
        expect_refusal(text, EBADMSG, cases[i].word, NULL);
    }
}

static void decode_refuses_mac_tables_over_64_entries(void **state)
{
    GString *list = g_string_new("\"uni\":[");

    for (int i = 0; i < NET_STATE_MAC_TABLE_MAX + 1; i++)
        g_string_append_printf(list, "%s\"02:00:00:00:00:%02x\"", i ? "," : "", i);
    g_string_append(list, "]");
    g_autofree char *l = g_string_free(list, FALSE);
    g_autofree char *text = sample_with("\"uni\":[\"02:00:00:00:00:01\"]", l);
    expect_refusal(text, EBADMSG, "net.uni: 65 entries, more than 64", NULL);
}

/* States no device reaches from reset under the negotiated features: the destination would
 * refuse their replay, so the decoder refuses them and says which feature is missing. */
static void decode_refuses_states_the_features_do_not_allow(void **state)
{
    static const struct {
        uint64_t drop;
        const char *word;
    } cases[] = {
        { F(VIRTIO_NET_F_CTRL_RX), "net.promisc: set without VIRTIO_NET_F_CTRL_RX" },
        { F(VIRTIO_NET_F_CTRL_RX_EXTRA), "net.nobcast: set without VIRTIO_NET_F_CTRL_RX_EXTRA" },
        { F(VIRTIO_NET_F_CTRL_VLAN), "net.vlans: VLAN 5 without VIRTIO_NET_F_CTRL_VLAN" },
        { F(VIRTIO_NET_F_MQ), "net.max_queue_pairs: 4 without VIRTIO_NET_F_MQ" },
        { F(VIRTIO_NET_F_MTU), "net.mtu: 1500 without VIRTIO_NET_F_MTU" },
        { F(VIRTIO_NET_F_CTRL_GUEST_OFFLOADS), "net.guest_offloads: 0x2 differs from the "
                                               "negotiated 0x82 without" },
    };

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autoptr(device_state) st = sample();
        st->features &= ~cases[i].drop;
        /* the JSON with the features changed and everything else as it was */
        char feat[40];
        g_snprintf(feat, sizeof(feat), "\"0x%016llx\"", (unsigned long long)st->features);
        g_autofree char *text = sample_with("\"0x0000000100de008e\"", feat);
        expect_refusal(text, EBADMSG, cases[i].word, NULL);
        /* and the encoder refuses the same state */
        g_autoptr(GError) err = NULL;
        assert_null(device_state_encode(st, NULL, &err));
        assert_int_equal(vdpad_error_errno(err), -EINVAL);
        assert_non_null(strstr(err->message, cases[i].word));
    }
}

static void decode_refuses_an_overflow_flag_without_a_full_table(void **state)
{
    g_autofree char *text = sample_with("\"uni_overflow\":false", "\"uni_overflow\":true");
    expect_refusal(text, EBADMSG, "net.uni_overflow: set with 1 entries", NULL);
}

static void decode_refuses_malformed_json(void **state)
{
    expect_refusal("", EBADMSG, "truncated", NULL);
    expect_refusal("{\"version\":1", EBADMSG, "truncated", NULL);
    expect_refusal("[1]", EBADMSG, "a JSON array where an object", NULL);
    expect_refusal("{\"version\":1} {}", EBADMSG, "device state: invalid JSON", NULL);
    expect_refusal("{'version':1,,}", EBADMSG, "invalid JSON", NULL);
    expect_refusal("{\"a\":{\"b\":{\"c\":{\"d\":{\"e\":{\"f\":{\"g\":{\"h\":{}}}}}}}}}", EBADMSG,
                   "nesting too deep", NULL);
    expect_refusal("{\"device\":\"\xff\xfe\"}", EBADMSG, "invalid JSON", NULL);
    g_autofree char *nul = sample_with("\"vdpa0\"", "\"vd\\u0000pa0\"");
    expect_refusal(nul, EBADMSG, "device: contains a NUL", NULL);
}

/* ------------------------------------------------------------------ random round trips */

static uint64_t random_features(GRand *r)
{
    static const int bits[] = { VIRTIO_NET_F_CTRL_VQ, VIRTIO_NET_F_CTRL_RX,
                                VIRTIO_NET_F_CTRL_RX_EXTRA, VIRTIO_NET_F_CTRL_VLAN,
                                VIRTIO_NET_F_CTRL_MAC_ADDR, VIRTIO_NET_F_MQ,
                                VIRTIO_NET_F_CTRL_GUEST_OFFLOADS, VIRTIO_NET_F_GUEST_ANNOUNCE,
                                VIRTIO_NET_F_MTU, VIRTIO_NET_F_MAC, VIRTIO_NET_F_STATUS,
                                1, 7, 8, 9, 10, 54, 55 };
    uint64_t f = F(VIRTIO_F_VERSION_1);

    for (size_t i = 0; i < G_N_ELEMENTS(bits); i++)
        if (g_rand_int_range(r, 0, 4)) /* mostly on: the interesting states need them */
            f |= F(bits[i]);
    return f;
}

static void random_mac(GRand *r, uint8_t mac[6])
{
    for (int i = 0; i < 6; i++)
        mac[i] = (uint8_t)g_rand_int(r);
}

/* A command as net_ctrl_parse could produce it (any value: apply decides). */
static void random_command(GRand *r, struct net_ctrl_cmd *c)
{
    memset(c, 0, sizeof(*c));
    switch (g_rand_int_range(r, 0, 7)) {
    case 0:
        c->class = VIRTIO_NET_CTRL_RX;
        c->cmd = (uint8_t)g_rand_int_range(r, 0, 6);
        c->u.on = g_rand_boolean(r);
        break;
    case 1:
        c->class = VIRTIO_NET_CTRL_MAC;
        c->cmd = VIRTIO_NET_CTRL_MAC_ADDR_SET;
        random_mac(r, c->u.mac);
        break;
    case 2: {
        c->class = VIRTIO_NET_CTRL_MAC;
        c->cmd = VIRTIO_NET_CTRL_MAC_TABLE_SET;
        unsigned nu = (unsigned)g_rand_int_range(r, 0, 80);
        unsigned nm = (unsigned)g_rand_int_range(r, 0, 80);
        c->u.table.uni_overflow = nu > NET_STATE_MAC_TABLE_MAX;
        c->u.table.multi_overflow = nm > NET_STATE_MAC_TABLE_MAX;
        c->u.table.n_uni = MIN(nu, NET_STATE_MAC_TABLE_MAX);
        c->u.table.n_multi = MIN(nm, NET_STATE_MAC_TABLE_MAX);
        for (unsigned i = 0; i < c->u.table.n_uni; i++)
            random_mac(r, c->u.table.uni[i]);
        for (unsigned i = 0; i < c->u.table.n_multi; i++)
            random_mac(r, c->u.table.multi[i]);
        break;
    }
    case 3:
    case 4:
        c->class = VIRTIO_NET_CTRL_VLAN;
        c->cmd = g_rand_int_range(r, 0, 4) ? VIRTIO_NET_CTRL_VLAN_ADD : VIRTIO_NET_CTRL_VLAN_DEL;
        c->u.vid = (uint16_t)g_rand_int_range(r, 0, 4200);
        break;
    case 5:
        c->class = VIRTIO_NET_CTRL_MQ;
        c->cmd = VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET;
        c->u.queue_pairs = (uint16_t)g_rand_int_range(r, 0, 20);
        break;
    default:
        c->class = VIRTIO_NET_CTRL_GUEST_OFFLOADS;
        c->cmd = VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET;
        c->u.offloads = ((uint64_t)g_rand_int(r) << 32 | g_rand_int(r)) &
                        (g_rand_int_range(r, 0, 8) ? NET_GUEST_OFFLOAD_FEATURES : ~0ull);
        break;
    }
}

/* A state a device reaches: reset, then random commands, each applied as the device does. */
static struct device_state *random_state(GRand *r, unsigned i)
{
    struct device_state *st = device_state_new();
    uint8_t mac[6];

    st->device = g_strdup_printf("vdpa%u", i);
    st->virtio_id = VIRTIO_ID_NET;
    st->features = random_features(r);
    st->stopped_at_us = g_rand_int_range(r, 1, G_MAXINT32) * (int64_t)1000000;
    st->token = g_strdup_printf("t%08x-%u~!", g_rand_int(r), i);
    st->net.max_queue_pairs = (st->features & F(VIRTIO_NET_F_MQ))
                                  ? (uint16_t)g_rand_int_range(r, 1, DEVICE_STATE_MAX_QUEUE_PAIRS + 1)
                                  : 1;
    st->net.mtu = (st->features & F(VIRTIO_NET_F_MTU)) ? (uint16_t)g_rand_int_range(r, 68, 65536)
                                                       : 0;
    random_mac(r, mac);
    mac[0] &= 0xfe;
    net_state_reset(&st->net.state, mac, st->features);
    int n = g_rand_int_range(r, 0, 60);
    for (int k = 0; k < n; k++) {
        struct net_ctrl_cmd c;
        random_command(r, &c);
        net_state_apply(&st->net.state, &c, st->features, st->net.max_queue_pairs, NULL);
    }
    return st;
}

/* Replays st into a freshly reset device: every command accepted, the same state. */
static void assert_replays(const struct device_state *st)
{
    static struct net_ctrl_cmd cmds[NET_STATE_REPLAY_MAX];
    struct net_state dst;
    unsigned n = net_state_replay(&st->net.state, st->features, cmds, NET_STATE_REPLAY_MAX);

    net_state_reset(&dst, st->net.state.mac, st->features);
    for (unsigned k = 0; k < n; k++) {
        const char *why = NULL;
        uint8_t ack = net_state_apply(&dst, &cmds[k], st->features, st->net.max_queue_pairs, &why);
        if (ack != VIRTIO_NET_OK)
            fail_msg("replayed command %u (class %u cmd %u) refused: %s", k, cmds[k].class,
                     cmds[k].cmd, why);
    }
    assert_true(net_state_equal(&dst, &st->net.state));
}

static void random_states_survive_encode_and_decode_byte_exact(void **state)
{
    g_autoptr(GRand) r = g_rand_new_with_seed(20240607);

    for (unsigned i = 0; i < 1500; i++) {
        g_autoptr(device_state) st = random_state(r, i);
        g_autoptr(GError) err = NULL;
        size_t len;
        g_autofree char *text = device_state_encode(st, &len, &err);
        if (!text)
            fail_msg("state %u: %s", i, err->message);
        g_autoptr(device_state) back = device_state_decode(text, len, &err);
        if (!back)
            fail_msg("state %u: %s\n%s", i, err->message, text);
        assert_true(device_state_equal(st, back));
        g_autofree char *again = device_state_encode(back, NULL, NULL);
        assert_string_equal(text, again);
        assert_replays(back);
    }
}

/* The other direction: random field values, not commands. Whatever the validator accepts
 * replays exactly (its rules are not weaker than what a device accepts). */
static void every_state_the_validator_accepts_replays_exactly(void **state)
{
    g_autoptr(GRand) r = g_rand_new_with_seed(77);
    unsigned accepted = 0, refused = 0;

    for (unsigned i = 0; i < 3000; i++) {
        g_autoptr(device_state) st = device_state_new();
        struct net_state *s = &st->net.state;
        st->device = g_strdup("d");
        st->virtio_id = VIRTIO_ID_NET;
        st->features = random_features(r);
        /* mostly consistent with the features, sometimes not */
        int skew = g_rand_int_range(r, 0, 8) == 0;
        st->stopped_at_us = 1;
        st->token = g_strdup("t");
        st->net.max_queue_pairs = (st->features & F(VIRTIO_NET_F_MQ))
                                      ? (uint16_t)g_rand_int_range(r, 1, 4)
                                      : (uint16_t)(1 + (skew ? g_rand_int_range(r, 0, 3) : 0));
        st->net.mtu = ((st->features & F(VIRTIO_NET_F_MTU)) != 0) != skew ? 1500 : 0;
        random_mac(r, s->mac);
        bool *flags[] = { &s->promisc, &s->alluni, &s->nomulti, &s->nouni, &s->nobcast };
        for (size_t k = 0; k < G_N_ELEMENTS(flags); k++)
            *flags[k] = g_rand_int_range(r, 0, 4) == 0;
        s->allmulti = g_rand_int_range(r, 0, 4) != 0;
        s->n_uni = g_rand_int_range(r, 0, 3) ? 0 : (unsigned)g_rand_int_range(r, 0, 65);
        s->n_multi = g_rand_int_range(r, 0, 3) ? 0 : (unsigned)g_rand_int_range(r, 0, 65);
        s->uni_overflow = s->n_uni == NET_STATE_MAC_TABLE_MAX && g_rand_boolean(r);
        s->multi_overflow = (s->n_multi == NET_STATE_MAC_TABLE_MAX || skew) &&
                            g_rand_boolean(r);
        for (unsigned k = 0; k < s->n_uni; k++)
            random_mac(r, s->uni[k]);
        for (unsigned k = 0; k < s->n_multi; k++)
            random_mac(r, s->multi[k]);
        if (g_rand_int_range(r, 0, 3) == 0)
            s->vlan[g_rand_int_range(r, 0, 128)] = g_rand_int(r);
        s->queue_pairs = (uint16_t)g_rand_int_range(r, 1, st->net.max_queue_pairs + 1 + skew);
        s->guest_offloads = g_rand_int_range(r, 0, 3)
                                ? st->features & NET_GUEST_OFFLOAD_FEATURES
                                : st->features & NET_GUEST_OFFLOAD_FEATURES & g_rand_int(r);
        if (device_state_validate(st, NULL) < 0) {
            refused++;
            continue;
        }
        accepted++;
        assert_replays(st);
    }
    /* both sides of the rules were exercised */
    print_message("accepted %u, refused %u\n", accepted, refused);
    assert_true(accepted > 300);
    assert_true(refused > 300);
}

static void copy_is_deep_and_equal(void **state)
{
    g_autoptr(device_state) st = sample();
    g_autoptr(device_state) c = device_state_copy(st);

    assert_true(device_state_equal(st, c));
    assert_ptr_not_equal(st->device, c->device);
    c->token[0] = 'X';
    assert_false(device_state_equal(st, c));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(encode_writes_the_documented_json),
        cmocka_unit_test(decode_of_the_documented_json_gives_the_sample),
        cmocka_unit_test(decode_accepts_upper_case_hex_and_short_masks),
        cmocka_unit_test(decode_refuses_other_versions_before_anything_else),
        cmocka_unit_test(decode_refuses_unknown_fields_naming_them),
        cmocka_unit_test(decode_refuses_each_missing_field_by_name),
        cmocka_unit_test(decode_refuses_wrong_types_naming_the_field),
        cmocka_unit_test(decode_checks_ranges_naming_the_field),
        cmocka_unit_test(decode_refuses_mac_tables_over_64_entries),
        cmocka_unit_test(decode_refuses_states_the_features_do_not_allow),
        cmocka_unit_test(decode_refuses_an_overflow_flag_without_a_full_table),
        cmocka_unit_test(decode_refuses_malformed_json),
        cmocka_unit_test(random_states_survive_encode_and_decode_byte_exact),
        cmocka_unit_test(every_state_the_validator_accepts_replays_exactly),
        cmocka_unit_test(copy_is_deep_and_equal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
