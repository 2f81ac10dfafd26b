# src/driver
