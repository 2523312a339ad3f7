#!/usr/bin/env bash
# The demo lab: the whole product on this machine, in network namespaces
# named lbd-demo-* with documentation addresses only (192.0.2.0/24,
# 198.51.100.0/24); the host's own interfaces, routes and firewall are not
# touched. Three control-plane nodes (a kube-apiserver each on one etcd)
# hold the control-plane VIP; three workers announce Services at L2, then
# by BGP to FRR as the top-of-rack router; clients on the segment and
# behind the router measure every failover (internal/demo).
#
#   ./scripts/demo.sh        build, bring the lab up, tell the story, leave the lab up
#   ./scripts/demo.sh down   remove every namespace, process and file it made
#
# Ctrl-C at any point takes the lab down. Run again, it replaces the lab.
# Not root: the allocation-only demo (scripts/demo-api.sh) runs instead.
# LBD_DEMO_DIR (default /run/lbd-demo) holds the lab's files.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

DIR=${LBD_DEMO_DIR:-/run/lbd-demo}
PREFIX=lbd-demo

# down stops the lab's supervisor (lbd-lab, which stops what it started
# and removes its namespaces), then removes whatever a crash left behind:
# processes inside the lab's namespaces, the namespaces, the files.
down() {
	local pid
	if [ -f "$DIR/pid" ]; then
		pid=$(cat "$DIR/pid")
		if kill -0 "$pid" 2>/dev/null && grep -qa 'lbd-lab' "/proc/$pid/cmdline" 2>/dev/null; then
			kill -TERM "$pid"
			for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
			kill -KILL "$pid" 2>/dev/null || true
		fi
	fi
	local ns p
	for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^$PREFIX-" || true); do
		for p in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$p" 2>/dev/null || true; done
		ip netns del "$ns" 2>/dev/null || true
	done
	rm -rf "$DIR"
}

case "${1:-}" in
down)
	[ "$(id -u)" -eq 0 ] || { echo "lbd demo: down needs root" >&2; exit 1; }
	down
	echo "demo lab removed (namespaces $PREFIX-*, processes, $DIR)"
	exit 0 ;;
"") ;;
*) echo "usage: $0 [down]" >&2; exit 2 ;;
esac

if [ "$(id -u)" -ne 0 ]; then
	echo "lbd demo: not root, so no network namespaces: the allocation-only demo (scripts/demo-api.sh) runs instead." >&2
	exec scripts/demo-api.sh
fi

# Ctrl-C: background jobs of a script ignore SIGINT, so the trap ends them
# (a build, the tail of the story), then takes down a lab it started.
lab_started=
interrupted() {
	local j
	for j in $(jobs -p); do kill "$j" 2>/dev/null || true; done
	echo
	if [ -n "$lab_started" ]; then
		echo "interrupted: taking the lab down"
		down
	else
		echo "interrupted"
	fi
	exit 130
}
trap interrupted INT TERM HUP

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
timed() { # what cmd...: runs cmd with progress, then says how long it took
	local what=$1 start=$SECONDS
	shift
	with_progress "$what" "$@"
	echo "   $what: $((SECONDS - start)) s"
}

step "setting up (first run: Debian packages, then a few minutes of Go builds; later, seconds)"
ensure_go
apt_install make git ca-certificates curl iproute2 procps frr
timed "building lbd (bin/lbd)" make --no-print-directory -s build
timed "building the lab (bin/lbd-lab)" make --no-print-directory -s lab
echo "   kube-apiserver, etcd and kubectl are built from source on first use (10-20 min), then cached"
start=$SECONDS
BINS=$(with_progress "kube-apiserver/etcd build" hack/kube-bins.sh | tail -n 1)
echo "   kube-apiserver, etcd, kubectl: $((SECONDS - start)) s ($BINS)"

if [ -d "$DIR" ] || ip netns list 2>/dev/null | grep -q "^$PREFIX-"; then
	echo "   taking down the lab of an earlier run"
	down
fi
mkdir -p "$DIR/tmp"
# FRR runs as the frr user and keeps its files under TMPDIR.
chmod 755 "$DIR" "$DIR/tmp"
lab_started=1

# The log exists before the lab and its reader start: the redirection of
# a background job happens in the child, which a loaded machine may run
# after tail has looked for the file (tail then fails and the story is
# not shown).
: >"$DIR/story.log"
TMPDIR="$DIR/tmp" setsid bin/lbd-lab demo -dir "$DIR" -bins "$BINS" -lbd bin/lbd -rbac etc/lbd-rbac.yaml \
	>>"$DIR/story.log" 2>&1 </dev/null &
lab=$!
echo "$lab" >"$DIR/pid"
tail -n +1 -f "$DIR/story.log" &
tailer=$!
while kill -0 "$lab" 2>/dev/null && [ ! -s "$DIR/state" ]; do sleep 0.2; done
sleep 0.3
kill "$tailer" 2>/dev/null || true
wait "$tailer" 2>/dev/null || true
trap - INT TERM HUP
if ! kill -0 "$lab" 2>/dev/null; then
	echo "lbd demo: the lab exited unexpectedly (see above); cleaning up" >&2
	down
	exit 1
fi
[ "$(cat "$DIR/state")" = up ]
