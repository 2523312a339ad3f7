#!/bin/sh
# Prints lbd's version, the one string used by the binary (`lbd version`,
# lbd_build_info, `lbd status`) and the .deb and .rpm:
#   on a tag vX.Y.Z                 X.Y.Z
#   N commits after the tag         X.Y.Z+gitN.HASH   (after X.Y.Z)
#   before any tag                  0.1.0~gitN.HASH   (N commits in all;
#                                   before 0.1.0)
# dpkg and rpm (4.10 and newer) sort each of them in commit order. A dirty
# tree adds .dirty; outside git: 0.1.0~dev.
set -eu
cd "$(dirname "$0")/.."
if ! git rev-parse --git-dir >/dev/null 2>&1; then
	echo 0.1.0~dev
	exit 0
fi
hash=$(git rev-parse --short=7 HEAD)
dirty=
if ! git diff --quiet HEAD -- 2>/dev/null; then
	dirty=.dirty
fi
if desc=$(git describe --tags --match 'v[0-9]*' --long 2>/dev/null); then
	# vX.Y.Z-N-gHASH
	tag=${desc%-*-g*}
	n=${desc%-g*}
	n=${n##*-}
	if [ "$n" = 0 ]; then
		echo "${tag#v}$dirty"
	else
		echo "${tag#v}+git$n.$hash$dirty"
	fi
else
	echo "0.1.0~git$(git rev-list --count HEAD).$hash$dirty"
fi
