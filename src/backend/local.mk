src_libvdpad_a_SOURCES += \
	src/backend/vdpa_device.c src/backend/vdpa_device.h \
	src/backend/sim/sim.h \
	src/backend/sim/sim_core.c src/backend/sim/sim_core.h \
	src/backend/sim/sim_segs.c src/backend/sim/sim_segs.h \
	src/backend/sim/sim_net.c \
	src/backend/sim/sim_blk.c
