noinst_HEADERS += src/virtio/split_ring.h src/virtio/net_state.h src/virtio/blk_req.h
src_libvdpad_a_SOURCES += src/virtio/split_ring.c
