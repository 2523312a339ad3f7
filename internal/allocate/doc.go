// Package allocate runs address assignment for LoadBalancer Services: the
// controller that, while this node holds the allocator Lease, feeds Service
// changes from the cluster into a pool.Allocator and writes the outcome
// back as Service status, the pool annotation and Events.
//
// One loop (Lead) makes every allocation decision; reload checks and metric
// scrapes take the same lock briefly, and no API call is made under it. The
// package works on watch's slim values and calls the cluster only through
// the Source and Writer interfaces.
package allocate
