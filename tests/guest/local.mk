# The end-to-end test guest: built and run by hand or by the e2e tests, not by `make check`
# (see tests/guest/README.md).
EXTRA_DIST += tests/guest/README.md tests/guest/build-guest tests/guest/init \
	tests/guest/selftest tests/guest/vdpa-nettest.c
