noinst_HEADERS += src/dbus/dbus_service.h
