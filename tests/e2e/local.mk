# tests/e2e: the daemon and its tools against real peers: QEMU 7.2 (TCG) with a Linux
# guest, libvirtd, dbus-daemon, FUSE, and misbehaving clients. Each needs root and skips
# (77) without it; scripts/check runs them as root and counts a skip as a failure.
E2E_TESTS = \
	tests/e2e/dbus.sh \
	tests/e2e/qemu_net.sh \
	tests/e2e/chained_qemu.sh \
	tests/e2e/traffic_client.sh \
	tests/e2e/libvirt_net.sh \
	tests/e2e/hostile.sh \
	tests/e2e/migrate.sh \
	tests/e2e/migrate_failures.sh \
	tests/e2e/migrate_soak.sh \
	tests/e2e/libvirt_migrate.sh
if ENABLE_E2E
TESTS += $(E2E_TESTS)
endif
EXTRA_DIST += $(E2E_TESTS) tests/e2e/lib.sh tests/e2e/mig_lib.sh

# the clients hostile.sh runs against a vdpad: good ones and misbehaving ones
check_PROGRAMS += tests/e2e/hostile_client
tests_e2e_hostile_client_SOURCES = tests/e2e/hostile_client.c
tests_e2e_hostile_client_LDADD = $(VDPAD_LIBS)
