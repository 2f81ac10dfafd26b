# src/libvirt_driver — libvirt integration: the source vdpad writes its migration metadata into
# the domain (libvirt_sync, on a thread of its own with libvirt linked), and the destination's
# qemu hook (vdpad-libvirt-hook) prepares the nodes from it. The XML code needs libxml2 only.
src_libvdpad_a_SOURCES += \
	src/libvirt_driver/domain_metadata.c src/libvirt_driver/domain_metadata.h \
	src/libvirt_driver/domain_xml.c src/libvirt_driver/domain_xml.h \
	src/libvirt_driver/qemu_cmdline.c src/libvirt_driver/qemu_cmdline.h

noinst_LIBRARIES += src/libvdpad_libvirt.a
src_libvdpad_libvirt_a_SOURCES = \
	src/libvirt_driver/libvirt_sync.c src/libvirt_driver/libvirt_sync.h
src_libvdpad_libvirt_a_CFLAGS = $(AM_CFLAGS) $(LIBVIRT_CFLAGS)
LIBVIRT_SYNC_LIBS = src/libvdpad_libvirt.a $(VDPAD_LIBS) $(LIBVIRT_LIBS)

libexec_PROGRAMS = src/libvirt_driver/vdpad-libvirt-hook
src_libvirt_driver_vdpad_libvirt_hook_SOURCES = src/libvirt_driver/vdpad_libvirt_hook.c
src_libvirt_driver_vdpad_libvirt_hook_LDADD = $(VDPAD_LIBS)

# the RelaxNG schema of the metadata element
schemadir = $(pkgdatadir)/schemas
dist_schema_DATA = xml/schemas/vdpad-migration.rng
