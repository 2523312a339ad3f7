package election

import (
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestStillValid(t *testing.T) {
	now := time.Unix(1000, 0)
	lease := func(renewedAgo time.Duration, secs int32) *coordinationv1.Lease {
		rt := metav1.NewMicroTime(now.Add(-renewedAgo))
		return &coordinationv1.Lease{Spec: coordinationv1.LeaseSpec{RenewTime: &rt, LeaseDurationSeconds: &secs}}
	}
	tests := []struct {
		l    *coordinationv1.Lease
		want bool
	}{
		{lease(time.Second, 2), true},
		{lease(2*time.Second, 2), false},
		{lease(10*time.Second, 2), false},
		{&coordinationv1.Lease{}, false},
	}
	for i, tt := range tests {
		if got := stillValid(tt.l, now); got != tt.want {
			t.Errorf("case %d: %v", i, got)
		}
	}
}
