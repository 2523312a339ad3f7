// Package election holds the Lease-based roles every node takes part in:
// the single allocator (Campaign, client-go's leader election, released on
// shutdown) and each node's liveness Lease (Liveness). The pure choice of
// the owner node for each layer-2 address (rendezvous hashing over the
// live set) is in the subpackage owner, which imports nothing from
// Kubernetes. The control-plane VIP election is internal/controlplane.
//
// Callers get roles through callbacks that run on the election's own
// goroutine (Campaign's lead) and must return when their context ends;
// nothing here touches the callers' state.
package election
