package sink

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/lbdproject/lbd/internal/agent"
	"github.com/lbdproject/lbd/internal/config"
)

// TestBGPRoutes: announced BGP decisions become one route per covering
// advertisement, with its prefix length and attributes; the rest none.
func TestBGPRoutes(t *testing.T) {
	lp := uint32(150)
	cfg := &config.Config{BGP: config.BGP{Advertisements: []config.BGPAdvertisement{
		{Name: "host", AggregationLength: 32, AggregationLengthV6: 128, Communities: []config.Community{64512<<16 | 1}},
		{Name: "agg", AggregationLength: 24, AggregationLengthV6: 64, LocalPreference: &lp, Peers: []string{"tor-a"}},
	}}}
	ds := []agent.Decision{
		{Addr: netip.MustParseAddr("192.0.2.10"), Mode: agent.ModeBGP, Announce: true, Advertisements: []string{"host", "agg"}},
		{Addr: netip.MustParseAddr("2001:db8::10"), Mode: agent.ModeBGP, Announce: true, Advertisements: []string{"host"}},
		{Addr: netip.MustParseAddr("192.0.2.11"), Mode: agent.ModeBGP, Announce: false, Reason: agent.ReasonNoLocalEndpoints},
		{Addr: netip.MustParseAddr("192.0.2.12"), Mode: agent.ModeL2, Announce: true},
	}
	got := Routes(cfg, ds)
	want := []string{
		"192.0.2.10/32 <nil> [64512:1] []",
		"192.0.2.0/24 150 [] [tor-a]",
		"2001:db8::10/128 <nil> [64512:1] []",
	}
	if len(got) != len(want) {
		t.Fatalf("routes %+v, want %v", got, want)
	}
	for i, r := range got {
		lp := "<nil>"
		if r.LocalPref != nil {
			lp = fmt.Sprint(*r.LocalPref)
		}
		if s := fmt.Sprintf("%s %s %v %v", r.Prefix, lp, r.Communities, r.Peers); s != want[i] {
			t.Errorf("route %d: %s, want %s", i, s, want[i])
		}
	}
}
