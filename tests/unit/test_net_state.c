/* Unit tests: virtio-net control command parsing, the state model, the receive filter and
 * replay. */
#include "config.h"

#include <errno.h>
#include <glib.h>
#include <linux/virtio_net.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include "virtio/net_state.h"

#define F(bit) (1ull << (bit))
#define ALL_CTRL                                                                            \
    (F(VIRTIO_NET_F_CTRL_VQ) | F(VIRTIO_NET_F_CTRL_RX) | F(VIRTIO_NET_F_CTRL_RX_EXTRA) |    \
     F(VIRTIO_NET_F_CTRL_VLAN) | F(VIRTIO_NET_F_CTRL_MAC_ADDR) | F(VIRTIO_NET_F_MQ) |       \
     F(VIRTIO_NET_F_CTRL_GUEST_OFFLOADS) | F(VIRTIO_NET_F_GUEST_ANNOUNCE))

static const uint8_t own_mac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };

/* Parses len bytes from an exact-size heap copy, so ASan sees any read past len. */
static int parse_exact(const uint8_t *bytes, size_t len, struct net_ctrl_cmd *cmd,
                       const char **why)
{
    g_autofree uint8_t *copy = g_malloc(len ? len : 1);
    memcpy(copy, bytes, len);
    return net_ctrl_parse(len ? copy : NULL, len, cmd, why);
}

/* le32 count + macs, appended to a GByteArray */
static void put_mac_list(GByteArray *a, uint32_t entries, uint32_t present, uint8_t first_byte)
{
    uint8_t le[4] = { entries & 0xff, (entries >> 8) & 0xff, (entries >> 16) & 0xff,
                      entries >> 24 };
    g_byte_array_append(a, le, 4);
    for (uint32_t i = 0; i < present; i++) {
        uint8_t mac[6] = { first_byte, 0, 0, 0, (uint8_t)(i >> 8), (uint8_t)i };
        g_byte_array_append(a, mac, 6);
    }
}

static GByteArray *table_set(uint32_t n_uni, uint32_t n_multi)
{
    GByteArray *a = g_byte_array_new();
    uint8_t hdr[2] = { VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_TABLE_SET };

    g_byte_array_append(a, hdr, 2);
    put_mac_list(a, n_uni, n_uni, 0x02);
    put_mac_list(a, n_multi, n_multi, 0x01);
    return a;
}

/* ------------------------------------------------------------------ parsing */

static void parse_rx_commands_with_values_0_and_1(void **state)
{
    for (uint8_t c = VIRTIO_NET_CTRL_RX_PROMISC; c <= VIRTIO_NET_CTRL_RX_NOBCAST; c++) {
        for (uint8_t v = 0; v <= 1; v++) {
            uint8_t w[3] = { VIRTIO_NET_CTRL_RX, c, v };
            struct net_ctrl_cmd cmd;
            assert_int_equal(parse_exact(w, sizeof(w), &cmd, NULL), 0);
            assert_int_equal(cmd.class, VIRTIO_NET_CTRL_RX);
            assert_int_equal(cmd.cmd, c);
            assert_int_equal(cmd.u.on, v == 1);
        }
    }
}

static void parse_rx_value_other_than_0_or_1_is_einval(void **state)
{
    const uint8_t values[] = { 2, 0x80, 0xff };
    struct net_ctrl_cmd cmd;
    const char *why = NULL;

    for (size_t i = 0; i < G_N_ELEMENTS(values); i++) {
        uint8_t w[3] = { VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_PROMISC, values[i] };
        assert_int_equal(parse_exact(w, sizeof(w), &cmd, &why), -EINVAL);
        assert_non_null(strstr(why, "0 nor 1"));
    }
}

static void parse_mac_addr_set(void **state)
{
    uint8_t w[8] = { VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_ADDR_SET, 0x52, 0x54, 0, 1, 2, 3 };
    struct net_ctrl_cmd cmd;

    assert_int_equal(parse_exact(w, sizeof(w), &cmd, NULL), 0);
    assert_memory_equal(cmd.u.mac, w + 2, 6);
}

static void parse_vlan_mq_offloads_are_little_endian(void **state)
{
    uint8_t vlan_add[4] = { VIRTIO_NET_CTRL_VLAN, VIRTIO_NET_CTRL_VLAN_ADD, 0x34, 0x02 };
    uint8_t vlan_del[4] = { VIRTIO_NET_CTRL_VLAN, VIRTIO_NET_CTRL_VLAN_DEL, 0xff, 0xff };
    uint8_t mq[4] = { VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, 0x04, 0x01 };
    uint8_t off[10] = { VIRTIO_NET_CTRL_GUEST_OFFLOADS, VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET,
                        0x82, 0x01, 0, 0, 0, 0, 0xc0, 0x00 };
    uint8_t ack[2] = { VIRTIO_NET_CTRL_ANNOUNCE, VIRTIO_NET_CTRL_ANNOUNCE_ACK };
    struct net_ctrl_cmd cmd;

    assert_int_equal(parse_exact(vlan_add, sizeof(vlan_add), &cmd, NULL), 0);
    assert_int_equal(cmd.cmd, VIRTIO_NET_CTRL_VLAN_ADD);
    assert_int_equal(cmd.u.vid, 0x0234);
    /* out-of-range ids parse; the device refuses them (apply) */
    assert_int_equal(parse_exact(vlan_del, sizeof(vlan_del), &cmd, NULL), 0);
    assert_int_equal(cmd.cmd, VIRTIO_NET_CTRL_VLAN_DEL);
    assert_int_equal(cmd.u.vid, 0xffff);
    assert_int_equal(parse_exact(mq, sizeof(mq), &cmd, NULL), 0);
    assert_int_equal(cmd.u.queue_pairs, 0x0104);
    assert_int_equal(parse_exact(off, sizeof(off), &cmd, NULL), 0);
    assert_true(cmd.u.offloads == 0x00c0000000000182ull);
    assert_int_equal(parse_exact(ack, sizeof(ack), &cmd, NULL), 0);
    assert_int_equal(cmd.class, VIRTIO_NET_CTRL_ANNOUNCE);
}

static void parse_mac_table_reads_unicast_then_multicast(void **state)
{
    g_autoptr(GByteArray) w = table_set(2, 3);
    struct net_ctrl_cmd cmd;

    assert_int_equal(parse_exact(w->data, w->len, &cmd, NULL), 0);
    assert_int_equal(cmd.u.table.n_uni, 2);
    assert_int_equal(cmd.u.table.n_multi, 3);
    assert_false(cmd.u.table.uni_overflow);
    assert_false(cmd.u.table.multi_overflow);
    assert_int_equal(cmd.u.table.uni[1][0], 0x02);
    assert_int_equal(cmd.u.table.uni[1][5], 1);
    assert_int_equal(cmd.u.table.multi[2][0], 0x01);
    assert_int_equal(cmd.u.table.multi[2][5], 2);

    /* empty lists are fine */
    g_autoptr(GByteArray) empty = table_set(0, 0);
    assert_int_equal(parse_exact(empty->data, empty->len, &cmd, NULL), 0);
    assert_int_equal(cmd.u.table.n_uni + cmd.u.table.n_multi, 0);
}

static void parse_mac_table_over_64_keeps_64_and_sets_overflow(void **state)
{
    g_autoptr(GByteArray) w = table_set(65, 300);
    struct net_ctrl_cmd cmd;

    assert_int_equal(parse_exact(w->data, w->len, &cmd, NULL), 0);
    assert_int_equal(cmd.u.table.n_uni, NET_STATE_MAC_TABLE_MAX);
    assert_int_equal(cmd.u.table.n_multi, NET_STATE_MAC_TABLE_MAX);
    assert_true(cmd.u.table.uni_overflow);
    assert_true(cmd.u.table.multi_overflow);
    assert_int_equal(cmd.u.table.uni[63][5], 63);
    assert_int_equal(cmd.u.table.multi[63][5], 63);

    g_autoptr(GByteArray) exact = table_set(64, 64);
    assert_int_equal(parse_exact(exact->data, exact->len, &cmd, NULL), 0);
    assert_false(cmd.u.table.uni_overflow);
    assert_false(cmd.u.table.multi_overflow);
}

static void parse_mac_table_hostile_counts_are_einval(void **state)
{
    /* counts whose byte size is huge, or wraps to something small in 32 bits */
    const uint32_t hostile[] = { 0xffffffffu, 0x80000000u, 0x2aaaaaabu, 65 };
    struct net_ctrl_cmd cmd;
    const char *why;

    for (size_t i = 0; i < G_N_ELEMENTS(hostile); i++) {
        /* in the unicast list, followed by a valid empty multicast list */
        g_autoptr(GByteArray) a = g_byte_array_new();
        uint8_t hdr[2] = { VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_TABLE_SET };
        g_byte_array_append(a, hdr, 2);
        put_mac_list(a, hostile[i], 1, 0x02);
        put_mac_list(a, 0, 0, 0x01);
        why = NULL;
        assert_int_equal(parse_exact(a->data, a->len, &cmd, &why), -EINVAL);
        assert_non_null(why);

        /* in the multicast list */
        g_autoptr(GByteArray) b = g_byte_array_new();
        g_byte_array_append(b, hdr, 2);
        put_mac_list(b, 1, 1, 0x02);
        put_mac_list(b, hostile[i], 2, 0x01);
        assert_int_equal(parse_exact(b->data, b->len, &cmd, &why), -EINVAL);
    }
}

static void parse_mac_table_overflow_still_needs_declared_bytes(void **state)
{
    g_autoptr(GByteArray) a = g_byte_array_new();
    uint8_t hdr[2] = { VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_TABLE_SET };
    struct net_ctrl_cmd cmd;

    g_byte_array_append(a, hdr, 2);
    put_mac_list(a, 0, 0, 0x02);
    put_mac_list(a, 70, 69, 0x01); /* one entry short */
    assert_int_equal(parse_exact(a->data, a->len, &cmd, NULL), -EINVAL);
}

/* Every command of every kind, valid, as wire bytes. */
static GPtrArray *valid_commands(void)
{
    GPtrArray *all = g_ptr_array_new_with_free_func((GDestroyNotify)g_byte_array_unref);
    static const uint8_t fixed[][10] = {
        { 3, VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_PROMISC, 1 },
        { 3, VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_NOBCAST, 0 },
        { 8, VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_ADDR_SET, 2, 0, 0, 0, 0, 9 },
        { 4, VIRTIO_NET_CTRL_VLAN, VIRTIO_NET_CTRL_VLAN_ADD, 5, 0 },
        { 4, VIRTIO_NET_CTRL_VLAN, VIRTIO_NET_CTRL_VLAN_DEL, 5, 0 },
        { 2, VIRTIO_NET_CTRL_ANNOUNCE, VIRTIO_NET_CTRL_ANNOUNCE_ACK },
        { 4, VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, 2, 0 },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(fixed); i++) {
        GByteArray *a = g_byte_array_new();
        g_byte_array_append(a, fixed[i] + 1, fixed[i][0]);
        g_ptr_array_add(all, a);
    }
    GByteArray *off = g_byte_array_new();
    uint8_t o[10] = { VIRTIO_NET_CTRL_GUEST_OFFLOADS, VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET, 0x82 };
    g_byte_array_append(off, o, sizeof(o));
    g_ptr_array_add(all, off);
    g_ptr_array_add(all, table_set(3, 2));
    g_ptr_array_add(all, table_set(66, 1));
    return all;
}

static void parse_truncated_at_every_length_is_einval(void **state)
{
    g_autoptr(GPtrArray) all = valid_commands();
    struct net_ctrl_cmd cmd;
    const char *why;

    for (unsigned i = 0; i < all->len; i++) {
        GByteArray *w = g_ptr_array_index(all, i);
        assert_int_equal(parse_exact(w->data, w->len, &cmd, NULL), 0);
        for (size_t len = 0; len < w->len; len++) {
            why = NULL;
            assert_int_equal(parse_exact(w->data, len, &cmd, &why), -EINVAL);
            assert_non_null(why);
        }
    }
}

static void parse_trailing_bytes_are_einval(void **state)
{
    g_autoptr(GPtrArray) all = valid_commands();
    struct net_ctrl_cmd cmd;

    for (unsigned i = 0; i < all->len; i++) {
        GByteArray *w = g_ptr_array_index(all, i);
        g_autoptr(GByteArray) longer = g_byte_array_new();
        uint8_t extra = 0;
        g_byte_array_append(longer, w->data, w->len);
        g_byte_array_append(longer, &extra, 1);
        assert_int_equal(parse_exact(longer->data, longer->len, &cmd, NULL), -EINVAL);
    }
}

static void parse_unknown_class_or_cmd_is_eopnotsupp(void **state)
{
    const uint8_t unknown[][3] = {
        { VIRTIO_NET_CTRL_RX, 6, 0 },      { VIRTIO_NET_CTRL_MAC, 2, 0 },
        { VIRTIO_NET_CTRL_VLAN, 2, 0 },    { VIRTIO_NET_CTRL_ANNOUNCE, 1, 0 },
        { VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_RSS_CONFIG, 0 },
        { VIRTIO_NET_CTRL_GUEST_OFFLOADS, 1, 0 },
        { 6, 0, 0 }, { 0xff, 0xff, 0 },
    };
    struct net_ctrl_cmd cmd;

    for (size_t i = 0; i < G_N_ELEMENTS(unknown); i++) {
        const char *why = NULL;
        assert_int_equal(parse_exact(unknown[i], 3, &cmd, &why), -EOPNOTSUPP);
        assert_non_null(why);
    }
}

/* ------------------------------------------------------------------ apply */

static struct net_ctrl_cmd rx_cmd(uint8_t which, bool on)
{
    return (struct net_ctrl_cmd){ .class = VIRTIO_NET_CTRL_RX, .cmd = which, .u.on = on };
}

static void apply_needs_the_feature_of_each_command(void **state)
{
    struct {
        struct net_ctrl_cmd cmd;
        int feature;
    } cases[] = {
        { rx_cmd(VIRTIO_NET_CTRL_RX_PROMISC, true), VIRTIO_NET_F_CTRL_RX },
        { rx_cmd(VIRTIO_NET_CTRL_RX_ALLMULTI, false), VIRTIO_NET_F_CTRL_RX },
        { rx_cmd(VIRTIO_NET_CTRL_RX_ALLUNI, true), VIRTIO_NET_F_CTRL_RX_EXTRA },
        { rx_cmd(VIRTIO_NET_CTRL_RX_NOMULTI, true), VIRTIO_NET_F_CTRL_RX_EXTRA },
        { rx_cmd(VIRTIO_NET_CTRL_RX_NOUNI, true), VIRTIO_NET_F_CTRL_RX_EXTRA },
        { rx_cmd(VIRTIO_NET_CTRL_RX_NOBCAST, true), VIRTIO_NET_F_CTRL_RX_EXTRA },
        { { .class = VIRTIO_NET_CTRL_MAC, .cmd = VIRTIO_NET_CTRL_MAC_ADDR_SET,
            .u.mac = { 2, 0, 0, 0, 0, 7 } }, VIRTIO_NET_F_CTRL_MAC_ADDR },
        { { .class = VIRTIO_NET_CTRL_MAC, .cmd = VIRTIO_NET_CTRL_MAC_TABLE_SET,
            .u.table = { .n_uni = 1, .uni = { { 2, 0, 0, 0, 0, 8 } } } }, VIRTIO_NET_F_CTRL_RX },
        { { .class = VIRTIO_NET_CTRL_VLAN, .cmd = VIRTIO_NET_CTRL_VLAN_ADD, .u.vid = 7 },
          VIRTIO_NET_F_CTRL_VLAN },
        { { .class = VIRTIO_NET_CTRL_MQ, .cmd = VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET,
            .u.queue_pairs = 2 }, VIRTIO_NET_F_MQ },
        { { .class = VIRTIO_NET_CTRL_GUEST_OFFLOADS, .cmd = VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET,
            .u.offloads = 0 }, VIRTIO_NET_F_CTRL_GUEST_OFFLOADS },
        { { .class = VIRTIO_NET_CTRL_ANNOUNCE, .cmd = VIRTIO_NET_CTRL_ANNOUNCE_ACK },
          VIRTIO_NET_F_GUEST_ANNOUNCE },
    };
    struct net_state st, before;

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        uint64_t without = ALL_CTRL & ~F(cases[i].feature);
        const char *why = NULL;

        net_state_reset(&st, own_mac, without);
        before = st;
        assert_int_equal(net_state_apply(&st, &cases[i].cmd, without, 4, &why), VIRTIO_NET_ERR);
        assert_non_null(why);
        /* ERR leaves the state as it was, byte for byte */
        assert_memory_equal(&st, &before, sizeof(st));

        net_state_reset(&st, own_mac, ALL_CTRL);
        assert_int_equal(net_state_apply(&st, &cases[i].cmd, ALL_CTRL, 4, NULL), VIRTIO_NET_OK);
    }
}

static void apply_sets_the_commanded_state(void **state)
{
    struct net_state st;
    struct net_ctrl_cmd c;

    net_state_reset(&st, own_mac, ALL_CTRL);
    c = rx_cmd(VIRTIO_NET_CTRL_RX_PROMISC, true);
    assert_int_equal(net_state_apply(&st, &c, ALL_CTRL, 4, NULL), VIRTIO_NET_OK);
    assert_true(st.promisc);
    c = rx_cmd(VIRTIO_NET_CTRL_RX_ALLMULTI, false);
    assert_int_equal(net_state_apply(&st, &c, ALL_CTRL, 4, NULL), VIRTIO_NET_OK);
    assert_false(st.allmulti);
    c = rx_cmd(VIRTIO_NET_CTRL_RX_NOUNI, true);
    assert_int_equal(net_state_apply(&st, &c, ALL_CTRL, 4, NULL), VIRTIO_NET_OK);
    assert_true(st.nouni);

    c = (struct net_ctrl_cmd){ .class = VIRTIO_NET_CTRL_MAC, .cmd = VIRTIO_NET_CTRL_MAC_ADDR_SET,
                               .u.mac = { 2, 1, 2, 3, 4, 5 } };
    assert_int_equal(net_state_apply(&st, &c, ALL_CTRL, 4, NULL), VIRTIO_NET_OK);
    assert_memory_equal(st.mac, c.u.mac, 6);

    g_autoptr(GByteArray) w = table_set(2, 70);
    assert_int_equal(net_ctrl_parse(w->data, w->len, &c, NULL), 0);
    assert_int_equal(net_state_apply(&st, &c, ALL_CTRL, 4, NULL), VIRTIO_NET_OK);
    assert_int_equal(st.n_uni, 2);
    assert_int_equal(st.n_multi, 64);
    assert_false(st.uni_overflow);
    assert_true(st.multi_overflow);
    /* a later, smaller table replaces the whole table */
    g_autoptr(GByteArray) w2 = table_set(1, 0);
    assert_int_equal(net_ctrl_parse(w2->data, w2->len, &c, NULL), 0);
    assert_int_equal(net_state_apply(&st, &c, ALL_CTRL, 4, NULL), VIRTIO_NET_OK);
    assert_int_equal(st.n_uni, 1);
    assert_int_equal(st.n_multi, 0);
    assert_false(st.multi_overflow);

    c = (struct net_ctrl_cmd){ .class = VIRTIO_NET_CTRL_VLAN, .cmd = VIRTIO_NET_CTRL_VLAN_ADD,
                               .u.vid = 4095 };
    assert_int_equal(net_state_apply(&st, &c, ALL_CTRL, 4, NULL), VIRTIO_NET_OK);
    assert_true(st.vlan[127] & (1u << 31));
    c.cmd = VIRTIO_NET_CTRL_VLAN_DEL;
    assert_int_equal(net_state_apply(&st, &c, ALL_CTRL, 4, NULL), VIRTIO_NET_OK);
    assert_int_equal(st.vlan[127], 0);
}

static void apply_refuses_bad_values_and_keeps_state(void **state)
{
    uint64_t feat = ALL_CTRL | F(VIRTIO_NET_F_GUEST_CSUM) | F(VIRTIO_NET_F_GUEST_TSO4);
    struct net_state st, before;
    struct net_ctrl_cmd c;
    const char *why;

    net_state_reset(&st, own_mac, feat);
    before = st;

    c = (struct net_ctrl_cmd){ .class = VIRTIO_NET_CTRL_VLAN, .cmd = VIRTIO_NET_CTRL_VLAN_ADD,
                               .u.vid = 4096 };
    assert_int_equal(net_state_apply(&st, &c, feat, 4, &why), VIRTIO_NET_ERR);
    assert_non_null(strstr(why, "4096"));

    c = (struct net_ctrl_cmd){ .class = VIRTIO_NET_CTRL_MQ, .cmd = VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET };
    const uint16_t bad_pairs[] = { 0, 5, 0x8001, 0xffff };
    for (size_t i = 0; i < G_N_ELEMENTS(bad_pairs); i++) {
        c.u.queue_pairs = bad_pairs[i];
        assert_int_equal(net_state_apply(&st, &c, feat, 4, NULL), VIRTIO_NET_ERR);
    }
    /* a bigger bound admits a bigger value, but never beyond the spec's 0x8000 */
    c.u.queue_pairs = 5;
    net_state_reset(&st, own_mac, feat);
    assert_int_equal(net_state_apply(&st, &c, feat, 5, NULL), VIRTIO_NET_OK);
    assert_int_equal(st.queue_pairs, 5);
    c.u.queue_pairs = 1;
    assert_int_equal(net_state_apply(&st, &c, feat, 5, NULL), VIRTIO_NET_OK);
    assert_int_equal(st.queue_pairs, 1);

    c = (struct net_ctrl_cmd){ .class = VIRTIO_NET_CTRL_GUEST_OFFLOADS,
                               .cmd = VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET };
    c.u.offloads = F(VIRTIO_NET_F_GUEST_TSO6); /* an offload, not negotiated */
    assert_int_equal(net_state_apply(&st, &c, feat, 4, NULL), VIRTIO_NET_ERR);
    c.u.offloads = F(VIRTIO_NET_F_CTRL_VQ); /* negotiated, but not an offload */
    assert_int_equal(net_state_apply(&st, &c, feat, 4, NULL), VIRTIO_NET_ERR);
    assert_memory_equal(&st, &before, sizeof(st));
    c.u.offloads = F(VIRTIO_NET_F_GUEST_TSO4);
    assert_int_equal(net_state_apply(&st, &c, feat, 4, NULL), VIRTIO_NET_OK);
    assert_true(st.guest_offloads == F(VIRTIO_NET_F_GUEST_TSO4));
    c.u.offloads = 0;
    assert_int_equal(net_state_apply(&st, &c, feat, 4, NULL), VIRTIO_NET_OK);
    assert_true(st.guest_offloads == 0);

    /* hand-built commands apply cannot have come from parse */
    before = st;
    c = (struct net_ctrl_cmd){ .class = VIRTIO_NET_CTRL_MAC, .cmd = VIRTIO_NET_CTRL_MAC_TABLE_SET,
                               .u.table.n_uni = NET_STATE_MAC_TABLE_MAX + 1 };
    assert_int_equal(net_state_apply(&st, &c, feat, 4, NULL), VIRTIO_NET_ERR);
    c = (struct net_ctrl_cmd){ .class = 9, .cmd = 0 };
    assert_int_equal(net_state_apply(&st, &c, feat, 4, NULL), VIRTIO_NET_ERR);
    assert_memory_equal(&st, &before, sizeof(st));
}

static void reset_filters_unicast_but_passes_multicast(void **state)
{
    uint64_t feat = ALL_CTRL | F(VIRTIO_NET_F_GUEST_CSUM) | F(VIRTIO_NET_F_HOST_TSO4);
    struct net_state st;

    memset(&st, 0xa5, sizeof(st));
    net_state_reset(&st, own_mac, feat);
    assert_memory_equal(st.mac, own_mac, 6);
    assert_false(st.promisc);
    assert_true(st.allmulti);
    assert_false(st.alluni || st.nomulti || st.nouni || st.nobcast);
    assert_false(st.uni_overflow || st.multi_overflow);
    assert_int_equal(st.n_uni + st.n_multi, 0);
    assert_int_equal(st.queue_pairs, 1);
    /* only the guest offload bits of the features */
    assert_true(st.guest_offloads == F(VIRTIO_NET_F_GUEST_CSUM));
    for (unsigned i = 0; i < G_N_ELEMENTS(st.vlan); i++)
        assert_int_equal(st.vlan[i], 0);
}

/* ------------------------------------------------------------------ filter */

static const uint8_t other_uni[6] = { 0x52, 0x54, 0x00, 0xaa, 0xbb, 0xcc };
static const uint8_t table_uni[6] = { 0x02, 0x00, 0x00, 0x00, 0x00, 0x01 };
static const uint8_t bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
static const uint8_t mcast[6] = { 0x01, 0x00, 0x5e, 0x00, 0x00, 0x01 };
static const uint8_t table_mcast[6] = { 0x33, 0x33, 0x00, 0x00, 0x00, 0x01 };

/* untagged, or 802.1Q-tagged with vid (vid < 0 = untagged), 60 bytes */
static bool pass(const struct net_state *st, uint64_t feat, const uint8_t dst[6], int vid,
                 size_t len)
{
    uint8_t frame[60] = { 0 };

    memcpy(frame, dst, 6);
    memcpy(frame + 6, other_uni, 6);
    if (vid >= 0) {
        frame[12] = 0x81;
        frame[13] = 0x00;
        frame[14] = (uint8_t)(0xe0 | ((vid >> 8) & 0x0f)); /* PCP bits must not matter */
        frame[15] = (uint8_t)vid;
        frame[16] = 0x08;
    } else {
        frame[12] = 0x08;
    }
    g_autofree uint8_t *exact = g_memdup2(frame, len);
    return net_state_accepts(st, feat, exact, len);
}

static void filter_after_reset_accepts_own_mac_broadcast_and_multicast(void **state)
{
    struct net_state st;

    net_state_reset(&st, own_mac, ALL_CTRL);
    assert_true(pass(&st, ALL_CTRL, own_mac, -1, 60));
    assert_false(pass(&st, ALL_CTRL, other_uni, -1, 60));
    assert_true(pass(&st, ALL_CTRL, bcast, -1, 60));
    assert_true(pass(&st, ALL_CTRL, mcast, -1, 60));
}

static void filter_promisc_accepts_all_but_short_frames(void **state)
{
    struct net_state st;

    net_state_reset(&st, own_mac, ALL_CTRL);
    st.promisc = true;
    st.nouni = st.nomulti = st.nobcast = true; /* promisc overrides them */
    assert_true(pass(&st, ALL_CTRL, other_uni, -1, 60));
    assert_true(pass(&st, ALL_CTRL, bcast, -1, 60));
    assert_true(pass(&st, ALL_CTRL, mcast, 100, 60)); /* VLAN not in the table */
    assert_true(pass(&st, ALL_CTRL, own_mac, -1, 14));
    assert_false(pass(&st, ALL_CTRL, own_mac, -1, 13));
    assert_false(net_state_accepts(&st, ALL_CTRL, NULL, 0));
}

static void filter_multicast_modes_and_table(void **state)
{
    struct net_state st;

    net_state_reset(&st, own_mac, ALL_CTRL);
    st.allmulti = false;
    assert_false(pass(&st, ALL_CTRL, mcast, -1, 60));
    assert_true(pass(&st, ALL_CTRL, bcast, -1, 60)); /* broadcast is not table-filtered */
    st.n_multi = 1;
    memcpy(st.multi[0], table_mcast, 6);
    assert_true(pass(&st, ALL_CTRL, table_mcast, -1, 60));
    assert_false(pass(&st, ALL_CTRL, mcast, -1, 60));
    /* an entry beyond n_multi does not count */
    memcpy(st.multi[1], mcast, 6);
    assert_false(pass(&st, ALL_CTRL, mcast, -1, 60));
    st.multi_overflow = true;
    assert_true(pass(&st, ALL_CTRL, mcast, -1, 60));
    st.multi_overflow = false;

    /* nomulti wins over allmulti and the table, but not over broadcast */
    st.allmulti = true;
    st.nomulti = true;
    assert_false(pass(&st, ALL_CTRL, mcast, -1, 60));
    assert_false(pass(&st, ALL_CTRL, table_mcast, -1, 60));
    assert_true(pass(&st, ALL_CTRL, bcast, -1, 60));
    st.nomulti = false;

    st.nobcast = true;
    assert_false(pass(&st, ALL_CTRL, bcast, -1, 60));
    assert_true(pass(&st, ALL_CTRL, mcast, -1, 60));
}

static void filter_unicast_modes_and_table(void **state)
{
    struct net_state st;

    net_state_reset(&st, own_mac, ALL_CTRL);
    st.n_uni = 1;
    memcpy(st.uni[0], table_uni, 6);
    assert_true(pass(&st, ALL_CTRL, table_uni, -1, 60));
    assert_false(pass(&st, ALL_CTRL, other_uni, -1, 60));
    st.uni_overflow = true;
    assert_true(pass(&st, ALL_CTRL, other_uni, -1, 60));
    st.uni_overflow = false;
    st.alluni = true;
    assert_true(pass(&st, ALL_CTRL, other_uni, -1, 60));
    /* nouni wins over alluni and the device's own MAC */
    st.nouni = true;
    assert_false(pass(&st, ALL_CTRL, other_uni, -1, 60));
    assert_false(pass(&st, ALL_CTRL, own_mac, -1, 60));
    assert_false(pass(&st, ALL_CTRL, table_uni, -1, 60));
    assert_true(pass(&st, ALL_CTRL, bcast, -1, 60));
}

static void filter_vlan_table_only_with_ctrl_vlan(void **state)
{
    uint64_t no_vlan = ALL_CTRL & ~F(VIRTIO_NET_F_CTRL_VLAN);
    struct net_state st;

    net_state_reset(&st, own_mac, ALL_CTRL);
    assert_false(pass(&st, ALL_CTRL, own_mac, 100, 60));
    assert_true(pass(&st, ALL_CTRL, own_mac, -1, 60)); /* untagged is not VLAN-filtered */
    st.vlan[100 / 32] |= 1u << (100 % 32);
    assert_true(pass(&st, ALL_CTRL, own_mac, 100, 60));
    assert_false(pass(&st, ALL_CTRL, own_mac, 101, 60));
    assert_false(pass(&st, ALL_CTRL, other_uni, 100, 60)); /* VLAN passes, MAC does not */
    /* tag cut off before the VLAN id */
    assert_false(pass(&st, ALL_CTRL, own_mac, 100, 15));
    assert_true(pass(&st, ALL_CTRL, own_mac, 100, 16));

    /* without CTRL_VLAN every VLAN passes, even a frame too short to hold the id */
    net_state_reset(&st, own_mac, no_vlan);
    assert_true(pass(&st, no_vlan, own_mac, 4095, 60));
    assert_true(pass(&st, no_vlan, own_mac, 7, 14));
    assert_false(pass(&st, no_vlan, other_uni, 7, 60));
}

/* ------------------------------------------------------------------ encode, replay, equal */

static void encode_then_parse_gives_the_same_command(void **state)
{
    g_autoptr(GPtrArray) all = valid_commands();
    uint8_t buf[2 + 2 * (4 + 65 * 6)];
    struct net_ctrl_cmd a, b;

    for (unsigned i = 0; i < all->len; i++) {
        GByteArray *w = g_ptr_array_index(all, i);
        assert_int_equal(net_ctrl_parse(w->data, w->len, &a, NULL), 0);
        size_t n = net_ctrl_encode(&a, buf, sizeof(buf));
        assert_true(n >= 2);
        assert_int_equal(net_ctrl_parse(buf, n, &b, NULL), 0);
        assert_true(net_ctrl_cmd_equal(&a, &b));
        bool overflowed = a.class == VIRTIO_NET_CTRL_MAC &&
                          a.cmd == VIRTIO_NET_CTRL_MAC_TABLE_SET &&
                          (a.u.table.uni_overflow || a.u.table.multi_overflow);
        if (!overflowed) {
            assert_int_equal(n, w->len);
            assert_memory_equal(buf, w->data, n); /* the very same bytes */
        }
        /* too small a buffer: nothing */
        assert_int_equal(net_ctrl_encode(&a, buf, n - 1), 0);
    }
    /* an overflowing list is written as 65 entries */
    g_autoptr(GByteArray) big = table_set(100, 0);
    assert_int_equal(net_ctrl_parse(big->data, big->len, &a, NULL), 0);
    assert_int_equal(net_ctrl_encode(&a, buf, sizeof(buf)), 2 + 4 + 65 * 6 + 4);
    assert_int_equal(buf[2], 65);
    /* an unknown command encodes to nothing */
    a = (struct net_ctrl_cmd){ .class = VIRTIO_NET_CTRL_MQ, .cmd = VIRTIO_NET_CTRL_MQ_RSS_CONFIG };
    assert_int_equal(net_ctrl_encode(&a, buf, sizeof(buf)), 0);
}

static void equal_compares_every_field_but_unused_entries(void **state)
{
    struct net_state a, b;

    net_state_reset(&a, own_mac, ALL_CTRL);
    b = a;
    assert_true(net_state_equal(&a, &b));
    b.multi[5][0] = 0x77; /* beyond n_multi */
    assert_true(net_state_equal(&a, &b));

#define DIFFERS(stmt)                                                                       \
    do {                                                                                    \
        b = a;                                                                              \
        stmt;                                                                               \
        assert_false(net_state_equal(&a, &b));                                              \
    } while (0)
    DIFFERS(b.mac[5] ^= 1);
    DIFFERS(b.promisc = true);
    DIFFERS(b.allmulti = false);
    DIFFERS(b.alluni = true);
    DIFFERS(b.nomulti = true);
    DIFFERS(b.nouni = true);
    DIFFERS(b.nobcast = true);
    DIFFERS(b.uni_overflow = true);
    DIFFERS(b.multi_overflow = true);
    DIFFERS(b.n_uni = 1);
    DIFFERS(b.n_multi = 1);
    DIFFERS(b.vlan[3] = 1);
    DIFFERS(b.queue_pairs = 2);
    DIFFERS(b.guest_offloads ^= 2);
    a.n_uni = b.n_uni = 1;
    DIFFERS(b.uni[0][3] = 9);
#undef DIFFERS
}

static void replay_of_a_reset_state_is_the_mac_only(void **state)
{
    g_autofree struct net_ctrl_cmd *cmds = g_new0(struct net_ctrl_cmd, NET_STATE_REPLAY_MAX);
    struct net_state st;

    net_state_reset(&st, own_mac, ALL_CTRL);
    assert_int_equal(net_state_replay(&st, ALL_CTRL, cmds, NET_STATE_REPLAY_MAX), 1);
    assert_int_equal(cmds[0].class, VIRTIO_NET_CTRL_MAC);
    assert_int_equal(cmds[0].cmd, VIRTIO_NET_CTRL_MAC_ADDR_SET);
    uint64_t no_mac = ALL_CTRL & ~F(VIRTIO_NET_F_CTRL_MAC_ADDR);
    net_state_reset(&st, own_mac, no_mac);
    assert_int_equal(net_state_replay(&st, no_mac, cmds, NET_STATE_REPLAY_MAX), 0);
}

static void replay_order_is_mac_mq_rx_table_vlan_offloads(void **state)
{
    uint64_t feat = ALL_CTRL | F(VIRTIO_NET_F_GUEST_CSUM);
    g_autofree struct net_ctrl_cmd *cmds = g_new0(struct net_ctrl_cmd, NET_STATE_REPLAY_MAX);
    struct net_state st;
    const uint8_t expect[][2] = {
        { VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_ADDR_SET },
        { VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET },
        { VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_PROMISC },
        { VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_ALLMULTI },
        { VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_ALLUNI },
        { VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_NOMULTI },
        { VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_NOUNI },
        { VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_NOBCAST },
        { VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_TABLE_SET },
        { VIRTIO_NET_CTRL_VLAN, VIRTIO_NET_CTRL_VLAN_ADD },
        { VIRTIO_NET_CTRL_VLAN, VIRTIO_NET_CTRL_VLAN_ADD },
        { VIRTIO_NET_CTRL_GUEST_OFFLOADS, VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET },
    };

    net_state_reset(&st, own_mac, feat);
    st.queue_pairs = 3;
    st.promisc = st.alluni = st.nomulti = st.nouni = st.nobcast = true;
    st.allmulti = false;
    st.n_multi = 1;
    memcpy(st.multi[0], table_mcast, 6);
    st.vlan[0] = 1u << 3;
    st.vlan[127] = 1u << 31;
    st.guest_offloads = 0;
    unsigned n = net_state_replay(&st, feat, cmds, NET_STATE_REPLAY_MAX);
    assert_int_equal(n, G_N_ELEMENTS(expect));
    for (unsigned i = 0; i < n; i++) {
        assert_int_equal(cmds[i].class, expect[i][0]);
        assert_int_equal(cmds[i].cmd, expect[i][1]);
    }
    assert_int_equal(cmds[9].u.vid, 3);
    assert_int_equal(cmds[10].u.vid, 4095);
    /* a short array gets the first commands */
    assert_int_equal(net_state_replay(&st, feat, cmds, 2), 2);
    assert_int_equal(cmds[1].class, VIRTIO_NET_CTRL_MQ);
}

/* A random command, built as wire bytes and parsed, so it is one a driver could send. */
static bool random_command(GRand *r, struct net_ctrl_cmd *cmd, uint16_t max_qp)
{
    g_autoptr(GByteArray) w = g_byte_array_new();
    uint8_t b[10];

    switch (g_rand_int_range(r, 0, 7)) {
    case 0:
    case 1: /* RX modes are the commonest */
        b[0] = VIRTIO_NET_CTRL_RX;
        b[1] = (uint8_t)g_rand_int_range(r, 0, 6);
        b[2] = (uint8_t)g_rand_int_range(r, 0, 2);
        g_byte_array_append(w, b, 3);
        break;
    case 2:
        b[0] = VIRTIO_NET_CTRL_MAC;
        b[1] = VIRTIO_NET_CTRL_MAC_ADDR_SET;
        for (int i = 2; i < 8; i++)
            b[i] = (uint8_t)g_rand_int(r);
        b[2] &= 0xfe;
        g_byte_array_append(w, b, 8);
        break;
    case 3: {
        uint32_t nu = (uint32_t)g_rand_int_range(r, 0, 80), nm = (uint32_t)g_rand_int_range(r, 0, 80);
        b[0] = VIRTIO_NET_CTRL_MAC;
        b[1] = VIRTIO_NET_CTRL_MAC_TABLE_SET;
        g_byte_array_append(w, b, 2);
        put_mac_list(w, nu, nu, (uint8_t)(g_rand_int(r) & 0xfe));
        put_mac_list(w, nm, nm, (uint8_t)(g_rand_int(r) | 1));
        break;
    }
    case 4: {
        uint16_t vid = (uint16_t)g_rand_int_range(r, 0, 4200);
        b[0] = VIRTIO_NET_CTRL_VLAN;
        b[1] = g_rand_boolean(r) ? VIRTIO_NET_CTRL_VLAN_ADD : VIRTIO_NET_CTRL_VLAN_DEL;
        if (g_rand_int_range(r, 0, 4) != 0)
            b[1] = VIRTIO_NET_CTRL_VLAN_ADD; /* tables fill up */
        b[2] = vid & 0xff;
        b[3] = vid >> 8;
        g_byte_array_append(w, b, 4);
        break;
    }
    case 5: {
        uint16_t qp = (uint16_t)g_rand_int_range(r, 0, max_qp + 2);
        b[0] = VIRTIO_NET_CTRL_MQ;
        b[1] = VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET;
        b[2] = qp & 0xff;
        b[3] = qp >> 8;
        g_byte_array_append(w, b, 4);
        break;
    }
    default: {
        uint64_t off = ((uint64_t)g_rand_int(r) << 32 | g_rand_int(r)) &
                       (NET_GUEST_OFFLOAD_FEATURES | (g_rand_boolean(r) ? 1 : 0));
        b[0] = VIRTIO_NET_CTRL_GUEST_OFFLOADS;
        b[1] = VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET;
        for (int i = 0; i < 8; i++)
            b[2 + i] = (uint8_t)(off >> (8 * i));
        g_byte_array_append(w, b, 10);
        break;
    }
    }
    return net_ctrl_parse(w->data, w->len, cmd, NULL) == 0;
}

static void replay_into_a_reset_state_rebuilds_random_states(void **state)
{
    const uint64_t optional[] = {
        VIRTIO_NET_F_CTRL_RX, VIRTIO_NET_F_CTRL_RX_EXTRA, VIRTIO_NET_F_CTRL_VLAN,
        VIRTIO_NET_F_CTRL_MAC_ADDR, VIRTIO_NET_F_MQ, VIRTIO_NET_F_CTRL_GUEST_OFFLOADS,
        VIRTIO_NET_F_GUEST_CSUM, VIRTIO_NET_F_GUEST_TSO4, VIRTIO_NET_F_GUEST_TSO6,
        VIRTIO_NET_F_GUEST_ECN, VIRTIO_NET_F_GUEST_UFO, 54, 55,
    };
    g_autoptr(GRand) r = g_rand_new_with_seed(20240601);
    g_autofree struct net_ctrl_cmd *cmds = g_new0(struct net_ctrl_cmd, NET_STATE_REPLAY_MAX);
    g_autofree uint8_t *wire = g_malloc(2 + 2 * (4 + 65 * 6));
    unsigned changed = 0, max_replay = 0;

    for (int round = 0; round < 1500; round++) {
        uint64_t feat = F(VIRTIO_NET_F_CTRL_VQ);
        uint16_t max_qp = (uint16_t)g_rand_int_range(r, 1, 9);
        struct net_state st, fresh;
        struct net_ctrl_cmd c;
        uint8_t mac[6] = { 0x52, 0x54, 0, 0, 0, (uint8_t)round };

        for (size_t i = 0; i < G_N_ELEMENTS(optional); i++)
            if (g_rand_int_range(r, 0, 4) != 0)
                feat |= F(optional[i]);
        net_state_reset(&st, mac, feat);
        int steps = g_rand_int_range(r, 0, round % 10 == 0 ? 3000 : 40);
        for (int s = 0; s < steps; s++)
            if (random_command(r, &c, max_qp))
                net_state_apply(&st, &c, feat, max_qp, NULL);

        unsigned n = net_state_replay(&st, feat, cmds, NET_STATE_REPLAY_MAX);
        assert_true(n <= NET_STATE_REPLAY_MAX);
        max_replay = MAX(max_replay, n);
        net_state_reset(&fresh, mac, feat);
        changed += !net_state_equal(&st, &fresh);
        for (unsigned i = 0; i < n; i++) {
            const char *why = NULL;
            struct net_ctrl_cmd back;
            /* the device gets the bytes: replay through the wire */
            size_t len = net_ctrl_encode(&cmds[i], wire, 2 + 2 * (4 + 65 * 6));
            assert_true(len >= 2);
            assert_int_equal(net_ctrl_parse(wire, len, &back, NULL), 0);
            assert_true(net_ctrl_cmd_equal(&cmds[i], &back));
            if (net_state_apply(&fresh, &back, feat, max_qp, &why) != VIRTIO_NET_OK)
                fail_msg("round %d: replayed command %u (class %u cmd %u) refused: %s", round,
                         i, back.class, back.cmd, why);
        }
        assert_true(net_state_equal(&st, &fresh));
    }
    /* the property was exercised on real variety, not on reset states */
    assert_true(changed > 1300);
    assert_true(max_replay > 100);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parse_rx_commands_with_values_0_and_1),
        cmocka_unit_test(parse_rx_value_other_than_0_or_1_is_einval),
        cmocka_unit_test(parse_mac_addr_set),
        cmocka_unit_test(parse_vlan_mq_offloads_are_little_endian),
        cmocka_unit_test(parse_mac_table_reads_unicast_then_multicast),
        cmocka_unit_test(parse_mac_table_over_64_keeps_64_and_sets_overflow),
        cmocka_unit_test(parse_mac_table_hostile_counts_are_einval),
        cmocka_unit_test(parse_mac_table_overflow_still_needs_declared_bytes),
        cmocka_unit_test(parse_truncated_at_every_length_is_einval),
        cmocka_unit_test(parse_trailing_bytes_are_einval),
        cmocka_unit_test(parse_unknown_class_or_cmd_is_eopnotsupp),
        cmocka_unit_test(apply_needs_the_feature_of_each_command),
        cmocka_unit_test(apply_sets_the_commanded_state),
        cmocka_unit_test(apply_refuses_bad_values_and_keeps_state),
        cmocka_unit_test(reset_filters_unicast_but_passes_multicast),
        cmocka_unit_test(filter_after_reset_accepts_own_mac_broadcast_and_multicast),
        cmocka_unit_test(filter_promisc_accepts_all_but_short_frames),
        cmocka_unit_test(filter_multicast_modes_and_table),
        cmocka_unit_test(filter_unicast_modes_and_table),
        cmocka_unit_test(filter_vlan_table_only_with_ctrl_vlan),
        cmocka_unit_test(encode_then_parse_gives_the_same_command),
        cmocka_unit_test(equal_compares_every_field_but_unused_entries),
        cmocka_unit_test(replay_of_a_reset_state_is_the_mac_only),
        cmocka_unit_test(replay_order_is_mac_mq_rx_table_vlan_offloads),
        cmocka_unit_test(replay_into_a_reset_state_rebuilds_random_states),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
