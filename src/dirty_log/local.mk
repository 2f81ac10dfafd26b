noinst_HEADERS += src/dirty_log/dirty_log.h
