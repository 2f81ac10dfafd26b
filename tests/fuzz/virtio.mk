FUZZ_TARGETS += tests/fuzz/fuzz_ring_walker
tests_fuzz_fuzz_ring_walker_SOURCES = tests/fuzz/fuzz_ring_walker.c
tests_fuzz_fuzz_ring_walker_LDFLAGS = $(FUZZ_LINKFLAGS)
tests_fuzz_fuzz_ring_walker_LDADD = $(FUZZ_LIBS)
# the seeds, and the script that wrote them
EXTRA_DIST += tests/fuzz/corpus/fuzz_ring_walker tests/fuzz/gen_ring_seeds.py
