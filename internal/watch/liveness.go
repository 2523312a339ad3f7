package watch

import (
	"context"
	"strings"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"

	"github.com/lbdproject/lbd/internal/cluster"
)

// nodeLeasePrefix matches election.NodeLeasePrefix (watch does not import
// election).
const nodeLeasePrefix = "lbd-node-"

// LeaseLabel selects lbd's liveness Leases: lbd watches only those.
const LeaseLabel = "app.kubernetes.io/name=lbd"

// AnnotationMACs on a liveness Lease lists, comma-separated, the node's
// hardware addresses, so that the other nodes' conflict detection can tell
// a hand-over from a conflict.
const AnnotationMACs = "lbd.io/l2-macs"

// AnnotationInterfaces on a liveness Lease lists, comma-separated, the
// node's interfaces that L2 advertisements may use ("*": it has at least
// one usable interface), so every node can tell which nodes may own an
// address.
const AnnotationInterfaces = "lbd.io/l2-interfaces"

// AnnotationPeerState on a liveness Lease is the node's peer detector's
// state (cluster.PeerQuorum, ...); absent when it has none.
const AnnotationPeerState = "lbd.io/peer-state"

// AnnotationPeers on a liveness Lease lists, comma-separated, the live
// lbd nodes its node's detector sees, itself included.
const AnnotationPeers = "lbd.io/peers"

// leaseWatch is one informer on the liveness Leases, with the stop
// channel of its factory.
type leaseWatch struct {
	informer cache.SharedIndexInformer
	stop     chan struct{}
	start    func(stop <-chan struct{})
}

// WatchNodeLeases adds an informer on the liveness Leases in namespace.
// Call before Start.
func (c *Cluster) WatchNodeLeases(namespace string) {
	c.leaseNS = namespace
	c.leases = c.newLeaseWatch()
}

func (c *Cluster) newLeaseWatch() *leaseWatch {
	f := informers.NewSharedInformerFactoryWithOptions(c.client, 0, informers.WithNamespace(c.leaseNS),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = LeaseLabel }))
	w := &leaseWatch{informer: f.Coordination().V1().Leases().Informer(), stop: make(chan struct{})}
	w.start = f.Start
	for _, fn := range c.leaseHandlers {
		_, _ = w.informer.AddEventHandler(onKey(func(string) { fn() }))
	}
	return w
}

// OnLeaseChange calls fn whenever a liveness Lease is added, renewed or
// deleted. Register after WatchNodeLeases, before Start; fn must not block.
func (c *Cluster) OnLeaseChange(fn func()) {
	if c.leases == nil {
		return
	}
	c.leaseHandlers = append(c.leaseHandlers, fn)
	_, _ = c.leases.informer.AddEventHandler(onKey(func(string) { fn() }))
}

// RestartLeaseWatch replaces the Lease informer by a new one, which lists
// the Leases at once. Call it when the API is reachable again after an
// outage: the old informer's reflector backs off exponentially, up to 30s,
// and this node could not see its own renewals (nor unfreeze) until then.
// The old informer serves reads until the new one has synced.
func (c *Cluster) RestartLeaseWatch(ctx context.Context) {
	c.leaseMu.Lock()
	if c.leases == nil || c.restarting || !c.leasesStarted || c.leasesOff {
		c.leaseMu.Unlock()
		return
	}
	c.restarting = true
	c.leaseMu.Unlock()
	w := c.newLeaseWatch()
	go func() {
		defer func() {
			c.leaseMu.Lock()
			c.restarting = false
			c.leaseMu.Unlock()
		}()
		w.start(w.stop)
		if !cache.WaitForCacheSync(ctx.Done(), w.informer.HasSynced) {
			close(w.stop)
			return
		}
		c.leaseMu.Lock()
		if ctx.Err() != nil || c.leasesOff { // Start's goroutine (or SetLeaseWatch) stopped the one in use
			c.leaseMu.Unlock()
			close(w.stop)
			return
		}
		old := c.leases
		c.leases = w
		c.leaseMu.Unlock()
		close(old.stop)
		c.log.Info("liveness Leases listed afresh after the API came back")
		for _, fn := range c.leaseHandlers {
			fn()
		}
	}()
}

// SetLeaseWatch stops the Lease informer (off) or starts a new one (on),
// which lists the Leases at once. A node among its peers needs no one's
// heartbeat: watching them all is what made the API's watch traffic grow
// with the square of the nodes. While it is off, NodeLeases returns
// nothing. Only after Start.
func (c *Cluster) SetLeaseWatch(on bool) {
	c.leaseMu.Lock()
	defer c.leaseMu.Unlock()
	if c.leases == nil || !c.leasesStarted || on == !c.leasesOff {
		return
	}
	if !on {
		close(c.leases.stop)
		c.leasesOff = true
		return
	}
	w := c.newLeaseWatch()
	w.start(w.stop)
	c.leases, c.leasesOff = w, false
}

// leaseInformer is the informer in use.
func (c *Cluster) leaseInformer() cache.SharedIndexInformer {
	c.leaseMu.Lock()
	defer c.leaseMu.Unlock()
	if c.leases == nil || c.leasesOff {
		return nil
	}
	return c.leases.informer
}

// NodeLeases returns every node's liveness Lease.
func (c *Cluster) NodeLeases() []cluster.Lease {
	inf := c.leaseInformer()
	if inf == nil {
		return nil
	}
	var out []cluster.Lease
	for _, o := range inf.GetStore().List() {
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
	out.PeerState = l.Annotations[AnnotationPeerState]
	out.Peers = splitList(l.Annotations[AnnotationPeers])
	if l.Spec.LeaseDurationSeconds != nil {
		out.Duration = time.Duration(*l.Spec.LeaseDurationSeconds) * time.Second
	}
	return out, true
}

// leaseSynced is true when no Lease informer was asked for.
func (c *Cluster) leaseSynced() bool {
	inf := c.leaseInformer()
	return inf == nil || inf.HasSynced()
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
