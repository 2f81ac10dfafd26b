# tests/e2e: the daemon and its tools against real peers (dbus-daemon, FUSE, gdbus).
# Each needs root and skips (77) without it; scripts/check runs them as root.
TESTS += tests/e2e/dbus.sh
EXTRA_DIST += tests/e2e/dbus.sh
