# vdpactl
