package netlab

import (
	"testing"
	"time"
)

// TestStalled: how much of a try's time the prober's process stalled
// decides whether a failure counts.
func TestStalled(t *testing.T) {
	at := func(ms int) time.Time { return time.Unix(0, 0).Add(time.Duration(ms) * time.Millisecond) }
	iv := func(a, b int) [2]time.Time { return [2]time.Time{at(a), at(b)} }
	stalls := [][2]time.Time{iv(0, 300), iv(1000, 2500), iv(4000, 4100)}
	for _, c := range []struct {
		from, to int
		want     time.Duration
		starved  bool
	}{
		{500, 900, 0, false},
		{200, 2200, 1300 * time.Millisecond, true},
		{1500, 1600, 100 * time.Millisecond, true},
		{3000, 5000, 100 * time.Millisecond, false},
		{0, 5000, 1900 * time.Millisecond, false},
	} {
		if got := Stalled(stalls, at(c.from), at(c.to)); got != c.want {
			t.Errorf("Stalled(%d..%d ms) = %v, want %v", c.from, c.to, got, c.want)
		}
		if got := starved(stalls, try{at: at(c.from), end: at(c.to)}); got != c.starved {
			t.Errorf("starved(%d..%d ms) = %v, want %v", c.from, c.to, got, c.starved)
		}
	}
}
