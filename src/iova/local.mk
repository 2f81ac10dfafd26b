src_libvdpad_a_SOURCES += src/iova/iova_map.c src/iova/iova_map.h
