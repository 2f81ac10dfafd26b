# tests/fuzz/libvirt_driver.mk — the parser of the domain XML and vdpad's metadata element
# (what the destination's hook reads from another host)
FUZZ_TARGETS += tests/fuzz/fuzz_domain_metadata
tests_fuzz_fuzz_domain_metadata_SOURCES = tests/fuzz/fuzz_domain_metadata.c
tests_fuzz_fuzz_domain_metadata_LDFLAGS = $(FUZZ_LINKFLAGS)
tests_fuzz_fuzz_domain_metadata_LDADD = $(FUZZ_LIBS)
EXTRA_DIST += tests/fuzz/corpus/fuzz_domain_metadata
