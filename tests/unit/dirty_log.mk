# tests/unit/dirty_log.mk
UNIT_TESTS += tests/unit/test_dirty_log
tests_unit_test_dirty_log_SOURCES = tests/unit/test_dirty_log.c
tests_unit_test_dirty_log_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_dirty_log_LDADD = $(UNIT_LIBS)
