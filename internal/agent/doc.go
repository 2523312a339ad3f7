// Package agent is the node agent: one goroutine that owns this node's view
// of the cluster and its configuration, and decides, for every Service
// address, whether this node announces it, how, and why.
//
// The decision is the pure function Plan(config, self, view) → []Decision,
// table-tested without any I/O. Agent.Run gathers the view (Services,
// Nodes, endpoints, liveness Leases, local interfaces), calls Plan when
// something changed (coalesced), applies the safety rules that need time
// (freeze while this node cannot see its own liveness, hand-over grace,
// links that lost their carrier) and hands each mode's decisions to its
// Sink: the L2 announcer, and the BGP speaker when there is one.
//
// It never imports k8s.io/..., directly or through a dependency (a test in
// internal checks): cmd/lbd adapts internal/watch to Cluster.
// Everything but Run is safe for concurrent use; Run's goroutine alone
// mutates the agent's state, others send it events.
package agent
