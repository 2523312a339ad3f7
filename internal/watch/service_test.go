package watch

import (
	"slices"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/lbdproject/lbd/internal/cluster"
)

func TestNodeLeaseAlive(t *testing.T) {
	now := time.Unix(1000, 0)
	tests := []struct {
		l    cluster.Lease
		want bool
	}{
		{cluster.Lease{RenewTime: now.Add(-time.Second), Duration: 2 * time.Second}, true},
		{cluster.Lease{RenewTime: now.Add(-2 * time.Second), Duration: 2 * time.Second}, false},
		{cluster.Lease{RenewTime: now.Add(-3 * time.Second), Duration: 2 * time.Second}, false},
		{cluster.Lease{Duration: 2 * time.Second}, false}, // never renewed
	}
	for i, tt := range tests {
		if got := tt.l.Alive(now); got != tt.want {
			t.Errorf("case %d: Alive = %v", i, got)
		}
	}
}

func TestConvertLeaseInterfaces(t *testing.T) {
	mk := func(ann map[string]string) *coordinationv1.Lease {
		return &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "lbd-node-n1", Annotations: ann}}
	}
	for _, tt := range []struct {
		ann  map[string]string
		want []string
	}{
		{nil, nil},
		{map[string]string{AnnotationInterfaces: ""}, []string{}},
		{map[string]string{AnnotationInterfaces: "*, eth0,"}, []string{"*", "eth0"}},
	} {
		got, ok := convertLease(mk(tt.ann))
		if !ok || got.Node != "n1" || !slices.Equal(got.Interfaces, tt.want) || (got.Interfaces == nil) != (tt.want == nil) {
			t.Errorf("%v: %#v", tt.ann, got.Interfaces)
		}
	}
	if _, ok := convertLease(&coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "lbd-allocator"}}); ok {
		t.Error("the allocator Lease is no node's")
	}
}
