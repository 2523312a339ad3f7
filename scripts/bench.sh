#!/usr/bin/env bash
# Runs lbd's benchmarks with short counts, writes every figure to one
# results file (printed at the end), and fails when a figure is past its
# bound. Each bound is 3.7 times the figure documented in docs/testing.md
# (measured here at 1-1.5 times it): generous enough that a loaded 2-core
# machine does not flake, tight enough that a 4x regression fails.
#
# Usage: scripts/bench.sh [RESULTS_FILE]   (default: bench-results.txt)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
ensure_go
results=${1:-bench-results.txt}
: >"$results"
fail=0

# package | benchmark | -benchtime | metric | bound | documented as
benchmarks=(
	"./internal/config|LoadSlash16|3x|ns/op|740000000|0.2 s: a /16 written out address by address"
	"./internal/config|LoadExample|200x|ns/op|740000|0.2 ms: lbd check of etc/lbd.yaml"
	"./internal/pool|Fill16|3x|ns/op|555000000|0.15 s: a /16 pool filled"
	"./cmd/lbd|BFDPowerLoss|5x|p99-s|3.7|1.0 s: a node's power loss to its next hop gone at FRR (BFD 300ms x 3)"
)

for row in "${benchmarks[@]}"; do
	IFS='|' read -r pkg name count metric bound doc <<<"$row"
	echo "== benchmark $name ($pkg, $count)" >&2
	out=$(go test -run '^$' -bench "^Benchmark${name}\$" -benchtime "$count" "$pkg" 2>&1) || {
		echo "$out" >&2
		echo "FAIL $name: the benchmark failed" | tee -a "$results"
		fail=1
		continue
	}
	value=$(awk -v n="Benchmark${name}" -v m="$metric" '$1 ~ "^"n"(-[0-9]+)?$" { for (i = 3; i < NF; i++) if ($(i+1) == m) { print $i; exit } }' <<<"$out")
	if [[ -z "$value" ]]; then
		echo "$out" >&2
		echo "FAIL $name: no $metric figure" | tee -a "$results"
		fail=1
		continue
	fi
	verdict=ok
	if awk -v v="$value" -v b="$bound" 'BEGIN { exit !(v > b) }'; then
		verdict=FAIL
		fail=1
	fi
	printf '%-4s %-22s %14s %-6s bound %14s  documented: %s\n' "$verdict" "$name" "$value" "$metric" "$bound" "$doc" >>"$results"
done

echo "== benchmark results ($results)"
cat "$results"
exit $fail
