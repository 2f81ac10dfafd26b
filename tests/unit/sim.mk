# tests/unit/sim.mk — the simulated devices
UNIT_TESTS += tests/unit/test_sim_net tests/unit/test_sim_blk
tests_unit_test_sim_net_SOURCES = tests/unit/test_sim_net.c
tests_unit_test_sim_net_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_sim_net_LDADD = $(UNIT_LIBS)
tests_unit_test_sim_blk_SOURCES = tests/unit/test_sim_blk.c
tests_unit_test_sim_blk_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_sim_blk_LDADD = $(UNIT_LIBS)
