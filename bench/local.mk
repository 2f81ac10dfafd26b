# bench — performance programs (built, never run by make check); run them with bench/run
noinst_PROGRAMS += bench/bench_sim_net
bench_bench_sim_net_SOURCES = bench/bench_sim_net.c
bench_bench_sim_net_LDADD = $(VDPAD_LIBS)
noinst_PROGRAMS += bench/bench_replay
bench_bench_replay_SOURCES = bench/bench_replay.c
bench_bench_replay_LDADD = $(VDPAD_LIBS)
EXTRA_DIST += bench/run bench/node bench/migration bench/live_migration
