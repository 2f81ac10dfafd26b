# tests/unit/migration.mk — the device-state codec, the channel's messages, the TLS channel, the early fetch
UNIT_TESTS += tests/unit/test_device_state tests/unit/test_mig_msg tests/unit/test_mig_channel
tests_unit_test_device_state_SOURCES = tests/unit/test_device_state.c
tests_unit_test_device_state_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_device_state_LDADD = $(UNIT_LIBS)
tests_unit_test_mig_msg_SOURCES = tests/unit/test_mig_msg.c
tests_unit_test_mig_msg_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_mig_msg_LDADD = $(UNIT_LIBS)
tests_unit_test_mig_channel_SOURCES = tests/unit/test_mig_channel.c \
	tests/unit/mig_test_pki.c tests/unit/mig_test_pki.h \
	tests/unit/log_capture.c tests/unit/log_capture.h
tests_unit_test_mig_channel_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_mig_channel_LDADD = $(UNIT_LIBS)
UNIT_TESTS += tests/unit/test_mig_prefetch
tests_unit_test_mig_prefetch_SOURCES = tests/unit/test_mig_prefetch.c \
	tests/unit/mig_test_pki.c tests/unit/mig_test_pki.h \
	tests/unit/log_capture.c tests/unit/log_capture.h
tests_unit_test_mig_prefetch_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_mig_prefetch_LDADD = $(UNIT_LIBS)
