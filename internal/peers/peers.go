// Package peers is node-to-node failure detection among lbd nodes: SWIM
// with Lifeguard's refinements, through hashicorp/memberlist, tuned for a
// single L2 segment or a datacenter fabric. Each node probes one other node
// per probe interval (directly over UDP, then through others and over TCP
// before suspecting it), so the traffic per node does not grow with the
// number of nodes, and a dead node is known everywhere in well under a
// second with the default timings.
//
// The Kubernetes API stays the source of membership (which nodes exist,
// their addresses, to seed Join); this package only says which of them are
// alive, and carries each node's small metadata (its usable interfaces and
// MACs) so that it need not be written to the API. Traffic is encrypted and
// authenticated with AES-GCM under a shared key: a host on the segment
// without the key can neither join nor fake a node's liveness.
//
// It imports no Kubernetes code.
package peers

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// Config is one node's detector.
type Config struct {
	// Node is this node's name (the Kubernetes Node's).
	Node string
	// Addr is the address the detector binds and advertises: the node's
	// address on the network its peers reach it by.
	Addr netip.Addr
	// Port is the UDP and TCP port (7946 by default in lbd.yaml).
	Port int
	// Key is the AES key (16, 24 or 32 bytes) every node shares.
	Key []byte
	// Meta is this node's metadata, at most MetaLimit bytes.
	Meta []byte
	// ProbeInterval, ProbeTimeout and SuspicionMult are SWIM's timings
	// (zero: the Default ones):
	// each node probes one peer every ProbeInterval; a probe not answered
	// within ProbeTimeout goes indirect; a suspected node is declared dead
	// after SuspicionMult probe intervals (scaled by log10 of the number of
	// nodes, and longer until other nodes confirm the suspicion).
	ProbeInterval, ProbeTimeout time.Duration
	SuspicionMult               int
	// ForgetDead is how long a member that died (not one that left) is
	// still listed by Gone; default 45s.
	ForgetDead time.Duration
	// Log receives the detector's own messages.
	Log *slog.Logger
}

// The default timings: a node killed outright is dropped by the others of
// a three-node lab in 0.64 s (p50) and 0.71 s (longest of 20), measured by
// BenchmarkPeersDeadNode. The suspicion time grows with log10 of the
// number of nodes (0.3 s up to 10 nodes, 0.8 s at 500), so that a larger
// cluster, with more chances of one slow ack, is not quicker to condemn.
// Each node sends one probe (and gets one ack) per interval, whatever the
// size of the cluster.
const (
	DefaultProbeInterval = 150 * time.Millisecond
	DefaultProbeTimeout  = 75 * time.Millisecond
	DefaultSuspicionMult = 2
)

// MetaLimit is the largest Meta memberlist carries.
const MetaLimit = memberlist.MetaMaxSize

// Member is a live peer.
type Member struct {
	Name string
	Addr netip.AddrPort
	Meta []byte
}

// Detector is one node's view of which lbd nodes are alive.
type Detector struct {
	ml     *memberlist.Memberlist
	log    *slog.Logger
	notify chan struct{}

	mu         sync.Mutex
	meta       []byte
	members    map[string]Member    // alive, self included
	lastAck    atomic.Int64         // Unix ns of the last direct ack from any peer
	gone       map[string]time.Time // died (did not leave): when
	leaving    map[string]time.Time // said they leave: when
	forgetDead time.Duration
}

// Start binds the port and starts probing; the node is alone until Join.
func Start(cfg Config) (*Detector, error) {
	if cfg.Node == "" {
		return nil, errors.New("peers: no node name")
	}
	if !cfg.Addr.IsValid() {
		return nil, errors.New("peers: no address")
	}
	switch len(cfg.Key) {
	case 16, 24, 32:
	default:
		return nil, fmt.Errorf("peers: the key is %d bytes; it must be 16, 24 or 32", len(cfg.Key))
	}
	if len(cfg.Meta) > MetaLimit {
		return nil, fmt.Errorf("peers: metadata of %d bytes, more than %d", len(cfg.Meta), MetaLimit)
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.ForgetDead <= 0 {
		cfg.ForgetDead = 45 * time.Second
	}
	d := &Detector{log: cfg.Log, notify: make(chan struct{}, 1), meta: slices.Clone(cfg.Meta), members: map[string]Member{},
		gone: map[string]time.Time{}, leaving: map[string]time.Time{}, forgetDead: cfg.ForgetDead}

	mc := memberlist.DefaultLANConfig()
	mc.Name = cfg.Node
	mc.BindAddr = cfg.Addr.String()
	mc.BindPort = cfg.Port
	mc.AdvertiseAddr = cfg.Addr.String()
	mc.AdvertisePort = cfg.Port
	mc.ProbeInterval, mc.ProbeTimeout, mc.SuspicionMult = DefaultProbeInterval, DefaultProbeTimeout, DefaultSuspicionMult
	if cfg.ProbeInterval > 0 {
		mc.ProbeInterval = cfg.ProbeInterval
	}
	if cfg.ProbeTimeout > 0 {
		mc.ProbeTimeout = cfg.ProbeTimeout
	}
	if cfg.SuspicionMult > 0 {
		mc.SuspicionMult = cfg.SuspicionMult
	}
	// Gossip as fast as we probe, so that a death one node found is
	// everyone's within a round or two.
	mc.GossipInterval = mc.ProbeInterval
	mc.SecretKey = slices.Clone(cfg.Key)
	mc.GossipVerifyIncoming, mc.GossipVerifyOutgoing = true, true
	// A restarted node comes back under its own name at once, with its
	// new metadata, instead of waiting out the dead node's reclaim time.
	mc.DeadNodeReclaimTime = time.Second
	// A join to a node whose port is filtered must not hold the caller
	// for memberlist's LAN default of 10s; a state sync on a LAN takes
	// milliseconds.
	mc.TCPTimeout = 2 * time.Second
	mc.RequireNodeNames = true
	mc.Delegate = delegate{d}
	mc.Ping = delegate{d}
	d.lastAck.Store(time.Now().UnixNano())
	mc.Events = events{d}
	mc.Logger = log.New(&logBridge{log: cfg.Log}, "", 0)
	ml, err := memberlist.Create(mc)
	if err != nil {
		return nil, fmt.Errorf("peers: %s: %w", net.JoinHostPort(mc.BindAddr, strconv.Itoa(mc.BindPort)), err)
	}
	d.ml = ml
	return d, nil
}

// Join contacts the given peers (the other Nodes' names and addresses
// from the Kubernetes API) and returns how many answered. One is enough:
// the rest is learnt by gossip. A peer must answer under the name given.
func (d *Detector) Join(seeds []Member) (int, error) {
	var hosts []string
	for _, s := range seeds {
		hosts = append(hosts, s.Name+"/"+s.Addr.String())
	}
	if len(hosts) == 0 {
		return 0, nil
	}
	return d.ml.Join(hosts)
}

// Port is the port the detector bound (Config.Port, or the one the
// kernel chose for 0).
func (d *Detector) Port() int { return int(d.ml.LocalNode().Port) }

// Unheard is how long since any peer last answered one of this node's
// probes directly (since Start, if none has). A node cut off from its
// peers hears nothing; a connected one hears an ack every probe interval.
func (d *Detector) Unheard() time.Duration {
	return time.Since(time.Unix(0, d.lastAck.Load()))
}

// Gone returns the members that died (were not seen to leave) within
// Config.ForgetDead and have not come back: nodes that run lbd, for a
// quorum's count, and that the caller may try to join again.
func (d *Detector) Gone() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for name, at := range d.gone {
		if time.Since(at) > d.forgetDead {
			delete(d.gone, name)
			continue
		}
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

// Alive returns the live members, this node included.
func (d *Detector) Alive() map[string]Member {
	d.mu.Lock()
	defer d.mu.Unlock()
	return maps.Clone(d.members)
}

// Changed is signalled (coalesced) whenever a member joins, leaves, dies
// or changes its metadata.
func (d *Detector) Changed() <-chan struct{} { return d.notify }

// SetMeta changes this node's metadata and spreads it.
func (d *Detector) SetMeta(meta []byte) error {
	if len(meta) > MetaLimit {
		return fmt.Errorf("peers: metadata of %d bytes, more than %d", len(meta), MetaLimit)
	}
	d.mu.Lock()
	same := bytes.Equal(d.meta, meta)
	d.meta = slices.Clone(meta)
	d.mu.Unlock()
	if same {
		return nil
	}
	return d.ml.UpdateNode(time.Second)
}

// Leave tells the others that this node is going (they drop it at once,
// without suspecting it first), then stops.
func (d *Detector) Leave(timeout time.Duration) error {
	// Say it first, to each member (UDP, best effort: one that misses it
	// counts this node as gone, not left, for ForgetDead).
	bye := append([]byte(leaveMsg), d.ml.LocalNode().Name...)
	for _, n := range d.ml.Members() {
		if n.Name != d.ml.LocalNode().Name {
			_ = d.ml.SendBestEffort(n, bye)
		}
	}
	err := d.ml.Leave(timeout)
	return errors.Join(err, d.ml.Shutdown())
}

// Close stops without a goodbye (the others find out by probing).
func (d *Detector) Close() error { return d.ml.Shutdown() }

// Health is memberlist's awareness score: 0 when this node's own probes
// are answered in time, higher when it misses acks (its own network or
// CPU is the likelier problem, and its probe timeouts stretch).
func (d *Detector) Health() int { return d.ml.GetHealthScore() }

func (d *Detector) changed() {
	select {
	case d.notify <- struct{}{}:
	default:
	}
}

func member(n *memberlist.Node) Member {
	ip, _ := netip.AddrFromSlice(n.Addr)
	return Member{Name: n.Name, Addr: netip.AddrPortFrom(ip.Unmap(), n.Port), Meta: slices.Clone(n.Meta)}
}

// events keeps the alive set; memberlist calls it from one goroutine at
// a time.
type events struct{ d *Detector }

func (e events) NotifyJoin(n *memberlist.Node) {
	e.d.mu.Lock()
	e.d.members[n.Name] = member(n)
	delete(e.d.gone, n.Name)
	e.d.mu.Unlock()
	e.d.log.Debug("peer alive", "peer", n.Name, "addr", n.Address())
	e.d.changed()
}

func (e events) NotifyLeave(n *memberlist.Node) {
	e.d.mu.Lock()
	delete(e.d.members, n.Name)
	// memberlist does not say whether a node left or died (the Node it
	// passes keeps its first state): a node that leaves says so first
	// (Leave), and is not counted as gone.
	if at, ok := e.d.leaving[n.Name]; ok && time.Since(at) < e.d.forgetDead {
		delete(e.d.gone, n.Name)
	} else {
		e.d.gone[n.Name] = time.Now()
	}
	delete(e.d.leaving, n.Name)
	e.d.mu.Unlock()
	e.d.log.Info("peer gone", "peer", n.Name, "addr", n.Address(), "state", state(n.State))
	e.d.changed()
}

func (e events) NotifyUpdate(n *memberlist.Node) {
	e.d.mu.Lock()
	e.d.members[n.Name] = member(n)
	e.d.mu.Unlock()
	e.d.changed()
}

func state(s memberlist.NodeStateType) string {
	switch s {
	case memberlist.StateLeft:
		return "left"
	case memberlist.StateDead:
		return "dead"
	case memberlist.StateSuspect:
		return "suspect"
	default:
		return "alive"
	}
}

// delegate hands memberlist this node's metadata; lbd sends no messages
// of its own over it.
type delegate struct{ d *Detector }

func (g delegate) NodeMeta(limit int) []byte {
	g.d.mu.Lock()
	defer g.d.mu.Unlock()
	if len(g.d.meta) > limit {
		return nil
	}
	return slices.Clone(g.d.meta)
}

// AckPayload and NotifyPingComplete make delegate memberlist's
// PingDelegate: every direct ack is news from a peer.
func (delegate) AckPayload() []byte { return nil }
func (g delegate) NotifyPingComplete(*memberlist.Node, time.Duration, []byte) {
	g.d.lastAck.Store(time.Now().UnixNano())
}

// leaveMsg starts the message a node sends each member before it leaves.
const leaveMsg = "lbd-leave:"

func (g delegate) NotifyMsg(b []byte) {
	if name, ok := strings.CutPrefix(string(b), leaveMsg); ok && name != "" {
		g.d.mu.Lock()
		g.d.leaving[name] = time.Now()
		g.d.mu.Unlock()
	}
}
func (delegate) GetBroadcasts(int, int) [][]byte { return nil }
func (delegate) LocalState(bool) []byte          { return nil }
func (delegate) MergeRemoteState([]byte, bool)   {}

// logBridge turns memberlist's "[LEVEL] memberlist: text" lines into slog
// records at that level.
type logBridge struct{ log *slog.Logger }

var _ io.Writer = (*logBridge)(nil)

func (b *logBridge) Write(p []byte) (int, error) {
	line := string(bytes.TrimRight(p, "\n"))
	level := slog.LevelInfo
	for prefix, l := range map[string]slog.Level{"[DEBUG] ": slog.LevelDebug, "[INFO] ": slog.LevelInfo, "[WARN] ": slog.LevelWarn, "[ERR] ": slog.LevelError} {
		if rest, ok := strings.CutPrefix(line, prefix); ok {
			line, level = rest, l
			break
		}
	}
	line = strings.TrimPrefix(line, "memberlist: ")
	b.log.Log(context.Background(), level, line, "component", "peers")
	return len(p), nil
}
