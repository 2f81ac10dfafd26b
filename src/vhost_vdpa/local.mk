src_libvdpad_a_SOURCES += \
	src/vhost_vdpa/fuse_front.c src/vhost_vdpa/fuse_front.h \
	src/vhost_vdpa/guest_mem.c src/vhost_vdpa/guest_mem.h \
	src/vhost_vdpa/process_peer.c \
	src/vhost_vdpa/uapi.c src/vhost_vdpa/uapi.h
