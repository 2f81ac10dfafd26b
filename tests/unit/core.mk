UNIT_TESTS += tests/unit/test_device_spec
tests_unit_test_device_spec_SOURCES = tests/unit/test_device_spec.c
tests_unit_test_device_spec_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_device_spec_LDADD = $(UNIT_LIBS)
