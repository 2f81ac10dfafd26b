sbin_PROGRAMS += src/daemon/vdpad
src_daemon_vdpad_SOURCES = src/daemon/vdpad.c
src_daemon_vdpad_LDADD = $(LIBVIRT_SYNC_LIBS)
