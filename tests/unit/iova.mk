UNIT_TESTS += tests/unit/test_iova_map
tests_unit_test_iova_map_SOURCES = tests/unit/test_iova_map.c
tests_unit_test_iova_map_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_iova_map_LDADD = $(UNIT_LIBS)
