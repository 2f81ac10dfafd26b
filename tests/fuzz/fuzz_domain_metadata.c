/* Fuzz target: what the destination's hook reads from another host — a whole domain XML and
 * vdpad's metadata element in it. Any input is parsed or refused with a message; an accepted
 * element has only valid entries, and formats (both forms) to text that parses back to the
 * same entries. */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "libvirt_driver/domain_metadata.h"
#include "libvirt_driver/domain_xml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool same_devices(const GPtrArray *a, const GPtrArray *b)
{
    if (a->len != b->len)
        return false;
    for (guint i = 0; i < a->len; i++) {
        const struct vdpad_mig_device *x = a->pdata[i], *y = b->pdata[i];
        if (strcmp(x->node, y->node) || strcmp(x->name, y->name) ||
            strcmp(x->source, y->source) || strcmp(x->token, y->token))
            return false;
    }
    return true;
}

static void check_devices(const GPtrArray *devices)
{
    for (guint i = 0; i < devices->len; i++)
        if (vdpad_mig_device_validate(devices->pdata[i], NULL) < 0)
            __builtin_trap();
    for (int ns = 0; ns < 2; ns++) {
        g_autofree char *text = domain_metadata_format(devices, ns);
        g_autoptr(GPtrArray) again = domain_metadata_parse(text, strlen(text), NULL);
        if (!again || !same_devices(devices, again))
            __builtin_trap();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(GPtrArray) devices = domain_metadata_parse((const char *)data, size, &err);

    if (devices)
        check_devices(devices);
    else if (!err || !err->message[0])
        __builtin_trap(); /* a refusal says why */
    g_clear_error(&err);

    struct domain_xml_info info;
    if (domain_xml_scan((const char *)data, size, &info, &err) < 0) {
        if (!err || !err->message[0])
            __builtin_trap();
        return 0;
    }
    check_devices(info.devices);
    g_autoptr(GPtrArray) incoming = domain_xml_incoming(&info);
    for (guint i = 0; i < incoming->len; i++) {
        const struct vdpad_mig_device *d = incoming->pdata[i];
        bool listed = false, used = false;
        for (guint j = 0; j < info.devices->len; j++)
            listed |= info.devices->pdata[j] == d;
        for (guint j = 0; j < info.vdpa_sources->len; j++)
            used |= strcmp(info.vdpa_sources->pdata[j], d->node) == 0;
        if (!listed || !used)
            __builtin_trap();
    }
    domain_xml_info_clear(&info);
    return 0;
}
