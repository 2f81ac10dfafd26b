# tests/unit/virtio.mk
