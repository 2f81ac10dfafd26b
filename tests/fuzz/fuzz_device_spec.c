/* Fuzz target: the device spec parser. Any input is parsed or refused with an error;
 * an accepted spec satisfies the parser's own invariants. */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/device_spec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    g_autofree char *text = g_strndup((const char *)data, size);
    g_autoptr(GError) err = NULL;
    g_autoptr(device_spec) spec = device_spec_parse(text, &err);

    if (!spec) {
        if (!err || !err->message[0])
            __builtin_trap(); /* a refusal must say why */
        return 0;
    }
    if (!device_name_valid(spec->name))
        __builtin_trap();
    if (spec->kind == DEVICE_KERNEL && (!spec->path || spec->path[0] != '/'))
        __builtin_trap();
    if (spec->kind == DEVICE_SIM_BLK && (spec->size == 0 || spec->size % 512))
        __builtin_trap();
    if (spec->has_mac && (spec->mac[0] & 1))
        __builtin_trap();
    return 0;
}
