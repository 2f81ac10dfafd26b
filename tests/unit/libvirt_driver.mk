# tests/unit/libvirt_driver.mk — vdpad's migration metadata (parser, formatter, schema), the
# domain XML the hook reads, QEMU command lines, and the thread that writes the metadata into
# libvirt domains (against libvirt's in-process test driver, test:///default)
UNIT_TESTS += tests/unit/test_libvirt_metadata tests/unit/test_libvirt_sync
tests_unit_test_libvirt_metadata_SOURCES = tests/unit/test_libvirt_metadata.c
tests_unit_test_libvirt_metadata_CFLAGS = $(UNIT_CFLAGS) -DVDPAD_SRCDIR='"$(abs_top_srcdir)"'
tests_unit_test_libvirt_metadata_LDADD = $(UNIT_LIBS)
tests_unit_test_libvirt_sync_SOURCES = tests/unit/test_libvirt_sync.c
tests_unit_test_libvirt_sync_CFLAGS = $(UNIT_CFLAGS) $(LIBVIRT_CFLAGS)
tests_unit_test_libvirt_sync_LDADD = $(LIBVIRT_SYNC_LIBS) $(CMOCKA_LIBS)
