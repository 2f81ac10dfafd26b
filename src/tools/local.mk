# vdpactl: the command-line client of vdpad's D-Bus interface, and `vdpactl migrate` (QMP).
# The formatting (pure, unit-tested) is a library of its own.
bin_PROGRAMS += src/tools/vdpactl
src_tools_vdpactl_SOURCES = src/tools/vdpactl.c src/tools/vdpactl.h src/tools/vdpactl_bus.c \
	src/tools/vdpactl_monitor.c src/tools/vdpactl_migrate.c src/tools/vdpactl_qmp.c
src_tools_vdpactl_LDADD = src/tools/libvdpactl.a $(VDPAD_LIBS)
noinst_LIBRARIES += src/tools/libvdpactl.a
src_tools_libvdpactl_a_SOURCES = src/tools/vdpactl_format.c src/tools/vdpactl_format.h \
	src/tools/vdpactl_events.c src/tools/vdpactl_events.h \
	src/tools/vdpactl_migrate_report.c src/tools/vdpactl_migrate_report.h

# vdpa-traffic: a traffic client for any vhost-vdpa node (the test driver over the uAPI).
bin_PROGRAMS += src/tools/vdpa-traffic
src_tools_vdpa_traffic_SOURCES = src/tools/vdpa_traffic.c
src_tools_vdpa_traffic_LDADD = $(VDPAD_LIBS)
