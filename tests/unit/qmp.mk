# tests/unit/qmp.mk: the QMP stream parser, and the client against a real QEMU 7.2.
UNIT_TESTS += tests/unit/test_qmp_stream
tests_unit_test_qmp_stream_SOURCES = tests/unit/test_qmp_stream.c
tests_unit_test_qmp_stream_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_qmp_stream_LDADD = $(UNIT_LIBS)

UNIT_TESTS += tests/unit/test_qmp_protocol
tests_unit_test_qmp_protocol_SOURCES = tests/unit/test_qmp_protocol.c
tests_unit_test_qmp_protocol_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_qmp_protocol_LDADD = $(UNIT_LIBS)

# These start QEMU (qemu-system-x86_64: -machine none, or small q35 guests without a
# kernel) and fail, not skip, without it. No root needed.
UNIT_TESTS += tests/unit/test_qmp_client
tests_unit_test_qmp_client_SOURCES = tests/unit/test_qmp_client.c \
	tests/unit/qemu_proc.c tests/unit/qemu_proc.h
tests_unit_test_qmp_client_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_qmp_client_LDADD = $(UNIT_LIBS)

UNIT_TESTS += tests/unit/test_qmp_migration
tests_unit_test_qmp_migration_SOURCES = tests/unit/test_qmp_migration.c \
	tests/unit/qemu_proc.c tests/unit/qemu_proc.h
tests_unit_test_qmp_migration_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_qmp_migration_LDADD = $(UNIT_LIBS)
