# tests/unit/models.mk — the net control state model and the blk request parser.
UNIT_TESTS += tests/unit/test_net_state tests/unit/test_blk_req
tests_unit_test_net_state_SOURCES = tests/unit/test_net_state.c
tests_unit_test_net_state_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_net_state_LDADD = $(UNIT_LIBS)
tests_unit_test_blk_req_SOURCES = tests/unit/test_blk_req.c
tests_unit_test_blk_req_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_blk_req_LDADD = $(UNIT_LIBS)
