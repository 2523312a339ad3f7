// Package cluster holds the slim values lbd reads from the Kubernetes API:
// a Service, a Node, a node's liveness Lease. internal/watch makes them
// once, at the informer boundary; the allocator (internal/allocate) and the
// node agent (internal/agent) consume them. It imports nothing from
// k8s.io, so neither do they (internal/deps_test.go checks).
//
// The values are plain data: safe to copy, never mutated after they are
// made.
package cluster

import (
	"net/netip"
	"time"

	"github.com/lbdproject/lbd/internal/pool"
)

// Service is a Kubernetes Service as lbd sees it.
type Service struct {
	// Spec is what the allocator needs: key, namespace, families,
	// requested addresses, pool, sharing key, ports, traffic policy.
	Spec pool.Service
	// Served is true for type LoadBalancer Services of lbd's class.
	Served bool
	// Status holds the addresses in status.loadBalancer.ingress.
	Status []netip.Addr
	// AllocatedFrom is lbd's annotation naming the pool it assigned from.
	AllocatedFrom string
	// L2Owner is lbd's annotation naming the node that last took the
	// Service's layer-2 addresses ("" before any did).
	L2Owner string
	// L2OwnerSince is when the recorded owner's term of life began
	// (its liveness Lease's acquire time) when it took them; zero for a
	// record without it. A record from an earlier term of its node does
	// not hold the addresses: that node's view broke since (a cut, a
	// crash), and another may have taken them meanwhile.
	L2OwnerSince time.Time
	// Created orders Services when the allocator rebuilds, and dates
	// them for the owner choice's seniority rule (before L2Owner is set).
	Created time.Time
	// Invalid explains annotations lbd cannot read; such a Service gets
	// no new address.
	Invalid error
	// Endpoints are the nodes with an endpoint able to take traffic
	// (ready, or serving while terminating). Only filled for Services
	// with externalTrafficPolicy: Local (Spec.Local).
	Endpoints map[string]bool
}

// Key is the Service's namespace/name.
func (s Service) Key() string { return s.Spec.Key }

// Node is a Kubernetes Node as lbd sees it: what decides whether it may
// announce addresses.
type Node struct {
	Name   string
	Labels map[string]string
	// Cordoned is spec.unschedulable (kubectl cordon / drain).
	Cordoned bool
	// Excluded carries the exclude-from-external-load-balancers label.
	Excluded bool
	// Ready is the NodeReady condition.
	Ready bool
	// InternalIPs are the Node's InternalIP addresses (status.addresses),
	// where the peers reach its lbd.
	InternalIPs []netip.Addr
}

// Lease is one node's liveness Lease.
type Lease struct {
	Node      string
	RenewTime time.Time
	Duration  time.Duration
	// Since is when this term of life began (the Lease's acquireTime):
	// a node that was seen dead, or left, starts a new term on return.
	Since time.Time
	// Interfaces is what the node's agent published in the Lease; nil
	// when it published nothing.
	Interfaces []string
	// MACs are the hardware addresses the node published.
	MACs []string
	// PeerState is what the node's peer detector says of it ("" when it
	// has none, or has not joined its peers yet): PeerQuorum,
	// PeerMinority or PeerFallback.
	PeerState string
	// Peers is the node's view of the live lbd nodes, itself included,
	// as of its last renewal (with PeerState).
	Peers []string
}

// The states a node's peer detector publishes in its Lease.
const (
	// PeerQuorum: the node sees more than half of the lbd nodes.
	PeerQuorum = "quorum"
	// PeerMinority: it sees half or fewer, and does not answer at L2.
	PeerMinority = "minority"
	// PeerFallback: it sees half or fewer, no majority sees each other
	// without it, and it takes liveness from the Leases.
	PeerFallback = "fallback"
)

// Expires is when the Lease runs out unless renewed.
func (l Lease) Expires() time.Time { return l.RenewTime.Add(l.Duration) }

// Alive reports whether the node's lbd renewed its Lease recently enough.
func (l Lease) Alive(now time.Time) bool {
	return !l.RenewTime.IsZero() && now.Before(l.Expires())
}
