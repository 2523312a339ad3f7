package owner

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

var t0 = time.Unix(1_000_000, 0)

func nodes(since time.Time, names ...string) []Candidate {
	out := make([]Candidate, len(names))
	for i, n := range names {
		out[i] = Candidate{Node: n, Since: since}
	}
	return out
}

func TestOwnerDeterministicAndOrderFree(t *testing.T) {
	a := nodes(t0, "node-a", "node-b", "node-c")
	b := []Candidate{a[2], a[0], a[1]}
	for i := range 200 {
		key := fmt.Sprintf("ns/svc-%d", i)
		if x, y := Choose(key, t0.Add(time.Hour), "", a, false), Choose(key, t0.Add(time.Hour), "", b, false); x != y || x == "" {
			t.Fatalf("%s: %q vs %q", key, x, y)
		}
	}
	if got := Choose("ns/x", t0, "", nil, false); got != "" {
		t.Errorf("no candidates: %q", got)
	}
}

// TestOwnerFailover: losing a node moves only its Services, spread over
// the others; the rest stay.
func TestOwnerFailover(t *testing.T) {
	all := nodes(t0, "node-a", "node-b", "node-c")
	created := t0.Add(time.Hour)
	moved := map[string]int{}
	for i := range 300 {
		key := fmt.Sprintf("ns/svc-%d", i)
		before := Choose(key, created, "", all, false)
		after := Choose(key, created, "", all[1:], false) // node-a died
		switch {
		case before == "node-a":
			moved[after]++
		case after != before:
			t.Errorf("%s moved from %s to %s though its owner lives", key, before, after)
		}
	}
	if moved["node-b"] < 30 || moved["node-c"] < 30 {
		t.Errorf("node-a's Services did not spread over the survivors: %v", moved)
	}
}

// TestOwnerNoStealBack: node-a dies and returns with a new term; Services
// created before that stay where they moved, newer ones use node-a too.
func TestOwnerNoStealBack(t *testing.T) {
	created := t0.Add(time.Hour)
	returned := t0.Add(2 * time.Hour)
	back := []Candidate{{"node-a", returned}, {"node-b", t0}, {"node-c", t0}}
	var tookBack, newOnA int
	for i := range 300 {
		key := fmt.Sprintf("ns/svc-%d", i)
		whileDead := Choose(key, created, "", back[1:], false)
		if got := Choose(key, created, "", back, false); got != whileDead {
			tookBack++
		}
		if Choose(key, returned.Add(time.Minute), "", back, false) == "node-a" {
			newOnA++
		}
		if got := Choose(key, created, "", back, true); got != Choose(key, created, "", nodes(t0, "node-a", "node-b", "node-c"), false) {
			t.Errorf("%s: failback must restore the hash owner, got %s", key, got)
		}
	}
	if tookBack != 0 {
		t.Errorf("the returning node took back %d Services", tookBack)
	}
	if newOnA < 60 {
		t.Errorf("only %d of 300 new Services went to the returned node", newOnA)
	}
	// With no senior left, a junior still serves.
	if got := Choose("ns/x", created, "", back[:1], false); got != "node-a" {
		t.Errorf("only a junior candidate: %q", got)
	}
}

// BenchmarkOwnerSpread reports how evenly Services spread over 3 nodes:
// the largest and smallest share, as a fraction of an even share.
func BenchmarkOwnerSpread(b *testing.B) {
	cands := nodes(t0, "node-a", "node-b", "node-c")
	for _, n := range []int{10, 100, 1000, 10000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			var hi, lo float64
			for b.Loop() {
				count := map[string]int{}
				for i := range n {
					count[Choose(fmt.Sprintf("ns/svc-%d", i), t0, "", cands, false)]++
				}
				hi, lo = 0, 1e9
				for _, c := range cands {
					share := float64(count[c.Node]) / (float64(n) / 3)
					hi, lo = max(hi, share), min(lo, share)
				}
			}
			b.ReportMetric(hi, "max-share")
			b.ReportMetric(lo, "min-share")
		})
	}
}

// TestOwnerHolderStays: after every node restarted (every term younger
// than the Service, so seniority says nothing), the recorded holder keeps
// the Service while it is a candidate, and only then; failback ignores it.
func TestOwnerHolderStays(t *testing.T) {
	created := t0
	restarted := nodes(t0.Add(time.Hour), "node-a", "node-b", "node-c")
	for i := range 300 {
		key := fmt.Sprintf("ns/svc-%d", i)
		hashOwner := Choose(key, created, "", restarted, false)
		// The hash owner dies; the next-best takes the Service and
		// records itself.
		var rest []Candidate
		for _, c := range restarted {
			if c.Node != hashOwner {
				rest = append(rest, c)
			}
		}
		taker := Choose(key, created, hashOwner, rest, false)
		if taker == hashOwner || taker == "" {
			t.Fatalf("%s: the dead holder %s kept it (%q)", key, hashOwner, taker)
		}
		if taker != Choose(key, created, "", rest, false) {
			t.Errorf("%s: a holder that is no candidate must not change the hash choice", key)
		}
		// The old owner returns with a new term: the Service stays.
		back := append(slices.Clone(rest), Candidate{Node: hashOwner, Since: t0.Add(2 * time.Hour)})
		if got := Choose(key, created, taker, back, false); got != taker {
			t.Errorf("%s: moved back from %s to %s without failback", key, taker, got)
		}
		if got := Choose(key, created, taker, back, true); got != hashOwner {
			t.Errorf("%s: failback must return it to %s, got %s", key, hashOwner, got)
		}
	}
	if got := Choose("ns/x", created, "node-z", restarted, false); got == "node-z" || got == "" {
		t.Errorf("an unknown holder: %q", got)
	}
}
