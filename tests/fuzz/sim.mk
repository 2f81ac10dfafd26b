# tests/fuzz/sim.mk
