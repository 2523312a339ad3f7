package netlab

import (
	"net/netip"
	"testing"

	"github.com/lbdproject/lbd/internal/kubetest"
)

// StartKube runs etcd and kube-apiserver inside h, the API server listening
// on addr (one of h's addresses, without prefix length), so that daemons in
// the other hosts reach it over the segment with the returned Kubeconfig.
// The Cluster's own Client and RESTConfig dial from inside h, so the test
// process drives the API as usual. It skips the test like kubetest.Start
// when the binaries are missing.
func StartKube(t testing.TB, h *Host, addr string, opts ...kubetest.Option) *kubetest.Cluster {
	t.Helper()
	if _, err := netip.ParseAddr(addr); err != nil {
		t.Fatalf("netlab: StartKube: %q is not an address: %v", addr, err)
	}
	base := []kubetest.Option{
		kubetest.WithCommandPrefix(h.Prefix()...),
		kubetest.WithBindAddress(addr),
		kubetest.WithDialer(h.DialContext),
	}
	return kubetest.Start(t, append(base, opts...)...)
}
