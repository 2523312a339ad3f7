// Package kubetest runs a real kube-apiserver and etcd for integration tests.
//
// Start builds nothing by default: it uses binaries from LBD_KUBE_BINDIR or
// from the cache that hack/kube-bins.sh fills, and skips the test when they
// are missing (fails instead when LBD_REQUIRE_KUBE is set). Only the API
// server runs: no scheduler, controller-manager, kubelet or kube-proxy, so a
// test creates Nodes, Services and EndpointSlices itself.
//
// This is test and lab code: import it from _test.go files and from the
// demo lab (cmd/lbd-lab), never from lbd itself. See docs/testing.md.
package kubetest
