noinst_HEADERS += src/virtio/split_ring.h
