// Package allocate runs address assignment for LoadBalancer Services: the
// controller that, while this node holds the allocator Lease, feeds Service
// changes from the cluster into a pool.Allocator and writes the outcome
// back as Service status, the pool annotation and Events.
//
// One loop (Lead) makes every allocation decision; reload checks and metric
// scrapes take the same lock briefly, and no API call is made under it. The
// package works on the slim values of internal/cluster and calls the API
// only through the Source and Writer interfaces; it never imports k8s.io,
// even through a dependency (internal/deps_test.go checks).
package allocate
