# tests/unit/driver.mk
