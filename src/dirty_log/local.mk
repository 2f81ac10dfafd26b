src_libvdpad_a_SOURCES += \
	src/dirty_log/dirty_log.c src/dirty_log/dirty_log.h \
	src/dirty_log/dirty_log_priv.h \
	src/dirty_log/remote_flush.c
