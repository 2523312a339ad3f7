package kubetest

import (
	"net/netip"
	"testing"

	"github.com/lbdproject/lbd/internal/netlab"
)

// StartIn runs etcd and kube-apiserver inside the lab host h, the API
// server listening on addr (one of h's addresses, without prefix length),
// so that daemons in the other hosts reach it over the segment with the
// returned Kubeconfig. The Cluster's own Client and RESTConfig dial from
// inside h, so the test process drives the API as usual. It skips the
// test like Start when the binaries are missing.
//
// It lives here rather than in netlab so that netlab, and the tests that
// need only a network (the ARP/NDP and BFD labs and their fuzzers), do not
// link client-go.
func StartIn(t testing.TB, h *netlab.Host, addr string, opts ...Option) *Cluster {
	t.Helper()
	if _, err := netip.ParseAddr(addr); err != nil {
		t.Fatalf("kubetest: StartIn: %q is not an address: %v", addr, err)
	}
	base := []Option{
		WithCommandPrefix(h.Prefix()...),
		WithBindAddress(addr),
		WithDialer(h.DialContext),
	}
	return Start(t, append(base, opts...)...)
}
