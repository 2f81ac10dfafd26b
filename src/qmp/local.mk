# src/qmp: the QMP client (json-c) — the stream parser, the client, migration helpers.
src_libvdpad_a_SOURCES += \
	src/qmp/qmp_json.h \
	src/qmp/qmp_stream.c src/qmp/qmp_stream.h \
	src/qmp/qmp_client.c src/qmp/qmp_client.h \
	src/qmp/qmp_commands.c src/qmp/qmp_commands.h
