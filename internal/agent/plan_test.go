package agent

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lbdproject/lbd/internal/cluster"
	"github.com/lbdproject/lbd/internal/config"
	"github.com/lbdproject/lbd/internal/pool"
)

const planConfig = `version: 1
node: {name: node-a}
pools:
  - {name: web, addresses: [192.0.2.0/24, 2001:db8::/64]}
  - {name: racked, addresses: [198.51.100.0/28]}
  - {name: routed, addresses: [203.0.113.0/28]}
l2:
  advertisements:
    - {name: lan, pools: [web], interfaces: [eth0]}
    - name: rack1
      pools: [racked]
      node_selector: {match_labels: {rack: "1"}}
bgp:
  asn: 64512
  peers: [{name: tor, address: 198.51.100.254, asn: 64501}]
  advertisements:
    - {name: tor-routes, pools: [routed]}
`

func mustConfig(t testing.TB, text string) *config.Config {
	t.Helper()
	cfg, err := config.Options{}.Parse("lbd.yaml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

var (
	t0      = time.Unix(1_000_000, 0)
	created = t0.Add(time.Hour)
)

func addrs(s ...string) []netip.Addr {
	out := make([]netip.Addr, len(s))
	for i, a := range s {
		out[i] = netip.MustParseAddr(a)
	}
	return out
}

// threeNodes is a view of node-a, node-b, node-c, all alive since t0,
// with eth0, in rack 1 (node-c in rack 2).
func threeNodes(svcs ...cluster.Service) View {
	v := View{
		Services:   svcs,
		Nodes:      map[string]cluster.Node{},
		Alive:      map[string]Member{},
		Interfaces: []string{"eth0"},
	}
	for _, n := range []string{"node-a", "node-b", "node-c"} {
		rack := "1"
		if n == "node-c" {
			rack = "2"
		}
		v.Nodes[n] = cluster.Node{Labels: map[string]string{"rack": rack}}
		v.Alive[n] = Member{Since: t0, Interfaces: []string{AnyInterface, "eth0"}}
	}
	return v
}

func TestPlanCases(t *testing.T) {
	cfg := mustConfig(t, planConfig)
	web := cluster.Service{Spec: pool.Service{Key: "ns/web"}, Created: created, Status: addrs("192.0.2.10")}
	ownerOfWeb := Plan(cfg, "node-a", threeNodes(web))[0].Owner
	if ownerOfWeb == "" {
		t.Fatal("no owner")
	}
	other := "node-b"
	if ownerOfWeb == "node-b" {
		other = "node-a"
	}

	tests := []struct {
		name   string
		self   string
		svc    cluster.Service
		change func(v *View)
		want   string // "mode reason announce owner interfaces" of the one decision
	}{
		{"owner answers on its interface", ownerOfWeb, web, nil,
			fmt.Sprintf("l2 owner true %s [eth0]", ownerOfWeb)},
		{"the others know who owns it", other, web, nil,
			fmt.Sprintf("l2 other_owner false %s []", ownerOfWeb)},
		{"address in no pool", "node-a", cluster.Service{Spec: pool.Service{Key: "ns/x"}, Status: addrs("198.51.100.200")}, nil,
			"none no_advertisement false  []"},
		{"this node not alive", ownerOfWeb, web, func(v *View) { delete(v.Alive, ownerOfWeb) },
			"l2 not_alive false %s []"},
		{"excluded", ownerOfWeb, web, func(v *View) { n := v.Nodes[ownerOfWeb]; n.Excluded = true; v.Nodes[ownerOfWeb] = n },
			"l2 excluded false %s []"},
		{"cordoned", ownerOfWeb, web, func(v *View) { n := v.Nodes[ownerOfWeb]; n.Cordoned = true; v.Nodes[ownerOfWeb] = n },
			"l2 cordoned false %s []"},
		{"no Node object", ownerOfWeb, web, func(v *View) { delete(v.Nodes, ownerOfWeb) },
			"l2 unknown_node false %s []"},
		{"interface missing here", ownerOfWeb, web, func(v *View) { v.Interfaces = []string{"eth1"} },
			"l2 interface_missing false %s []"},
		{"ETP Local: only the endpoint's node", "node-c",
			cluster.Service{Spec: pool.Service{Key: "ns/local", Local: true}, Created: created, Status: addrs("192.0.2.20"), Endpoints: map[string]bool{"node-c": true}}, nil,
			"l2 owner true node-c [eth0]"},
		{"ETP Local: no endpoint here", "node-a",
			cluster.Service{Spec: pool.Service{Key: "ns/local", Local: true}, Created: created, Status: addrs("192.0.2.20"), Endpoints: map[string]bool{"node-c": true}}, nil,
			"l2 no_local_endpoints false node-c []"},
		{"ETP Local: no endpoint anywhere", "node-a",
			cluster.Service{Spec: pool.Service{Key: "ns/local", Local: true}, Created: created, Status: addrs("192.0.2.20")}, nil,
			"l2 no_local_endpoints false  []"},
		{"selector leaves node-c out", "node-c", cluster.Service{Spec: pool.Service{Key: "ns/r"}, Created: created, Status: addrs("198.51.100.3")}, nil,
			"l2 not_selected false %s []"},
		{"an advertisement without interfaces uses every link not excluded", "node-a", cluster.Service{Spec: pool.Service{Key: "ns/r"}, Created: created, Status: addrs("198.51.100.3")},
			func(v *View) {
				v.Interfaces = []string{"cali1234", "cni0", "docker0", "eth0", "eth1", "flannel.1", "kube-ipvs0", "veth9f2"}
				delete(v.Alive, "node-b")
			},
			"l2 owner true node-a [eth0 eth1]"},
		{"... and of those, the links on the address's subnet", "node-a", cluster.Service{Spec: pool.Service{Key: "ns/r"}, Created: created, Status: addrs("198.51.100.3")},
			func(v *View) {
				v.Interfaces = []string{"cni0", "eth0", "eth1", "veth9f2"}
				v.Subnets = map[string][]netip.Prefix{
					"eth0": {netip.MustParsePrefix("192.0.2.0/24")},
					"eth1": {netip.MustParsePrefix("198.51.100.0/24"), netip.MustParsePrefix("2001:db8:1::/64")},
					"cni0": {netip.MustParsePrefix("198.51.100.0/24")}, // excluded all the same
				}
				delete(v.Alive, "node-b")
			},
			"l2 owner true node-a [eth1]"},
		{"a node with only pod links is no candidate", "node-a", cluster.Service{Spec: pool.Service{Key: "ns/r"}, Created: created, Status: addrs("198.51.100.3")},
			func(v *View) { v.Interfaces = []string{"cni0", "veth9f2"} },
			"l2 interface_missing false %s []"},
		{"bgp: every eligible node", "node-c", cluster.Service{Spec: pool.Service{Key: "ns/b"}, Created: created, Status: addrs("203.0.113.1")}, nil,
			"bgp eligible true  [] tor-routes"},
		{"bgp: cordoned", "node-c", cluster.Service{Spec: pool.Service{Key: "ns/b"}, Created: created, Status: addrs("203.0.113.1")},
			func(v *View) { v.Nodes["node-c"] = cluster.Node{Cordoned: true} },
			"bgp cordoned false  []"},
		{"bgp: ETP Local", "node-a", cluster.Service{Spec: pool.Service{Key: "ns/b", Local: true}, Created: created, Status: addrs("203.0.113.1"), Endpoints: map[string]bool{"node-b": true}}, nil,
			"bgp no_local_endpoints false  []"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := threeNodes(tt.svc)
			if tt.change != nil {
				tt.change(&v)
			}
			ds := Plan(cfg, tt.self, v)
			if len(ds) != 1 {
				t.Fatalf("want one decision, got %+v", ds)
			}
			d := ds[0]
			got := fmt.Sprintf("%s %s %v %s %v", d.Mode, d.Reason, d.Announce, d.Owner, d.Interfaces)
			if len(d.Advertisements) > 0 && d.Mode == ModeBGP {
				got += " " + strings.Join(d.Advertisements, ",")
			}
			want := tt.want
			if strings.Contains(want, "%s") {
				want = fmt.Sprintf(want, d.Owner) // any owner but self
				if d.Owner == tt.self {
					t.Errorf("an ineligible node owns the address")
				}
			}
			if got != want {
				t.Errorf("got  %q\nwant %q", got, want)
			}
			if d.Service != tt.svc.Key() || d.Addr != tt.svc.Status[0] {
				t.Errorf("decision for the wrong address: %+v", d)
			}
		})
	}
}

// TestPlanAgreement: every node computes the same owner, and exactly one
// of them announces each address.
func TestPlanAgreement(t *testing.T) {
	cfg := mustConfig(t, planConfig)
	var svcs []cluster.Service
	for i := range 100 {
		svcs = append(svcs, cluster.Service{Spec: pool.Service{Key: fmt.Sprintf("ns/s%d", i)}, Created: created, Status: addrs(fmt.Sprintf("192.0.2.%d", i+1))})
	}
	v := threeNodes(svcs...)
	announcers := map[netip.Addr][]string{}
	owner := map[netip.Addr]string{}
	for _, self := range []string{"node-a", "node-b", "node-c"} {
		for _, d := range Plan(cfg, self, v) {
			if o, ok := owner[d.Addr]; ok && o != d.Owner {
				t.Fatalf("%s: %s says %s owns it, another node says %s", d.Addr, self, d.Owner, o)
			}
			owner[d.Addr] = d.Owner
			if d.Announce {
				announcers[d.Addr] = append(announcers[d.Addr], self)
			}
		}
	}
	for a, who := range announcers {
		if len(who) != 1 {
			t.Errorf("%s announced by %v", a, who)
		}
	}
	if len(announcers) != 100 {
		t.Errorf("%d of 100 addresses announced", len(announcers))
	}
}

// TestPlanBalance: 300 Services spread over three nodes.
func TestPlanBalance(t *testing.T) {
	cfg := mustConfig(t, planConfig)
	var svcs []cluster.Service
	for i := range 300 {
		svcs = append(svcs, cluster.Service{Spec: pool.Service{Key: fmt.Sprintf("ns/s%d", i)}, Created: created, Status: addrs(fmt.Sprintf("192.0.2.%d", i%250+1))})
	}
	count := map[string]int{}
	for _, d := range Plan(cfg, "node-a", threeNodes(svcs...)) {
		count[d.Owner]++
	}
	for _, n := range []string{"node-a", "node-b", "node-c"} {
		if count[n] < 70 || count[n] > 130 {
			t.Errorf("uneven spread: %v", count)
		}
	}
}

// TestPlanStickiness: when a node dies its addresses move; when it returns
// (a new term of life) they stay where they are, unless l2.failback.
func TestPlanStickiness(t *testing.T) {
	cfg := mustConfig(t, planConfig)
	var svcs []cluster.Service
	for i := range 60 {
		svcs = append(svcs, cluster.Service{Spec: pool.Service{Key: fmt.Sprintf("ns/s%d", i)}, Created: created, Status: addrs(fmt.Sprintf("192.0.2.%d", i+1))})
	}
	ownersOf := func(cfg *config.Config, v View) map[netip.Addr]string {
		out := map[netip.Addr]string{}
		for _, d := range Plan(cfg, "node-b", v) {
			out[d.Addr] = d.Owner
		}
		return out
	}
	all := threeNodes(svcs...)
	before := ownersOf(cfg, all)
	dead := threeNodes(svcs...)
	delete(dead.Alive, "node-a")
	during := ownersOf(cfg, dead)
	back := threeNodes(svcs...)
	back.Alive["node-a"] = Member{Since: created.Add(time.Hour), Interfaces: []string{AnyInterface, "eth0"}}
	after := ownersOf(cfg, back)
	moved := 0
	for a, o := range before {
		if o != "node-a" && during[a] != o {
			t.Errorf("%s moved from %s though its owner lives", a, o)
		}
		if o == "node-a" {
			moved++
			if during[a] == "node-a" {
				t.Errorf("%s still owned by the dead node", a)
			}
		}
		if after[a] != during[a] {
			t.Errorf("%s went back to %s after node-a returned", a, after[a])
		}
	}
	if moved == 0 {
		t.Fatal("node-a owned nothing; the test proves nothing")
	}
	fb := mustConfig(t, strings.Replace(planConfig, "l2:\n", "l2:\n  failback: true\n", 1))
	if got := ownersOf(fb, back); !maps.Equal(got, before) {
		t.Error("with failback the returning node must take its addresses back")
	}
}

// TestPlanDualStack: the two addresses of a Service have one owner.
func TestPlanDualStack(t *testing.T) {
	cfg := mustConfig(t, planConfig)
	for i := range 50 {
		s := cluster.Service{Spec: pool.Service{Key: fmt.Sprintf("ns/d%d", i)}, Created: created, Status: addrs(fmt.Sprintf("192.0.2.%d", i+1), fmt.Sprintf("2001:db8::%x", i+1))}
		ds := Plan(cfg, "node-a", threeNodes(s))
		if len(ds) != 2 || ds[0].Owner != ds[1].Owner || ds[0].Announce != ds[1].Announce {
			t.Fatalf("%s split: %+v", s.Key(), ds)
		}
	}
}

// TestPlanInterfaceRule: a node that published no matching interface is
// not a candidate, so the address goes to one that has it.
func TestPlanInterfaceRule(t *testing.T) {
	cfg := mustConfig(t, planConfig)
	v := threeNodes(cluster.Service{Spec: pool.Service{Key: "ns/web"}, Created: created, Status: addrs("192.0.2.10")})
	for _, n := range []string{"node-a", "node-b"} {
		v.Alive[n] = Member{Since: t0, Interfaces: []string{AnyInterface, "eth1"}}
	}
	for _, self := range []string{"node-a", "node-b", "node-c"} {
		d := Plan(cfg, self, v)[0]
		if d.Owner != "node-c" {
			t.Errorf("%s: owner %s, want node-c, the only node with eth0", self, d.Owner)
		}
	}
	// An lbd that published nothing (an older one) is taken to have it.
	v.Alive["node-c"] = Member{Since: t0}
	if d := Plan(cfg, "node-a", v)[0]; d.Owner != "node-c" {
		t.Errorf("owner %s", d.Owner)
	}
}

func TestPublishedInterfaces(t *testing.T) {
	cfg := mustConfig(t, planConfig)
	if got := PublishedInterfaces(cfg, []string{"eth1", "eth0", "cni0"}); !slices.Equal(got, []string{AnyInterface, "eth0"}) {
		t.Errorf("got %v", got)
	}
	if got := PublishedInterfaces(cfg, nil); len(got) != 0 || got == nil {
		t.Errorf("no interfaces: %#v", got)
	}
}

// TestPlanFromPeer: a node taking over an address that the Service
// records as another node's takes it without a conflict probe; one that
// is new, or already this node's, is probed as usual.
func TestPlanFromPeer(t *testing.T) {
	cfg := mustConfig(t, planConfig)
	for _, tc := range []struct {
		recorded string
		want     bool
	}{
		{"", false},       // a new address: probe it
		{"node-a", false}, // this node's own
		{"node-b", true},  // node-b is dead: taken from a peer
		{"node-x", true},  // a node that has gone away
	} {
		s := cluster.Service{Spec: pool.Service{Key: "ns/web"}, Created: created, Status: addrs("192.0.2.7"), L2Owner: tc.recorded}
		v := threeNodes(s)
		delete(v.Alive, "node-b")
		delete(v.Alive, "node-c")
		ds := Plan(cfg, "node-a", v)
		if len(ds) != 1 || !ds[0].Announce || ds[0].FromPeer != tc.want {
			t.Errorf("recorded owner %q: %+v, want Announce and FromPeer %v", tc.recorded, ds, tc.want)
		}
	}
	// Not the owner: never FromPeer.
	s := cluster.Service{Spec: pool.Service{Key: "ns/web"}, Created: created, Status: addrs("192.0.2.7"), L2Owner: "node-b"}
	for _, d := range Plan(cfg, "node-c", threeNodes(s)) {
		if !d.Announce && d.FromPeer {
			t.Errorf("a node that does not announce: %+v", d)
		}
	}
}

// TestPlanRecordFromEarlierTerm: a record naming a node holds the
// address only while that node is in the term of life it wrote it in. A
// node back from a cut (a new term) with a stale informer still sees its
// own old record; it must not take the address back from the node that
// took it meanwhile.
func TestPlanRecordFromEarlierTerm(t *testing.T) {
	cfg := mustConfig(t, planConfig)
	newTerm := created.Add(time.Hour) // node-a's term after the cut: junior
	for _, tc := range []struct {
		name        string
		recordSince time.Time
		wantA       bool
	}{
		{"record from node-a's current term", newTerm, true},
		{"record from node-a's earlier term", t0, false},
		{"record without a term (older lbd)", time.Time{}, true},
	} {
		s := cluster.Service{Spec: pool.Service{Key: "ns/web"}, Created: created, Status: addrs("192.0.2.7"),
			L2Owner: "node-a", L2OwnerSince: tc.recordSince}
		v := threeNodes(s)
		v.Alive["node-a"] = Member{Since: newTerm, Interfaces: []string{AnyInterface, "eth0"}}
		ds := Plan(cfg, "node-a", v)
		if len(ds) != 1 || (ds[0].Owner == "node-a") != tc.wantA {
			t.Errorf("%s: owner %+v, want node-a %v", tc.name, ds, tc.wantA)
		}
	}
}
