package controlplane

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestTransitionsStartAtZero: each direction and reason is exported
// before it first happens, so increase() counts the first failover too.
func TestTransitionsStartAtZero(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	m.transition("acquired", ReasonElected)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "lbd_control_plane_transitions_total" {
			continue
		}
		for _, s := range mf.GetMetric() {
			var dir, reason string
			for _, l := range s.GetLabel() {
				switch l.GetName() {
				case "direction":
					dir = l.GetValue()
				case "reason":
					reason = l.GetValue()
				}
			}
			got[dir+"/"+reason] = s.GetCounter().GetValue()
		}
	}
	want := map[string]float64{
		"acquired/" + ReasonElected: 1, "acquired/" + ReasonExpired: 0, "acquired/" + ReasonRestarted: 0,
		"released/" + ReasonAPINotReady: 0, "released/" + ReasonRenewFailed: 0, "released/" + ReasonLost: 0, "released/" + ReasonShutdown: 0,
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("lbd_control_plane_transitions_total{%s} = %v (exported %v), want %v", k, g, ok, v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("exported %v, want exactly %v", got, want)
	}
}
