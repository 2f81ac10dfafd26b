UNIT_TESTS += tests/unit/test_split_ring
tests_unit_test_split_ring_SOURCES = tests/unit/test_split_ring.c
tests_unit_test_split_ring_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_split_ring_LDADD = $(UNIT_LIBS)
# the test watches the ring's dirty_log_mark() calls, then forwards them to the real log
tests_unit_test_split_ring_LDFLAGS = $(AM_LDFLAGS) -Wl,--wrap=dirty_log_mark
