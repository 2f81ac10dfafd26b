noinst_HEADERS += src/driver/virtio_driver.h
