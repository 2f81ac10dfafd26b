# tests/fuzz/sim.mk — the simulated NIC's control queue and TX path, through the driver
FUZZ_TARGETS += tests/fuzz/fuzz_sim_net_cvq
tests_fuzz_fuzz_sim_net_cvq_SOURCES = tests/fuzz/fuzz_sim_net_cvq.c
tests_fuzz_fuzz_sim_net_cvq_LDFLAGS = $(FUZZ_LINKFLAGS)
tests_fuzz_fuzz_sim_net_cvq_LDADD = $(FUZZ_LIBS)
EXTRA_DIST += tests/fuzz/corpus/fuzz_sim_net_cvq
