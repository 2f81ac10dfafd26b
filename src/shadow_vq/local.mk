src_libvdpad_a_SOURCES += \
	src/shadow_vq/relay.c src/shadow_vq/relay.h
