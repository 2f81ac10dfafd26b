# tests/fuzz/qmp.mk: the QMP stream parser and the client's dispatch, fed a fake server's
# output (seeds: sessions as QEMU 7.2 plays them, segments split at 0xFF bytes).
FUZZ_TARGETS += tests/fuzz/fuzz_qmp_stream
tests_fuzz_fuzz_qmp_stream_SOURCES = tests/fuzz/fuzz_qmp_stream.c
tests_fuzz_fuzz_qmp_stream_LDFLAGS = $(FUZZ_LINKFLAGS)
tests_fuzz_fuzz_qmp_stream_LDADD = $(FUZZ_LIBS)
EXTRA_DIST += tests/fuzz/corpus/fuzz_qmp_stream
