/* qmp_json.h — json-c with GLib's cleanup idiom, and typed member lookups for QMP.
 *
 *   g_autoptr(json_object) msg = json_object_new_object();   put at end of scope
 *   g_ptr_array_new_with_free_func(qmp_json_unref)           arrays of owned references
 *
 * The lookups borrow: what they return lives as long as the object they were given.
 */
#pragma once

#include <glib.h>
#include <json-c/json.h>

G_DEFINE_AUTOPTR_CLEANUP_FUNC(json_object, json_object_put)

/* A GDestroyNotify that drops one reference. */
static inline void qmp_json_unref(gpointer obj)
{
    json_object_put(obj);
}

/* The member key of obj if obj is an object, has it, and it has the type; else NULL. */
static inline json_object *qmp_json_member(json_object *obj, const char *key, json_type type)
{
    json_object *m = NULL;

    if (!json_object_is_type(obj, json_type_object) || !json_object_object_get_ex(obj, key, &m) ||
        !json_object_is_type(m, type))
        return NULL;
    return m;
}

/* The string member key, or NULL. */
static inline const char *qmp_json_string(json_object *obj, const char *key)
{
    json_object *m = qmp_json_member(obj, key, json_type_string);

    return m ? json_object_get_string(m) : NULL;
}

/* The integer member key into *out; FALSE (and *out untouched) when absent or not an integer. */
static inline gboolean qmp_json_int(json_object *obj, const char *key, gint64 *out)
{
    json_object *m = qmp_json_member(obj, key, json_type_int);

    if (!m)
        return FALSE;
    *out = json_object_get_int64(m);
    return TRUE;
}
