#!/bin/sh
# lbd preremove (.deb: remove | upgrade NEW; .rpm: 0 erase, 1 upgrade).
# Only a removal stops lbd (the binary is about to go); an upgrade leaves
# it running. Whether it is enabled is left to postremove (on Debian the
# admin's choice is kept until a purge).
set -e
case "$1" in
remove | 0)
	if [ -d /run/systemd/system ]; then
		systemctl stop lbd.service || true
	fi
	if [ ! -x /usr/bin/deb-systemd-helper ]; then
		systemctl disable lbd.service >/dev/null 2>&1 || true
	fi
	;;
esac
exit 0
