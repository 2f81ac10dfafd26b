# bench — performance programs (built, never run by make check); run them with bench/run
noinst_PROGRAMS += bench/bench_sim_net
bench_bench_sim_net_SOURCES = bench/bench_sim_net.c
bench_bench_sim_net_LDADD = $(VDPAD_LIBS)
EXTRA_DIST += bench/run bench/node bench/migration
