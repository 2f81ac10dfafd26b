# src/migration — the device-state codec and the TLS channel between vdpad instances
src_libvdpad_a_SOURCES += \
	src/migration/json_read.c src/migration/json_read.h \
	src/migration/device_state.c src/migration/device_state.h \
	src/migration/mig_frame.c src/migration/mig_frame.h \
	src/migration/mig_msg.c src/migration/mig_msg.h
