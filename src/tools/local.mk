# vdpactl: the command-line client of vdpad's D-Bus interface.
bin_PROGRAMS += src/tools/vdpactl
src_tools_vdpactl_SOURCES = src/tools/vdpactl.c
src_tools_vdpactl_LDADD = src/tools/libvdpactl.a $(VDPAD_LIBS)
noinst_LIBRARIES += src/tools/libvdpactl.a
src_tools_libvdpactl_a_SOURCES = src/tools/vdpactl_format.c src/tools/vdpactl_format.h

# vdpa-traffic: a traffic client for any vhost-vdpa node (the test driver over the uAPI).
bin_PROGRAMS += src/tools/vdpa-traffic
src_tools_vdpa_traffic_SOURCES = src/tools/vdpa_traffic.c
src_tools_vdpa_traffic_LDADD = $(VDPAD_LIBS)
