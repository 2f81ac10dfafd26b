noinst_HEADERS += src/iova/iova_map.h
src_libvdpad_a_SOURCES += src/iova/iova_map.c
