#!/usr/bin/env bash
# What lbd does today, on this machine, touching nothing outside a
# temporary directory: validate the shipped example, run the daemon, show
# its status and metrics, and watch it reject a broken reload while the
# running configuration stays in force. The full demo lab (a cluster and
# a network in namespaces) replaces this as the subsystems land.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
ensure_go
apt_install make git ca-certificates curl
make --no-print-directory build >/dev/null
LBD=$PWD/bin/lbd

dir=$(mktemp -d /tmp/lbd-demo.XXXXXX)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "lbd check on the shipped example (etc/lbd.yaml), with a stand-in password file"
printf 'demo-secret' > "$dir/bgp-password"; chmod 600 "$dir/bgp-password"
sed "s|/etc/lbd/bgp-password|$dir/bgp-password|" etc/lbd.yaml > "$dir/example.yaml"
$LBD check -c "$dir/example.yaml"

step "lbd check on a broken file: every problem, with file, line, field and value"
cat > "$dir/broken.yaml" <<YAML
version: 1
pools:
  - name: prod-pool
    adresses: [192.168.40.250-192.168.40.200]
bgp:
  asn: 0
  peers: [{name: tor, address: 192.168.40.1, asn: 64501, hold_time: 2s}]
YAML
$LBD check -c "$dir/broken.yaml" || echo "(exit $?)"

step "lbd run with a small configuration"
port=17473
cat > "$dir/lbd.yaml" <<YAML
version: 1
listen: {http: "127.0.0.1:$port", socket: "$dir/lbd.sock"}
log: {level: info}
YAML
$LBD run -c "$dir/lbd.yaml" 2>"$dir/lbd.log" &
pid=$!
for _ in $(seq 50); do [ -S "$dir/lbd.sock" ] && break; sleep 0.1; done
$LBD status -c "$dir/lbd.yaml"

step "a broken edit is rejected by lbd reload; the old configuration keeps running"
sed -i 's/level: info/level: loud/' "$dir/lbd.yaml"
$LBD reload -c "$dir/lbd.yaml" || echo "(exit $?)"
curl -s "127.0.0.1:$port/metrics" | grep '^lbd_config'

step "fixed with an editor-style rename: the file watcher applies it by itself"
sed 's/level: loud/level: debug/' "$dir/lbd.yaml" > "$dir/lbd.yaml.tmp" && mv "$dir/lbd.yaml.tmp" "$dir/lbd.yaml"
sleep 1
curl -s "127.0.0.1:$port/metrics" | grep '^lbd_config_last_reload_successful'
$LBD status -c "$dir/lbd.yaml"

step "the daemon's log"
kill "$pid"; wait "$pid" || true; pid=
cat "$dir/lbd.log"
