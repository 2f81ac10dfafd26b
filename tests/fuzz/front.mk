# tests/fuzz/front.mk — hostile clients through the whole uAPI (ioctls, IOTLB writes, rings)
# against a live simulated device; the client's memory comes from tests/unit/client_mem.c.
FUZZ_TARGETS += tests/fuzz/fuzz_uapi
tests_fuzz_fuzz_uapi_SOURCES = tests/fuzz/fuzz_uapi.c \
	tests/unit/client_mem.c tests/unit/client_mem.h
tests_fuzz_fuzz_uapi_LDFLAGS = $(FUZZ_LINKFLAGS)
tests_fuzz_fuzz_uapi_LDADD = $(FUZZ_LIBS)
# the seeds, and the script that wrote them
EXTRA_DIST += tests/fuzz/corpus/fuzz_uapi tests/fuzz/gen_uapi_seeds.py
