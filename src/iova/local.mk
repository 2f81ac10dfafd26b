noinst_HEADERS += src/iova/iova_map.h
