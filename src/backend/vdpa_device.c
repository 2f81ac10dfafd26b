#include "config.h"

#include <string.h>

#include "backend/vdpa_device.h"

void vdpa_device_init(struct vdpa_device *dev, const struct vdpa_device_ops *ops,
                      const char *name, const char *backend)
{
    dev->ops = ops;
    dev->name = g_strdup(name);
    dev->backend = backend;
}

void vdpa_device_cleanup(struct vdpa_device *dev)
{
    g_clear_pointer(&dev->name, g_free);
}

void vdpa_device_free(struct vdpa_device *dev)
{
    if (dev)
        dev->ops->free(dev);
}

void vdpa_vq_stats_add(struct vdpa_vq_stats *stats, const char *name, uint64_t value)
{
    if (stats->n >= VDPA_VQ_STATS_MAX)
        return;
    stats->entry[stats->n].name = name;
    stats->entry[stats->n].value = value;
    stats->n++;
}

bool vdpa_vq_stats_get(const struct vdpa_vq_stats *stats, const char *name, uint64_t *value)
{
    for (unsigned i = 0; i < stats->n; i++) {
        if (strcmp(stats->entry[i].name, name) == 0) {
            *value = stats->entry[i].value;
            return true;
        }
    }
    return false;
}
