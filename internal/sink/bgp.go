package sink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lbdproject/lbd/internal/agent"
	"github.com/lbdproject/lbd/internal/bfd"
	"github.com/lbdproject/lbd/internal/bgp"
	"github.com/lbdproject/lbd/internal/config"
	"github.com/lbdproject/lbd/internal/status"
)

// BGP carries out the agent's BGP decisions with the embedded speaker:
// each announced address becomes one route per advertisement that covers
// it on this node. It also follows reloads (only changed peers are reset)
// and this node's labels (peers' node selectors).
//
// The sessions start once the agent has planned with this node alive
// (Start): a restarted lbd is a graceful-restart speaker whose End-of-RIB
// makes the router drop every stale route not announced again, so it
// must not open sessions before it knows its routes. Peers with a node
// selector start once this node's labels are known.
type BGP struct {
	log *slog.Logger
	sp  *bgp.Speaker
	bfd *bfd.Manager

	mu      sync.Mutex
	cfg     *config.Config
	labels  map[string]string // this node's; nil until the informers synced
	last    []agent.Decision
	ready   bool // the agent planned with this node alive
	running bool // the speaker was started
}

// NewBGP builds the speaker and registers its metrics; no session opens
// before Start.
func NewBGP(cfg *config.Config, log *slog.Logger, reg prometheus.Registerer) (*BGP, error) {
	base := log
	log = log.With("component", "bgp")
	sp, err := bgp.New(log, reg)
	if err != nil {
		return nil, err
	}
	b := &BGP{log: log, sp: sp, cfg: cfg}
	if b.bfd, err = bfd.New(base.With("component", "bfd"), reg, b.bfdChanged); err != nil {
		return nil, err
	}
	return b, nil
}

// RunBFD runs the BFD sessions until ctx ends; give it a context that
// outlives Close, which says AdminDown to the routers first, and
// HandOverBFD.
func (b *BGP) RunBFD(ctx context.Context) { b.bfd.Run(ctx) }

// bfdChanged reacts to a BFD session going down: the path to the router is
// gone, so the BGP session is reset at once instead of at the end of the
// hold time, and GoBGP dials again as soon as the router is back. A
// router that said AdminDown (a planned stop of its BFD) is no failure
// (RFC 5882 §3.2): nothing is reset.
func (b *BGP) bfdChanged(c bfd.Change) {
	if c.Up || c.RemoteAdminDown || c.Diag == bfd.DiagAdminDown {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := b.sp.ResetPeer(ctx, c.Addr); err != nil {
		b.log.Warn("cannot reset the BGP session after BFD went down", "peer", c.Peer, "ip", c.Addr, "err", err)
		return
	}
	b.log.Info("BFD down: BGP session reset", "peer", c.Peer, "ip", c.Addr, "diag", c.Diag.String())
}

// bfdPeers are the BFD sessions for peers.
func bfdPeers(peers []config.Peer) []bfd.Peer {
	var out []bfd.Peer
	for _, p := range peers {
		if p.BFD == nil {
			continue
		}
		out = append(out, bfd.Peer{Name: p.Name, Addr: p.Address, Source: p.SourceAddress, Timers: bfd.Timers{
			DesiredMinTx: p.BFD.TransmitInterval, RequiredMinRx: p.BFD.ReceiveInterval, DetectMult: uint8(p.BFD.DetectMultiplier),
		}})
	}
	return out
}

// ReadyWait bounds how long the sessions wait for the agent's first plan;
// shorter than any router's restart time for lbd (120s by default), and
// long enough that a node whose agent cannot plan still shows its
// sessions.
const ReadyWait = 30 * time.Second

// Start opens the sessions once planned is closed (the agent planned with
// this node alive), or after ReadyWait, or not at all if ctx ends first.
func (b *BGP) Start(ctx context.Context, planned <-chan struct{}) {
	t := time.NewTimer(ReadyWait)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return
	case <-planned:
	case <-t.C:
		b.log.Warn("the node agent has not planned yet; opening the sessions anyway", "waited", ReadyWait)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ready {
		return
	}
	b.ready = true
	if err := b.configurePeers(ctx, b.cfg); err != nil {
		b.log.Warn("cannot start every peer", "err", err)
	}
}

// peersHere are cfg's peers for this node (node selectors). Callers hold
// b.mu.
func (b *BGP) peersHere(cfg *config.Config) []config.Peer {
	var peers []config.Peer
	for _, p := range cfg.BGP.Peers {
		if p.NodeSelector == nil || (b.labels != nil && p.NodeSelector.Matches(b.labels)) {
			peers = append(peers, p)
		}
	}
	return peers
}

// Ready says why this node's BGP sessions are not open, or nil (also when
// it has no peers). A router that does not answer is not lbd's failure:
// open sessions are enough.
func (b *BGP) Ready() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.peersHere(b.cfg)) > 0 && !b.running {
		return errors.New("bgp: the sessions are not opened yet (waiting for the agent's first plan)")
	}
	return nil
}

// Preview says what a reload to cfg would do to this node's sessions.
func (b *BGP) Preview(cfg *config.Config) ([]string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	peers := b.peersHere(cfg)
	if !b.running {
		if len(peers) == 0 {
			return nil, nil
		}
		return []string{fmt.Sprintf("bgp: %d session(s) open", len(peers))}, nil
	}
	lines, err := b.sp.Preview(bgp.Config{ASN: cfg.BGP.ASN, RouterID: cfg.BGP.RouterID, Peers: peers})
	for i := range lines {
		lines[i] = "bgp: " + lines[i]
	}
	return lines, err
}

// configurePeers gives the speaker this node's peers under cfg. Callers
// hold b.mu.
func (b *BGP) configurePeers(ctx context.Context, cfg *config.Config) error {
	if !b.ready {
		// Only sessions resumed from the previous process run yet.
		return b.bfd.Prune(ctx, bfdPeers(cfg.BGP.Peers))
	}
	peers := b.peersHere(cfg)
	if len(peers) == 0 && !b.running {
		return nil // no BGP here (yet): do not start a speaker
	}
	b.running = true
	err := b.sp.Configure(ctx, bgp.Config{ASN: cfg.BGP.ASN, RouterID: cfg.BGP.RouterID, Peers: peers})
	return errors.Join(err, b.bfd.Set(ctx, bfdPeers(peers)))
}

// Set implements agent.Sink.
func (b *BGP) Set(ctx context.Context, ds []agent.Decision) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.last = ds
	return b.sp.Set(ctx, Routes(b.cfg, ds))
}

// Reload implements agent.ConfigSink: peers first (only changed ones are
// reset), then the routes under the new advertisements, without a
// session reset.
func (b *BGP) Reload(ctx context.Context, cfg *config.Config) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.configurePeers(ctx, cfg); err != nil {
		return fmt.Errorf("bgp peers: %w", err)
	}
	b.cfg = cfg
	return b.sp.Set(ctx, Routes(cfg, b.last))
}

// SetNodeLabels gives the sink this node's labels, for the peers' node
// selectors: once the informers synced, and on every change of this
// node. nil means unknown.
func (b *BGP) SetNodeLabels(ctx context.Context, labels map[string]string) {
	if labels == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.labels != nil && maps.Equal(labels, b.labels) {
		return
	}
	b.labels = maps.Clone(labels)
	if err := b.configurePeers(ctx, b.cfg); err != nil {
		b.log.Warn("cannot apply the peers for this node's labels", "err", err)
	}
}

// Close takes the BFD sessions administratively down (not a failure, for
// the routers), withdraws every route, then ends the sessions (a planned
// stop: the routers move traffic to the other nodes at once).
func (b *BGP) Close(ctx context.Context) error {
	return errors.Join(b.bfd.Shutdown(ctx), b.sp.Close(ctx))
}

// Abandon leaves the routes to the routers' graceful restart (a stop for
// a restart). BFD goes on: HandOverBFD passes it to the next process as
// the very last step, so that the routers do not take the restart for a
// dead node (docs/bgp.md, "BFD and restarts").
func (b *BGP) Abandon(context.Context) { b.sp.Abandon() }

// handoffMaxAge: a hand-over older than this is ignored (the routers have
// long declared those sessions down; the slowest detection time lbd
// accepts, 255 x 1m, is not worth carrying over).
const handoffMaxAge = 30 * time.Second

// HandOverBFD stops the BFD sessions without a word to the routers and
// leaves the Up ones in path for the next process (a restart).
func (b *BGP) HandOverBFD(ctx context.Context, path string) error {
	h, err := b.bfd.HandOver(ctx)
	if err != nil || len(h.Sessions) == 0 {
		return err
	}
	if err := bfd.WriteHandoff(path, h); err != nil {
		return err
	}
	b.log.Info("BFD sessions handed over to the next process", "sessions", len(h.Sessions), "file", path)
	return nil
}

// ResumeBFD carries on the BFD sessions the previous process left in path
// (a restart) for the peers still configured with bfd, at once: before
// the cluster is reachable and the BGP sessions open.
func (b *BGP) ResumeBFD(ctx context.Context, path string) {
	h, err := bfd.ReadHandoff(path, handoffMaxAge, time.Now())
	if err != nil {
		b.log.Warn("cannot resume the BFD sessions of the previous process", "err", err)
		return
	}
	if len(h.Sessions) == 0 {
		if !h.At.IsZero() {
			b.log.Info("BFD hand-over too old to resume", "written", h.At)
		}
		return
	}
	b.mu.Lock()
	peers := bfdPeers(b.cfg.BGP.Peers)
	b.mu.Unlock()
	if _, err := b.bfd.Resume(ctx, h, peers); err != nil {
		b.log.Warn("cannot resume every BFD session of the previous process", "err", err)
	}
}

// Report implements status.Reporter.
func (b *BGP) Report(ctx context.Context, st *status.Status) {
	b.mu.Lock()
	running := b.running
	b.mu.Unlock()
	if !running {
		return
	}
	s := b.sp.Status(ctx)
	sessions := map[netip.Addr]bfd.Status{}
	for _, x := range b.bfd.Status() {
		sessions[x.Addr] = x
	}
	out := &status.BGP{ASN: s.ASN, RouterID: s.RouterID.String(), Routes: s.Routes}
	for _, p := range s.Peers {
		sp := status.BGPPeer{
			Name: p.Name, Address: p.Address.String(), ASN: p.ASN, State: p.State, Since: p.Since,
			Uptime: p.Uptime.String(), Advertised: p.Advertised, UpdatesSent: p.UpdatesSent, Problem: p.Problem,
			PasswordFingerprint: p.PasswordFingerprint,
		}
		if x, ok := sessions[p.Address]; ok {
			sp.BFD = &status.BFD{State: x.State.String(), RemoteState: x.RemoteState.String(),
				TxInterval: x.TxInterval.String(), DetectTime: x.DetectTime.String(), Since: x.Since}
			if x.LastDiag != bfd.DiagNone {
				sp.BFD.LastDownDiag = x.LastDiag.String()
			}
		}
		out.Peers = append(out.Peers, sp)
	}
	st.BGP = out
}

// Routes turns the announced BGP decisions into routes: one per
// advertisement that covers the address on this node, with that
// advertisement's prefix length and attributes (the speaker merges routes
// for the same prefix).
func Routes(cfg *config.Config, ds []agent.Decision) []bgp.Route {
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
