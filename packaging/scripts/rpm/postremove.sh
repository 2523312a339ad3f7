#!/bin/sh
# lbd %postun: let systemd forget the removed unit.
set -e
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload || true
fi
exit 0
