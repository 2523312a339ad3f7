package watch

import (
	"testing"
	"time"
)

func TestNodeLeaseAlive(t *testing.T) {
	now := time.Unix(1000, 0)
	tests := []struct {
		l    NodeLease
		want bool
	}{
		{NodeLease{RenewTime: now.Add(-time.Second), Duration: 2 * time.Second}, true},
		{NodeLease{RenewTime: now.Add(-2 * time.Second), Duration: 2 * time.Second}, false},
		{NodeLease{RenewTime: now.Add(-3 * time.Second), Duration: 2 * time.Second}, false},
		{NodeLease{Duration: 2 * time.Second}, false}, // never renewed
	}
	for i, tt := range tests {
		if got := tt.l.Alive(now); got != tt.want {
			t.Errorf("case %d: Alive = %v", i, got)
		}
	}
}
