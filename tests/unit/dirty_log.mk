# tests/unit/dirty_log.mk
