package main

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lbdproject/lbd/internal/agent"
	"github.com/lbdproject/lbd/internal/bgp"
	"github.com/lbdproject/lbd/internal/config"
	"github.com/lbdproject/lbd/internal/daemon"
	"github.com/lbdproject/lbd/internal/watch"
)

// bgpSink carries out the agent's BGP decisions with the embedded speaker:
// each announced address becomes one route per advertisement that covers
// it on this node. It also follows reloads (only changed peers are reset)
// and this node's labels (peers' node selectors).
//
// The sessions start once the agent has planned with this node alive
// (ready): a restarted lbd is a graceful-restart speaker whose End-of-RIB
// makes the router drop every stale route not announced again, so it
// must not open sessions before it knows its routes. Peers with a node
// selector start once this node's labels are known.
type bgpSink struct {
	log  *slog.Logger
	self string
	sp   *bgp.Speaker

	mu      sync.Mutex
	cfg     *config.Config
	labels  map[string]string // this node's; nil until the informers synced
	last    []agent.Decision
	ready   bool // the agent planned with this node alive
	running bool // the speaker was started
}

func newBGPSink(cfg *config.Config, log *slog.Logger, reg prometheus.Registerer) (*bgpSink, error) {
	sp, err := bgp.New(log, reg)
	if err != nil {
		return nil, err
	}
	return &bgpSink{log: log, self: cfg.Node.Name, sp: sp, cfg: cfg}, nil
}

// start opens the sessions, once: the agent has planned with this node
// alive, or readyWait has passed (a node whose agent cannot plan still
// shows its sessions).
func (b *bgpSink) start() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ready {
		return nil
	}
	b.ready = true
	return b.applyPeers(b.cfg)
}

// readyWait bounds how long the sessions wait for the agent's first plan;
// shorter than any router's restart time for lbd (120s by default).
const readyWait = 30 * time.Second

// waitReady calls start when the agent says it announces this node's
// share (it planned with its Lease alive), or after readyWait.
func (b *bgpSink) waitReady(ctx context.Context, planned func() bool, log *slog.Logger) {
	deadline := time.Now().Add(readyWait)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !planned() && time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
	if err := b.start(); err != nil {
		log.Warn("bgp: cannot start every peer", "err", err)
	}
}

// applyPeers gives the speaker this node's peers under cfg. Callers hold
// b.mu.
func (b *bgpSink) applyPeers(cfg *config.Config) error {
	if !b.ready {
		return nil
	}
	var peers []config.Peer
	for _, p := range cfg.BGP.Peers {
		if p.NodeSelector == nil || (b.labels != nil && p.NodeSelector.Matches(b.labels)) {
			peers = append(peers, p)
		}
	}
	if len(peers) == 0 && !b.running {
		return nil // no BGP here (yet): do not start a speaker
	}
	b.running = true
	return b.sp.Apply(context.Background(), bgp.Config{ASN: cfg.BGP.ASN, RouterID: cfg.BGP.RouterID, Peers: peers})
}

// Apply implements agent.Sink.
func (b *bgpSink) Apply(ds []agent.Decision) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.last = ds
	return b.sp.Set(bgpRoutes(b.cfg, ds))
}

// Reload implements agent.ConfigSink: peers first (only changed ones are
// reset), then the routes under the new advertisements, without a
// session reset.
func (b *bgpSink) Reload(cfg *config.Config) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.applyPeers(cfg); err != nil {
		return fmt.Errorf("bgp peers: %w", err)
	}
	b.cfg = cfg
	return b.sp.Set(bgpRoutes(cfg, b.last))
}

// watchNode follows this node's labels for the peers' node selectors.
func (b *bgpSink) watchNode(cl *watch.Cluster) {
	cl.OnNodeChange(func(name string) {
		if name == b.self {
			b.nodeChanged(cl)
		}
	})
}

// nodeChanged re-reads this node's labels; call once after the informers
// synced too.
func (b *bgpSink) nodeChanged(cl *watch.Cluster) {
	var labels map[string]string
	for _, n := range cl.Nodes() {
		if n.Name == b.self {
			labels = n.Labels
			if labels == nil {
				labels = map[string]string{}
			}
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if labels == nil || maps.Equal(labels, b.labels) {
		return
	}
	b.labels = labels
	if err := b.applyPeers(b.cfg); err != nil {
		b.log.Warn("bgp: cannot apply the peers for this node's labels", "err", err)
	}
}

// Close withdraws every route, then ends the sessions.
func (b *bgpSink) Close() error { return b.sp.Close() }

// status fills the BGP part of `lbd status`.
func (b *bgpSink) status(st *daemon.Status) {
	b.mu.Lock()
	running := b.running
	b.mu.Unlock()
	if !running {
		return
	}
	s := b.sp.Status()
	out := &daemon.BGPStatus{ASN: s.ASN, RouterID: s.RouterID.String(), Routes: s.Routes}
	for _, p := range s.Peers {
		out.Peers = append(out.Peers, daemon.BGPPeerStatus{
			Name: p.Name, Address: p.Address.String(), ASN: p.ASN, State: p.State, Since: p.Since,
			Uptime: p.Uptime.String(), Advertised: p.Advertised, UpdatesSent: p.UpdatesSent, Problem: p.Problem,
		})
	}
	st.BGP = out
}

// bgpRoutes turns the announced BGP decisions into routes: one per
// advertisement that covers the address on this node, with that
// advertisement's prefix length and attributes (the speaker merges routes
// for the same prefix).
func bgpRoutes(cfg *config.Config, ds []agent.Decision) []bgp.Route {
	ads := map[string]*config.BGPAdvertisement{}
	for i := range cfg.BGP.Advertisements {
		ads[cfg.BGP.Advertisements[i].Name] = &cfg.BGP.Advertisements[i]
	}
	var out []bgp.Route
	for _, d := range ds {
		if !d.Announce || d.Mode != agent.ModeBGP {
			continue
		}
		for _, name := range d.Advertisements {
			a, ok := ads[name]
			if !ok {
				continue
			}
			bits := a.AggregationLength
			if d.Addr.Is6() {
				bits = a.AggregationLengthV6
			}
			pfx, err := d.Addr.Prefix(bits)
			if err != nil {
				pfx = netip.PrefixFrom(d.Addr, d.Addr.BitLen())
			}
			out = append(out, bgp.Route{
				Prefix: pfx, LocalPref: a.LocalPreference,
				Communities: a.Communities, LargeCommunities: a.LargeCommunities, Peers: a.Peers,
			})
		}
	}
	return out
}
