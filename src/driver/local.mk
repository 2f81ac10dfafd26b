src_libvdpad_a_SOURCES += \
	src/driver/virtio_driver.c src/driver/virtio_driver.h \
	src/driver/vdrv_internal.h \
	src/driver/vdrv_net.c \
	src/driver/vdrv_blk.c
