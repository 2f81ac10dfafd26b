/* json_read.h — strict reading of JSON from a peer (json-c), for the migration channel,
 * and the compact text of what we send (jr_text).
 *
 * Every getter names the field in its error as a path ("net.vlans[3]"), says what was
 * expected and what came, and quotes peer text only after escaping it (jr_quote), so an
 * error message is safe to log. Integers must be JSON integers (1.0 is refused), strings
 * must not contain NUL, objects may not carry keys the reader does not know (jr_only_keys).
 *
 * Ownership: returned json_object and string pointers are borrowed from the object passed
 * in and live as long as it does. Threads: pure functions.
 */
#pragma once

#include <glib.h>
#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Nesting accepted by jr_parse_object (the deepest message, a response carrying a state
 * with VLAN lists, has 4 levels). */
#define JR_MAX_DEPTH 8

/* The compact text of o (no slashes escaped), which it consumes; *len (may be NULL) gets
 * its length. The caller frees the text. */
char *jr_text(struct json_object *o, size_t *len);

/* Parses text[0..len) as exactly one JSON object (strict grammar, valid UTF-8, trailing
 * whitespace allowed, nothing else after it). what names the message in errors
 * ("request", "device state"). Returns a new reference, or NULL with -EBADMSG in *error. */
struct json_object *jr_parse_object(const char *text, size_t len, const char *what,
                                    GError **error);

/* Fails with EBADMSG naming the first key of obj (at path; "" for the top level) that is not
 * in allowed (NULL-terminated). */
int jr_only_keys(struct json_object *obj, const char *path, const char *const *allowed,
                 GError **error);

/* Field getters: return 0, or -EBADMSG with *error when the key is missing, has the wrong
 * type or is out of range. */
int jr_get_uint(struct json_object *obj, const char *path, const char *key, uint64_t min,
                uint64_t max, uint64_t *out, GError **error);
int jr_get_bool(struct json_object *obj, const char *path, const char *key, bool *out,
                GError **error);
/* A string of 1..max_len bytes without NUL. */
int jr_get_string(struct json_object *obj, const char *path, const char *key, size_t max_len,
                  const char **out, GError **error);
/* A 64-bit mask written as "0x" and 1-16 hex digits. */
int jr_get_hex64(struct json_object *obj, const char *path, const char *key, uint64_t *out,
                 GError **error);
int jr_get_object(struct json_object *obj, const char *path, const char *key,
                  struct json_object **out, GError **error);
/* An array of at most max_len elements. */
int jr_get_array(struct json_object *obj, const char *path, const char *key, size_t max_len,
                 struct json_object **out, GError **error);

/* "path.key" (or "key" at the top level); g_free the result. */
char *jr_path(const char *path, const char *key);

/* Text made safe to log and to send: valid UTF-8 (bad bytes become U+FFFD), control
 * characters (< 0x20, 0x7f) become '?', cut at max bytes on a character boundary.
 * g_free the result. */
char *jr_printable(const char *text, size_t max);

/* Peer text made safe for a message: printable ASCII kept, anything else as \xNN, cut
 * after max bytes of input with "...". g_free the result. */
char *jr_quote(const char *text, size_t len, size_t max);
