#include "config.h"

#include <glib.h>
#include <stdio.h>
#include <string.h>

#include "log_capture.h"

static GMutex lock;
static GString *text;

static GLogWriterOutput keep(GLogLevelFlags level, const GLogField *fields, gsize n,
                             gpointer data)
{
    for (gsize i = 0; i < n; i++) {
        if (!g_str_equal(fields[i].key, "MESSAGE"))
            continue;
        g_mutex_lock(&lock);
        g_string_append_printf(text, "%s\n", (const char *)fields[i].value);
        g_mutex_unlock(&lock);
        if (g_getenv("VDPAD_TEST_VERBOSE"))
            fprintf(stderr, "log: %s\n", (const char *)fields[i].value);
    }
    return G_LOG_WRITER_HANDLED;
}

void log_capture_start(void)
{
    text = g_string_new(NULL);
    g_log_set_writer_func(keep, NULL, NULL);
}

bool log_capture_has(const char *what)
{
    g_mutex_lock(&lock);
    bool found = strstr(text->str, what) != NULL;
    g_mutex_unlock(&lock);
    return found;
}

size_t log_capture_len(void)
{
    g_mutex_lock(&lock);
    size_t len = text->len;
    g_mutex_unlock(&lock);
    return len;
}

void log_capture_clear(void)
{
    g_mutex_lock(&lock);
    g_string_truncate(text, 0);
    g_mutex_unlock(&lock);
}
