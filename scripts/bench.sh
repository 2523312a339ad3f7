#!/usr/bin/env bash
# Runs every lbd benchmark with short counts, writes every figure to one
# results file (printed at the end), and fails when a figure is past its
# bound. Bounds are semantic where the figure has a meaning of its own (a
# failover within the Lease duration plus a margin; no failed connection
# on a graceful stop), and otherwise about 3.7 times the figure documented
# in docs/testing.md (measured here at 1-1.5 times it): generous enough
# that a loaded 2-core machine does not flake, tight enough that a 4x
# regression fails. The README's third command, and CI's second step,
# after scripts/test.sh: run as root (network namespaces), it installs
# what the benchmarks need first (FRR and BIRD, the lab tools, and
# kube-apiserver/etcd through hack/kube-bins.sh, cached after the first
# build), so it also runs alone on a fresh machine.
#
# Usage: scripts/bench.sh [RESULTS_FILE]   (default: bench-results.txt)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
ensure_go
if [[ "$(id -u)" -ne 0 ]]; then
	echo "scripts/bench.sh: run it as root: the benchmarks build network namespaces" >&2
	exit 1
fi
apt_install make gcc libc6-dev iproute2 arping ndisc6 iputils-ping tcpdump frr bird2
if [[ -z "${LBD_KUBE_BINDIR:-}" ]]; then
	echo "== kube-apiserver and etcd (built from the Go module proxy on first use, then cached)" >&2
	LBD_KUBE_BINDIR=$(with_progress "kube-apiserver/etcd build" hack/kube-bins.sh | tail -n 1)
	export LBD_KUBE_BINDIR
fi
# A benchmark that cannot find them fails rather than skips.
export LBD_REQUIRE_KUBE=1
results=${1:-bench-results.txt}
# The API-writes benchmark's measuring window, per Service count, and the
# Services AllocScale creates (10 000 for the documented figures: about 6
# minutes; 3000 here: about 80 s).
export LBD_BENCH_WINDOW=${LBD_BENCH_WINDOW:-10s}
export LBD_BENCH_SERVICES=${LBD_BENCH_SERVICES:-3000}
# The partition benchmark's cuts: the cable pull only (the API-only cut
# shows today's 22-26 s of two answerers, which issue 14 removes).
export LBD_BENCH_CUTS=${LBD_BENCH_CUTS:-isolated}
# With peers: the two cuts the peer detector is for (TestL2PeersCuts holds
# every cut, isolated too, with assertions).
export LBD_BENCH_PEER_CUTS=${LBD_BENCH_PEER_CUTS:-api-cut,peers-cut}
# Each cut lasts 10 s here, not the documented figures' 30 s (rows below
# say 30 s): the figures (two answering, none, moves) come within seconds
# of the cut and of the heal, and TestL2PeersCuts holds the peers lab's cuts
# for 30 s with the same bounds as assertions.
export LBD_BENCH_CUT=${LBD_BENCH_CUT:-10s}
# The peers scale benchmark with 50 agents: 100 detectors at 150 ms beside
# the API server on one 2-core machine did not always all see each other
# (docs/l2.md has the 100-node figures and why).
export LBD_BENCH_PEER_NODES=${LBD_BENCH_PEER_NODES:-50}

# package | benchmark[/sub] | -benchtime | metric | bound | documented as
# Rows with the same package, top-level benchmark and count share one run.
benchmarks=(
	"./internal/config|LoadSlash16|3x|ns/op|740000000|0.2 s: a /16 written out address by address"
	"./internal/config|LoadExample|200x|ns/op|740000|0.2 ms: lbd check of etc/lbd.yaml"
	"./internal/pool|Fill16|3x|ns/op|555000000|0.15 s: a /16 pool filled"
	"./internal/pool|AssignAt/IPv4/held=30000|2000x|ns/op|17000|4.6 us: Assign+Release, 30 000 addresses held in 30 000 spans"
	"./internal/pool|AssignAt/IPv6/held=500000|2000x|ns/op|12500|3.4 us: Assign+Release, 500 000 addresses held in 500 000 spans"
	"./internal/election/owner|OwnerSpread/10000|3x|max-share|1.15|1.015: the busiest of 3 nodes' share of 10 000 Services over an even share"
	"./internal/announce|L2TakeDelay/detection=off|20x|p50-ms|5|0.6 ms: Set to the first gratuitous ARP"
	"./internal/announce|L2TakeDelay/detection=on/first|20x|p50-ms|450|302 ms: the same after the conflict probe (3 x 100 ms)"
	"./internal/peers|PeersDeadNode|10x|max-ms|2000|0.71 s: kill -9 of one of three nodes to both others dropping it, longest of 10 (SWIM, probe 150 ms)"
	"./internal/election|LivenessScale/nodes=100|1x|writes/s/node|4.0|2.0: liveness Lease writes per node and second, 100 light agents against one API server"
	"./internal/election|LivenessScale/nodes=100|1x|all-agree-dead-s|4.5|1.8 s: a killed node seen dead by all 99 others (Lease 2 s)"
	"./internal/election|PeersScale/nodes=50|1x|writes/s/node|0.2|0.069: heartbeat Lease writes per node and second with peers, 50 light agents"
	"./internal/election|PeersScale/nodes=50|1x|all-agree-dead-s|3.0|0.81 s: a killed node dropped by all 49 others' detectors"
	"./internal/bgp|Established|3x|s/established|5.2|1.4 s: speaker start to Established at FRR"
	"./internal/bgp|Converge1000|3x|s/converge-1000|0.87|0.23 s: 1000 routes in FRR's FIB"
	"./internal/bgp|Converge1000|3x|s/withdraw-1000|3.5|0.95 s: 1000 routes withdrawn from FRR's FIB"
	"./cmd/lbd|BGPServiceToRoute|5x|s/service-to-route|0.37|0.10 s: Service created to its route at FRR with three next hops"
	"./cmd/lbd|BFDPowerLoss|5x|max-s|3.7|1.0 s: a node's power loss to its next hop gone at FRR (BFD 300ms x 3)"
	"./cmd/lbd|BFDHandOver|3x|max-s|0.3|0.035 s: gap in BFD packets across a SIGUSR2 restart (the router allows 0.9 s)"
	"./cmd/lbd|AllocCreateToStatus|1x|p99-ms|25000|6.9 s: 1000 Services created back to back, the last ones' create to status"
	"./cmd/lbd|AllocScale|1x|heap-MiB|100|28 MiB: live heap holding 3000 Services (66 MiB for 10 000)"
	"./cmd/lbd|AllocScale|1x|RSS-max-MiB|400|111 MiB: highest RSS over 10 s holding 3000 Services (191 MiB for 10 000)"
	"./cmd/lbd|AllocScale|1x|resync-s|2.2|0.6 s: a restarted lbd rebuilding 3000 Services (1.7 s for 10 000)"
	"./cmd/lbd|AllocScale|1x|changed|0|0: addresses changed by that restart"
	"./cmd/lbd|L2Failover/kill9|3x|max-s|4.0|1.94 s: owner crash to the client served again (Lease 2 s)"
	"./cmd/lbd|L2Failover/cable|3x|max-s|4.0|2.32 s: owner's cable pulled to the client served again (Lease 2 s)"
	"./cmd/lbd|L2Failover/sigterm|3x|max-s|1.0|21 ms: longest gap on a graceful stop (the probe's own spacing)"
	"./cmd/lbd|L2Failover/sigterm|3x|failed/op|0|0: failed connections on a graceful stop"
	"./cmd/lbd|L2Partition/isolated|1x|dual-s|1.0|0 s: two nodes answering ARP, the owner's cable pulled for 30 s and back"
	"./cmd/lbd|L2Partition/isolated|1x|none-s|4.0|1.7 s: nobody answering ARP, the same"
	"./cmd/lbd|L2FailoverPeers/kill9|3x|max-s|2.0|0.66 s: owner crash to the client served again, with peers"
	"./cmd/lbd|L2FailoverPeers/cable|3x|max-s|2.0|0.84 s: owner's cable pulled to the client served again, with peers"
	"./cmd/lbd|L2FailoverPeers/sigterm|3x|failed/op|0|0: failed connections on a graceful stop, with peers"
	"./cmd/lbd|L2PartitionPeers/api-cut|1x|dual-s|1.0|0 s: two nodes answering ARP, the owner cut from the API for 30 s, with peers (Leases alone: 22-26 s)"
	"./cmd/lbd|L2PartitionPeers/api-cut|1x|moves/op|0|0: the address moved, the same"
	"./cmd/lbd|L2PartitionPeers/peers-cut|1x|dual-s|1.0|0.2 s: two nodes answering ARP, the owner cut from its peers for 30 s"
	"./cmd/lbd|CPFailover/kill9|3x|move-max-s|4.2|2.0 s: holder's lbd crashed to the VIP on another node (Lease 2 s)"
	"./cmd/lbd|CPFailover/apikill|3x|gap-max-s|4.2|2.0 s: holder's API server killed to the client served again"
	"./cmd/lbd|CPFailover/cable|3x|gap-max-s|4.2|2.0 s: holder's cable pulled to the client served again"
	"./cmd/lbd|CPFailover/sigterm|3x|gap-max-s|1.0|23 ms: longest gap on a graceful stop"
	"./cmd/lbd|CPFailover/sigterm|3x|failed/op|0|0: failed connections on a graceful stop"
	"./cmd/lbd|CPFailover/sigterm|3x|move-max-s|1.0|85 ms: SIGTERM to the VIP on another node"
	"./cmd/lbd|CPFailover/idle|3x|holder-RSS-MiB|200|56 MiB: the VIP holder's highest RSS, idle"
	"./cmd/lbd|APIWrites|1x|liveness-writes/s/node@1000|4.0|2.0: liveness Lease writes per node and second, defaults"
	"./cmd/lbd|APIWrites|1x|leader-writes/s@1000|1.0|0.5: allocator Lease writes per second, defaults (0.6 in a 10 s window)"
	"./cmd/lbd|APIWrites|1x|other-writes/s@1000|0.1|0: other API writes per second in steady state"
	"./cmd/lbd|APIWrites|1x|growth-1000/10|1.3|1.0: all API writes with 1000 Services over those with 10"
)

# Each package's test binary is built once (a cmd/lbd link is about 8 s,
# and a dozen benchmarks run from it), then run from the package's
# directory as go test would.
bindir=$(mktemp -d)
trap 'rm -rf "$bindir"' EXIT
testbin() {
	local bin="$bindir/${1//\//_}.test"
	if [[ ! -x "$bin" ]]; then
		go test -c -o "$bin" "$1" >&2 || return 1
	fi
	echo "$bin"
}

# cpu_ticks: all CPUs' ticks in all, and the steal among them (as in
# scripts/test.sh); steal_pct BEFORE AFTER: the steal's share between two.
cpu_ticks() { awk '$1 == "cpu" { t = 0; for (i = 2; i <= 9; i++) t += $i; print t, $9; exit }' /proc/stat; }
steal_pct() { echo "$1 $2" | awk '{ d = $3 - $1; print (d > 0 ? int(($4 - $2) * 100 / d) : 0) }'; }

# run_group KEY: runs one top-level benchmark ("pkg|top|count") and keeps
# its output (or FAILED) in outputs, and the host's steal meanwhile in steals.
declare -A outputs steals
run_group() {
	local pkg top count out="" start=$SECONDS before bin
	IFS='|' read -r pkg top count <<<"$1"
	echo "== benchmark $top ($pkg, $count)" >&2
	before=$(cpu_ticks)
	if bin=$(testbin "$pkg") && out=$(cd "$pkg" && "$bin" -test.run '^$' -test.bench "^Benchmark${top}\$" -test.benchtime "$count" -test.timeout 30m 2>&1); then
		outputs[$1]=$out
	else
		echo "$out" >&2
		outputs[$1]="FAILED"
	fi
	steals[$1]=$(steal_pct "$before" "$(cpu_ticks)")
	grep -E '^Benchmark' <<<"$out" >&2 || true
	echo "   ($((SECONDS - start)) s, ${steals[$1]} % steal)" >&2
}

# evaluate: every row's verdict into $results; fail=1 and the failed
# rows' groups in failed_groups when a figure is past its bound.
evaluate() {
	local row pkg name count metric bound doc key out value verdict
	: >"$results"
	fail=0
	failed_groups=()
	for row in "${benchmarks[@]}"; do
		IFS='|' read -r pkg name count metric bound doc <<<"$row"
		key="$pkg|${name%%/*}|$count"
		out=${outputs[$key]}
		value=""
		if [[ "$out" != FAILED ]]; then
			value=$(awk -v n="Benchmark${name}" -v m="$metric" '$1 ~ "^"n"(-[0-9]+)?$" { for (i = 3; i < NF; i++) if ($(i+1) == m) { print $i; exit } }' <<<"$out")
		fi
		if [[ "$out" == FAILED ]]; then
			echo "FAIL $name: the benchmark failed" >>"$results"
		elif [[ -z "$value" ]]; then
			echo "FAIL $name: no $metric figure" >>"$results"
		else
			verdict=ok
			if awk -v v="$value" -v b="$bound" 'BEGIN { exit !(v > b) }'; then
				verdict=FAIL
			fi
			printf '%-4s %-26s %12s %-28s bound %-10s documented: %s\n' "$verdict" "$name" "$value" "$metric" "$bound" "$doc" >>"$results"
			[[ $verdict == ok ]] && continue
		fi
		fail=1
		[[ " ${failed_groups[*]} " == *" $key "* ]] || failed_groups+=("$key")
	done
}

for row in "${benchmarks[@]}"; do
	IFS='|' read -r pkg name count _ <<<"$row"
	key="$pkg|${name%%/*}|$count"
	[[ -n "${outputs[$key]+set}" ]] || run_group "$key"
done
evaluate
# A benchmark that failed while the host withheld at least
# STEAL_RETRY_PCT (default 10) per cent of the CPU time measured the host
# (steal in /proc/stat; see scripts/test.sh): it runs once more, and that
# run's figures are the ones reported. Below that, a failure stands.
again=()
for key in "${failed_groups[@]}"; do
	steal=${steals[$key]}
	if ((steal >= ${STEAL_RETRY_PCT:-10})); then
		again+=("$key")
	else
		echo "== $key failed at ${steals[$key]} % steal (below STEAL_RETRY_PCT=${STEAL_RETRY_PCT:-10}): reported as it is" >&2
	fi
done
if ((${#again[@]} > 0)); then
	echo "== failed while the host withheld CPU time; measuring once more:" "${again[@]}" >&2
	grep '^FAIL' "$results" >&2 || true
	for key in "${again[@]}"; do
		run_group "$key"
	done
	evaluate
	printf '== run twice, the second run reported: %s\n' "${again[@]}" >>"$results"
fi

echo "== benchmark results ($results)"
cat "$results"
exit $fail
