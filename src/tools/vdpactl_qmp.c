/* vdpactl qmp SOCK COMMAND [ARGS-JSON] — one QMP command to a QEMU, through vdpad's QMP
 * client; prints the result as JSON. For scripts and tests that steer a migration (slow it
 * down, cancel it) without a second QMP implementation. */
#include "config.h"

#include <json-c/json.h>
#include <stdio.h>

#include "qmp/qmp_client.h"
#include "tools/vdpactl.h"

#define QMP_TIMEOUT_MS 10000

int vdpactl_qmp(struct ctl_options *opt, int argc, char **argv)
{
    g_autoptr(GError) err = NULL;

    if (argc < 3 || argc > 4)
        return vdpactl_usage_error("%s", "qmp SOCK COMMAND [ARGUMENTS-AS-JSON-OBJECT]");
    json_object *args = NULL;
    if (argc == 4) {
        args = json_tokener_parse(argv[3]);
        if (!args || !json_object_is_type(args, json_type_object)) {
            json_object_put(args);
            return vdpactl_usage_error("qmp: arguments must be a JSON object, not '%s'", argv[3]);
        }
    }
    struct qmp_client *c = qmp_client_connect(argv[1], QMP_TIMEOUT_MS, &err);
    if (!c) {
        json_object_put(args);
        fprintf(stderr, "vdpactl: %s\n", err->message);
        return EXIT_UNREACHABLE;
    }
    json_object *result = NULL;
    int ret = qmp_client_execute(c, argv[2], args, &result, &err);
    json_object_put(args);
    if (ret < 0) {
        fprintf(stderr, "vdpactl: %s\n", err->message);
        qmp_client_free(c);
        return EXIT_FAILED;
    }
    printf("%s\n", result ? json_object_to_json_string_ext(result, JSON_C_TO_STRING_PLAIN) : "{}");
    json_object_put(result);
    qmp_client_free(c);
    return EXIT_OK;
}
