#!/bin/sh
# lbd postremove (.deb: remove | purge | upgrade ...; .rpm: 0 erase,
# 1 upgrade). Lets systemd forget the removed unit. On Debian, as
# debhelper does: "remove" masks the unit until it is installed again
# (so nothing starts a unit whose binary is gone) and keeps the record of
# whether it was enabled; "purge" forgets it.
set -e
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload || true
fi
if [ -x /usr/bin/deb-systemd-helper ]; then
	case "$1" in
	remove)
		deb-systemd-helper mask lbd.service >/dev/null || true
		;;
	purge)
		deb-systemd-helper purge lbd.service >/dev/null || true
		deb-systemd-helper unmask lbd.service >/dev/null || true
		;;
	esac
fi
exit 0
