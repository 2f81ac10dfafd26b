FUZZ_TARGETS += tests/fuzz/fuzz_device_spec
tests_fuzz_fuzz_device_spec_SOURCES = tests/fuzz/fuzz_device_spec.c
tests_fuzz_fuzz_device_spec_LDFLAGS = $(FUZZ_LINKFLAGS)
tests_fuzz_fuzz_device_spec_LDADD = $(FUZZ_LIBS)
EXTRA_DIST += tests/fuzz/corpus/fuzz_device_spec
