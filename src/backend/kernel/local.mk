src_libvdpad_a_SOURCES += \
	src/backend/kernel/kernel_dev.c src/backend/kernel/kernel_dev.h
