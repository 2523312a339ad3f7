#!/bin/sh
# lbd preremove (.deb: remove | upgrade NEW; .rpm: 0 erase, 1 upgrade).
# Only a removal stops lbd (the binary is about to go); an upgrade leaves
# it running.
set -e
case "$1" in
remove | 0)
	if [ -d /run/systemd/system ]; then
		systemctl stop lbd.service || true
	fi
	systemctl disable lbd.service >/dev/null 2>&1 || true
	;;
esac
exit 0
