# tests/fuzz/migration.mk — the device state decoder
FUZZ_TARGETS += tests/fuzz/fuzz_device_state
tests_fuzz_fuzz_device_state_SOURCES = tests/fuzz/fuzz_device_state.c
tests_fuzz_fuzz_device_state_LDFLAGS = $(FUZZ_LINKFLAGS)
tests_fuzz_fuzz_device_state_LDADD = $(FUZZ_LIBS)
EXTRA_DIST += tests/fuzz/corpus/fuzz_device_state
