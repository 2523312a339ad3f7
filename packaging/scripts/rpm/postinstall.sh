#!/bin/sh
# lbd %post (1 install, 2 upgrade). Makes the group lbd (whose members may
# read `lbd status`), enables lbd on a first install, never starts it, and
# never restarts a running lbd on upgrade: restarting the holder of a VIP
# is a failover. Roll upgrades node by node with `systemctl restart lbd`
# (docs/operations.md).
set -e
getent group lbd >/dev/null || groupadd --system lbd
if [ "$1" = 1 ]; then
	# Works without a running systemd (image builds) too: it only links.
	systemctl enable lbd.service >/dev/null 2>&1 || true
fi
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload || true
	if systemctl is-active --quiet lbd.service; then
		echo "lbd: the running lbd keeps its old binary until you restart it: systemctl restart lbd (a VIP it holds moves)" >&2
	fi
fi
exit 0
