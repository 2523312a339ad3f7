#!/bin/sh
# lbd %preun (0 erase, 1 upgrade). Only an erase stops and disables lbd
# (the binary is about to go); an upgrade leaves it running.
set -e
if [ "$1" = 0 ]; then
	if [ -d /run/systemd/system ]; then
		systemctl stop lbd.service || true
	fi
	systemctl disable lbd.service >/dev/null 2>&1 || true
fi
exit 0
