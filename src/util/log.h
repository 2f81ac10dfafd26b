/* log.h — vdpad's logging: GLib structured logging, to the journal when stderr is
 * connected to it, else to stderr as "vdpad[pid]: LEVEL: message".
 *
 * Levels, most to least severe: error, warning, message (the default), info, debug.
 * Messages never carry secrets: no key material, no TLS session data, no guest payload.
 * Threads: any thread may log; vdpad_log_init is called once at start.
 */
#pragma once

#include <glib.h>

/* Parses "error", "warning", "message", "info", "debug". */
gboolean vdpad_log_parse_level(const char *name, GLogLevelFlags *level);

/* Installs the writer; messages less severe than level are dropped. */
void vdpad_log_init(const char *program, GLogLevelFlags level);
