# data: D-Bus introspection and policy
