package main

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"

	"github.com/lbdproject/lbd/internal/allocate"
	"github.com/lbdproject/lbd/internal/config"
	"github.com/lbdproject/lbd/internal/election"
	"github.com/lbdproject/lbd/internal/watch"
)

// clusterState is what `lbd status` says of the API connection.
type clusterState struct{ v atomic.Value }

func (s *clusterState) set(v string) { s.v.Store(v) }
func (s *clusterState) get() string {
	if v, ok := s.v.Load().(string); ok {
		return v
	}
	return "not started"
}

// runCluster connects to the API server, starts the informers and
// campaigns for the allocator Lease, until ctx ends. A kubeconfig that does
// not exist yet (a node being bootstrapped) is waited for, not an error.
func runCluster(ctx context.Context, cfg *config.Config, log *slog.Logger, state *clusterState, alloc *allocate.Controller, agent *nodeAgent) {
	// client-go logs through klog; send it to our logger, as structured
	// records like the rest.
	klog.SetSlogLogger(log.With("component", "client-go"))
	k := cfg.Kubernetes
	state.set("waiting for " + k.Kubeconfig)
	client := waitForClient(ctx, k.Kubeconfig, log)
	if client == nil {
		return
	}
	// This node's liveness Lease, renewed from now on and deleted on the
	// way out, before runCluster returns.
	live := &election.Liveness{
		Client: client, Namespace: k.Namespace, Node: cfg.Node.Name,
		Duration: k.Liveness.Duration, Interval: k.Liveness.RenewInterval, Log: log,
		Annotations: agent.leaseAnnotations,
	}
	liveDone := make(chan struct{})
	go func() { defer close(liveDone); live.Run(ctx) }()
	defer func() { <-liveDone }()

	state.set("syncing")
	cl := watch.NewCluster(client, k.LoadBalancerClass, cfg.Node.Name, log)
	cl.WatchNodeLeases(k.Namespace)
	cl.OnServiceChange(alloc.Notify)
	agent.watchCluster(cl)
	if !cl.Start(ctx) {
		return
	}
	alloc.SetCluster(cl, cl)
	agent.SetCluster(cl)
	agent.bgp.nodeChanged(cl) // the labels for the BGP peers' node selectors
	state.set("connected")
	log.Info("kubernetes: watching Services", "kubeconfig", k.Kubeconfig, "class", k.LoadBalancerClass)
	l := k.AllocatorLease
	election.Campaign(ctx, client, election.Lease{
		Namespace: l.Namespace, Name: l.Name, Identity: cfg.Node.Name,
		Duration: l.Duration, RenewDeadline: l.RenewDeadline, RetryPeriod: l.RetryPeriod,
	}, log, alloc.Lead)
}

// waitForClient builds a client from the kubeconfig, retrying until it can
// or ctx ends (nil then).
func waitForClient(ctx context.Context, path string, log *slog.Logger) kubernetes.Interface {
	for attempt := 0; ; attempt++ {
		rc, err := clientcmd.BuildConfigFromFlags("", path)
		if err == nil {
			rc.UserAgent = "lbd/" + version
			// Each new Service costs the allocator holder two writes and
			// an Event; at client-go's default 5 QPS a burst of Services
			// would wait minutes (measured: p50 24s over 1000 at 50 QPS,
			// 16ms at 200). The API server's priority and fairness still
			// protects it; the other nodes only watch.
			rc.QPS, rc.Burst = 200, 400
			client, err := kubernetes.NewForConfig(rc)
			if err == nil {
				return client
			}
			log.Error("kubernetes: bad kubeconfig", "kubeconfig", path, "err", err)
		} else if attempt%30 == 0 {
			log.Warn("kubernetes: cannot load kubeconfig yet; retrying", "kubeconfig", path, "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(2 * time.Second):
		}
	}
}
