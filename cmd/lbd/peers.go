package main

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lbdproject/lbd/internal/agent"
	"github.com/lbdproject/lbd/internal/cluster"
	"github.com/lbdproject/lbd/internal/config"
	"github.com/lbdproject/lbd/internal/peers"
	"github.com/lbdproject/lbd/internal/watch"
)

// peerSource runs the peer detector (internal/peers) for the agent, with
// the cluster as the source of membership: it binds this node's address,
// joins the other Nodes' InternalIPs, joins again the nodes whose
// heartbeat Lease says they run lbd but that it does not see, and keeps
// this node's metadata (term, interfaces, MACs) current.
type peerSource struct {
	whole   *config.Config
	cfg     *config.Peers
	node    string
	log     *slog.Logger
	det     atomic.Pointer[peers.Detector]
	cl      atomic.Pointer[watch.Cluster]
	changed chan struct{}
}

func newPeerSource(cfg *config.Config, log *slog.Logger) *peerSource {
	return &peerSource{whole: cfg, cfg: cfg.Peers, node: cfg.Node.Name, log: log.With("component", "peers"), changed: make(chan struct{}, 1)}
}

// Peers implements agent.PeerSource.
func (p *peerSource) Peers() map[string]agent.Peer {
	d := p.det.Load()
	if d == nil {
		return nil
	}
	out := map[string]agent.Peer{}
	for name, m := range d.Alive() {
		meta, err := peers.UnmarshalNodeMeta(m.Meta)
		if err != nil {
			// Alive, but saying nothing this lbd can read (a newer
			// version): a candidate on no interface.
			out[name] = agent.Peer{Interfaces: []string{}}
			continue
		}
		macs := make([]string, 0, len(meta.MACs))
		for _, mac := range meta.MACs {
			macs = append(macs, mac.String())
		}
		ifaces := meta.Interfaces
		if meta.Silent {
			// Alive, and says it does not answer at L2: a candidate
			// on no interface, as above.
			ifaces = []string{}
		}
		out[name] = agent.Peer{Since: meta.Since, Interfaces: ifaces, MACs: macs}
	}
	return out
}

// Unheard implements agent.PeerSource.
func (p *peerSource) Unheard() time.Duration {
	if d := p.det.Load(); d != nil {
		return d.Unheard()
	}
	return 0
}

// Gone implements agent.PeerSource.
func (p *peerSource) Gone() []string {
	if d := p.det.Load(); d != nil {
		return d.Gone()
	}
	return nil
}

// WatchLeases implements agent.PeerSource.
func (p *peerSource) WatchLeases(on bool) {
	if cl := p.cl.Load(); cl != nil {
		cl.SetLeaseWatch(on)
		p.log.Debug("heartbeat Leases", "watched", on)
	}
}

// Changed implements agent.PeerSource.
func (p *peerSource) Changed() <-chan struct{} { return p.changed }

func (p *peerSource) signal() {
	select {
	case p.changed <- struct{}{}:
	default:
	}
}

// meta is this node's metadata as the agent publishes it now.
func (p *peerSource) meta(ag *agent.Agent) []byte {
	m := peers.NodeMeta{Since: ag.Term(), Interfaces: ag.Published(), Silent: ag.Silent()}
	for _, s := range ag.PublishedMACs() {
		if mac, err := net.ParseMAC(s); err == nil {
			m.MACs = append(m.MACs, mac)
		}
	}
	b, err := m.Marshal()
	for err != nil && len(m.MACs) > 0 { // too many links: publish fewer MACs
		m.MACs = m.MACs[:len(m.MACs)/2]
		b, err = m.Marshal()
	}
	return b
}

// address is where this node's detector binds: peers.address, or the
// Node's first InternalIP (IPv4 first).
func (p *peerSource) address(cl *watch.Cluster) (netip.Addr, bool) {
	if p.cfg.Address.IsValid() {
		return p.cfg.Address, true
	}
	for _, n := range cl.Nodes() {
		if n.Name != p.node || len(n.InternalIPs) == 0 {
			continue
		}
		ips := slices.Clone(n.InternalIPs)
		slices.SortStableFunc(ips, func(a, b netip.Addr) int {
			return boolCmp(!a.Is4(), !b.Is4())
		})
		return ips[0], true
	}
	return netip.Addr{}, false
}

func boolCmp(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

// Run starts the detector once the cluster says this node's address,
// keeps it joined and its metadata current, and leaves the peers when ctx
// ends (the others drop this node at once, as they see its Lease go).
func (p *peerSource) Run(ctx context.Context, cl *watch.Cluster, ag *agent.Agent) {
	p.cl.Store(cl)
	var d *peers.Detector
	warned := false
	for d == nil {
		addr, ok := p.address(cl)
		var err error
		var key []byte
		switch {
		case !ok:
			if !warned {
				p.log.Error("this node's Node has no InternalIP to bind the peers' port to; set peers.address", "node", p.node)
			}
		default:
			key, err = config.ReadPeerKey(p.cfg.KeyFile)
			if err == nil {
				d, err = peers.Start(peers.Config{
					Node: p.node, Addr: addr, Port: int(p.cfg.Port), Key: key, Meta: p.meta(ag),
					ProbeInterval: p.cfg.ProbeInterval, ProbeTimeout: p.cfg.ProbeTimeout, ForgetDead: p.cfg.HeartbeatDuration, Log: p.log,
				})
			}
			if err != nil && !warned {
				p.log.Error("cannot start the peer detector; retrying every 5s", "err", err, "file", p.cfg.KeyFile)
			}
		}
		if d != nil {
			p.log.Info("peer detector started", "addr", netip.AddrPortFrom(addr, p.cfg.Port))
			break
		}
		warned = true
		select {
		case <-ctx.Done():
			return
		case <-time.After(5 * time.Second):
		}
	}
	// The agent sees the detector once it tried to join: alone before
	// that, it would count itself out of the quorum for nothing.
	p.join(d, cl, true)
	p.det.Store(d)
	p.signal()
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-d.Changed():
				p.signal()
			}
		}
	})
	rejoin := time.NewTicker(2 * time.Second)
	defer rejoin.Stop()
	sweep := time.NewTicker(30 * time.Second)
	defer sweep.Stop()
	metaTick := time.NewTicker(200 * time.Millisecond)
	defer metaTick.Stop()
	last := p.meta(ag)
	// memberlist tells joins, deaths and updates, not that no peer has
	// answered for a while: look every 25 ms.
	quietTick := time.NewTicker(25 * time.Millisecond)
	defer quietTick.Stop()
	quiet := false
	for {
		select {
		case <-quietTick.C:
			if q := d.Unheard() > agent.QuietAfter(p.whole); q != quiet {
				quiet = q
				p.signal()
			}
		case <-ctx.Done():
			if err := d.Leave(500 * time.Millisecond); err != nil {
				p.log.Warn("could not tell the peers this node leaves; they find out by probing", "err", err)
			}
			return
		case <-rejoin.C:
			p.join(d, cl, false)
		case <-sweep.C:
			p.join(d, cl, true)
		case <-metaTick.C:
			if m := p.meta(ag); !bytes.Equal(m, last) {
				if err := d.SetMeta(m); err != nil {
					p.log.Warn("cannot spread this node's interfaces to the peers", "err", err)
					continue
				}
				last = m
			}
		}
	}
}

// join contacts the nodes that died lately (Gone), and the nodes whose
// heartbeat Lease (when watched) says they run lbd, that are not alive in
// the detector; with all, every Node with an InternalIP that is not
// (at the start, and every 30 s: a node cut off for longer than
// peers.heartbeat_duration is forgotten, and found again this way). One
// answer is enough: the rest is learnt by gossip.
func (p *peerSource) join(d *peers.Detector, cl *watch.Cluster, all bool) {
	alive := d.Alive()
	addrs := map[string][]netip.Addr{}
	for _, n := range cl.Nodes() {
		addrs[n.Name] = n.InternalIPs
	}
	var seeds []peers.Member
	add := func(name string) {
		if _, ok := alive[name]; ok || name == p.node {
			return
		}
		for _, ip := range addrs[name] {
			seeds = append(seeds, peers.Member{Name: name, Addr: netip.AddrPortFrom(ip, p.cfg.Port)})
		}
	}
	now := time.Now()
	for _, ls := range cl.NodeLeases() {
		if ls.PeerState != "" && ls.Alive(now) {
			add(ls.Node)
		}
	}
	for _, name := range d.Gone() {
		add(name)
	}
	if all {
		for name := range addrs {
			add(name)
		}
	}
	if len(seeds) == 0 {
		return
	}
	if n, err := d.Join(seeds); err != nil && n == 0 && all {
		p.log.Info("no peer answered yet (alone, or the peers' port is blocked)", "tried", len(seeds), "err", err)
	}
}

// peerPace is the Lease's pace: a heartbeat while in a quorum (or before
// the detector runs), kubernetes.liveness's pace out of one, so that a
// fallback to the Leases has fresh ones.
func peerPace(cfg *config.Config, ag *agent.Agent) func() (time.Duration, time.Duration) {
	return func() (time.Duration, time.Duration) {
		switch ag.PeerStatus().State {
		case "", cluster.PeerQuorum:
			return cfg.Peers.HeartbeatInterval, cfg.Peers.HeartbeatDuration
		}
		return cfg.Kubernetes.Liveness.RenewInterval, cfg.Kubernetes.Liveness.Duration
	}
}
