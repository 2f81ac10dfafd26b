# tests/fuzz/models.mk — fuzz targets for the net control parser/state and the blk parser.
FUZZ_TARGETS += tests/fuzz/fuzz_net_ctrl tests/fuzz/fuzz_blk_req
tests_fuzz_fuzz_net_ctrl_SOURCES = tests/fuzz/fuzz_net_ctrl.c
tests_fuzz_fuzz_net_ctrl_LDFLAGS = $(FUZZ_LINKFLAGS)
tests_fuzz_fuzz_net_ctrl_LDADD = $(FUZZ_LIBS)
tests_fuzz_fuzz_blk_req_SOURCES = tests/fuzz/fuzz_blk_req.c
tests_fuzz_fuzz_blk_req_LDFLAGS = $(FUZZ_LINKFLAGS)
tests_fuzz_fuzz_blk_req_LDADD = $(FUZZ_LIBS)
EXTRA_DIST += tests/fuzz/corpus/fuzz_net_ctrl tests/fuzz/corpus/fuzz_blk_req
