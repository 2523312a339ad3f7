package metallb

import (
	"errors"
	"strings"
	"testing"
)

type wantP struct{ object, field, msg string }

// Every field lbd cannot carry over exactly is a warning naming the object
// and field, and the file is still valid.
func TestMetalLBWarnings(t *testing.T) {
	for _, tc := range []struct {
		name  string
		input string
		want  []wantP
		// in is text the output must contain.
		in string
	}{
		{"BFD profile with echo and passive mode", poolL2 + `
apiVersion: metallb.io/v1beta1
kind: BFDProfile
metadata: {name: fast}
spec: {receiveInterval: 100, transmitInterval: 150, echoMode: true, passiveMode: true, minimumTtl: 250}
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: a}
spec: {myASN: 64512, peerASN: 64501, peerAddress: 192.0.2.254, bfdProfile: fast}
`, []wantP{
			{"BFDProfile/fast", "spec.echoMode", "no BFD echo function"},
			{"BFDProfile/fast", "spec.passiveMode", "always sends"},
			{"BFDProfile/fast", "spec.minimumTtl", "250 not carried over"},
		}, "      bfd:\n        transmit_interval: 150ms\n        receive_interval: 100ms\n        detect_multiplier: 3\n"},
		{"BFD profile not exported, and one unused", poolL2 + `
apiVersion: metallb.io/v1beta1
kind: BFDProfile
metadata: {name: slow}
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: a}
spec: {myASN: 64512, peerASN: 64501, peerAddress: 192.0.2.254, bfdProfile: fast}
`, []wantP{
			{"BGPPeer/a", "spec.bfdProfile", `"fast": no BFDProfile of that name`},
			{"BFDProfile/slow", "", "no BGPPeer uses this profile"},
		}, ""},
		{"BFD profile on a multi-hop peer", poolL2 + `
apiVersion: metallb.io/v1beta1
kind: BFDProfile
metadata: {name: fast}
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: a}
spec: {myASN: 64512, peerASN: 64501, peerAddress: 192.0.2.254, bfdProfile: fast, ebgpMultiHop: true}
`, []wantP{
			{"BGPPeer/a", "spec.bfdProfile", "single-hop"},
		}, "ebgp_multihop: 255"},
		{"password", poolL2 + `
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: a}
spec: {myASN: 64512, peerASN: 64501, peerAddress: 192.0.2.254, password: s3cret}
`, []wantP{{"BGPPeer/a", "spec.password", "create on every node (mode 0600"}},
			"password_file: /etc/lbd/bgp-password-a"},
		{"password secret", poolL2 + `
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: Tor.A, namespace: lb}
spec: {myASN: 64512, peerASN: 64501, peerAddress: 192.0.2.254, passwordSecret: {name: bgp-auth}}
`, []wantP{
			{"BGPPeer/Tor.A", "spec.passwordSecret", "from key password of Secret lb/bgp-auth"},
			{"BGPPeer/Tor.A", "metadata.name", `written as "tor-a"`},
		}, "password_file: /etc/lbd/bgp-password-tor-a"},
		{"several node selectors on a peer", poolL2 + `
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: a}
spec:
  myASN: 64512
  peerASN: 64501
  peerAddress: 192.0.2.254
  nodeSelectors: [{matchLabels: {rack: a}}, {matchLabels: {rack: b}}]
`, []wantP{{"BGPPeer/a", "spec.nodeSelectors", "only nodeSelectors[0] is kept"}},
			"match_labels:\n          rack: a\n"},
		{"several node selectors on an advertisement", `
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: pool}
spec: {addresses: [192.0.2.0/28]}
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: l2}
spec:
  interfaces: [eth1]
  nodeSelectors: [{matchLabels: {rack: a}}, {matchLabels: {rack: b}}]
`, []wantP{{"L2Advertisement/l2", "spec.nodeSelectors", "written as 2 advertisements l2-1, l2-2"}},
			"- name: l2-2\n      pools: [pool]\n      interfaces: [eth1]\n      node_selector:\n        match_labels:\n          rack: b\n"},
		{"peer extras", poolL2 + `
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: a}
spec:
  myASN: 64512
  peerASN: 64512
  peerAddress: 192.0.2.254
  vrf: red
  disableMP: true
  dualStackAddressFamily: true
  ebgpMultiHop: true
`, []wantP{
			{"BGPPeer/a", "spec.vrf", "default VRF"},
			{"BGPPeer/a", "spec.disableMP", "not carried over"},
			{"BGPPeer/a", "spec.dualStackAddressFamily", "not carried over"},
			{"BGPPeer/a", "spec.ebgpMultiHop", "iBGP peer"},
		}, ""},
		{"router ID of one peer applies to all", poolL2 + peerA + `
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: b}
spec: {myASN: 64512, peerASN: 64501, peerAddress: 192.0.2.253, routerID: 10.0.0.1}
`, []wantP{{"BGPPeer/a", "spec.routerID", "applies to every peer"}}, "router_id: 10.0.0.1"},
		{"different router IDs", poolL2 + `
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: a}
spec: {myASN: 64512, peerASN: 64501, peerAddress: 192.0.2.254, routerID: 10.0.0.2}
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: b}
spec: {myASN: 64512, peerASN: 64501, peerAddress: 192.0.2.253, routerID: 10.0.0.1}
`, []wantP{
			{"BGPPeer/a", "spec.routerID", "10.0.0.2 not carried over"},
			{"BGPPeer/b", "spec.routerID", "10.0.0.1 not carried over"},
		}, ""},
		{"service allocation selectors", `
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: pool}
spec:
  addresses: [192.0.2.0/28]
  serviceAllocation:
    namespaceSelectors: [{matchLabels: {team: a}}]
    serviceSelectors: [{matchLabels: {app: web}}]
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: l2}
`, []wantP{
			{"IPAddressPool/pool", "spec.serviceAllocation.namespaceSelectors", "by namespace name only"},
			{"IPAddressPool/pool", "spec.serviceAllocation.serviceSelectors", "every Service of an allowed namespace"},
			{"IPAddressPool/pool", "spec.serviceAllocation", "auto_assign: false"},
		}, "auto_assign: false"},
		{"pool name with a dot", `
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: prod.v4}
spec: {addresses: [192.0.2.0/28]}
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: l2}
spec: {ipAddressPools: [prod.v4, gone]}
`, []wantP{
			{"IPAddressPool/prod.v4", "metadata.name", `metallb.io/address-pool must name "prod-v4"`},
			{"L2Advertisement/l2", "spec.ipAddressPools[1]", `no IPAddressPool "gone"`},
		}, "pools: [prod-v4]"},
		{"CIDR with host bits", `
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: pool}
spec: {addresses: [192.0.2.5/28]}
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: l2}
`, []wantP{{"IPAddressPool/pool", "spec.addresses[0]", "written as 192.0.2.0/28"}}, "- 192.0.2.0/28\n"},
		{"unknown field and foreign objects", poolL2 + `
apiVersion: v1
kind: Secret
metadata: {name: bgp-auth}
---
apiVersion: metallb.io/v1beta1
kind: AddressPool
metadata: {name: old}
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: p2}
spec: {addresses: [192.0.2.16/28], autoAsign: false}
`, []wantP{
			{"Secret/bgp-auth", "", "not a MetalLB object"},
			{"AddressPool/old", "", "deprecated AddressPool"},
			{"IPAddressPool/p2", "spec.autoAsign", "not a field this converter knows"},
			{"IPAddressPool/p2", "", "no L2Advertisement or BGPAdvertisement announces this pool"},
		}, ""},
		{"several namespaces", `
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: pool, namespace: metallb-system}
spec: {addresses: [192.0.2.0/28]}
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: l2, namespace: default}
`, []wantP{{"", "", "2 namespaces (metallb-system, default)"}}, ""},
		{"BGP advertisement without peers", poolL2 + `
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: b}
`, []wantP{{"BGPAdvertisement/b", "", "no BGPPeer to announce to"}}, ""},
		{"advertisement to unknown peers only", poolL2 + peerA + `
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: b}
spec: {peers: [nope]}
`, []wantP{
			{"BGPAdvertisement/b", "spec.peers[0]", `no BGPPeer "nope"`},
			{"BGPAdvertisement/b", "spec.peers", "no peers would mean every peer"},
		}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := convertText(t, tc.input)
			load(t, r) // valid despite the warnings
			for _, w := range tc.want {
				wantProblem(t, r.Warnings, w.object, w.field, w.msg)
			}
			if len(r.Warnings) != len(tc.want) {
				t.Errorf("%d warnings, want %d:\n%s", len(r.Warnings), len(tc.want), problems(r.Warnings))
			}
			if !strings.Contains(string(r.Config), tc.in) {
				t.Errorf("output lacks %q:\n%s", tc.in, r.Config)
			}
			if strings.Contains(string(r.Config), "s3cret") {
				t.Errorf("the password leaked into the output:\n%s", r.Config)
			}
		})
	}
}

// What cannot be converted, and what lbd's own validation rejects, are
// errors naming the MetalLB object and field.
func TestMetalLBErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		input string
		want  wantP
	}{
		{"several local ASNs", poolL2 + peerA + `
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: b}
spec: {myASN: 64513, peerASN: 64501, peerAddress: 192.0.2.253}
`, wantP{"BGPPeer/b", "spec.myASN", "64513 differs from BGPPeer/a's 64512; lbd speaks one local AS"}},
		{"dynamic external ASN", poolL2 + `
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: a}
spec: {myASN: 64512, dynamicASN: external, peerAddress: 192.0.2.254}
`, wantP{"BGPPeer/a", "spec.dynamicASN", "set peerASN"}},
		{"BFD interval out of range", poolL2 + `
apiVersion: metallb.io/v1beta1
kind: BFDProfile
metadata: {name: fast}
spec: {transmitInterval: 5}
`, wantP{"BFDProfile/fast", "spec.transmitInterval", "5 is out of range; lbd takes 10 to 60000"}},
		{"unnumbered peer", poolL2 + `
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: a}
spec: {myASN: 64512, peerASN: 64501, interface: eth0}
`, wantP{"BGPPeer/a", "spec.interface", "unnumbered BGP"}},
		{"bad duration", poolL2 + `
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: a}
spec: {myASN: 64512, peerASN: 64501, peerAddress: 192.0.2.254, holdTime: 90}
`, wantP{"BGPPeer/a", "spec.holdTime", "not a duration"}},
		{"hold time lbd rejects", poolL2 + `
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: a}
spec: {myASN: 64512, peerASN: 64501, peerAddress: 192.0.2.254, holdTime: 2s}
`, wantP{"BGPPeer/a", "spec.holdTime", `lbd rejects it as bgp.peers[0].hold_time "2s": must be 0`}},
		{"unknown community alias", poolL2 + peerA + `
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: b}
spec: {communities: [vpn-only]}
`, wantP{"BGPAdvertisement/b", "spec.communities[0]", "nor an alias of a Community object"}},
		{"bad community alias value", poolL2 + `
apiVersion: metallb.io/v1beta1
kind: Community
metadata: {name: c}
spec: {communities: [{name: x, value: "70000:1"}]}
`, wantP{"Community/c", "spec.communities[0].value", `"70000:1": community part "70000" is not a number 0-65535`}},
		{"bad address", `
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: pool}
spec: {addresses: [192.0.2.300/28]}
`, wantP{"IPAddressPool/pool", "spec.addresses[0]", "not a CIDR"}},
		{"wrong type", `
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: a}
spec: {myASN: many}
`, wantP{"BGPPeer/a", "spec", "cannot be read"}},
		{"defined twice", poolL2 + `
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: l2}
`, wantP{"L2Advertisement/l2", "metadata.name", "defined twice (test.yaml:7 and test.yaml:13)"}},
		{"unsupported version", poolL2 + `
apiVersion: metallb.io/v1alpha1
kind: BGPPeer
metadata: {name: a}
`, wantP{"BGPPeer/a", "apiVersion", "unsupported version"}},
		{"two names becoming one", poolL2 + `
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: p.x}
spec: {addresses: [192.0.2.16/28]}
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: p-x}
spec: {addresses: [192.0.2.32/28]}
`, wantP{"IPAddressPool/p-x", "metadata.name", `becomes "p-x" in lbd, as IPAddressPool/p.x does`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := convertText(t, tc.input)
			wantProblem(t, r.Errors, tc.want.object, tc.want.field, tc.want.msg)
		})
	}
}

// Input that is not MetalLB configuration at all is an InputError.
func TestMetalLBInputErrors(t *testing.T) {
	for _, tc := range []struct {
		name, input, msg string
	}{
		{"empty", "", "no MetalLB configuration found"},
		{"comments only", "# nothing\n---\n", "no MetalLB configuration found"},
		{"not YAML", "a: [b\n", "not YAML"},
		{"not an object", "- a\n- b\n", "not a Kubernetes object"},
		{"no kind", "apiVersion: metallb.io/v1beta1\nmetadata: {name: x}\n", "apiVersion and kind must be set"},
		{"an lbd file", "version: 1\npools: []\n", "apiVersion and kind must be set"},
		{"only other objects", "apiVersion: v1\nkind: Service\nmetadata: {name: web}\n", "no MetalLB configuration found"},
		{"legacy ConfigMap", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: config, namespace: metallb-system}\ndata:\n  config: |\n    address-pools:\n    - name: default\n", "configmaptocrs"},
		{"List in a List", "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: List\n  items: []\n", "a List inside a List"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Convert(Input{Name: "-", Data: []byte(tc.input)})
			var ie *InputError
			if !errors.As(err, &ie) || r != nil {
				t.Fatalf("got %v, %v; want an *InputError", r, err)
			}
			if !strings.Contains(err.Error(), tc.msg) || !strings.HasPrefix(err.Error(), "<stdin>") {
				t.Errorf("error %q lacks %q", err, tc.msg)
			}
		})
	}
}

// Community aliases resolve by alias name, as MetalLB does, or as
// COMMUNITY.ALIAS; large communities go to large_communities.
func TestMetalLBCommunities(t *testing.T) {
	r := convertText(t, poolL2+peerA+`
apiVersion: metallb.io/v1beta1
kind: Community
metadata: {name: mycommunities}
spec:
  communities:
  - {name: vpn-only, value: "64512:1"}
  - {name: big, value: "large:64512:2:3"}
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: b}
spec:
  communities: [vpn-only, mycommunities.big, "65535:65281", "large:1:2:3", mycommunities.vpn-only]
`)
	c := load(t, r)
	a := c.BGP.Advertisements[0]
	var std, large []string
	for _, x := range a.Communities {
		std = append(std, x.String())
	}
	for _, x := range a.LargeCommunities {
		large = append(large, x.String())
	}
	if strings.Join(std, " ") != "64512:1 no-export" {
		t.Errorf("communities %v", std)
	}
	if strings.Join(large, " ") != "64512:2:3 1:2:3" {
		t.Errorf("large communities %v", large)
	}
	if !strings.Contains(string(r.Config), "# - community vpn-only is 64512:1") {
		t.Errorf("the resolved alias is not noted:\n%s", r.Config)
	}
}
