# tests/unit/iova.mk
