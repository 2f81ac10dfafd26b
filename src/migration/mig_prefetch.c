#include "config.h"

#include "migration/mig_prefetch.h"
#include "migration/mig_msg.h"

/* What a node was prepared with when its early call started. */
struct prefetch {
    struct mig_prefetch *pf;
    char *node, *source, *device, *token;
    mig_call *call;            /* in flight, or NULL */
    struct device_state *state; /* the answer, until taken */
    gint64 answered_us;        /* monotonic */
    bool used;                 /* taken, or given up: no new call for this preparation */
};

struct mig_prefetch {
    mig_client *client;
    GHashTable *by_node; /* node name -> struct prefetch */
};

static void prefetch_free(gpointer data)
{
    struct prefetch *p = data;

    if (p->call)
        mig_call_cancel(p->call);
    device_state_free(p->state);
    g_free(p->node);
    g_free(p->source);
    g_free(p->device);
    g_free(p->token);
    g_free(p);
}

struct mig_prefetch *mig_prefetch_new(mig_client *client)
{
    struct mig_prefetch *pf = g_new0(struct mig_prefetch, 1);

    pf->client = client;
    pf->by_node = g_hash_table_new_full(g_str_hash, g_str_equal, NULL, prefetch_free);
    return pf;
}

void mig_prefetch_free(struct mig_prefetch *pf)
{
    if (!pf)
        return;
    g_hash_table_destroy(pf->by_node);
    g_free(pf);
}

static void ask(struct prefetch *p);

static void on_answer(struct device_state *state, const GError *error, void *opaque)
{
    struct prefetch *p = opaque;

    p->call = NULL;
    if (state) {
        p->state = state;
        p->answered_us = g_get_monotonic_time();
        g_info("%s: %s at %s sent its state at its stop; kept for the device's start",
               p->node, p->device, p->source);
    } else if (mig_error_kind(error) == MIG_ERR_NOT_READY) {
        ask(p); /* a migration longer than the wait: keep waiting */
    } else {
        g_info("%s: asking %s early for %s's state failed (%s); the device's start asks "
               "again", p->node, p->source, p->device, error->message);
        p->used = true;
    }
}

static void ask(struct prefetch *p)
{
    p->call = mig_client_get_state(p->pf->client, p->source, p->device, p->token,
                                   MIG_WAIT_MS_MAX, on_answer, p);
}

static bool same_preparation(const struct prefetch *p, const struct node_incoming *in)
{
    return g_str_equal(p->source, in->source) && g_str_equal(p->device, in->device) &&
           g_str_equal(p->token, in->token);
}

void mig_prefetch_node_event(struct mig_prefetch *pf, struct vdpa_node *node,
                             enum node_event event)
{
    struct prefetch *p = g_hash_table_lookup(pf->by_node, node->name);
    bool wanted = node->incoming && node->session && event != NODE_CLOSED &&
                  event != NODE_REMOVED;

    if (p && (!wanted || !same_preparation(p, node->incoming))) {
        g_hash_table_remove(pf->by_node, node->name);
        p = NULL;
    }
    if (!wanted || p)
        return;
    p = g_new0(struct prefetch, 1);
    p->pf = pf;
    p->node = g_strdup(node->name);
    p->source = g_strdup(node->incoming->source);
    p->device = g_strdup(node->incoming->device);
    p->token = g_strdup(node->incoming->token);
    g_hash_table_insert(pf->by_node, p->node, p);
    ask(p);
}

struct device_state *mig_prefetch_take(struct mig_prefetch *pf, struct vdpa_node *node,
                                       double *age_ms)
{
    struct prefetch *p = g_hash_table_lookup(pf->by_node, node->name);

    if (!p || p->used || !node->incoming || !same_preparation(p, node->incoming))
        return NULL;
    p->used = true;
    if (p->call) {
        mig_call_cancel(p->call);
        p->call = NULL;
    }
    if (p->state)
        *age_ms = (g_get_monotonic_time() - p->answered_us) / 1000.0;
    return g_steal_pointer(&p->state);
}
