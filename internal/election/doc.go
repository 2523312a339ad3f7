// Package election decides who does what: the Lease-based roles (the single
// allocator, each node's liveness, the control-plane VIP holder, health-gated
// on the local API server). The pure choice of the owner node for each
// layer-2 address (rendezvous hashing over the live set) is in the
// subpackage owner, which imports nothing from Kubernetes.
//
// Lease callbacks become events on a channel for the node agent; they never
// touch shared state. ControlPlane keeps its Lease with its own loop (one
// goroutine owns the state; the readiness poll and the Lease watch send it
// events), because client-go's elector cannot take a released Lease at
// once; it always talks to the local API server (LocalClient).
package election
