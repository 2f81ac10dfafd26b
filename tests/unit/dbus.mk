# tests/unit/dbus.mk: the D-Bus names, access rules, device properties and vdpactl output.
UNIT_TESTS += tests/unit/test_dbus_props
tests_unit_test_dbus_props_SOURCES = tests/unit/test_dbus_props.c
tests_unit_test_dbus_props_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_dbus_props_LDADD = $(UNIT_LIBS)

UNIT_TESTS += tests/unit/test_vdpactl_format
tests_unit_test_vdpactl_format_SOURCES = tests/unit/test_vdpactl_format.c
tests_unit_test_vdpactl_format_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_vdpactl_format_LDADD = src/tools/libvdpactl.a $(UNIT_LIBS)

UNIT_TESTS += tests/unit/test_dbus_service
tests_unit_test_dbus_service_SOURCES = tests/unit/test_dbus_service.c \
	tests/unit/mig_test_pki.c tests/unit/mig_test_pki.h
tests_unit_test_dbus_service_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_dbus_service_LDADD = $(UNIT_LIBS)
