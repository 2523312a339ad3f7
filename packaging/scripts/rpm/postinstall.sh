#!/bin/sh
# lbd postinstall (.deb: configure [old-version]; .rpm: 1 install, 2 upgrade).
# Enables lbd on a first install, never starts it, and never restarts a
# running lbd on upgrade: restarting the holder of a VIP is a failover.
# Roll upgrades node by node with `systemctl restart lbd` (docs/operations.md).
#
# On Debian the admin's choice is kept as debhelper keeps it, through
# deb-systemd-helper: a unit the admin disabled stays disabled across
# upgrades and a remove/install, one the admin masked stays masked; only
# a first install (or one after a purge) enables it.
set -e

# The group whose members may read `lbd status` (lbd.service: Group=lbd).
if ! getent group lbd >/dev/null; then
	if command -v addgroup >/dev/null 2>&1; then
		addgroup --system lbd >/dev/null
	else
		groupadd --system lbd
	fi
fi

if [ -x /usr/bin/deb-systemd-helper ]; then
	case "$1" in
	configure | abort-upgrade | abort-deconfigure | abort-remove)
		# The mask postremove set on "remove" (never an admin's mask).
		deb-systemd-helper unmask lbd.service >/dev/null || true
		# was-enabled is true on a first install (no state yet).
		if deb-systemd-helper --quiet was-enabled lbd.service; then
			deb-systemd-helper enable lbd.service >/dev/null || true
		else
			deb-systemd-helper update-state lbd.service >/dev/null || true
		fi
		;;
	esac
else
	first_install=no
	case "$1" in
	configure) [ -z "$2" ] && first_install=yes ;;
	1) first_install=yes ;;
	esac
	if [ "$first_install" = yes ]; then
		# Works without a running systemd (image builds) too: it only links.
		systemctl enable lbd.service >/dev/null 2>&1 || true
	fi
fi
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload || true
	if systemctl is-active --quiet lbd.service; then
		echo "lbd: the running lbd keeps its old binary until you restart it: systemctl restart lbd (a VIP it holds moves)" >&2
	fi
fi
exit 0
