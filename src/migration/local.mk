# src/migration — the device-state codec and the TLS channel between vdpad instances
src_libvdpad_a_SOURCES += \
	src/migration/json_read.c src/migration/json_read.h \
	src/migration/device_state.c src/migration/device_state.h \
	src/migration/mig_frame.c src/migration/mig_frame.h \
	src/migration/mig_msg.c src/migration/mig_msg.h \
	src/migration/mig_tls.c src/migration/mig_tls.h \
	src/migration/mig_conn.c src/migration/mig_conn.h \
	src/migration/mig_server.c src/migration/mig_server.h \
	src/migration/mig_client.c src/migration/mig_client.h \
	src/migration/mig_prefetch.c src/migration/mig_prefetch.h \
	src/migration/mig_service.c src/migration/mig_service.h
