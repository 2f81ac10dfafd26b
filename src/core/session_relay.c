/* session_relay.c — the session's relay: the always-shadowed control queue, the switch of
 * the data queues into and out of the relay when QEMU turns dirty logging on and off,
 * QEMU's dirty log, stop-time drains, and the replay of a migrated device state. */
#include "config.h"

#include <inttypes.h>
#include <linux/vhost_types.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_net.h>
#include <string.h>

#include "core/session_priv.h"
#include "dirty_log/dirty_log.h"
#include "iova/iova_map.h"
#include "shadow_vq/relay.h"
#include "util/error.h"

#define RESTORE_ACK_TIMEOUT_MS 2000

static bool has_feature(const struct session *s, unsigned bit)
{
    return s->negotiated & (1ull << bit);
}

static bool is_net(const struct session *s)
{
    return s->dev->ops->get_device_id(s->dev) == VIRTIO_ID_NET;
}

static uint16_t max_queue_pairs(struct session *s)
{
    if (!is_net(s) || !has_feature(s, VIRTIO_NET_F_MQ))
        return 1;
    uint16_t pairs = 1;
    s->dev->ops->get_config(s->dev, offsetof(struct virtio_net_config, max_virtqueue_pairs),
                            &pairs, sizeof(pairs));
    return pairs ? pairs : 1;
}

/* The control queue of a started net device, or UINT_MAX. */
static unsigned control_queue(struct session *s)
{
    if (!is_net(s) || !has_feature(s, VIRTIO_NET_F_CTRL_VQ))
        return UINT_MAX;
    unsigned idx = 2u * max_queue_pairs(s);
    return idx < s->nvqs ? idx : UINT_MAX;
}

bool session_vq_started(const struct session *s, unsigned idx)
{
    const struct session_vq *vq = &s->vq[idx];

    return vq->num && vq->addr_set && vq->kick_fd >= 0;
}

bool session_offers_log_all(const struct session *s)
{
    return s->dev->ops->suspend && s->dev->ops->resume;
}

bool session_vq_relayed(struct session *s, unsigned idx)
{
    return s->relay && (idx == s->cvq || (s->data_relayed && relay_has_queue(s->relay, idx)));
}

/* ------------------------------------------------------------------ hooks (relay thread) */

static void on_cvq_done(void *opaque, const uint8_t *cmd, size_t len, uint8_t ack)
{
    struct session *s = opaque;
    struct net_ctrl_cmd parsed;
    const char *why;

    if (ack != VIRTIO_NET_OK || net_ctrl_parse(cmd, len, &parsed, &why) < 0)
        return;
    g_mutex_lock(&s->net_lock);
    if (s->net_valid && net_state_apply(&s->net, &parsed, s->negotiated, max_queue_pairs(s), &why)
                            != VIRTIO_NET_OK)
        g_message("%s: the device accepted a control command (class %u cmd %u) that the "
                  "state model refuses: %s", DEV_NAME(s), parsed.class, parsed.cmd, why);
    g_mutex_unlock(&s->net_lock);
}

static void on_queue_failed(void *opaque, unsigned idx, const char *why)
{
    /* logged by the relay; the guest sees a stopped queue, as with a broken device */
}

/* ------------------------------------------------------------------ dirty log */

/* QEMU sizes its log from the guest RAM vhost knows; ROMs and video memory (unshareable,
 * not mapped) are not covered, so neither is anything past the last shared range. */
static uint64_t guest_ram_end(const struct session *s)
{
    uint64_t end = 0;

    for (guint i = 0; i < s->maps->len; i++) {
        const struct mem_record *r = &g_array_index(s->maps, struct mem_record, i);
        if (r->local)
            end = MAX(end, r->iova + r->size);
    }
    return end;
}

/* Creates the log at s->log_base when logging is wanted and none exists yet. */
static int ensure_log(struct session *s, GError **error)
{
    if (s->log || !s->log_all || !s->log_base || !s->owner)
        return 0;
    uint64_t words = dirty_log_words_for(guest_ram_end(s));
    if (words == 0)
        return 0;
    s->log = dirty_log_new_remote(s->owner, s->log_base, words, error);
    if (!s->log)
        return vdpad_prefix_error(error, "%s: QEMU's dirty log at 0x%" PRIx64 ": ", DEV_NAME(s),
                                  s->log_base);
    g_info("%s: dirty log at 0x%" PRIx64 " in pid %d, %" PRIu64 " words", DEV_NAME(s),
           s->log_base, (int)s->owner, words);
    if (s->relay)
        relay_set_log(s->relay, s->log);
    return 0;
}

static void drop_log(struct session *s)
{
    if (s->relay)
        relay_set_log(s->relay, NULL);
    g_clear_pointer(&s->log, dirty_log_free);
}

int session_flush_log(struct session *s, GError **error)
{
    if (!s->log)
        return 0;
    if (s->relay)
        return relay_flush_log(s->relay, error);
    return dirty_log_flush(s->log, error);
}

int session_set_log_base(struct session *s, uint64_t addr, GError **error)
{
    if (addr == s->log_base)
        return 0;
    /* QEMU may free the old log as soon as we answer: move what is pending first */
    struct dirty_log *old = s->log;
    if (s->relay)
        relay_set_log(s->relay, NULL);
    s->log = NULL;
    s->log_base = addr;
    int ret = ensure_log(s, error);
    if (old) {
        if (s->log)
            dirty_log_move_pending(s->log, old);
        dirty_log_free(old);
    }
    return ret;
}

uint64_t session_dirty_marks(struct session *s)
{
    struct dirty_log_stats st = { 0 };

    if (s->log)
        dirty_log_get_stats(s->log, &st);
    return st.pages_marked;
}

/* ------------------------------------------------------------------ relay life cycle */

static int ensure_relay(struct session *s, GError **error)
{
    if (s->relay)
        return 0;
    struct relay_hooks hooks = { .cvq_done = on_cvq_done, .queue_failed = on_queue_failed,
                                 .opaque = s };
    s->relay = relay_new(s->dev, s->iotlb, s->negotiated, &hooks, error);
    if (!s->relay)
        return vdpad_error_errno(error ? *error : NULL);
    if (s->log)
        relay_set_log(s->relay, s->log);
    return 0;
}

static int add_to_relay(struct session *s, unsigned idx, uint16_t base, GError **error)
{
    const struct session_vq *vq = &s->vq[idx];
    struct relay_queue_config cfg = {
        .idx = idx, .num = vq->num, .desc = vq->desc, .avail = vq->avail, .used = vq->used,
        .base = base, .guest_kick_fd = vq->kick_fd, .guest_call_fd = vq->call_fd,
        .control = idx == s->cvq,
    };
    return relay_add_queue(s->relay, &cfg, error);
}

/* Points the device's queue back at the guest ring, at base. */
static int restore_passthrough(struct session *s, unsigned idx, uint16_t base, GError **error)
{
    const struct vdpa_device_ops *ops = s->dev->ops;
    const struct session_vq *vq = &s->vq[idx];
    struct vdpa_vq_state st = { .avail_index = base };
    int ret;

    if ((ret = ops->set_vq_address(s->dev, idx, vq->desc, vq->avail, vq->used, error)) < 0 ||
        (ret = ops->set_vq_state(s->dev, idx, &st, error)) < 0 ||
        (ret = ops->set_vq_kick(s->dev, idx, vq->kick_fd, error)) < 0 ||
        (ret = ops->set_vq_call(s->dev, idx, vq->call_fd, error)) < 0)
        return vdpad_prefix_error(error, "%s: queue %u: back to the guest ring: ", DEV_NAME(s),
                                  idx);
    return 0;
}

/* The guest ring's used index, as the guest sees it. */
static bool guest_used_idx(struct session *s, unsigned idx, uint16_t *out)
{
    const struct session_vq *vq = &s->vq[idx];
    const volatile uint16_t *p = iova_map_ptr(s->iotlb, vq->used + 2, 2, IOVA_PERM_READ);

    if (!p)
        return false;
    *out = le16toh(*p);
    return true;
}

static bool is_data_queue(struct session *s, unsigned idx)
{
    return idx != s->cvq && session_vq_started(s, idx);
}

/* Moves the started data queues into the relay. The device is suspended or not started.
 * A device that took buffers and never used them (receive buffers it holds) gets them
 * back through the rewind to the guest's used index. */
static int move_data_to_relay(struct session *s, bool running, GError **error)
{
    for (unsigned i = 0; i < s->nvqs; i++) {
        if (!is_data_queue(s, i))
            continue;
        uint16_t base = s->vq[i].base;
        if (running) {
            struct vdpa_vq_state st;
            uint16_t used;
            int ret = s->dev->ops->get_vq_state(s->dev, i, &st, error);
            if (ret < 0)
                return vdpad_prefix_error(error, "%s: queue %u: state at switch-in: ",
                                          DEV_NAME(s), i);
            base = st.avail_index;
            if (guest_used_idx(s, i, &used) && used != base) {
                g_info("%s: queue %u: the device holds %u buffers it did not use; the relay "
                       "offers them again", DEV_NAME(s), i, (uint16_t)(base - used));
                base = used;
            }
        }
        int ret = add_to_relay(s, i, base, error);
        if (ret < 0)
            return ret;
    }
    s->data_relayed = true;
    return 0;
}

static double ms_since(gint64 t0)
{
    return (double)(g_get_monotonic_time() - t0) / 1000.0;
}

/* SET_FEATURES toggled VHOST_F_LOG_ALL while the device runs. */
static int switch_data_queues(struct session *s, bool to_relay, GError **error)
{
    const struct vdpa_device_ops *ops = s->dev->ops;
    gint64 t0 = g_get_monotonic_time();
    int ret;

    if ((ret = ops->suspend(s->dev, error)) < 0)
        return vdpad_prefix_error(error, "%s: suspend for the switch: ", DEV_NAME(s));
    if (to_relay) {
        ret = ensure_relay(s, error);
        if (ret == 0)
            ret = move_data_to_relay(s, true, error);
    } else {
        for (unsigned i = 0; i < s->nvqs && ret == 0; i++) {
            uint16_t base;
            if (i == s->cvq || !relay_has_queue(s->relay, i))
                continue;
            ret = relay_remove_queue(s->relay, i, &base, error);
            if (ret == 0)
                ret = restore_passthrough(s, i, base, error);
        }
        s->data_relayed = false;
    }
    g_autoptr(GError) resume_err = NULL;
    int resumed = ops->resume(s->dev, &resume_err);
    if (ret == 0 && resumed < 0) {
        ret = resumed;
        g_propagate_error(error, g_steal_pointer(&resume_err));
    }
    double ms = ms_since(t0);
    if (ret < 0) {
        g_warning("%s: switch to %s failed: %s", DEV_NAME(s), to_relay ? "relay" : "passthrough",
                  error && *error ? (*error)->message : "?");
        if (s->events.migration_failed)
            s->events.migration_failed(s->events.opaque, error && *error ? (*error)->message
                                                                        : "switch failed");
        return ret;
    }
    g_message("%s: switched to %s in %.3f ms", DEV_NAME(s), to_relay ? "relay" : "passthrough",
              ms);
    if (s->events.mode_changed)
        s->events.mode_changed(s->events.opaque,
                               to_relay ? SESSION_RELAY : SESSION_PASSTHROUGH, ms);
    return 0;
}

int session_relay_toggle_log(struct session *s, bool on, GError **error)
{
    if (on == s->log_all)
        return 0;
    s->log_all = on;
    bool running = s->dev->ops->get_status(s->dev) & VIRTIO_CONFIG_S_DRIVER_OK;
    if (on) {
        int ret = ensure_log(s, error);
        if (ret < 0)
            return ret;
        return running ? switch_data_queues(s, true, error) : 0;
    }
    int ret = running && s->data_relayed ? switch_data_queues(s, false, error) : 0;
    g_autoptr(GError) flush_err = NULL;
    if (session_flush_log(s, &flush_err) < 0)
        g_warning("%s: last dirty log flush at log stop: %s", DEV_NAME(s), flush_err->message);
    drop_log(s);
    return ret;
}

/* ------------------------------------------------------------------ start and stop */

int session_relay_before_driver_ok(struct session *s, GError **error)
{
    int ret;

    s->cvq = control_queue(s);
    if (s->cvq != UINT_MAX && session_vq_started(s, s->cvq)) {
        uint8_t mac[6] = { 0 };
        s->dev->ops->get_config(s->dev, offsetof(struct virtio_net_config, mac), mac, 6);
        g_mutex_lock(&s->net_lock);
        net_state_reset(&s->net, mac, s->negotiated);
        s->net_valid = true;
        g_mutex_unlock(&s->net_lock);
        if ((ret = ensure_relay(s, error)) < 0 ||
            (ret = add_to_relay(s, s->cvq, s->vq[s->cvq].base, error)) < 0)
            return vdpad_prefix_error(error, "%s: shadowing the control queue: ", DEV_NAME(s));
        /* a destination held every enable back; the control queue must run for the replay */
        if (s->restore_pending && s->vq[s->cvq].ready &&
            (ret = s->dev->ops->set_vq_ready(s->dev, s->cvq, true, error)) < 0)
            return ret;
    } else {
        s->cvq = UINT_MAX;
    }
    if (s->log_all) {
        if ((ret = ensure_log(s, error)) < 0 || (ret = ensure_relay(s, error)) < 0 ||
            (ret = move_data_to_relay(s, false, error)) < 0)
            return ret;
        if (s->events.mode_changed)
            s->events.mode_changed(s->events.opaque, SESSION_RELAY, 0);
    }
    return 0;
}

int session_relay_after_driver_ok(struct session *s, GError **error)
{
    if (!s->restore_pending)
        return 0;
    /* replay the state, then let the data queues start */
    gint64 t0 = g_get_monotonic_time();
    g_autofree struct net_ctrl_cmd *cmds = g_new(struct net_ctrl_cmd, NET_STATE_REPLAY_MAX);
    g_autofree struct net_state *st = g_new0(struct net_state, 1);
    unsigned n = 0;
    int ret = 0, have = 0;

    if (s->events.fetch_restore)
        have = s->events.fetch_restore(s->events.opaque, st, error);
    gint64 t_fetched = g_get_monotonic_time();
    if (have < 0) {
        ret = have;
        vdpad_prefix_error(error, "%s: restoring the device state: ", DEV_NAME(s));
    } else if (have && s->cvq != UINT_MAX) {
        n = net_state_replay(st, s->negotiated, cmds, NET_STATE_REPLAY_MAX);
    } else if (have) {
        g_message("%s: no control queue negotiated: nothing of the device state can be "
                  "replayed", DEV_NAME(s));
    }
    for (unsigned i = 0; i < n && ret == 0; i++) {
        uint8_t buf[2 + 2 * (4 + NET_STATE_MAC_TABLE_MAX * 6) + 8], ack;
        size_t len = net_ctrl_encode(&cmds[i], buf, sizeof(buf));
        ret = relay_cvq_command(s->relay, buf, len, RESTORE_ACK_TIMEOUT_MS, &ack, error);
        if (ret == 0 && ack != VIRTIO_NET_OK)
            ret = vdpad_fail(error, EIO, "%s: the device refused replayed command %u of %u "
                             "(class %u cmd %u)", DEV_NAME(s), i + 1, n, cmds[i].class,
                             cmds[i].cmd);
    }
    gint64 t_replayed = g_get_monotonic_time();
    s->restore_pending = false;
    if (ret < 0) {
        /* never run the guest's traffic on a device in the wrong state: the data queues
         * stay disabled */
        g_warning("%s: %s; the data queues stay stopped", DEV_NAME(s), (*error)->message);
        if (s->events.migration_failed)
            s->events.migration_failed(s->events.opaque, (*error)->message);
        return ret;
    }
    for (unsigned i = 0; i < s->nvqs && ret == 0; i++)
        if (i != s->cvq && s->vq[i].ready)
            ret = s->dev->ops->set_vq_ready(s->dev, i, true, error);
    gint64 t_started = g_get_monotonic_time();
    double ms = (t_started - t0) / 1000.0;
    if (ret < 0)
        return vdpad_prefix_error(error, "%s: starting the data queues after the restore: ",
                                  DEV_NAME(s));
    if (have) {
        g_message("%s: restored the device state (%u commands) in %.3f ms: fetched in %.3f ms, "
                  "replayed in %.3f ms, data queues started in %.3f ms", DEV_NAME(s), n, ms,
                  (t_fetched - t0) / 1000.0, (t_replayed - t_fetched) / 1000.0,
                  (t_started - t_replayed) / 1000.0);
        if (s->events.state_restored)
            s->events.state_restored(s->events.opaque, n, ms);
    }
    return 0;
}

/* Drains a queue the relay holds (device quiesced) and reports where the guest resumes. */
int session_relay_drain(struct session *s, unsigned idx, uint16_t *base, GError **error)
{
    int ret = relay_drain_queue(s->relay, idx, base, error);
    if (ret == 0)
        ret = session_flush_log(s, error);
    return ret;
}

void session_relay_stop(struct session *s)
{
    g_autoptr(GError) err = NULL;

    if (session_flush_log(s, &err) < 0)
        g_warning("%s: final dirty log flush failed: %s", DEV_NAME(s), err->message);
    g_clear_pointer(&s->relay, relay_free);
    s->data_relayed = false;
    s->cvq = UINT_MAX;
}

void session_relay_free(struct session *s)
{
    g_clear_pointer(&s->relay, relay_free);
    g_clear_pointer(&s->log, dirty_log_free);
    g_mutex_clear(&s->net_lock);
}

/* ------------------------------------------------------------------ queries */

enum session_mode session_mode(struct session *s)
{
    return s->data_relayed ? SESSION_RELAY : SESSION_PASSTHROUGH;
}

bool session_net_state(struct session *s, struct net_state *out)
{
    g_mutex_lock(&s->net_lock);
    bool valid = s->net_valid;
    if (valid)
        *out = s->net;
    g_mutex_unlock(&s->net_lock);
    return valid;
}

void session_expect_restore(struct session *s)
{
    s->restore_pending = true;
}

bool session_logging(struct session *s)
{
    return s->log_all;
}

void session_set_events(struct session *s, const struct session_events *events)
{
    s->events = *events;
}
