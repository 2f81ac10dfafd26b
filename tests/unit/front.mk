# tests/unit/front.mk — the session and the uAPI dispatcher against hostile clients, over a
# live simulated NIC. client_mem/client_net play the client (also used by tests/fuzz/fuzz_uapi).
UNIT_TESTS += tests/unit/test_session
tests_unit_test_session_SOURCES = tests/unit/test_session.c \
	tests/unit/client_mem.c tests/unit/client_mem.h \
	tests/unit/client_net.c tests/unit/client_net.h
tests_unit_test_session_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_session_LDADD = $(UNIT_LIBS)

UNIT_TESTS += tests/unit/test_uapi
tests_unit_test_uapi_SOURCES = tests/unit/test_uapi.c \
	tests/unit/client_mem.c tests/unit/client_mem.h
tests_unit_test_uapi_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_uapi_LDADD = $(UNIT_LIBS)

UNIT_TESTS += tests/unit/test_mem_guard
tests_unit_test_mem_guard_SOURCES = tests/unit/test_mem_guard.c
tests_unit_test_mem_guard_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_mem_guard_LDADD = $(UNIT_LIBS)
