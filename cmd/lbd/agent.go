package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lbdproject/lbd/internal/agent"
	"github.com/lbdproject/lbd/internal/announce"
	"github.com/lbdproject/lbd/internal/config"
	"github.com/lbdproject/lbd/internal/daemon"
	"github.com/lbdproject/lbd/internal/watch"
)

// nodeAgent is the node agent with the sinks that carry out its decisions.
// Other announcers (BGP) add their sink with Agent.AddSink before run.
type nodeAgent struct {
	*agent.Agent
	l2  *agent.L2Sink
	bgp *bgpSink
}

// newNodeAgent builds the agent and its L2 announcer; nothing runs yet.
func newNodeAgent(cfg *config.Config, log *slog.Logger, reg prometheus.Registerer) (*nodeAgent, error) {
	ag, err := agent.New(cfg.Node.Name, cfg, log, reg, agent.Options{})
	if err != nil {
		return nil, err
	}
	l2, err := agent.NewL2Sink(cfg, func(cfg *config.Config) (announce.Announcer, error) {
		a, err := announce.NewL2(log, announce.SystemClock{}, cfg.L2.Gratuitous, replacing{reg})
		if err != nil || !cfg.L2.ConflictDetectionEnabled() {
			return a, err
		}
		// Conflicts found by the announcer become the agent's
		// `conflict` reason and a Warning Event on the Service.
		report := func(on bool) func(announce.Conflict) {
			return func(c announce.Conflict) {
				ag.ReportConflict(c.Addr, on, fmt.Sprintf("%s on %s from %s", c.Reason, c.Interface, c.MAC))
			}
		}
		return a, a.DetectConflicts(announce.ConflictOptions{Probe: cfg.L2.ConflictProbe, OnConflict: report(true), OnClear: report(false)})
	})
	if err != nil {
		return nil, err
	}
	ag.AddSink(agent.ModeL2, l2)
	bs, err := newBGPSink(cfg, log, reg)
	if err != nil {
		return nil, err
	}
	ag.AddSink(agent.ModeBGP, bs)
	return &nodeAgent{Agent: ag, l2: l2, bgp: bs}, nil
}

// run runs the agent until ctx ends (and its hand-over grace is over),
// then withdraws everything.
func (n *nodeAgent) run(ctx context.Context, log *slog.Logger, restarting func() bool) {
	go n.bgp.waitReady(ctx, func() bool { return strings.HasPrefix(n.State().Summary, "announcing") }, log)
	// A planned stop withdraws the BGP routes at once (the router moves
	// traffic to the other nodes), while L2 keeps answering for its
	// hand-over grace. A stop for a restart leaves them to the routers'
	// graceful restart.
	bgpClosed := make(chan struct{})
	go func() {
		defer close(bgpClosed)
		<-ctx.Done()
		if restarting() {
			n.bgp.sp.Abandon()
			return
		}
		if err := n.bgp.Close(); err != nil {
			log.Warn("BGP speaker did not close cleanly", "err", err)
		}
	}()
	n.Run(ctx)
	<-bgpClosed
	if err := n.l2.Close(); err != nil {
		log.Warn("L2 announcer did not close cleanly", "err", err)
	}
}

// watchCluster connects the agent to the informers: call before
// Cluster.Start, then SetCluster(cl) once they synced.
func (n *nodeAgent) watchCluster(cl *watch.Cluster) {
	notify := func(string) { n.Notify() }
	cl.OnServiceChange(notify)
	cl.OnNodeChange(notify)
	cl.OnEndpointsChange(notify)
	cl.OnLeaseChange(n.NotifyLeases)
	n.bgp.watchNode(cl)
}

// leaseAnnotations is what this node writes into its liveness Lease.
func (n *nodeAgent) leaseAnnotations() map[string]string {
	return map[string]string{
		watch.AnnotationInterfaces: strings.Join(n.Published(), ","),
		watch.AnnotationMACs:       strings.Join(n.PublishedMACs(), ","),
	}
}

// status fills the agent's part of `lbd status`.
func (n *nodeAgent) status(st *daemon.Status) {
	s := n.State()
	st.Agent = s.Summary
	for _, d := range s.Decisions {
		st.Addresses = append(st.Addresses, daemon.AddressStatus{
			Service: d.Service, IP: d.Addr.String(), Mode: string(d.Mode), Owner: d.Owner,
			Announcing: d.Announce, Reason: string(d.Reason), Interfaces: d.Interfaces,
		})
	}
	n.bgp.status(st)
}

// replacing registers a collector in place of an equal one registered
// before: a reload that rebuilds the L2 announcer keeps its metrics
// exported (the counts restart, which rate() tolerates).
type replacing struct{ prometheus.Registerer }

func (r replacing) Register(c prometheus.Collector) error {
	err := r.Registerer.Register(c)
	var dup prometheus.AlreadyRegisteredError
	if errors.As(err, &dup) {
		r.Unregister(dup.ExistingCollector)
		return r.Registerer.Register(c)
	}
	return err
}
