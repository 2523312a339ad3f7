package watch

import (
	"strings"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/client-go/informers"
)

// nodeLeasePrefix matches election.NodeLeasePrefix (watch does not import
// election).
const nodeLeasePrefix = "lbd-node-"

// NodeLease is the slim view of one node's liveness Lease.
type NodeLease struct {
	Node      string
	RenewTime time.Time
	Duration  time.Duration
	// Since is when this term of life began (the Lease's acquireTime):
	// a node that was seen dead, or left, starts a new term on return.
	Since time.Time
}

// Alive reports whether the node's lbd renewed its Lease recently enough.
func (l NodeLease) Alive(now time.Time) bool {
	return !l.RenewTime.IsZero() && now.Before(l.RenewTime.Add(l.Duration))
}

// WatchNodeLeases adds an informer on the liveness Leases in namespace.
// Call before Start.
func (c *Cluster) WatchNodeLeases(namespace string) {
	f := informers.NewSharedInformerFactoryWithOptions(c.client, 0, informers.WithNamespace(namespace))
	c.leases = f.Coordination().V1().Leases().Informer()
	c.leaseFactory = f
}

// NodeLeases returns every node's liveness Lease.
func (c *Cluster) NodeLeases() []NodeLease {
	if c.leases == nil {
		return nil
	}
	var out []NodeLease
	for _, o := range c.leases.GetStore().List() {
		if l, ok := convertLease(o.(*coordinationv1.Lease)); ok {
			out = append(out, l)
		}
	}
	return out
}

// AliveNodes returns the nodes whose lbd is alive at now.
func (c *Cluster) AliveNodes(now time.Time) map[string]bool {
	out := map[string]bool{}
	for _, l := range c.NodeLeases() {
		if l.Alive(now) {
			out[l.Node] = true
		}
	}
	return out
}

func convertLease(l *coordinationv1.Lease) (NodeLease, bool) {
	node, ok := strings.CutPrefix(l.Name, nodeLeasePrefix)
	if !ok {
		return NodeLease{}, false
	}
	out := NodeLease{Node: node}
	if l.Spec.RenewTime != nil {
		out.RenewTime = l.Spec.RenewTime.Time
	}
	if l.Spec.AcquireTime != nil {
		out.Since = l.Spec.AcquireTime.Time
	}
	if l.Spec.LeaseDurationSeconds != nil {
		out.Duration = time.Duration(*l.Spec.LeaseDurationSeconds) * time.Second
	}
	return out, true
}

// leaseSynced is true when no Lease informer was asked for.
func (c *Cluster) leaseSynced() bool {
	return c.leases == nil || c.leases.HasSynced()
}
