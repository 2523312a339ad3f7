package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"

	"k8s.io/klog/v2"

	"github.com/lbdproject/lbd/internal/agent"
	"github.com/lbdproject/lbd/internal/allocate"
	"github.com/lbdproject/lbd/internal/config"
	"github.com/lbdproject/lbd/internal/election"
	"github.com/lbdproject/lbd/internal/sink"
	"github.com/lbdproject/lbd/internal/status"
	"github.com/lbdproject/lbd/internal/watch"
	"github.com/prometheus/client_golang/prometheus"
)

// apiState is what lbd knows of its API connection: what `lbd status`
// says of it, whether the informers synced, and whether the API answers
// (this node's liveness renewals succeed), exported as
// lbd_kubernetes_api_up.
type apiState struct {
	v         atomic.Value
	synced    atomic.Bool
	reachable atomic.Bool
	up        prometheus.Gauge
}

func newAPIState(reg prometheus.Registerer) *apiState {
	s := &apiState{up: prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "lbd_kubernetes_api_up",
		Help: "1 while this node's lbd reaches the Kubernetes API (its liveness Lease renewals succeed), 0 otherwise.",
	})}
	reg.MustRegister(s.up)
	return s
}

func (s *apiState) set(v string) { s.v.Store(v) }
func (s *apiState) get() string {
	if v, ok := s.v.Load().(string); ok {
		return v
	}
	return "not started"
}

// renewed records the outcome of a liveness renewal.
func (s *apiState) renewed(err error) {
	s.reachable.Store(err == nil)
	if err == nil {
		s.up.Set(1)
	} else {
		s.up.Set(0)
	}
}

// Ready says why lbd is not working with the API, or nil.
func (s *apiState) Ready() error {
	switch {
	case !s.synced.Load():
		return fmt.Errorf("kubernetes: %s", s.get())
	case !s.reachable.Load():
		return errors.New("kubernetes: the API server does not answer (liveness renewals fail)")
	}
	return nil
}

// Report implements status.Reporter.
func (s *apiState) Report(_ context.Context, st *status.Status) { st.Kubernetes = s.get() }

// runCluster connects to the API server, renews this node's liveness
// Lease, starts the informers, hands them to the allocator, the agent and
// the BGP sink, and campaigns for the allocator Lease, until ctx ends. A
// kubeconfig that does not exist yet (a node being bootstrapped) is waited
// for, not an error. It returns once the Leases are released.
func runCluster(ctx context.Context, cfg *config.Config, log *slog.Logger, state *apiState,
	alloc *allocate.Controller, ag *agent.Agent, bgp *sink.BGP, certs *watch.CertExpiry, peerSrc *peerSource) {
	// client-go logs through klog; send it to our logger, as structured
	// records like the rest.
	klog.SetSlogLogger(log.With("component", "client-go"))
	log = log.With("component", "kubernetes")
	k := cfg.Kubernetes
	state.set("waiting for " + k.Kubeconfig)
	client, rc := watch.Connect(ctx, k.Kubeconfig, "lbd/"+version, log)
	if client == nil {
		return
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { certs.Watch(ctx, rc, log) })

	// This node's liveness Lease, renewed from now on and deleted on the
	// way out, before runCluster returns. It carries the interfaces and
	// MACs the agent publishes.
	cl := watch.NewCluster(client, k.LoadBalancerClass, cfg.Node.Name, log)
	cl.WatchNodeLeases(k.Namespace)
	live := &election.Liveness{
		Client: client, Namespace: k.Namespace, Node: cfg.Node.Name,
		// The informers back off while the API is away (up to 30s); the
		// Leases, Services, Nodes and EndpointSlices are listed afresh
		// at once, so this node sees its own renewals and plans again,
		// with what the others see.
		Recovered: func() { cl.RestartLeaseWatch(ctx); cl.RestartInformers(ctx) },
		Renewed:   state.renewed,
		Duration:  k.Liveness.Duration, Interval: k.Liveness.RenewInterval, Log: log,
		Annotations: func() map[string]string {
			a := map[string]string{
				watch.AnnotationInterfaces: strings.Join(ag.Published(), ","),
				watch.AnnotationMACs:       strings.Join(ag.PublishedMACs(), ","),
			}
			if peerSrc != nil {
				st := ag.PeerStatus()
				a[watch.AnnotationPeerState] = st.State
				a[watch.AnnotationPeers] = strings.Join(st.View, ",")
			}
			return a
		},
	}
	if peerSrc != nil {
		// A heartbeat at the kubelet's pace while in a quorum of the
		// peers, written at once when this node's view of them changes.
		live.Pace, live.Kick, live.Term = peerPace(cfg, ag), ag.PeerKick(), ag.Term
	}
	wg.Go(func() { live.Run(ctx) })

	state.set("syncing")
	cl.OnServiceChange(alloc.Notify)
	notify := func(string) { ag.Notify() }
	cl.OnServiceChange(notify)
	cl.OnEndpointsChange(notify)
	cl.OnNodeChange(func(name string) {
		ag.Notify()
		if name == cfg.Node.Name {
			bgp.SetNodeLabels(ctx, cl.NodeLabels(name))
		}
	})
	cl.OnLeaseChange(ag.NotifyLeases)
	if !cl.Start(ctx) {
		return
	}
	alloc.SetCluster(cl, cl)
	ag.SetCluster(cl)                                    // an agent.Relister too (checked below)
	bgp.SetNodeLabels(ctx, cl.NodeLabels(cfg.Node.Name)) // for the peers' node selectors
	if peerSrc != nil {
		wg.Go(func() { peerSrc.Run(ctx, cl, ag) })
	}
	state.set("connected")
	state.synced.Store(true)
	log.Info("watching Services", "kubeconfig", k.Kubeconfig, "class", k.LoadBalancerClass)
	l := k.AllocatorLease
	election.Campaign(ctx, client, election.Lease{
		Namespace: l.Namespace, Name: l.Name, Identity: cfg.Node.Name,
		Duration: l.Duration, RenewDeadline: l.RenewDeadline, RetryPeriod: l.RetryPeriod,
	}, log, alloc.Lead)
}

// The agent lists the Services afresh through the Cluster before a node
// that was silent answers again (agent.Relister).
var _ agent.Relister = (*watch.Cluster)(nil)
