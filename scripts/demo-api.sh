#!/usr/bin/env bash
# The allocation-only demo, for a machine where you are not root (the full
# demo, scripts/demo.sh, needs network namespaces): on this machine only
# (loopback and a temporary directory; nothing else is touched).
#
#   - a real Kubernetes API (etcd + kube-apiserver, built from source on
#     first use: 10 to 20 minutes, then cached),
#   - two lbd nodes that elect an allocator and give LoadBalancer Services
#     addresses, written to their status,
#   - a crash of the allocator holder, handed over with no address change,
#   - a broken reload, rejected while the running configuration stays.
#
# Nothing is announced on a network here; scripts/demo.sh (as root) shows
# that: ARP, BGP to a router, the control-plane VIP, failovers.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
ensure_go
apt_install make git ca-certificates curl

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

step "building lbd and the lab (the first build downloads about 90 Go modules: a few minutes; later, seconds)"
with_progress "building lbd" make --no-print-directory build >/dev/null
with_progress "building the lab" go build -o bin/lbd-lab ./cmd/lbd-lab
LBD=$PWD/bin/lbd
echo "kube-apiserver, etcd, kubectl: built from the Go module proxy on first use (~15 min), then cached"
BINS=$(with_progress "kube-apiserver/etcd build" hack/kube-bins.sh | tail -n 1)
KUBECTL="$BINS/kubectl"

dir=$(mktemp -d /tmp/lbd-demo.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$dir"
}
trap cleanup EXIT

step "lbd check on the shipped example (etc/lbd.yaml), with a stand-in password file"
printf 'demo-secret' > "$dir/bgp-password"; chmod 600 "$dir/bgp-password"
sed "s|/etc/lbd/bgp-password|$dir/bgp-password|" etc/lbd.yaml > "$dir/example.yaml"
run $LBD check -c "$dir/example.yaml"

step "a real Kubernetes API on loopback"
mkdir -p "$dir/kube"
bin/lbd-lab api -bins "$BINS" -dir "$dir/kube" > "$dir/lab.out" 2> "$dir/lab.log" &
lab=$!; pids+=($lab)
for _ in $(seq 300); do [ -s "$dir/lab.out" ] || ! kill -0 $lab 2>/dev/null && break; sleep 0.2; done
export KUBECONFIG; KUBECONFIG=$(head -n 1 "$dir/lab.out")
[ -n "$KUBECONFIG" ] || { cat "$dir/lab.log"; exit 1; }
kubectl() { "$KUBECTL" "$@"; }
run kubectl version 2>/dev/null | tail -n 1
# lbd's namespace and rights (least privilege; docs/vip.md, "RBAC").
run kubectl apply -f etc/lbd-rbac.yaml

step "two lbd nodes with the same pools"
node_config() { # name port
	cat <<YAML
version: 1
node: {name: $1}
kubernetes:
  kubeconfig: $KUBECONFIG
  allocator_lease: {duration: 3s, renew_deadline: 2s, retry_period: 500ms}
pools:
  - name: general
    addresses: [192.0.2.200-192.0.2.250, 2001:db8::200-2001:db8::2ff]
    avoid_buggy_ips: true
  - name: ingress
    addresses: [203.0.113.10/32]
    auto_assign: false
    namespaces: [ingress]
l2:
  advertisements:
    # The demo's lbd run in this machine's own network: an interface that
    # does not exist keeps them from ever answering ARP on your LAN.
    - {name: all, pools: [general, ingress], interfaces: [lbd-demo0]}
listen: {http: "127.0.0.1:$2", socket: "$dir/$1.sock"}
YAML
}
declare -A node_pid
for n in node-a:17475 node-b:17474; do
	name=${n%%:*}; port=${n##*:}
	node_config "$name" "$port" > "$dir/$name.yaml"
	$LBD run -c "$dir/$name.yaml" 2> "$dir/$name.log" &
	pids+=($!); node_pid[$name]=$!
done
for _ in $(seq 100); do kubectl get lease -n lbd lbd-allocator >/dev/null 2>&1 && break; sleep 0.2; done
sleep 1
run kubectl get lease -n lbd lbd-allocator
# No kubelet runs here, so the demo registers the two Nodes itself, as
# kubelets would; each lbd's own liveness Lease says it is alive.
for name in node-a node-b; do
	printf 'apiVersion: v1\nkind: Node\nmetadata: {name: %s}\n' "$name" | kubectl apply -f - >/dev/null
done
run kubectl get lease -n lbd

step "LoadBalancer Services get addresses (no more <pending>)"
kubectl create namespace ingress >/dev/null
run kubectl create service loadbalancer web --tcp=80:8080
run kubectl create service loadbalancer api --tcp=443:8443
kubectl apply -f - >/dev/null <<YAML
apiVersion: v1
kind: Service
metadata:
  name: ingress-nginx-controller
  namespace: ingress
  annotations:
    metallb.io/loadBalancerIPs: 203.0.113.10   # MetalLB's annotation, unchanged
spec:
  type: LoadBalancer
  externalTrafficPolicy: Local
  selector: {app: ingress-nginx}
  ports: [{name: https, port: 443, targetPort: 8443}]
---
apiVersion: v1
kind: Service
metadata: {name: dual}
spec:
  type: LoadBalancer
  ipFamilyPolicy: RequireDualStack
  ipFamilies: [IPv4, IPv6]
  selector: {app: dual}
  ports: [{name: http, port: 80}]
---
apiVersion: v1
kind: Service
metadata:
  name: grabby
  annotations: {metallb.io/address-pool: ingress}
spec:
  type: LoadBalancer
  selector: {app: grabby}
  ports: [{name: http, port: 80}]
YAML
sleep 1
run kubectl get svc -A -o wide
step "the restricted pool refused the default namespace, and said why"
run kubectl get events --field-selector involvedObject.name=grabby -o custom-columns=TYPE:.type,REASON:.reason,MESSAGE:.message

step "kill -9 the allocator holder: the other node takes over, no address changes"
holder=$(kubectl get lease -n lbd lbd-allocator -o jsonpath='{.spec.holderIdentity}')
before=$(kubectl get svc -A -o jsonpath='{range .items[*]}{.metadata.name}={.status.loadBalancer.ingress[*].ip}{"\n"}{end}')
run kill -9 "${node_pid[$holder]}"
wait "${node_pid[$holder]}" 2>/dev/null || true
for _ in $(seq 50); do
	now=$(kubectl get lease -n lbd lbd-allocator -o jsonpath='{.spec.holderIdentity}')
	[ "$now" != "$holder" ] && break; sleep 0.2
done
run kubectl get lease -n lbd lbd-allocator
run kubectl create service loadbalancer after-failover --tcp=80:80
sleep 1
after=$(kubectl get svc -A -o jsonpath='{range .items[*]}{.metadata.name}={.status.loadBalancer.ingress[*].ip}{"\n"}{end}' | grep -v '^after-failover=')
if [ "$before" = "$after" ]; then echo "every address is unchanged"; else echo "ADDRESSES CHANGED:"; diff <(echo "$before") <(echo "$after") || true; fi
run kubectl get svc after-failover

survivor=node-a; [ "$holder" = node-a ] && survivor=node-b
step "a broken edit on $survivor is rejected; the running configuration stays"
sed -i 's/192.0.2.200-192.0.2.250/192.0.2.250-192.0.2.200/' "$dir/$survivor.yaml"
run $LBD reload -c "$dir/$survivor.yaml" || true
step "so is an edit that would strand addresses in use"
node_config "$survivor" 17475 | sed 's/192.0.2.200-192.0.2.250/192.0.2.240-192.0.2.250/' > "$dir/$survivor.yaml.new"
[ "$survivor" = node-b ] && sed -i 's/17475/17474/' "$dir/$survivor.yaml.new"
mv "$dir/$survivor.yaml.new" "$dir/$survivor.yaml"
run $LBD reload -c "$dir/$survivor.yaml" || true
port=17475; [ "$survivor" = node-b ] && port=17474
curl -s "127.0.0.1:$port/metrics" | grep -E '^lbd_(config_last_reload_successful|pool_|allocator_leader)'

step "lbd status on $survivor"
run $LBD status -c "$dir/$survivor.yaml"
echo "Nothing is announced here (interface_missing): the demo's lbd run in this machine's own"
echo "network and announce only on lbd-demo0, which does not exist. As root,"
echo "./scripts/demo.sh shows addresses answered on a network of namespaces."
