package main

// The alert rules, their promtool tests and the Grafana dashboard name
// metrics, labels and label values. This test checks each of them against
// what a real lbd exports, with every part configured and working (L2 and
// BGP pools, BFD to FRR, the control-plane VIP, the allocator), so that a
// rule cannot wait for a series lbd never sends.

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/lbdproject/lbd/internal/netlab"
)

// targetLabels are added by Prometheus, not lbd.
var targetLabels = map[string]bool{"job": true, "instance": true, "cluster": true}

// openLabels are labels whose values are the user's own (pool and peer
// names, addresses, versions): a rule or a test may use any value, but
// the label must exist.
var openLabels = map[string]bool{
	"pool": true, "peer": true, "version": true, "goversion": true, "interface": true,
	"address": true, "vip": true, "node": true, "service": true, "le": true, "quantile": true,
}

var (
	sampleRE   = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? \S+$`)
	labelPair  = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"`)
	selectorRE = regexp.MustCompile(`\b(lbd_[a-z0-9_]+)(\{[^}]*\})?`)
	leaderRE   = regexp.MustCompile(`(?m)^lbd_control_plane_leader(\{[^}]*\})? 1$`)
	matcherRE  = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"([^"]*)"`)
)

// exported is what one scrape holds: metric name → label → values.
type exported map[string]map[string]map[string]bool

func parseExposition(text string) exported {
	out := exported{}
	for line := range strings.Lines(text) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		m := sampleRE.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		labels := out[m[1]]
		if labels == nil {
			labels = map[string]map[string]bool{}
			out[m[1]] = labels
		}
		for _, kv := range labelPair.FindAllStringSubmatch(m[2], -1) {
			if labels[kv[1]] == nil {
				labels[kv[1]] = map[string]bool{}
			}
			labels[kv[1]][kv[2]] = true
		}
	}
	return out
}

// checkSelectors returns a problem for every lbd_ selector in text that
// names a metric, a label or a (closed) label value that got lacks.
func checkSelectors(file, text string, got exported) []string {
	var bad []string
	text = strings.ReplaceAll(text, `\"`, `"`) // JSON
	for _, m := range selectorRE.FindAllStringSubmatch(text, -1) {
		name, sel := m[1], m[2]
		labels, ok := got[name]
		if !ok {
			// A histogram's own name, as prose and metadata use it.
			labels, ok = got[name+"_bucket"]
		}
		if !ok {
			bad = append(bad, fmt.Sprintf("%s: %s: lbd exports no such metric", file, m[0]))
			continue
		}
		for _, mm := range matcherRE.FindAllStringSubmatch(sel, -1) {
			label, op, value := mm[1], mm[2], mm[3]
			if targetLabels[label] {
				continue
			}
			values, ok := labels[label]
			if !ok {
				bad = append(bad, fmt.Sprintf("%s: %s: %s has no label %q (it has %v)", file, m[0], name, label, slices.Sorted(maps.Keys(labels))))
				continue
			}
			if op != "=" || openLabels[label] || strings.Contains(value, "$") {
				continue
			}
			if !values[value] {
				bad = append(bad, fmt.Sprintf("%s: %s: lbd exports %s{%s} only as %v", file, m[0], name, label, slices.Sorted(maps.Keys(values))))
			}
		}
	}
	return bad
}

func TestCheckSelectorsCanFail(t *testing.T) {
	got := parseExposition(`# HELP lbd_x x
lbd_x{reason="PoolExhausted",pool="a"} 0
lbd_y 1
lbd_h_bucket{le="+Inf"} 0
`)
	for text, want := range map[string]int{
		`rate(lbd_x{reason="PoolExhausted", pool="zz"}[5m]) + lbd_y{job="lbd"}`: 0,
		`lbd_x{reason="PoolFull"}`:  1,
		`lbd_x{mode="l2"}`:          1,
		`lbd_z`:                     1,
		`lbd_x{reason!="anything"}`: 0,
		`lbd_h and lbd_h_bucket`:    0,
		`lbd_h_count`:               1,
	} {
		if bad := checkSelectors("f", text, got); len(bad) != want {
			t.Errorf("checkSelectors(%q) = %v, want %d problems", text, bad, want)
		}
	}
}

// TestMetricsMatchRulesAndDashboard runs lbd with every part configured,
// scrapes it, and checks every metric, label and label value that the
// shipped alert rules, their tests and the dashboard use.
func TestMetricsMatchRulesAndDashboard(t *testing.T) {
	labParallel(t, 35*time.Second) // a lab of its own, beside the others (labsched_test.go)
	netlab.Need(t, "vtysh")
	l, tor, f := newBFDLab(t, labBin(t), bfddConfig(300, 300, 3))
	const vip = "192.0.2.99"
	key := writePeerKey(t)
	for _, n := range l.nodes {
		write(t, n.path, fmt.Sprintf(`version: 1
node: {name: %s}
kubernetes:
  kubeconfig: %s
  allocator_lease: %s
control_plane:
  addresses: [%s]
  interface: eth0
  local_api_server: %s
pools:
  - name: lan
    addresses: [192.0.2.200-192.0.2.210]
  - name: l2
    addresses: [192.0.2.211-192.0.2.220, "2001:db8::200-2001:db8::220"]
l2:
  advertisements:
    - {name: l2, pools: [l2], interfaces: [eth0]}
bgp:
  asn: 64512
  peers:
    - {name: tor, address: %s, asn: 64501, connect_retry: 1s, bfd: {}}
  advertisements:
    - {name: lan, pools: [lan]}
peers: {key_file: %s}
listen: {http: "127.0.0.1:7475", socket: %q}
log: {level: debug}
`, n.name, lbdKubeconfig(l.root, l.kc, n.name, true, ""), labAllocLease, vip, l.kc.URL, torAddr, key, n.socket))
		l.kill(n, 15)
		l.run(n)
	}
	all := nodeAddrs("node-a", "node-b", "node-c")
	f.WaitEstablished(20*time.Second, all...)
	waitBFDUp(t, l, f, 10*time.Second, "node-a", "node-b", "node-c")
	l.createService("web")
	waitIPs(t, l.kc.Client, "default", "web", "192.0.2.200")
	// A readiness wait, not a measurement (BenchmarkBGPServiceToRoute
	// times it): a cold run's machine once took more than 10 s here, its
	// API servers 40 s to start.
	l.waitHops(tor, "192.0.2.200", 30*time.Second, all...)
	l.createService("l2", func(s *corev1.Service) { s.Annotations = map[string]string{"metallb.io/address-pool": "l2"} })
	waitIPs(t, l.kc.Client, "default", "l2", "192.0.2.211")
	l.owner("192.0.2.211")

	// Every node's scrape, together: the VIP holder and the allocator
	// are one node each.
	got := exported{}
	waitFor(t, "a node holding the VIP", func() bool {
		for _, n := range l.nodes {
			if leaderRE.MatchString(l.metricsIn(n)) {
				return true
			}
		}
		return false
	})
	for _, n := range l.nodes {
		for name, labels := range parseExposition(l.metricsIn(n)) {
			if got[name] == nil {
				got[name] = map[string]map[string]bool{}
			}
			for label, values := range labels {
				if got[name][label] == nil {
					got[name][label] = map[string]bool{}
				}
				maps.Copy(got[name][label], values)
			}
		}
	}
	files := []string{
		"../../packaging/prometheus/lbd.rules.yml",
		"../../packaging/prometheus/lbd.rules.test.yml",
		"../../packaging/grafana/lbd.json",
	}
	used := 0
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		used += len(selectorRE.FindAllString(string(data), -1))
		for _, p := range checkSelectors(filepath.Base(file), string(data), got) {
			t.Error(p)
		}
	}
	if used < 50 {
		t.Errorf("only %d lbd_ selectors found in %v: the check reads the wrong files", used, files)
	}
	t.Logf("%d selectors checked against %d metrics exported", used, len(got))
}
