#!/usr/bin/env bash
# promtool.sh puts promtool from Debian's prometheus package into DIR,
# without installing the package (which would start a Prometheus server):
# apt-get download, then only usr/bin/promtool out of the .deb. Seconds,
# where building it from the Go module proxy took up to 50 minutes.
#
# Usage: hack/promtool.sh DIR     (prints DIR/promtool)
set -euo pipefail
dir=${1:?usage: hack/promtool.sh DIR}
mkdir -p "$dir"
if [[ -x "$dir/promtool" ]]; then
	echo "$dir/promtool"
	exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
if ! apt-get download prometheus >/dev/null 2>&1; then
	# A machine whose package lists were never fetched.
	if [[ $(id -u) -ne 0 ]]; then
		echo "promtool.sh: apt-get download prometheus failed; run apt-get update as root" >&2
		exit 1
	fi
	apt-get update -qq
	apt-get download prometheus >/dev/null 2>&1
fi
dpkg-deb --fsys-tarfile prometheus_*.deb | tar -x ./usr/bin/promtool
mv usr/bin/promtool "$dir/.promtool.tmp"
mv "$dir/.promtool.tmp" "$dir/promtool"
"$dir/promtool" --version >&2
echo "$dir/promtool"
