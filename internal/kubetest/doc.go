// Package kubetest runs a real kube-apiserver and etcd for integration tests.
//
// Start builds nothing by default: it uses binaries from LBD_KUBE_BINDIR or
// from the cache that hack/kube-bins.sh fills, and skips the test when they
// are missing (fails instead when LBD_REQUIRE_KUBE is set). Only the API
// server runs: no scheduler, controller-manager, kubelet or kube-proxy, so a
// test creates Nodes, Services and EndpointSlices itself.
//
// This is test-only code. It is the one package outside watch and election
// that imports k8s.io/..., and it must only be imported from _test.go files.
// See docs/testing.md.
package kubetest
