# tests/unit/migration.mk — the device-state codec
UNIT_TESTS += tests/unit/test_device_state
tests_unit_test_device_state_SOURCES = tests/unit/test_device_state.c
tests_unit_test_device_state_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_device_state_LDADD = $(UNIT_LIBS)
