#include "config.h"

#include <stdio.h>
#include <unistd.h>

#include "util/log.h"

static GLogLevelFlags max_level = G_LOG_LEVEL_MESSAGE;
static const char *program_name = "vdpad";
static gboolean to_journal;

static const struct {
    const char *name;
    GLogLevelFlags level;
} levels[] = {
    { "error", G_LOG_LEVEL_CRITICAL },
    { "warning", G_LOG_LEVEL_WARNING },
    { "message", G_LOG_LEVEL_MESSAGE },
    { "info", G_LOG_LEVEL_INFO },
    { "debug", G_LOG_LEVEL_DEBUG },
};

gboolean vdpad_log_parse_level(const char *name, GLogLevelFlags *level)
{
    for (size_t i = 0; i < G_N_ELEMENTS(levels); i++) {
        if (g_str_equal(name, levels[i].name)) {
            *level = levels[i].level;
            return TRUE;
        }
    }
    return FALSE;
}

static const char *level_name(GLogLevelFlags level)
{
    if (level & (G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL))
        return "error";
    if (level & G_LOG_LEVEL_WARNING)
        return "warning";
    if (level & G_LOG_LEVEL_MESSAGE)
        return "message";
    if (level & G_LOG_LEVEL_INFO)
        return "info";
    return "debug";
}

/* GLib's levels are bits, more severe = lower bit. */
static gboolean wanted(GLogLevelFlags level)
{
    return (level & G_LOG_LEVEL_MASK) <= max_level;
}

static GLogWriterOutput write_log(GLogLevelFlags level, const GLogField *fields, gsize n,
                                  gpointer data)
{
    if (!wanted(level & G_LOG_LEVEL_MASK))
        return G_LOG_WRITER_HANDLED;
    if (to_journal && g_log_writer_journald(level, fields, n, data) == G_LOG_WRITER_HANDLED)
        return G_LOG_WRITER_HANDLED;
    const char *msg = "";
    for (gsize i = 0; i < n; i++)
        if (g_str_equal(fields[i].key, "MESSAGE"))
            msg = fields[i].value;
    fprintf(stderr, "%s[%d]: %s: %s\n", program_name, (int)getpid(), level_name(level), msg);
    return G_LOG_WRITER_HANDLED;
}

void vdpad_log_init(const char *program, GLogLevelFlags level)
{
    program_name = program;
    max_level = level;
    to_journal = g_log_writer_is_journald(fileno(stderr));
    /* GLib's own filter hides info/debug unless G_MESSAGES_DEBUG is set; ours decides. */
    g_setenv("G_MESSAGES_DEBUG", "all", TRUE);
    g_log_set_writer_func(write_log, NULL, NULL);
}
