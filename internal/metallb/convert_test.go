package metallb

import (
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lbdproject/lbd/internal/config"
)

// convertFiles converts testdata files as one input set.
func convertFiles(t *testing.T, files ...string) *Result {
	t.Helper()
	var ins []Input
	for _, f := range files {
		data, err := os.ReadFile(filepath.Join("testdata", f))
		if err != nil {
			t.Fatal(err)
		}
		ins = append(ins, Input{Name: f, Data: data})
	}
	r, err := Convert(ins...)
	if err != nil {
		t.Fatalf("Convert(%v): %v", files, err)
	}
	return r
}

func convertText(t *testing.T, text string) *Result {
	t.Helper()
	r, err := Convert(Input{Name: "test.yaml", Data: []byte(text)})
	if err != nil {
		t.Fatalf("Convert: %v\ninput:\n%s", err, text)
	}
	return r
}

// load parses a result's configuration with lbd's loader, independently of
// the converter's own check: the password files it names exist, mode 0600.
func load(t *testing.T, r *Result) *config.Config {
	t.Helper()
	if len(r.Errors) > 0 {
		t.Fatalf("conversion errors: %v\n%s", r.Errors, r.Config)
	}
	opts := config.Options{
		Hostname: func() (string, error) { return "node1", nil },
		Open:     pretendPasswordFiles(r.PasswordFiles),
	}
	c, err := opts.Parse("converted.yaml", r.Config)
	if err != nil {
		t.Fatalf("lbd rejects the converted file: %v\n%s", err, r.Config)
	}
	return c
}

func mustRange(t *testing.T, s string) config.Range {
	t.Helper()
	r, err := config.ParseRange(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// The seed guide's manifests: the pool, then L2 mode, BGP mode, or both
// during the move from one to the other.
func TestMetalLBSeedGuide(t *testing.T) {
	off := false
	prodPool := config.Pool{
		Name:          "prod-pool",
		Addresses:     []config.Range{mustRange(t, "192.168.40.200-192.168.40.250")},
		AutoAssign:    new(true),
		AvoidBuggyIPs: true,
	}
	l2 := []config.L2Advertisement{{Name: "l2-prod", Pools: []string{"prod-pool"}, Interfaces: []string{"eth0"}}}
	peers := []config.Peer{{
		Name: "tor-switch", Address: netip.MustParseAddr("192.168.40.1"), ASN: 64501, Port: 179,
		HoldTime: 90 * time.Second, Keepalive: 30 * time.Second, ConnectRetry: 5 * time.Second,
		GracefulRestart: config.GracefulRestart{Enabled: &off, RestartTime: 120 * time.Second},
	}}
	bgpAds := []config.BGPAdvertisement{{
		Name: "bgp-prod", Pools: []string{"prod-pool"},
		AggregationLength: 32, AggregationLengthV6: 128, LocalPreference: new(uint32(100)),
	}}
	for _, tc := range []struct {
		name   string
		files  []string
		l2     []config.L2Advertisement
		asn    uint32
		peers  []config.Peer
		bgpAds []config.BGPAdvertisement
	}{
		{"L2", []string{"metallb-pool.yaml", "metallb-l2.yaml"}, l2, 0, nil, nil},
		{"BGP", []string{"metallb-pool.yaml", "metallb-bgp.yaml"}, nil, 64512, peers, bgpAds},
		{"L2 and BGP", []string{"metallb-pool.yaml", "metallb-l2.yaml", "metallb-bgp.yaml"}, l2, 64512, peers, bgpAds},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := convertFiles(t, tc.files...)
			if len(r.Warnings) > 0 {
				t.Errorf("warnings: %v", r.Warnings)
			}
			c := load(t, r)
			if !reflect.DeepEqual(c.Pools, []config.Pool{prodPool}) {
				t.Errorf("pools = %+v", c.Pools)
			}
			if !reflect.DeepEqual(c.L2.Advertisements, tc.l2) {
				t.Errorf("l2 advertisements = %+v, want %+v", c.L2.Advertisements, tc.l2)
			}
			if c.BGP.ASN != tc.asn || c.BGP.RouterID.IsValid() {
				t.Errorf("bgp.asn = %d, router_id %v; want %d and none", c.BGP.ASN, c.BGP.RouterID, tc.asn)
			}
			if !reflect.DeepEqual(c.BGP.Peers, tc.peers) {
				t.Errorf("bgp peers = %+v\nwant %+v", c.BGP.Peers, tc.peers)
			}
			if !reflect.DeepEqual(c.BGP.Advertisements, tc.bgpAds) {
				t.Errorf("bgp advertisements = %+v\nwant %+v", c.BGP.Advertisements, tc.bgpAds)
			}
			for _, want := range append([]string{"# /etc/lbd.yaml converted from MetalLB", "version: 1\n"}, tc.files...) {
				if !strings.Contains(string(r.Config), want) {
					t.Errorf("output lacks %q:\n%s", want, r.Config)
				}
			}
		})
	}
}

// The pool alone, before the guide adds an advertisement: MetalLB hands
// out its addresses unannounced, lbd refuses that.
func TestMetalLBPoolWithoutAdvertisement(t *testing.T) {
	r := convertFiles(t, "metallb-pool.yaml")
	c := load(t, r)
	if len(c.Pools) != 0 {
		t.Errorf("pools = %+v, want none", c.Pools)
	}
	wantProblem(t, r.Warnings, "IPAddressPool/prod-pool", "", "no L2Advertisement or BGPAdvertisement announces this pool")
	if !strings.Contains(string(r.Config), "  # - name: prod-pool\n  #   addresses:\n  #     - 192.168.40.200-192.168.40.250\n") {
		t.Errorf("the pool is not written commented out:\n%s", r.Config)
	}
}

// kubectl get -o yaml output: a List, server-side defaults, metadata and
// status noise, v1beta2 BGPPeer, a Community, a BFD profile.
func TestMetalLBKubectlList(t *testing.T) {
	r := convertFiles(t, "kubectl-list.yaml")
	c := load(t, r)
	if len(c.Pools) != 2 || c.Pools[0].Name != "prod-pool" || c.Pools[1].Name != "ingress" {
		t.Fatalf("pools = %+v", c.Pools)
	}
	ing := c.Pools[1]
	if ing.AutoAssignEnabled() || !reflect.DeepEqual(ing.Namespaces, []string{"ingress-nginx"}) || ing.Priority != 2 {
		t.Errorf("ingress pool = %+v; want auto_assign false, namespaces [ingress-nginx], priority 2", ing)
	}
	ads := c.BGP.Advertisements
	if len(ads) != 1 || !reflect.DeepEqual(ads[0].Pools, []string{"prod-pool", "ingress"}) {
		t.Fatalf("advertisements = %+v; want one for both pools (selector tier=prod)", ads)
	}
	if got := ads[0].Communities; len(got) != 1 || got[0].String() != "64512:1" {
		t.Errorf("communities = %v, want [64512:1] (alias vpn-only)", got)
	}
	if got := ads[0].LargeCommunities; len(got) != 1 || got[0].String() != "64512:1:100" {
		t.Errorf("large communities = %v", got)
	}
	p := c.BGP.Peers[0]
	if p.HoldTime != 90*time.Second || p.Keepalive != 30*time.Second || p.PasswordFile != "/etc/lbd/bgp-password-tor-switch" {
		t.Errorf("peer = %+v", p)
	}
	if !reflect.DeepEqual(r.PasswordFiles, []string{"/etc/lbd/bgp-password-tor-switch"}) {
		t.Errorf("password files = %v", r.PasswordFiles)
	}
	if p.BFD == nil || p.BFD.TransmitInterval != 300*time.Millisecond || p.BFD.ReceiveInterval != 300*time.Millisecond || p.BFD.DetectMultiplier != 3 {
		t.Errorf("peer's bfd = %+v, want BFDProfile fast's 300ms, 300ms, 3", p.BFD)
	}
	wantProblem(t, r.Warnings, "BGPPeer/tor-switch", "spec.passwordSecret", "kubectl get secret -n metallb-system tor-switch-bgp")
	if len(r.Warnings) != 1 {
		t.Errorf("warnings = %v; want exactly the one above (status objects, defaults and a converted BFDProfile are not warnings)", r.Warnings)
	}
	if !strings.Contains(string(r.Config), "hold_time: 90s\n") {
		t.Errorf("holdTime 1m30s not written as 90s:\n%s", r.Config)
	}
}

// A BGPPeer reads the same in v1beta1 and v1beta2; v1beta2's new fields
// are carried over too.
func TestMetalLBBGPPeerVersions(t *testing.T) {
	on, off := true, false
	want := config.Peer{
		Name: "rack-a", Address: netip.MustParseAddr("198.51.100.1"), ASN: 64501, Port: 179,
		HoldTime: 9 * time.Second, Keepalive: 3 * time.Second, ConnectRetry: 5 * time.Second,
		SourceAddress: netip.MustParseAddr("198.51.100.10"), EBGPMultihop: 255,
		GracefulRestart: config.GracefulRestart{Enabled: &off, RestartTime: 120 * time.Second},
		NodeSelector: &config.Selector{
			MatchLabels: map[string]string{"rack": "a"},
			MatchExpressions: []config.Requirement{
				{Key: "node-role.kubernetes.io/control-plane", Operator: config.OpDoesNotExist},
			},
		},
	}
	for _, tc := range []struct {
		file string
		gr   *bool
	}{
		{"bgppeer-v1beta1.yaml", &off},
		{"bgppeer-v1beta2.yaml", &on},
	} {
		t.Run(tc.file, func(t *testing.T) {
			r := convertFiles(t, tc.file)
			if len(r.Warnings) > 0 {
				t.Errorf("warnings: %v", r.Warnings)
			}
			c := load(t, r)
			w := want
			w.GracefulRestart.Enabled = tc.gr
			if len(c.BGP.Peers) != 1 || !reflect.DeepEqual(c.BGP.Peers[0], w) {
				t.Errorf("peer = %+v\nwant %+v", c.BGP.Peers, w)
			}
			if c.BGP.ASN != 64512 || c.BGP.RouterID != netip.MustParseAddr("10.0.0.1") {
				t.Errorf("bgp.asn %d, router_id %v", c.BGP.ASN, c.BGP.RouterID)
			}
			// An advertisement naming no pool announces every pool.
			if a := c.BGP.Advertisements; len(a) != 1 || !reflect.DeepEqual(a[0].Pools, []string{"pool"}) {
				t.Errorf("advertisements = %+v", a)
			}
		})
	}
}

const poolL2 = `
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: pool}
spec: {addresses: [192.0.2.0/28]}
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: l2}
spec: {ipAddressPools: [pool]}
---
`

const peerA = `
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: a}
spec: {myASN: 64512, peerASN: 64501, peerAddress: 192.0.2.254}
---
`

// Translations that change the form but keep the meaning.
func TestMetalLBTranslations(t *testing.T) {
	for _, tc := range []struct {
		name  string
		input string
		check func(t *testing.T, c *config.Config)
	}{
		{"the excludel2 ConfigMap becomes l2.exclude_interfaces", poolL2 + `
apiVersion: v1
kind: ConfigMap
metadata: {name: metallb-excludel2, namespace: metallb-system}
data:
  excludel2.yaml: |
    announcedInterfacesToExclude: ["^docker.*", "^lo$", "^cali.*", "eth9"]
`, func(t *testing.T, c *config.Config) {
			want := []string{"docker.*", "lo", "cali.*", ".*eth9.*"}
			if !slices.Equal(c.L2.ExcludeInterfaces, want) {
				t.Errorf("exclude_interfaces %q, want %q", c.L2.ExcludeInterfaces, want)
			}
			if !c.L2.Excluded("docker0") || !c.L2.Excluded("xeth9y") || c.L2.Excluded("eth0") || c.L2.Excluded("lo0") {
				t.Errorf("the converted expressions do not match as MetalLB's did")
			}
		}},
		{"dynamicASN internal is an iBGP peer", poolL2 + `
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: a}
spec: {myASN: 64512, dynamicASN: internal, peerAddress: 192.0.2.254}
`, func(t *testing.T, c *config.Config) {
			if c.BGP.Peers[0].ASN != 64512 {
				t.Errorf("peer asn %d, want 64512", c.BGP.Peers[0].ASN)
			}
		}},
		{"keepalive alone gives hold three times it", poolL2 + `
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: a}
spec: {myASN: 64512, peerASN: 64501, peerAddress: 192.0.2.254, keepaliveTime: 10s, connectTime: 2s}
`, func(t *testing.T, c *config.Config) {
			p := c.BGP.Peers[0]
			if p.HoldTime != 30*time.Second || p.Keepalive != 10*time.Second || p.ConnectRetry != 2*time.Second {
				t.Errorf("hold %v keepalive %v connect_retry %v", p.HoldTime, p.Keepalive, p.ConnectRetry)
			}
		}},
		{"pool priorities reversed, namespace pools first", `
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: general}
spec: {addresses: [192.0.2.0/28]}
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: first}
spec: {addresses: [192.0.2.16/28], serviceAllocation: {priority: 1, namespaces: [a]}}
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: second}
spec: {addresses: [192.0.2.32/28], serviceAllocation: {priority: 5, namespaces: [a, b]}}
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: unset}
spec: {addresses: [192.0.2.48/28], serviceAllocation: {namespaces: [a]}}
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: all}
`, func(t *testing.T, c *config.Config) {
			got := map[string]int{}
			for _, p := range c.Pools {
				got[p.Name] = p.Priority
			}
			want := map[string]int{"general": 0, "first": 6, "second": 2, "unset": 1}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("priorities %v, want %v", got, want)
			}
			if !reflect.DeepEqual(c.Pools[2].Namespaces, []string{"a", "b"}) {
				t.Errorf("namespaces %v", c.Pools[2].Namespaces)
			}
			if a := c.L2.Advertisements[0]; len(a.Pools) != 4 {
				t.Errorf("an advertisement naming no pool must list all four: %v", a.Pools)
			}
		}},
		{"pool selectors resolve to names", `
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: a, labels: {zone: east}}
spec: {addresses: [192.0.2.0/28]}
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: b, labels: {zone: west}}
spec: {addresses: [192.0.2.16/28]}
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: east}
spec:
  ipAddressPoolSelectors:
  - matchExpressions: [{key: zone, operator: In, values: [east]}]
  nodeSelectors: [{matchLabels: {zone: east}}]
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: west}
spec: {ipAddressPools: [b]}
`, func(t *testing.T, c *config.Config) {
			ads := c.L2.Advertisements
			if len(ads) != 2 || !reflect.DeepEqual(ads[0].Pools, []string{"a"}) || ads[0].NodeSelector.String() != "zone=east" {
				t.Errorf("advertisements %+v", ads)
			}
		}},
		{"empty node selector matches every node", poolL2 + peerA + `
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: b}
spec: {nodeSelectors: [{matchLabels: {rack: a}}, {}], peers: [a]}
`, func(t *testing.T, c *config.Config) {
			a := c.BGP.Advertisements
			if len(a) != 1 || a[0].NodeSelector != nil || !reflect.DeepEqual(a[0].Peers, []string{"a"}) {
				t.Errorf("advertisements %+v", a)
			}
		}},
		{"aggregation and IPv6", `
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: v6}
spec: {addresses: [2001:db8::/120, 203.0.113.0/24]}
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: agg}
spec: {aggregationLength: 24, aggregationLengthV6: 120, communities: ["65535:65282"]}
---
` + peerA, func(t *testing.T, c *config.Config) {
			a := c.BGP.Advertisements[0]
			if a.AggregationLength != 24 || a.AggregationLengthV6 != 120 || a.Communities[0] != 0xFFFFFF02 {
				t.Errorf("advertisement %+v", a)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := convertText(t, tc.input)
			if len(r.Warnings) > 0 {
				t.Errorf("warnings: %v", r.Warnings)
			}
			tc.check(t, load(t, r))
		})
	}
}

// wantProblem fails unless list holds a problem of object and field whose
// message contains msg.
func wantProblem(t *testing.T, list []Problem, object, field, msg string) {
	t.Helper()
	for _, p := range list {
		if p.Object == object && p.Field == field && strings.Contains(p.Msg, msg) {
			return
		}
	}
	t.Errorf("no problem %s: %s: ...%s...; have:\n%s", object, field, msg, problems(list))
}

func problems(list []Problem) string {
	var b strings.Builder
	for _, p := range list {
		b.WriteString("  " + p.String() + "\n")
	}
	return b.String()
}
