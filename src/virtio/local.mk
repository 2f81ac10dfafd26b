noinst_HEADERS += src/virtio/split_ring.h
src_libvdpad_a_SOURCES += src/virtio/split_ring.c
