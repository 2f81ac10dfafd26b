/* log_capture.h — a unit test's GLib log, kept in memory so the test can check what was
 * logged (with VDPAD_TEST_VERBOSE set, each message also goes to stderr).
 *
 * Threads: any thread may log; the checks take the same lock. The writer is installed once
 * per process (GLib allows one). */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* Installs the writer: from now on every message is kept. */
void log_capture_start(void);
/* Whether a message kept so far contains what. */
bool log_capture_has(const char *what);
/* Bytes kept so far. */
size_t log_capture_len(void);
/* Forgets what was kept. */
void log_capture_clear(void);
