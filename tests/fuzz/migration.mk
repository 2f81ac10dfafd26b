# tests/fuzz/migration.mk — the device state decoder; frames, requests and responses
FUZZ_TARGETS += tests/fuzz/fuzz_device_state tests/fuzz/fuzz_mig_frame
tests_fuzz_fuzz_device_state_SOURCES = tests/fuzz/fuzz_device_state.c
tests_fuzz_fuzz_device_state_LDFLAGS = $(FUZZ_LINKFLAGS)
tests_fuzz_fuzz_device_state_LDADD = $(FUZZ_LIBS)
tests_fuzz_fuzz_mig_frame_SOURCES = tests/fuzz/fuzz_mig_frame.c
tests_fuzz_fuzz_mig_frame_LDFLAGS = $(FUZZ_LINKFLAGS)
tests_fuzz_fuzz_mig_frame_LDADD = $(FUZZ_LIBS)
EXTRA_DIST += tests/fuzz/corpus/fuzz_device_state tests/fuzz/corpus/fuzz_mig_frame
