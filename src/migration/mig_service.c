#include "config.h"

#include <linux/virtio_ids.h>
#include <linux/virtio_net.h>
#include <stddef.h>
#include <string.h>

#include "migration/device_state.h"
#include "migration/mig_client.h"
#include "migration/mig_prefetch.h"
#include "migration/mig_server.h"
#include "migration/mig_service.h"
#include "util/error.h"

struct mig_service {
    struct node_registry *reg;
    mig_server *server;
    mig_client *client;
    mig_prefetch *prefetch; /* destination: states asked for before the device starts */
    GList *waiting; /* struct waiter: requests that came before their device stopped */
};

struct waiter {
    struct mig_service *svc;
    mig_request *req;
};

/* ------------------------------------------------------------------ source side */

static struct device_state *state_of(struct vdpa_node *node)
{
    const struct node_stop_record *st = &node->stop;
    struct vdpa_device *dev = node->dev;
    g_autoptr(device_state) ds = device_state_new();
    uint16_t pairs = 1, mtu = 0;

    ds->device = g_strdup(node->name);
    ds->token = g_strdup(st->token);
    ds->virtio_id = dev->ops->get_device_id(dev);
    ds->features = st->features;
    ds->stopped_at_us = st->stopped_us;
    if (st->features & (1ull << VIRTIO_NET_F_MQ))
        dev->ops->get_config(dev, offsetof(struct virtio_net_config, max_virtqueue_pairs),
                             &pairs, sizeof(pairs));
    if (st->features & (1ull << VIRTIO_NET_F_MTU))
        dev->ops->get_config(dev, offsetof(struct virtio_net_config, mtu), &mtu, sizeof(mtu));
    ds->net.max_queue_pairs = pairs ? pairs : 1;
    ds->net.mtu = mtu;
    ds->net.state = st->net;
    return g_steal_pointer(&ds);
}

/* Answers req if its device has stopped in the session the token names; true if done. */
static bool try_answer(struct mig_service *svc, mig_request *req)
{
    const char *name = mig_request_device(req), *token = mig_request_token(req);
    struct vdpa_node *node = node_registry_lookup(svc->reg, name);

    if (!node) {
        mig_request_reply_error(req, MIG_STATUS_NO_DEVICE, "no device named %s here", name);
        return true;
    }
    if (node->stop.valid && g_str_equal(node->stop.token, token)) {
        if (!node->stop.has_net) {
            mig_request_reply_error(req, MIG_STATUS_FAILED, "%s stopped without a control "
                                    "queue state to migrate", name);
            return true;
        }
        g_autoptr(device_state) ds = state_of(node);
        g_autoptr(GError) err = NULL;
        if (device_state_validate(ds, &err) < 0) {
            mig_request_reply_error(req, MIG_STATUS_FAILED, "%s: %s", name, err->message);
            return true;
        }
        g_message("%s: state sent to %s (%s)", name, mig_request_peer(req),
                  mig_request_peer_dn(req));
        mig_request_reply_state(req, ds);
        return true;
    }
    if (node->session && g_str_equal(node->token, token))
        return false; /* the session runs: wait for its stop */
    mig_request_reply_error(req, MIG_STATUS_BAD_TOKEN, "%s: token %s names no session of this "
                            "device", name, token);
    return true;
}

static void on_waiter_cancelled(mig_request *req, void *data)
{
    struct waiter *w = data;

    w->svc->waiting = g_list_remove(w->svc->waiting, w);
    /* the request ended (its wait ran out, the destination went away): a reply has nowhere
     * to go, but it releases the request */
    mig_request_reply_error(req, MIG_STATUS_FAILED, "ended");
    g_free(w);
}

static void on_request(mig_request *req, void *opaque)
{
    struct mig_service *svc = opaque;

    if (try_answer(svc, req))
        return;
    struct waiter *w = g_new0(struct waiter, 1);
    w->svc = svc;
    w->req = req;
    svc->waiting = g_list_prepend(svc->waiting, w);
    mig_request_set_cancel(req, on_waiter_cancelled, w);
}

static void on_node_event(struct vdpa_node *node, enum node_event event, void *data)
{
    struct mig_service *svc = data;

    mig_prefetch_node_event(svc->prefetch, node, event);
    if (event != NODE_STOPPED && event != NODE_REMOVED && event != NODE_CLOSED)
        return;
    for (GList *l = svc->waiting; l;) {
        struct waiter *w = l->data;
        GList *next = l->next;
        bool done;
        if (event == NODE_STOPPED) {
            done = try_answer(svc, w->req);
        } else if (g_str_equal(mig_request_device(w->req), node->name)) {
            /* the session ended without a stop from DRIVER_OK */
            mig_request_reply_error(w->req, MIG_STATUS_FAILED, "%s: the session ended before "
                                    "its device stopped", node->name);
            done = true;
        } else {
            done = false;
        }
        if (done) {
            svc->waiting = g_list_delete_link(svc->waiting, l);
            g_free(w);
        }
        l = next;
    }
}

/* ------------------------------------------------------------------ destination side */

static int fetch_state(void *opaque, struct vdpa_node *node, const struct node_incoming *from,
                       struct net_state *out, GError **error)
{
    struct mig_service *svc = opaque;
    gint64 t0 = g_get_monotonic_time();
    g_autoptr(GError) err = NULL;
    double age_ms = 0;
    g_autoptr(device_state) ds = mig_prefetch_take(svc->prefetch, node, &age_ms);
    bool early = ds != NULL;

    if (!ds)
        ds = mig_client_get_state_sync(svc->client, from->source, from->device, from->token,
                                       MIG_SERVICE_FETCH_MS, &err);
    if (!ds)
        return vdpad_fail(error, -vdpad_error_errno(err), "the state of %s from %s (%s): %s",
                          from->device, from->source,
                          mig_error_kind_name(mig_error_kind(err)), err->message);
    if (ds->virtio_id != node->dev->ops->get_device_id(node->dev))
        return vdpad_fail(error, EINVAL, "%s at %s is a device of type %u, this one of %u",
                          from->device, from->source, ds->virtio_id,
                          node->dev->ops->get_device_id(node->dev));
    *out = ds->net.state;
    if (early)
        g_message("%s: got %s's state from %s early: it came at the source's stop, %.1f ms "
                  "before this start", node->name, from->device, from->source, age_ms);
    else
        g_message("%s: got %s's state from %s in %.1f ms", node->name, from->device,
                  from->source, (double)(g_get_monotonic_time() - t0) / 1000.0);
    return 1;
}

int mig_service_check_source(struct mig_service *svc, const char *source, GError **error)
{
    g_autoptr(GError) err = NULL;

    if (mig_client_ping_sync(svc->client, source, &err) < 0)
        return vdpad_fail(error, -vdpad_error_errno(err), "source %s (%s): %s", source,
                          mig_error_kind_name(mig_error_kind(err)), err->message);
    return 0;
}

/* ------------------------------------------------------------------ life cycle */

struct mig_service *mig_service_start(struct node_registry *reg,
                                      const struct mig_service_config *cfg, GError **error)
{
    g_autoptr(mig_service) svc = g_new0(struct mig_service, 1);

    svc->reg = reg;
    struct mig_client_config ccfg = { .tls = { .pki_dir = cfg->pki_dir } };
    svc->client = mig_client_new(&ccfg, error);
    if (!svc->client) {
        vdpad_prefix_error(error, "migration channel (client certificate): ");
        return NULL;
    }
    svc->prefetch = mig_prefetch_new(svc->client);
    if (cfg->listen) {
        struct mig_server_config scfg = {
            .listen = cfg->listen,
            .tls = { .pki_dir = cfg->pki_dir, .allowed_dns = cfg->allowed_dns },
        };
        svc->server = mig_server_new(&scfg, on_request, svc, error);
        if (!svc->server) {
            vdpad_prefix_error(error, "migration channel on %s: ", cfg->listen);
            return NULL;
        }
        g_message("migration channel: serving device states on %s (port %u)", cfg->listen,
                  mig_server_port(svc->server));
    }
    node_registry_add_observer(reg, on_node_event, svc);
    node_registry_set_fetcher(reg, fetch_state, svc);
    return g_steal_pointer(&svc);
}

void mig_service_stop(struct mig_service *svc)
{
    if (!svc)
        return;
    if (svc->reg) {
        node_registry_remove_observer(svc->reg, on_node_event, svc);
        node_registry_set_fetcher(svc->reg, NULL, NULL);
    }
    for (GList *l = svc->waiting; l; l = l->next) {
        struct waiter *w = l->data;
        mig_request_set_cancel(w->req, NULL, NULL);
        mig_request_reply_error(w->req, MIG_STATUS_FAILED, "the source vdpad is stopping");
        g_free(w);
    }
    g_list_free(svc->waiting);
    mig_server_free(svc->server);
    mig_prefetch_free(svc->prefetch);
    mig_client_free(svc->client);
    g_free(svc);
}

unsigned mig_service_port(const struct mig_service *svc)
{
    return svc->server ? mig_server_port(svc->server) : 0;
}
