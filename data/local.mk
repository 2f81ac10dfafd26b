# data: D-Bus introspection XML and the system bus policy.
# The XML is compiled into vdpad (src/dbus/local.mk) and also installed where D-Bus tools
# look for interface descriptions; the policy goes where the system bus reads it.
dbusinterfacesdir = $(datadir)/dbus-1/interfaces
dist_dbusinterfaces_DATA = data/org.vdpad1.Manager.xml data/org.vdpad1.Device.xml
dbussystemdir = $(datadir)/dbus-1/system.d
dist_dbussystem_DATA = data/org.vdpad1.conf
EXTRA_DIST += data/vdpad.gresource.xml
