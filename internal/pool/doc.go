// Package pool is the address allocator: a synchronous data structure over
// netip ranges that hands out, pins, shares and frees LoadBalancer addresses
// following the pools in the configuration. It has no goroutines and no
// Kubernetes types (it never imports k8s.io/...); the allocator holder
// rebuilds it from Service status when it takes over.
package pool
