# tests/unit/shadow_vq.mk — the relay's own control commands (a destination's state replay)
UNIT_TESTS += tests/unit/test_relay_cvq
tests_unit_test_relay_cvq_SOURCES = tests/unit/test_relay_cvq.c
tests_unit_test_relay_cvq_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_relay_cvq_LDADD = $(UNIT_LIBS)
