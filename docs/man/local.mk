# docs/man: the manual pages, written in roff by hand.
dist_man_MANS += docs/man/vdpad.8 docs/man/vdpactl.1
