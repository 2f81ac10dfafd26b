# src/dbus: vdpad's D-Bus service. The introspection XML (data/) is compiled in as a
# GResource, so the installed daemon reads no interface files at run time.
src_libvdpad_a_SOURCES += \
	src/dbus/dbus_service.c src/dbus/dbus_service.h \
	src/dbus/dbus_names.c src/dbus/dbus_names.h \
	src/dbus/dbus_access.c src/dbus/dbus_access.h \
	src/dbus/device_props.c src/dbus/device_props.h \
	src/dbus/device_signals.c src/dbus/device_signals.h \
	src/dbus/dbus_migration.c src/dbus/dbus_migration.h \
	src/dbus/dbus_resources.h
nodist_src_libvdpad_a_SOURCES += src/dbus/vdpad-resources.c
CLEANFILES += src/dbus/vdpad-resources.c

GLIB_COMPILE_RESOURCES = glib-compile-resources

src/dbus/vdpad-resources.c: $(srcdir)/data/vdpad.gresource.xml \
		$(srcdir)/data/org.vdpad1.Manager.xml $(srcdir)/data/org.vdpad1.Device.xml
	$(AM_V_GEN)$(MKDIR_P) src/dbus && \
	$(GLIB_COMPILE_RESOURCES) --generate-source --c-name vdpad_dbus \
		--sourcedir=$(srcdir)/data --target=$@ $(srcdir)/data/vdpad.gresource.xml
