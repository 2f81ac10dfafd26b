# tests/unit/qmp.mk: the QMP stream parser, and the client against a real QEMU 7.2.
UNIT_TESTS += tests/unit/test_qmp_stream
tests_unit_test_qmp_stream_SOURCES = tests/unit/test_qmp_stream.c
tests_unit_test_qmp_stream_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_qmp_stream_LDADD = $(UNIT_LIBS)

UNIT_TESTS += tests/unit/test_qmp_protocol
tests_unit_test_qmp_protocol_SOURCES = tests/unit/test_qmp_protocol.c
tests_unit_test_qmp_protocol_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_qmp_protocol_LDADD = $(UNIT_LIBS)
