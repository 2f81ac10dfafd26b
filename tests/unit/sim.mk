# tests/unit/sim.mk
