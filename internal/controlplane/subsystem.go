package controlplane

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"net/netip"
	"reflect"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/kubernetes"

	"github.com/lbdproject/lbd/internal/announce"
	"github.com/lbdproject/lbd/internal/config"
	"github.com/lbdproject/lbd/internal/election"
	"github.com/lbdproject/lbd/internal/status"
)

// Subsystem runs the control-plane VIP election on this node while the
// configuration has a control_plane section. It is a reloader subsystem: a
// changed control_plane section (or one added or removed) stops the running
// election, handing the VIP over if this node holds it, and starts a new
// one; any other reload leaves it alone, so the VIP does not move.
type Subsystem struct {
	log        *slog.Logger
	metrics    *Metrics
	node       string
	kubeconfig string

	mu     sync.Mutex
	ctx    context.Context // the daemon's; set by Start
	cur    *instance
	wanted bool // the configuration in force has a control_plane section
}

// instance is one running election with its configuration.
type instance struct {
	cfg    config.ControlPlane
	e      *Election
	cancel context.CancelFunc
	done   chan struct{}
}

// New builds the subsystem for the configuration in force and registers
// its metrics; nothing runs until Start.
func New(cfg *config.Config, log *slog.Logger, reg prometheus.Registerer) *Subsystem {
	return &Subsystem{
		log: log.With("component", "control-plane"), metrics: NewMetrics(reg),
		node: cfg.Node.Name, kubeconfig: cfg.Kubernetes.Kubeconfig,
	}
}

// Start removes VIPs a killed lbd may have left here and, if cfg has a
// control_plane section, starts campaigning. Stop ends it.
func (c *Subsystem) Start(ctx context.Context, cfg *config.Config) {
	if cp := cfg.ControlPlane; cp != nil {
		if err := announce.RemoveStale(cp.Interface, cp.Addresses); err != nil {
			c.log.Warn("cannot remove a stale VIP", "vip", config.JoinAddrs(cp.Addresses), "err", err)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ctx = ctx
	c.wanted = cfg.ControlPlane != nil
	if cfg.ControlPlane != nil {
		c.cur = c.start(*cfg.ControlPlane)
	}
}

// Stop ends the election, handing the VIP over, and waits for it.
func (c *Subsystem) Stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stopLocked()
}

// Name implements daemon.Subsystem.
func (*Subsystem) Name() string { return "control_plane" }

// Check implements daemon.Subsystem: every control_plane change can be
// applied live (the kubeconfig and node name it depends on take a restart,
// which the daemon's own check says).
func (*Subsystem) Check(context.Context, *config.Config, *config.Config) error { return nil }

// Apply implements daemon.Subsystem.
func (c *Subsystem) Apply(_ context.Context, prev, next *config.Config) error {
	if reflect.DeepEqual(prev.ControlPlane, next.ControlPlane) {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ctx == nil {
		return errors.New("not started")
	}
	c.stopLocked()
	c.wanted = next.ControlPlane != nil
	if next.ControlPlane != nil {
		c.log.Info("configuration changed; campaigning anew", "vip", config.JoinAddrs(next.ControlPlane.Addresses))
		c.cur = c.start(*next.ControlPlane)
	}
	return nil
}

// Ready says why the VIP election does not run on a node configured for
// it, or nil.
func (c *Subsystem) Ready() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ctx != nil && c.wanted && c.cur == nil {
		return errors.New("control plane: the VIP election is not running")
	}
	return nil
}

// Preview implements daemon.Previewer.
func (c *Subsystem) Preview(_ context.Context, prev, next *config.Config) ([]string, error) {
	switch {
	case reflect.DeepEqual(prev.ControlPlane, next.ControlPlane):
		return nil, nil
	case next.ControlPlane == nil:
		return []string{"control plane: this node stops campaigning for the VIP" + c.holdingNote()}, nil
	case prev.ControlPlane == nil:
		return []string{"control plane: this node starts campaigning for the VIP " + config.JoinAddrs(next.ControlPlane.Addresses)}, nil
	}
	return []string{"control plane: the election starts anew with the new settings" + c.holdingNote()}, nil
}

func (c *Subsystem) holdingNote() string {
	if st := c.snapshot(); st != nil && st.Leading {
		return " (this node holds the VIP: it hands it over to another node)"
	}
	return ""
}

func (c *Subsystem) stopLocked() {
	if c.cur == nil {
		return
	}
	c.cur.cancel()
	<-c.cur.done
	c.cur = nil
}

func (c *Subsystem) start(cfg config.ControlPlane) *instance {
	log := c.log
	// A killed lbd's VIP expires by itself: the lifetime is the Lease
	// duration (at least the kernel's 1s), so it is gone about when
	// another node may take the Lease.
	lifetime := max(time.Duration(math.Ceil(cfg.Lease.Duration.Seconds()))*time.Second, announce.MinVIPLifetime)
	vip, err := announce.NewVIP(log, lifetime)
	if err != nil {
		// config.Load bounds the lease duration; not reachable.
		panic(err)
	}
	h := &vipHolder{vip: vip, herald: announce.NewHerald(log, announce.SystemClock{}, cfg.Gratuitous)}
	for _, a := range cfg.Addresses {
		h.set = append(h.set, announce.Announcement{Addr: a, Interface: cfg.Interface, Reason: "control-plane leader"})
		h.addrs = append(h.addrs, a)
	}
	h.iface = cfg.Interface
	kubeconfig, local := c.kubeconfig, cfg.LocalAPIServer
	e := &Election{
		Lease: election.Lease{
			Namespace: cfg.Lease.Namespace, Name: cfg.Lease.Name, Identity: c.node,
			Duration: cfg.Lease.Duration, RenewDeadline: cfg.Lease.RenewDeadline, RetryPeriod: cfg.Lease.RetryPeriod,
		},
		Connect: func() (kubernetes.Interface, error) {
			client, _, err := LocalClient(kubeconfig, local, cfg.Health.Timeout)
			return client, err
		},
		Health:  Health{Interval: cfg.Health.Interval, Timeout: cfg.Health.Timeout, FailureThreshold: cfg.Health.FailureThreshold},
		VIP:     h,
		VIPs:    config.JoinAddrs(cfg.Addresses),
		Log:     log,
		Metrics: c.metrics,
		// The next holder's gratuitous burst must reach the clients
		// while this node still answers.
		HandoverOverlap: HandoverOverlapFor(cfg.Gratuitous.Count, cfg.Gratuitous.Interval),
	}
	ctx, cancel := context.WithCancel(c.ctx)
	inst := &instance{cfg: cfg, e: e, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(inst.done)
		e.Run(ctx)
		if err := vip.Close(); err != nil {
			log.Error("cannot remove the VIP", "vip", e.VIPs, "err", err)
		}
		h.herald.Stop()
	}()
	return inst
}

// Report fills the control-plane part of `lbd status` (nothing without
// one).
func (c *Subsystem) Report(_ context.Context, st *status.Status) { st.ControlPlane = c.snapshot() }

func (c *Subsystem) snapshot() *status.ControlPlane {
	c.mu.Lock()
	cur := c.cur
	c.mu.Unlock()
	if cur == nil {
		return nil
	}
	s := cur.e.Status()
	st := &status.ControlPlane{
		Interface: cur.cfg.Interface, Holder: s.Holder, Leading: s.Leading, State: s.State,
		LocalAPIServer: cur.cfg.LocalAPIServer, LocalAPIReady: s.APIReady, LocalAPIDetail: s.APIDetail,
	}
	for _, a := range cur.cfg.Addresses {
		st.VIP = append(st.VIP, a.String())
	}
	return st
}

// Role is the one-word role for systemd's status line ("" without one).
func (c *Subsystem) Role() string {
	st := c.snapshot()
	switch {
	case st == nil:
		return ""
	case st.Leading:
		return "holds the VIP"
	case st.Holder != "":
		return "VIP on " + st.Holder
	}
	return "VIP unheld"
}

// vipHolder adds and removes the VIP and sends its gratuitous ARP / NA;
// the election calls it from one goroutine.
type vipHolder struct {
	vip    *announce.VIP
	herald *announce.Herald
	set    []announce.Announcement
	iface  string
	addrs  []netip.Addr
}

func (h *vipHolder) Take() error {
	err := h.vip.Set(h.set)
	return errors.Join(err, h.herald.Start(h.iface, h.addrs))
}

func (h *vipHolder) Renew() error { return h.vip.Set(h.set) }

func (h *vipHolder) Drop() error {
	h.herald.Stop()
	return h.vip.Set(nil)
}
