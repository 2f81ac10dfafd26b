# tests/unit/driver.mk — the test driver, against a faulty fake device
UNIT_TESTS += tests/unit/test_driver
tests_unit_test_driver_SOURCES = tests/unit/test_driver.c
tests_unit_test_driver_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_driver_LDADD = $(UNIT_LIBS)
