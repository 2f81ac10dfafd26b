# tests/fuzz/virtio.mk
