# src/virtio/models.mk — the net control state model and the blk request parser.
src_libvdpad_a_SOURCES += \
	src/virtio/net_state.c src/virtio/net_ctrl_wire.c \
	src/virtio/blk_req.c
