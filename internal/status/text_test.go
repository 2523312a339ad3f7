package status

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// TestTextCounts: "1 address", "1 route"; plurals otherwise.
func TestTextCounts(t *testing.T) {
	now := time.Now()
	for _, tc := range []struct {
		size   uint64
		routes int
		want   []string
	}{
		{1, 1, []string{": 1 address,", ", 1 route\n"}},
		{2, 0, []string{": 2 addresses,", ", 0 routes\n"}},
	} {
		var b bytes.Buffer
		s := Status{Started: now, Pools: []Pool{{Pool: "p", Family: "ipv4", Size: tc.size}}, BGP: &BGP{ASN: 64512, RouterID: "192.0.2.1", Routes: tc.routes}}
		WriteText(&b, &s, now)
		for _, w := range tc.want {
			if !strings.Contains(b.String(), w) {
				t.Errorf("status text lacks %q:\n%s", w, b.String())
			}
		}
	}
}
