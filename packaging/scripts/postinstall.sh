#!/bin/sh
# lbd postinstall (.deb: configure [old-version]; .rpm: 1 install, 2 upgrade).
# Enables lbd on a first install, never starts it, and never restarts a
# running lbd on upgrade: restarting the holder of a VIP is a failover.
# Roll upgrades node by node with `systemctl restart lbd` (docs/operations.md).
set -e

first_install=no
case "$1" in
configure) [ -z "$2" ] && first_install=yes ;;
1) first_install=yes ;;
esac

if [ -d /run/systemd/system ]; then
	systemctl daemon-reload || true
fi
if [ "$first_install" = yes ]; then
	# Works without a running systemd (image builds) too: it only links.
	systemctl enable lbd.service >/dev/null 2>&1 || true
fi
if [ -d /run/systemd/system ] && systemctl is-active --quiet lbd.service; then
	echo "lbd: the running lbd keeps its old binary until you restart it: systemctl restart lbd (a VIP it holds moves)" >&2
fi
exit 0
