package allocate

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lbdproject/lbd/internal/cluster"
	"github.com/lbdproject/lbd/internal/config"
	"github.com/lbdproject/lbd/internal/event"
	"github.com/lbdproject/lbd/internal/pool"
	"github.com/lbdproject/lbd/internal/status"
)

// Source is the cluster as the controller sees it (watch.Cluster
// produces it).
type Source interface {
	Service(key string) (cluster.Service, bool)
	Services() []cluster.Service
}

// Writer writes the outcome back (watch.Cluster does).
type Writer interface {
	SetStatus(ctx context.Context, key string, addrs []netip.Addr, pool string) error
	Event(key string, warning bool, reason, msg string)
}

// Controller assigns addresses to LoadBalancer Services. Every node runs
// one, but only the holder of the allocator Lease runs Lead, the one loop
// that owns the pool.Allocator; the others only answer configuration
// checks. Its methods are safe for concurrent use.
type Controller struct {
	log   *slog.Logger
	queue *queue

	mu      sync.Mutex // guards everything below
	src     Source
	w       Writer
	pools   []config.Pool
	alloc   *pool.Allocator   // non-nil only while leading
	pending map[string]bool   // Services waiting for room
	said    map[string]string // last Event per Service, to say each once
	idle    []pool.Usage      // pool sizes, exported when not leading

	failures *prometheus.CounterVec
	leading  prometheus.Gauge
}

// New returns a controller for the configured pools. Connect it to the
// cluster with SetCluster once the API is reachable.
func New(pools []config.Pool, log *slog.Logger, reg prometheus.Registerer) *Controller {
	c := &Controller{
		log:     log,
		queue:   newQueue(),
		pools:   pools,
		pending: map[string]bool{},
		said:    map[string]string{},
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lbd_allocation_failures_total",
			Help: "Services that could not get an address, by reason.",
		}, []string{"reason"}),
		leading: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "lbd_allocator_leader",
			Help: "1 while this node holds the allocator Lease and assigns addresses.",
		}),
	}
	// Export every reason at 0 from the start: rate() and increase() over
	// a series that appears at its first failure miss that failure, and
	// the PoolExhausted alert (packaging/prometheus) would stay silent.
	for _, r := range failureReasons {
		c.failures.WithLabelValues(string(r))
	}
	c.idle = pool.New(pools).Usage()
	reg.MustRegister(c.failures, c.leading, usageCollector{c})
	return c
}

// failureReasons are the reasons Assign fails with, as counted in
// lbd_allocation_failures_total.
var failureReasons = []pool.Reason{
	pool.ReasonPoolExhausted, pool.ReasonNotAllowedInNamespace, pool.ReasonAddressNotInAnyPool, pool.ReasonAddressInUse,
	pool.ReasonSharingConflict, pool.ReasonNoPoolForFamily, pool.ReasonUnknownPool, pool.ReasonBadAnnotation,
	pool.ReasonAvoidedAddress, pool.ReasonDualStackUnavailable,
}

// SetCluster connects the controller to the API.
func (c *Controller) SetCluster(src Source, w Writer) {
	c.mu.Lock()
	c.src, c.w = src, w
	c.mu.Unlock()
}

// Notify queues a Service that changed. Safe to call at any time.
func (c *Controller) Notify(key string) { c.queue.add(key) }

// Lead assigns addresses until ctx ends (leadership lost or shutdown). It
// first rebuilds the allocator from Service status, Services that already
// have addresses first, so that no address changes on a hand-over.
func (c *Controller) Lead(ctx context.Context) {
	c.mu.Lock()
	src := c.src
	c.alloc = pool.New(c.pools)
	c.pending = map[string]bool{}
	c.mu.Unlock()
	c.leading.Set(1)
	defer func() {
		c.mu.Lock()
		c.alloc = nil
		c.mu.Unlock()
		c.leading.Set(0)
	}()

	svcs := src.Services()
	slices.SortFunc(svcs, func(a, b cluster.Service) int {
		return cmp.Or(
			cmp.Compare(len(b.Status), len(a.Status)), // assigned first
			a.Created.Compare(b.Created),
			strings.Compare(a.Spec.Key, b.Spec.Key))
	})
	c.log.Info("leading; rebuilding from Service status", "services", len(svcs))
	t0 := time.Now()
	for _, s := range svcs {
		if ctx.Err() != nil {
			return
		}
		c.sync(ctx, s.Spec.Key)
	}
	c.log.Info("rebuilt", "services", len(svcs), "took", time.Since(t0).Round(time.Millisecond))
	for {
		key, ok := c.queue.get(ctx)
		if !ok {
			return
		}
		c.sync(ctx, key)
	}
}

// action is what a sync decided; it is carried out outside the lock, so a
// slow API never blocks configuration checks or metric scrapes.
type action struct {
	write   bool
	addrs   []netip.Addr
	pool    string
	event   func() // after a successful write
	release bool   // a release happened: pending Services may now fit
}

// sync brings one Service's addresses in line with its spec.
func (c *Controller) sync(ctx context.Context, key string) {
	act := c.decide(key)
	if act.write {
		if err := c.w.SetStatus(ctx, key, act.addrs, act.pool); err != nil {
			c.log.Warn("cannot write Service status; retrying", "service", key, "err", err)
			c.queue.retry(key)
			return
		}
		if act.event != nil {
			act.event()
		}
	}
	c.queue.forget(key)
	if act.release {
		c.mu.Lock()
		for k := range c.pending {
			c.queue.add(k)
		}
		c.mu.Unlock()
	}
}

// decide updates the allocator for one Service and says what to write.
func (c *Controller) decide(key string) action {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.alloc == nil {
		return action{}
	}
	s, ok := c.src.Service(key)
	if !ok || !s.Served {
		return c.release(key, s, ok)
	}
	if len(c.pools) == 0 {
		return action{} // no pools: some other load balancer may serve these
	}
	if s.Invalid != nil {
		if c.tell(key, true, string(pool.ReasonBadAnnotation), s.Invalid.Error()) {
			c.log.Warn("cannot read the Service's annotations", event.Attr(event.AssignFailed), "service", key, "reason", pool.ReasonBadAnnotation, "err", s.Invalid)
		}
		c.alloc.Keep(s.Spec, s.Status) // its addresses stay its own
		return action{}
	}
	as, err := c.alloc.Assign(s.Spec, s.Status)
	if err != nil {
		reason := pool.ReasonOf(err)
		c.failures.WithLabelValues(string(reason)).Inc()
		c.pending[key] = true
		if c.tell(key, true, string(reason), "no address: "+err.Error()) {
			c.log.Warn("no address for the Service", event.Attr(event.AssignFailed), "service", key, "reason", reason, "err", err)
		}
		held, ok := c.alloc.Lookup(key)
		if !ok {
			return action{}
		}
		as = held // a failed edit keeps what the Service had
	} else {
		delete(c.pending, key)
	}
	if slices.Equal(as.Addrs, s.Status) && s.AllocatedFrom == as.Pool {
		return action{}
	}
	act := action{write: true, addrs: as.Addrs, pool: as.Pool}
	if !slices.Equal(as.Addrs, s.Status) {
		msg := fmt.Sprintf("assigned %s from pool %s", config.JoinAddrs(as.Addrs), as.Pool)
		if len(s.Status) > 0 {
			msg = fmt.Sprintf("address changed from %s to %s (pool %s): the old one is not valid for this Service under the current configuration", config.JoinAddrs(s.Status), config.JoinAddrs(as.Addrs), as.Pool)
		}
		warn := len(s.Status) > 0
		act.event = func() {
			c.mu.Lock()
			c.tell(key, warn, "IPAllocated", msg)
			c.mu.Unlock()
			c.log.Info(msg, event.Attr(event.Assigned), "service", key, "ip", config.JoinAddrs(as.Addrs), "pool", as.Pool)
		}
	}
	return act
}

// release frees what a Service no longer needs.
func (c *Controller) release(key string, s cluster.Service, exists bool) action {
	_, held := c.alloc.Lookup(key)
	c.alloc.Release(key)
	delete(c.pending, key)
	delete(c.said, key)
	act := action{release: held}
	if held {
		c.log.Info("released", "service", key, "ip", config.JoinAddrs(s.Status))
	}
	if exists && s.AllocatedFrom != "" {
		// No longer a LoadBalancer of ours: take back what lbd wrote.
		act.write = true
		act.event = func() {
			c.mu.Lock()
			c.tell(key, false, "IPReleased", "released "+config.JoinAddrs(s.Status))
			c.mu.Unlock()
		}
	}
	return act
}

// tell records an Event unless the same one was the last said; it
// reports whether it did.
func (c *Controller) tell(key string, warning bool, reason, msg string) bool {
	if c.said[key] == reason+msg {
		return false
	}
	c.said[key] = reason + msg
	c.w.Event(key, warning, reason, msg)
	return true
}

// Name implements daemon.Subsystem.
func (c *Controller) Name() string { return "allocator" }

// Check refuses a configuration whose pools would strand an address that a
// Service holds. It judges from Service status as the informers see it, so
// every node answers alike, leader or not.
func (c *Controller) Check(_ context.Context, _, next *config.Config) error {
	c.mu.Lock()
	src := c.src
	c.mu.Unlock()
	if src == nil {
		return nil
	}
	var held []pool.Held
	for _, s := range src.Services() {
		if len(s.Status) > 0 {
			held = append(held, pool.Held{Key: s.Spec.Key, Namespace: s.Spec.Namespace, Addrs: s.Status})
		}
	}
	stranded := pool.Stranded(next.Pools, held)
	if len(stranded) == 0 {
		return nil
	}
	return fmt.Errorf("the new pools would strand addresses in use; change or delete these Services first, or keep their addresses in a pool:\n  %s",
		strings.Join(stranded, "\n  "))
}

// Apply switches to the new pools and lets pending Services try again.
func (c *Controller) Apply(_ context.Context, _, next *config.Config) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pools = next.Pools
	c.idle = pool.New(next.Pools).Usage()
	if c.alloc != nil {
		c.alloc.SetPools(next.Pools)
		for _, s := range c.src.Services() {
			c.queue.add(s.Spec.Key)
		}
	}
	return nil
}

// Leading reports whether this node assigns addresses now.
func (c *Controller) Leading() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.alloc != nil
}

// Usage reports pool sizes, and use when this node is the allocator (ok).
func (c *Controller) Usage() (usage []pool.Usage, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.alloc == nil {
		return c.idle, false
	}
	return c.alloc.Usage(), true
}

// Report implements status.Reporter: whether this node assigns addresses,
// each pool's size and, on the allocator, its use.
func (c *Controller) Report(_ context.Context, st *status.Status) {
	usage, leading := c.Usage()
	st.Allocator = "following"
	if leading {
		st.Allocator = "leading (this node assigns addresses)"
	}
	for _, u := range usage {
		ps := status.Pool{Pool: u.Pool, Family: u.Family.String(), Size: u.Size}
		if leading {
			ps.Used = &u.InUse
		}
		st.Pools = append(st.Pools, ps)
	}
}

// usageCollector exports pool sizes on every node and use on the leader.
type usageCollector struct{ c *Controller }

var (
	sizeDesc = prometheus.NewDesc("lbd_pool_size_addresses", "Addresses in the pool, by family (saturates at 2^64).", []string{"pool", "family"}, nil)
	usedDesc = prometheus.NewDesc("lbd_pool_used_addresses", "Addresses of the pool held by Services; exported by the allocator holder.", []string{"pool", "family"}, nil)
)

func (u usageCollector) Describe(ch chan<- *prometheus.Desc) { ch <- sizeDesc; ch <- usedDesc }

func (u usageCollector) Collect(ch chan<- prometheus.Metric) {
	usage, leading := u.c.Usage()
	for _, x := range usage {
		fam := strings.ToLower(x.Family.String())
		ch <- prometheus.MustNewConstMetric(sizeDesc, prometheus.GaugeValue, float64(x.Size), x.Pool, fam)
		if leading {
			ch <- prometheus.MustNewConstMetric(usedDesc, prometheus.GaugeValue, float64(x.InUse), x.Pool, fam)
		}
	}
}
