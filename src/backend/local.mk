src_libvdpad_a_SOURCES += \
	src/backend/vdpa_device.c src/backend/vdpa_device.h
noinst_HEADERS += src/backend/sim/sim.h
