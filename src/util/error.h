/* error.h — how vdpad reports errors.
 *
 * Control-path functions return 0 or a negative errno, and when they fail they also set a
 * GError (domain VDPAD_ERROR, code = the positive errno) whose message says which device,
 * queue or message failed and with which values. The errno goes back to uAPI clients;
 * the message goes to logs and D-Bus callers.
 *
 * Data-path code (rings, relay) does not allocate: it returns a negative errno and keeps a
 * fixed-size message of its own (see vring_dev.error).
 */
#pragma once

#include <errno.h>
#include <glib.h>

#define VDPAD_ERROR (vdpad_error_quark())
GQuark vdpad_error_quark(void);

/* Sets *error (if error is non-NULL) to VDPAD_ERROR/errnum with a formatted message and
 * returns -errnum, so a failure path is one line: return vdpad_fail(error, EINVAL, "...", ...). */
int vdpad_fail(GError **error, int errnum, const char *fmt, ...) G_GNUC_PRINTF(3, 4);

/* Adds context in front of an existing error ("dev0: " + message) and returns its -errno. */
int vdpad_prefix_error(GError **error, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

/* The negative errno carried by an error from vdpad_fail(), or -EIO for any other error. */
int vdpad_error_errno(const GError *error);
