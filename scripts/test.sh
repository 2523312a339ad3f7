#!/usr/bin/env bash
# Runs every lbd test on a fresh Debian 12 machine, installing what the
# tests need first. Run as root: the network-namespace and systemd tests
# need it (without root they skip, and say so).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
ensure_go
# gcc and libc6-dev: the race detector needs cgo.
apt_install make git ca-certificates gcc libc6-dev iproute2 arping ndisc6 iputils-ping tcpdump \
	debootstrap systemd-container frr bird2
# The Ansible role's lint, syntax check and real run (packaging/).
apt_install ansible ansible-lint
# The shells whose completion scripts are tested; lintian for the .deb;
# groff renders the manual pages.
apt_install zsh fish lintian groff-base

echo "== Debian trees for the systemd tests, in the background"
# debootstrapped once into ~/.cache/lbd/nspawn (5-15 minutes per release
# cold, mostly downloads; instant when cached), here rather than inside the
# tests' own timeout, and meanwhile lint and the kube-apiserver build run.
images_log=$(mktemp)
LBD_REQUIRE_SYSTEMD=1 setsid go test -count=1 -timeout 60m -run '^TestImage$' ./internal/systemdtest >"$images_log" 2>&1 &
images_pid=$!
# A step that fails ends the run: end the background job with it (its
# process group, go test and debootstrap under it).
trap 'kill -- -"$images_pid" 2>/dev/null || true' EXIT
wait_images() {
	local start=$SECONDS status=0
	while kill -0 "$images_pid" 2>/dev/null; do
		sleep 1
		if (((SECONDS - start) % 30 == 0)); then
			echo "   ... debootstrap of the Debian trees: still running, $((SECONDS - start)) s more so far" >&2
		fi
	done
	wait "$images_pid" || status=$?
	trap - EXIT
	cat "$images_log"
	rm -f "$images_log"
	return "$status"
}

echo "== lint (the first run downloads lbd's Go modules and the pinned linters: a few minutes on a fresh machine; later, about a minute)"
with_progress lint make --no-print-directory lint

echo "== a real kube-apiserver and etcd for the integration tests"
# Built from source through the Go module proxy on first use (several
# minutes), then cached outside the clone.
LBD_KUBE_BINDIR=$(with_progress "kube-apiserver/etcd build" hack/kube-bins.sh | tail -n 1)
export LBD_KUBE_BINDIR
# Here the integration tests must run: a missing binary fails, not skips.
export LBD_REQUIRE_KUBE=1

echo "== waiting for the Debian trees (started in the background above)"
wait_images

echo "== packages (make package: .deb and .rpm with nfpm)"
rm -f dist/lbd_*.deb dist/lbd-*.rpm
make --no-print-directory package
# The systemd tests install exactly this .deb in a booted Debian 12 (and
# 13), and must not skip here.
LBD_DEB=$(ls "$PWD"/dist/lbd_*.deb)
export LBD_DEB LBD_REQUIRE_SYSTEMD=1

echo "== promtool for the alert rules and dashboard tests"
# Pinned in the Makefile, built from the Go module proxy on first use,
# then cached outside the clone.
LBD_PROMTOOL=$(make -s --no-print-directory promtool | tail -n 1)
export LBD_PROMTOOL
# Here promtool, ansible-lint and ansible-playbook must run: missing, the
# packaging tests fail rather than skip.
export LBD_REQUIRE_TOOLS=1

echo "== tests (race detector on, in the tests and in the lbd and helpers they run)"
# A test that skips fails the run unless scripts/skips-allowed lists it;
# every skip is printed with its reason.
go build -o "${TMPDIR:-/tmp}/lbd-testreport" ./hack/testreport
go test -race -count=1 -parallel 16 -timeout 25m -json ./... 2>&1 |
	"${TMPDIR:-/tmp}/lbd-testreport" -allow scripts/skips-allowed

echo "== benchmarks, with regression bounds"
scripts/bench.sh

# Budgets are counts, not durations: Go 1.26's fuzz coordinator can fail a
# run with a bare "context deadline exceeded" when a duration ends while it
# minimizes a new input (go.dev/issue/75804, fixed in Go 1.27); a count has
# no deadline to race. Minimizing is bounded too, so the run stays short.
echo "== fuzzing the configuration loader for ${FUZZTIME:=300000x}"
go test -run '^$' -fuzz FuzzParse -fuzztime "$FUZZTIME" -fuzzminimizetime 200x ./internal/config
go test -run '^$' -fuzz FuzzMetalLBConvert -fuzztime "$FUZZTIME" -fuzzminimizetime 200x ./internal/metallb
# The ARP and NDP receive paths run about 3,000 executions a second: a
# third of the count keeps each near 30s.
echo "== fuzzing the ARP and NDP receive paths for ${FUZZTIME_WIRE:=100000x}"
go test -run '^$' -fuzz FuzzARPFrame -fuzztime "$FUZZTIME_WIRE" -fuzzminimizetime 200x ./internal/announce
go test -run '^$' -fuzz FuzzNDPMessage -fuzztime "$FUZZTIME_WIRE" -fuzzminimizetime 200x ./internal/announce
echo "== fuzzing the BFD packet decoder for ${FUZZTIME_WIRE}"
go test -run '^$' -fuzz FuzzUnmarshal -fuzztime "$FUZZTIME_WIRE" -fuzzminimizetime 200x ./internal/bfd
