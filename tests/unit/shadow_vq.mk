# tests/unit/shadow_vq.mk — the relay: its own control commands (a destination's state replay) and hostile guest rings
UNIT_TESTS += tests/unit/test_relay
tests_unit_test_relay_SOURCES = tests/unit/test_relay.c
tests_unit_test_relay_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_relay_LDADD = $(UNIT_LIBS)
