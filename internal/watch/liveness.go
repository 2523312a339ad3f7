package watch

import (
	"strings"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/client-go/informers"

	"github.com/lbdproject/lbd/internal/cluster"
)

// nodeLeasePrefix matches election.NodeLeasePrefix (watch does not import
// election).
const nodeLeasePrefix = "lbd-node-"

// AnnotationMACs on a liveness Lease lists, comma-separated, the node's
// hardware addresses, so that the other nodes' conflict detection can tell
// a hand-over from a conflict.
const AnnotationMACs = "lbd.io/l2-macs"

// AnnotationInterfaces on a liveness Lease lists, comma-separated, the
// node's interfaces that L2 advertisements may use ("*": it has at least
// one usable interface), so every node can tell which nodes may own an
// address.
const AnnotationInterfaces = "lbd.io/l2-interfaces"

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
func (c *Cluster) NodeLeases() []cluster.Lease {
	if c.leases == nil {
		return nil
	}
	var out []cluster.Lease
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

func convertLease(l *coordinationv1.Lease) (cluster.Lease, bool) {
	node, ok := strings.CutPrefix(l.Name, nodeLeasePrefix)
	if !ok {
		return cluster.Lease{}, false
	}
	out := cluster.Lease{Node: node}
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
	for f := range strings.SplitSeq(v, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
