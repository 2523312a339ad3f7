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
	// Interfaces is what the node's agent published in the Lease
	// (AnnotationInterfaces); nil when it published nothing.
	Interfaces []string
	// MACs are the hardware addresses the node published
	// (AnnotationMACs).
	MACs []string
}

// AnnotationMACs on a liveness Lease lists, comma-separated, the node's
// hardware addresses, so that the other nodes' conflict detection can tell
// a hand-over from a conflict.
const AnnotationMACs = "lbd.io/l2-macs"

// AnnotationInterfaces on a liveness Lease lists, comma-separated, the
// node's interfaces that L2 advertisements may use ("*": it has at least
// one usable interface), so every node can tell which nodes may own an
// address.
const AnnotationInterfaces = "lbd.io/l2-interfaces"

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

// OnLeaseChange calls fn whenever a liveness Lease is added, renewed or
// deleted. Register after WatchNodeLeases, before Start; fn must not block.
func (c *Cluster) OnLeaseChange(fn func()) {
	if c.leases == nil {
		return
	}
	_, _ = c.leases.AddEventHandler(onKey(func(string) { fn() }))
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
	if v, ok := l.Annotations[AnnotationInterfaces]; ok {
		out.Interfaces = splitList(v)
	}
	out.MACs = splitList(l.Annotations[AnnotationMACs])
	if l.Spec.LeaseDurationSeconds != nil {
		out.Duration = time.Duration(*l.Spec.LeaseDurationSeconds) * time.Second
	}
	return out, true
}

// leaseSynced is true when no Lease informer was asked for.
func (c *Cluster) leaseSynced() bool {
	return c.leases == nil || c.leases.HasSynced()
}

func splitList(v string) []string {
	out := []string{}
	for _, f := range strings.Split(v, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
