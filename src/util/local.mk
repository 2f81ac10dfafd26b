src_libvdpad_a_SOURCES += \
	src/util/error.c src/util/error.h \
	src/util/fd.c src/util/fd.h \
	src/util/log.c src/util/log.h \
	src/util/stats.c src/util/stats.h \
	src/util/compat.h
