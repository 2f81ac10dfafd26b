/* device_spec.h — the device descriptions users write, on the command line
 * (--device SPEC), in the config file and through D-Bus (CreateDevice):
 *
 *   net:NAME[,mac=52:54:00:xx:xx:xx][,queues=N][,mtu=N][,features=0xHEX]   simulated NIC
 *   blk:NAME[,size=128M][,queues=N]                                       simulated disk
 *   kernel:NAME,path=/dev/vhost-vdpa-N                                    real device
 *
 * NAME: 1-64 of [A-Za-z0-9_.-], not starting with '.'; it becomes the file DIR/NAME.
 * Parsing is strict: an unknown key, a repeated key or a bad value is an error that names
 * it. Threads: pure functions.
 */
#pragma once

#include <glib.h>
#include <stdint.h>

enum device_kind {
    DEVICE_SIM_NET,
    DEVICE_SIM_BLK,
    DEVICE_KERNEL,
};

struct device_spec {
    enum device_kind kind;
    char *name;
    char *text;         /* the spec as given */
    /* net */
    uint8_t mac[6];
    gboolean has_mac;
    unsigned queues;    /* net: queue pairs, blk: queues; 0 = default */
    unsigned mtu;       /* 0 = default */
    uint64_t features;  /* 0 = all the device supports */
    /* blk */
    uint64_t size;      /* bytes; 0 = default (128 MiB) */
    /* kernel */
    char *path;
};

struct device_spec *device_spec_parse(const char *text, GError **error);
void device_spec_free(struct device_spec *spec);
typedef struct device_spec device_spec; /* for g_autoptr */
G_DEFINE_AUTOPTR_CLEANUP_FUNC(device_spec, device_spec_free)

/* "net", "blk", "kernel" */
const char *device_kind_name(enum device_kind kind);
gboolean device_name_valid(const char *name);

/* Reads the devices of a config file (GKeyFile): one group [device NAME] per device with
 * the keys of its spec (type=net|blk|kernel, mac=, queues=, mtu=, features=, size=,
 * path=). Returns the specs as text, in file order, or NULL with *error. */
GPtrArray *device_spec_load_config(const char *path, GError **error);
