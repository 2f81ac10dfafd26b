src_libvdpad_a_SOURCES += \
	src/core/device_spec.c src/core/device_spec.h \
	src/core/mem_guard.c src/core/mem_guard.h \
	src/core/node.c src/core/node.h \
	src/core/session.c src/core/session.h src/core/session_priv.h \
	src/core/session_relay.c
