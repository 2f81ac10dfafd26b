#include "config.h"

#include <string.h>

#include "backend/kernel/kernel_dev.h"
#include "backend/sim/sim.h"
#include "core/node.h"
#include "util/error.h"

struct observer {
    node_observer_fn fn;
    void *data;
};

struct node_registry {
    GHashTable *nodes; /* name -> struct vdpa_node */
    GArray *observers; /* struct observer */
    char *own_dir;
    node_state_fetcher fetcher;
    void *fetcher_opaque;
};

static void notify(struct node_registry *reg, struct vdpa_node *node, enum node_event ev)
{
    for (guint i = 0; i < reg->observers->len; i++) {
        struct observer *o = &g_array_index(reg->observers, struct observer, i);
        o->fn(node, ev, o->data);
    }
}

static void clear_stop(struct node_stop_record *stop)
{
    g_free(stop->bases);
    g_free(stop->started);
    uint64_t gen = stop->generation;
    *stop = (struct node_stop_record){ .generation = gen };
}

void node_cancel_incoming(struct vdpa_node *node)
{
    if (!node->incoming)
        return;
    g_free(node->incoming->source);
    g_free(node->incoming->device);
    g_free(node->incoming->token);
    g_clear_pointer(&node->incoming, g_free);
}

static void node_free(struct vdpa_node *node)
{
    g_clear_pointer(&node->session, session_free);
    clear_stop(&node->stop);
    node_cancel_incoming(node);
    g_free(node->last_failure);
    vdpa_device_free(node->dev);
    device_spec_free(node->spec);
    g_free(node->name);
    g_free(node);
}

struct node_registry *node_registry_new(void)
{
    struct node_registry *reg = g_new0(struct node_registry, 1);

    reg->nodes = g_hash_table_new(g_str_hash, g_str_equal);
    reg->observers = g_array_new(FALSE, FALSE, sizeof(struct observer));
    return reg;
}

void node_registry_free(struct node_registry *reg)
{
    if (!reg)
        return;
    g_autoptr(GPtrArray) all = node_registry_list(reg);
    for (guint i = 0; i < all->len; i++) {
        struct vdpa_node *node = all->pdata[i];
        notify(reg, node, NODE_REMOVED);
        g_hash_table_remove(reg->nodes, node->name);
        node_free(node);
    }
    g_hash_table_unref(reg->nodes);
    g_array_free(reg->observers, TRUE);
    g_free(reg->own_dir);
    g_free(reg);
}

void node_registry_set_own_dir(struct node_registry *reg, const char *dir)
{
    g_free(reg->own_dir);
    reg->own_dir = g_strdup(dir);
}

void node_registry_add_observer(struct node_registry *reg, node_observer_fn fn, void *data)
{
    struct observer o = { fn, data };

    g_array_append_val(reg->observers, o);
}

void node_registry_remove_observer(struct node_registry *reg, node_observer_fn fn, void *data)
{
    for (guint i = 0; i < reg->observers->len; i++) {
        struct observer *o = &g_array_index(reg->observers, struct observer, i);
        if (o->fn == fn && o->data == data) {
            g_array_remove_index(reg->observers, i);
            return;
        }
    }
}

static gboolean path_inside(const char *path, const char *dir)
{
    g_autofree char *canon = g_canonicalize_filename(path, NULL);
    size_t n = strlen(dir);

    return strncmp(canon, dir, n) == 0 && (canon[n] == '/' || canon[n] == '\0');
}

static struct vdpa_device *instantiate(struct node_registry *reg, const struct device_spec *spec,
                                       GError **error)
{
    switch (spec->kind) {
    case DEVICE_SIM_NET: {
        struct sim_net_config cfg = {
            .name = spec->name, .queue_pairs = spec->queues ? spec->queues : 1,
            .mtu = (uint16_t)spec->mtu, .features = spec->features,
        };
        if (spec->has_mac)
            memcpy(cfg.mac, spec->mac, 6);
        else {
            /* a stable locally administered address from the name */
            guint h = g_str_hash(spec->name);
            uint8_t mac[6] = { 0x52, 0x54, 0x00, (uint8_t)(h >> 16), (uint8_t)(h >> 8), (uint8_t)h };
            memcpy(cfg.mac, mac, 6);
        }
        return sim_net_new(&cfg, error);
    }
    case DEVICE_SIM_BLK: {
        struct sim_blk_config cfg = {
            .name = spec->name, .size_bytes = spec->size, .queues = spec->queues ? spec->queues : 1,
            .features = spec->features,
        };
        return sim_blk_new(&cfg, error);
    }
    case DEVICE_KERNEL:
        if (reg->own_dir && path_inside(spec->path, reg->own_dir)) {
            vdpad_fail(error, EINVAL, "device %s: %s is a node of this daemon; chain to "
                       "another vdpad instance instead", spec->name, spec->path);
            return NULL;
        }
        return kernel_dev_open(spec->name, spec->path, error);
    }
    vdpad_fail(error, EINVAL, "device %s: unknown kind", spec->name);
    return NULL;
}

int node_registry_create(struct node_registry *reg, const char *spec_text,
                         struct vdpa_node **out, GError **error)
{
    g_autoptr(device_spec) spec = device_spec_parse(spec_text, error);

    if (!spec)
        return vdpad_error_errno(*error);
    if (g_hash_table_contains(reg->nodes, spec->name))
        return vdpad_fail(error, EEXIST, "device %s already exists", spec->name);
    struct vdpa_device *dev = instantiate(reg, spec, error);
    if (!dev)
        return vdpad_error_errno(error ? *error : NULL);

    struct vdpa_node *node = g_new0(struct vdpa_node, 1);
    node->name = g_strdup(spec->name);
    node->spec = g_steal_pointer(&spec);
    node->dev = dev;
    node->created_us = g_get_real_time();
    node->reg = reg;
    g_hash_table_insert(reg->nodes, node->name, node);
    g_info("%s: created (%s, backend %s)", node->name, node->spec->text, dev->backend);
    notify(reg, node, NODE_ADDED);
    if (out)
        *out = node;
    return 0;
}

int node_registry_destroy(struct node_registry *reg, const char *name, GError **error)
{
    struct vdpa_node *node = g_hash_table_lookup(reg->nodes, name);

    if (!node)
        return vdpad_fail(error, ENOENT, "no device named %s", name);
    if (node->session)
        return vdpad_fail(error, EBUSY, "device %s is in use by pid %d; stop its client first",
                          name, (int)session_opener(node->session));
    notify(reg, node, NODE_REMOVED);
    g_hash_table_remove(reg->nodes, name);
    g_info("%s: destroyed", name);
    node_free(node);
    return 0;
}

struct vdpa_node *node_registry_lookup(struct node_registry *reg, const char *name)
{
    return g_hash_table_lookup(reg->nodes, name);
}

static gint by_name(gconstpointer a, gconstpointer b)
{
    const struct vdpa_node *x = *(struct vdpa_node *const *)a, *y = *(struct vdpa_node *const *)b;

    return strcmp(x->name, y->name);
}

GPtrArray *node_registry_list(struct node_registry *reg)
{
    GPtrArray *all = g_ptr_array_new();
    GHashTableIter it;
    gpointer value;

    g_hash_table_iter_init(&it, reg->nodes);
    while (g_hash_table_iter_next(&it, NULL, &value))
        g_ptr_array_add(all, value);
    g_ptr_array_sort(all, by_name);
    return all;
}

/* ------------------------------------------------------------------ session events */

static void on_mode_changed(void *opaque, enum session_mode mode, double switch_ms)
{
    struct vdpa_node *node = opaque;

    node->mode = mode;
    node->mode_switch_ms = switch_ms;
    notify(node->reg, node, NODE_MODE_CHANGED);
}

static void on_stopped(void *opaque, const uint16_t *bases, const bool *started, unsigned n)
{
    struct vdpa_node *node = opaque;
    struct node_stop_record *st = &node->stop;

    clear_stop(st);
    st->valid = true;
    st->generation++;
    memcpy(st->token, node->token, sizeof(st->token));
    st->stopped_us = g_get_real_time();
    st->features = node->dev->ops->get_driver_features(node->dev);
    st->logging = session_logging(node->session);
    st->has_net = session_net_state(node->session, &st->net);
    st->nvqs = n;
    st->bases = g_memdup(bases, n * sizeof(*bases));
    st->started = g_memdup(started, n * sizeof(*started));
    if (st->logging)
        g_message("%s: stopped for a migration; its state is final", node->name);
    /* if this session starts the device again where it stopped, it gets this state back
     * before the data queues run (on_fetch_restore decides) */
    if (st->has_net)
        session_expect_restore(node->session);
    node->mode = SESSION_PASSTHROUGH;
    notify(node->reg, node, NODE_STOPPED);
}

static void on_state_restored(void *opaque, unsigned commands, double ms)
{
    struct vdpa_node *node = opaque;

    node->restored_commands = commands;
    node->restored_ms = ms;
    node_cancel_incoming(node);
    notify(node->reg, node, NODE_RESTORED);
}

static void on_migration_failed(void *opaque, const char *why)
{
    struct vdpa_node *node = opaque;

    g_free(node->last_failure);
    node->last_failure = g_strdup(why);
    notify(node->reg, node, NODE_MIGRATION_FAILED);
}

/* Whether the open session starts its device again where it stopped: the same session and
 * features, and every queue that ran at the stop configured again at the base it stopped
 * at. So QEMU resumes a stopped VM (cont after stop, virsh suspend/resume, a migration that
 * failed after the source stopped), and QEMU 7.2 resets the device at every VM stop. A
 * guest that reset the device itself starts its rings at 0 and sets its state again. */
static bool resumes_where_it_stopped(struct vdpa_node *node)
{
    const struct node_stop_record *st = &node->stop;

    if (!st->valid || !st->has_net || strcmp(st->token, node->token) != 0 ||
        st->features != node->dev->ops->get_driver_features(node->dev))
        return false;
    for (unsigned i = 0; i < st->nvqs; i++) {
        struct session_vq_info vq;
        if (!st->started[i])
            continue;
        if (session_get_vq_info(node->session, i, &vq) < 0 || !vq.num || vq.base != st->bases[i])
            return false;
    }
    return true;
}

/* A prepared destination asks the source; a session that resumes where it stopped (a VM
 * resumed, a migration that failed after the source stopped) restores its own last
 * state. */
static int on_fetch_restore(void *opaque, struct net_state *st, GError **error)
{
    struct vdpa_node *node = opaque;
    struct node_registry *reg = node->reg;

    if (node->incoming) {
        if (!reg->fetcher)
            return vdpad_fail(error, ENOTCONN, "prepared to receive a migration from %s, but "
                              "this vdpad has no migration channel (--migration-listen)",
                              node->incoming->source);
        return reg->fetcher(reg->fetcher_opaque, node, node->incoming, st, error);
    }
    if (resumes_where_it_stopped(node)) {
        *st = node->stop.net;
        return 1;
    }
    return 0;
}

static const struct session_events node_session_events = {
    .mode_changed = on_mode_changed,
    .stopped = on_stopped,
    .state_restored = on_state_restored,
    .migration_failed = on_migration_failed,
    .fetch_restore = on_fetch_restore,
};

int node_open(struct node_registry *reg, struct vdpa_node *node, pid_t opener,
              const struct session_mem_ops *mem, void *mem_opaque, GError **error)
{
    if (node->session)
        return vdpad_fail(error, EBUSY, "%s: already open by pid %d", node->name,
                          (int)session_opener(node->session));
    node->session = session_new(node->dev, opener, mem, mem_opaque, error);
    if (!node->session)
        return vdpad_error_errno(error ? *error : NULL);
    struct session_events ev = node_session_events;
    ev.opaque = node;
    session_set_events(node->session, &ev);
    for (int i = 0; i < 4; i++)
        g_snprintf(node->token + i * 8, 9, "%08x", g_random_int());
    if (node->incoming)
        session_expect_restore(node->session);
    node->mode = SESSION_PASSTHROUGH;
    g_info("%s: opened by pid %d", node->name, (int)opener);
    notify(reg, node, NODE_OPENED);
    return 0;
}

void node_close(struct node_registry *reg, struct vdpa_node *node)
{
    if (!node->session)
        return;
    pid_t opener = session_opener(node->session);
    g_clear_pointer(&node->session, session_free);
    g_info("%s: closed (opened by pid %d); device reset", node->name, (int)opener);
    notify(reg, node, NODE_CLOSED);
}

void node_changed(struct node_registry *reg, struct vdpa_node *node)
{
    notify(reg, node, NODE_CHANGED);
}

void node_registry_set_fetcher(struct node_registry *reg, node_state_fetcher fn, void *opaque)
{
    reg->fetcher = fn;
    reg->fetcher_opaque = opaque;
}

int node_prepare_incoming(struct node_registry *reg, struct vdpa_node *node, const char *source,
                          const char *device, const char *token, GError **error)
{
    if (node->session && (session_get_status(node->session) & 0x4 /* DRIVER_OK */))
        return vdpad_fail(error, EBUSY, "%s: a client runs the device; prepare it before the "
                          "destination starts", node->name);
    if (!source || !*source || !device || !device_name_valid(device) || !token || !*token ||
        strlen(token) > 128)
        return vdpad_fail(error, EINVAL, "%s: prepare-incoming needs the source as host:port, "
                          "a valid device name and the source session's token", node->name);
    node_cancel_incoming(node);
    node->incoming = g_new0(struct node_incoming, 1);
    node->incoming->source = g_strdup(source);
    node->incoming->device = g_strdup(device);
    node->incoming->token = g_strdup(token);
    if (node->session)
        session_expect_restore(node->session);
    g_message("%s: prepared to receive %s's state from %s", node->name, device, source);
    notify(reg, node, NODE_CHANGED);
    return 0;
}
