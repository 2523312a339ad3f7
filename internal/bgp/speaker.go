package bgp

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/server"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/lbdproject/lbd/internal/config"
)

// Timers GoBGP is given besides the configured ones.
const (
	// idleHoldAfterReset is how long a peer stays Idle after the Speaker
	// resets it (GoBGP's default is 30s).
	idleHoldAfterReset = 1
	// deferralSeconds bounds how long a restarting Speaker waits for
	// End-of-RIB from its peers before advertising (GoBGP's default is
	// 360s). Routers answer the Restart bit with End-of-RIB at once, so
	// this only matters for a peer that never sends one.
	deferralSeconds = 2
	// withdrawWait is how long Close waits for withdrawals to be sent
	// before it ends the sessions.
	withdrawWait = 2 * time.Second
)

// Config is what the Speaker needs to know about this node's BGP setup.
type Config struct {
	ASN uint32
	// RouterID is the BGP identifier; the zero Addr derives it from this
	// node's address towards its first IPv4 peer (see RouterIDFor).
	RouterID netip.Addr
	// Peers are the peers this node has sessions with (after node
	// selectors).
	Peers []config.Peer
}

// Speaker is an embedded GoBGP speaker. Build it with New; Apply starts
// it.
type Speaker struct {
	log *slog.Logger
	m   *metrics

	mu     sync.Mutex
	srv    *server.BgpServer
	global globalKey // what StartBgp was given; zero when stopped
	peers  map[netip.Addr]*peerEntry
	tags   map[string]uint32 // peer name -> tag number, stable for the Speaker's life
	routes map[netip.Prefix]Route
	paths  map[netip.Prefix]installed
	closed bool
	// opened is set once the Speaker has added its first peers: those
	// open with the Restart and Forwarding bits (RFC 4724), whether the
	// first Configure had them or came with none (the routes set first).
	opened  bool
	cancel  context.CancelFunc // stops the event watcher
	watchWG sync.WaitGroup

	states *peerStates
}

type globalKey struct {
	asn      uint32
	routerID netip.Addr
}

// session is everything about a peer that GoBGP only applies by
// re-establishing the session. Two equal sessions mean nothing to do.
type session struct {
	name         string
	addr         netip.Addr
	asn          uint32
	port         uint16
	hold, ka     time.Duration
	retry        time.Duration
	source       netip.Addr
	multihop     int
	passwordFile string
	passwordSum  [32]byte // of the password, to notice a changed file; never shown
	passwordFP   string   // config.Fingerprint of the password, for lbd status
	gr           bool
	restartTime  time.Duration
}

type peerEntry struct {
	s session
}

// New builds a Speaker; it starts nothing. reg may be nil.
func New(log *slog.Logger, reg prometheus.Registerer) (*Speaker, error) {
	s := &Speaker{
		log:    log,
		peers:  map[netip.Addr]*peerEntry{},
		tags:   map[string]uint32{},
		routes: map[netip.Prefix]Route{},
		paths:  map[netip.Prefix]installed{},
		states: newPeerStates(),
	}
	s.m = newMetrics(s)
	if reg != nil {
		if err := s.m.register(reg); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Apply makes the Speaker's sessions match cfg. The first call starts the
// speaker. Only peers whose settings changed are reset; a change of the
// local AS or router ID restarts every session. On error nothing is
// changed if the error is in cfg (a password file, the router ID), and
// the Speaker keeps what it had.
func (s *Speaker) Configure(ctx context.Context, cfg Config) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("bgp: speaker is closed")
	}
	want, passwords, err := sessions(cfg.Peers)
	if err != nil {
		return err
	}
	g := globalKey{asn: cfg.ASN, routerID: cfg.RouterID}
	if !g.routerID.IsValid() {
		if g.routerID, err = RouterIDFor(cfg.Peers); err != nil {
			return err
		}
	}
	first := s.srv == nil
	if first {
		s.srv = server.NewBgpServer(server.LoggerOption(&gobgpLogger{log: s.log, states: s.states}))
		go s.srv.Serve() // GoBGP offers no way to end Serve; it idles after StopBgp.
		wctx, cancel := context.WithCancel(context.Background())
		s.cancel = cancel
		if err := s.watch(wctx); err != nil {
			return err
		}
	}
	// The first peers this process opens are a restart for the routers:
	// with the Forwarding bit off they would flush this node's stale
	// routes before its new UPDATEs arrive.
	restarting := !s.opened
	if s.global != g {
		if s.global != (globalKey{}) {
			s.log.Info("local AS or router ID changed, restarting every session",
				"asn", g.asn, "router_id", g.routerID)
			if err := s.srv.StopBgp(ctx, &api.StopBgpRequest{}); err != nil {
				return fmt.Errorf("bgp: stop: %w", err)
			}
			s.peers = map[netip.Addr]*peerEntry{}
			s.paths = map[netip.Prefix]installed{}
		}
		err := s.srv.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{
			Asn:        g.asn,
			RouterId:   g.routerID.String(),
			ListenPort: -1, // lbd dials; routers are passive
		}})
		if err != nil {
			return fmt.Errorf("bgp: start with AS %d, router ID %s: %w", g.asn, g.routerID, err)
		}
		s.global = g
		if err := s.setPolicies(ctx, want); err != nil {
			return err
		}
		if err := s.syncPaths(ctx); err != nil {
			return err
		}
		s.log.Info("speaker started", "asn", g.asn, "router_id", g.routerID, "peers", len(want))
	}

	var errs []error
	// Peers that went away or changed: delete first (a changed peer is
	// deleted and added again: GoBGP applies timers, passwords and
	// capabilities only with a new OPEN).
	for addr, e := range s.peers {
		if w, ok := want[addr]; ok && w == e.s {
			continue
		}
		if err := s.srv.DeletePeer(ctx, &api.DeletePeerRequest{Address: addr.String()}); err != nil {
			errs = append(errs, fmt.Errorf("bgp: remove peer %s (%s): %w", e.s.name, addr, err))
			continue
		}
		delete(s.peers, addr)
		if _, ok := want[addr]; ok {
			s.log.Info("peer settings changed, resetting its session", "peer", e.s.name, "ip", addr)
		} else {
			s.log.Info("peer removed", "peer", e.s.name, "ip", addr)
			s.states.forget(addr)
		}
	}
	if err := s.setPolicies(ctx, want); err != nil {
		errs = append(errs, err)
	}
	for addr, w := range want {
		if _, ok := s.peers[addr]; ok {
			continue
		}
		s.states.configure(s.global, w, passwords[addr])
		if err := s.srv.AddPeer(ctx, &api.AddPeerRequest{Peer: apiPeer(w, passwords[addr], restarting)}); err != nil {
			errs = append(errs, fmt.Errorf("bgp: add peer %s (%s): %w", w.name, addr, err))
			continue
		}
		s.peers[addr] = &peerEntry{s: w}
		s.opened = true
	}
	return errors.Join(errs...)
}

// sessions turns the configured peers into sessions, reading passwords.
func sessions(peers []config.Peer) (map[netip.Addr]session, map[netip.Addr]string, error) {
	want := make(map[netip.Addr]session, len(peers))
	passwords := map[netip.Addr]string{}
	var errs []error
	for _, p := range peers {
		w := session{
			name: p.Name, addr: p.Address, asn: p.ASN, port: p.Port,
			hold: p.HoldTime, ka: p.Keepalive, retry: p.ConnectRetry,
			source: p.SourceAddress, multihop: p.EBGPMultihop,
			passwordFile: p.PasswordFile,
			gr:           p.GracefulRestart.IsEnabled(), restartTime: p.GracefulRestart.RestartTime,
		}
		if w.port == 0 {
			w.port = config.DefaultBGPPort
		}
		if p.PasswordFile != "" {
			pw, err := config.ReadPassword(p.PasswordFile)
			if err != nil {
				errs = append(errs, fmt.Errorf("bgp peer %s: password_file %s %w", p.Name, p.PasswordFile, err))
				continue
			}
			passwords[p.Address] = pw
			w.passwordSum = sha256.Sum256([]byte(pw))
			w.passwordFP = config.Fingerprint(pw)
		}
		want[p.Address] = w
	}
	return want, passwords, errors.Join(errs...)
}

func family(a netip.Addr) *api.Family {
	if a.Is4() {
		return &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}
	}
	return &api.Family{Afi: api.Family_AFI_IP6, Safi: api.Family_SAFI_UNICAST}
}

func secs(d time.Duration) uint64 { return uint64(d / time.Second) }

// apiPeer is the GoBGP form of a session. A peer carries the routes of its
// own address family: IPv4 routes to IPv4 peers, IPv6 to IPv6.
func apiPeer(w session, password string, restarting bool) *api.Peer {
	afi := &api.AfiSafi{Config: &api.AfiSafiConfig{Family: family(w.addr), Enabled: true}}
	p := &api.Peer{
		Conf: &api.PeerConf{
			NeighborAddress: w.addr.String(),
			PeerAsn:         w.asn,
			AuthPassword:    password,
			Description:     w.name,
		},
		Timers: &api.Timers{Config: &api.TimersConfig{
			ConnectRetry:           secs(w.retry),
			HoldTime:               secs(w.hold),
			KeepaliveInterval:      secs(w.ka),
			IdleHoldTimeAfterReset: idleHoldAfterReset,
		}},
		Transport: &api.Transport{RemotePort: uint32(w.port)},
		AfiSafis:  []*api.AfiSafi{afi},
	}
	if w.source.IsValid() {
		p.Transport.LocalAddress = w.source.String()
	}
	if w.multihop > 0 {
		p.EbgpMultihop = &api.EbgpMultihop{Enabled: true, MultihopTtl: uint32(w.multihop)}
	}
	if w.gr {
		afi.MpGracefulRestart = &api.MpGracefulRestart{Config: &api.MpGracefulRestartConfig{Enabled: true}}
		p.GracefulRestart = &api.GracefulRestart{
			Enabled:         true,
			RestartTime:     uint32(secs(w.restartTime)),
			DeferralTime:    deferralSeconds,
			LocalRestarting: restarting,
		}
	}
	return p
}

// RouterIDFor is the default router ID: this node's source address
// towards the first IPv4 peer (its source_address if set), else the first
// global IPv4 address of this node.
func RouterIDFor(peers []config.Peer) (netip.Addr, error) {
	for _, p := range peers {
		if p.SourceAddress.Is4() {
			return p.SourceAddress, nil
		}
		if !p.Address.Is4() {
			continue
		}
		port := p.Port
		if port == 0 {
			port = config.DefaultBGPPort
		}
		// A UDP "connection" sends nothing; it only asks the kernel for
		// the route and its source address.
		c, err := net.Dial("udp4", net.JoinHostPort(p.Address.String(), strconv.Itoa(int(port))))
		if err != nil {
			continue
		}
		a := c.LocalAddr().(*net.UDPAddr).AddrPort().Addr().Unmap()
		c.Close()
		if a.Is4() && !a.IsUnspecified() {
			return a, nil
		}
	}
	addrs, err := net.InterfaceAddrs()
	if err == nil {
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok {
				if ip, ok := netip.AddrFromSlice(n.IP.To4()); ok && ip.IsGlobalUnicast() {
					return ip, nil
				}
			}
		}
	}
	return netip.Addr{}, errors.New("bgp.router_id: no IPv4 address to use as router ID (no route to an IPv4 peer, no IPv4 address on this node); set bgp.router_id")
}

// Close withdraws every route, waits briefly for the withdrawals to be
// sent (at most until ctx ends), and ends every session with a Cease
// NOTIFICATION. It is idempotent.
func (s *Speaker) Close(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if s.srv == nil {
		return nil
	}
	var errs []error
	if len(s.paths) > 0 {
		if err := s.withdrawAll(ctx); err != nil {
			errs = append(errs, err)
		}
		s.waitWithdrawn(ctx, withdrawWait)
	}
	if err := s.srv.StopBgp(ctx, &api.StopBgpRequest{}); err != nil {
		errs = append(errs, fmt.Errorf("bgp: stop: %w", err))
	}
	s.global = globalKey{}
	s.cancel()
	s.watchWG.Wait()
	s.states.probes.Wait()
	for addr := range s.peers {
		s.states.forget(addr)
	}
	s.peers = map[netip.Addr]*peerEntry{}
	return errors.Join(errs...)
}

// Abandon ends the Speaker for a restart of the process: it withdraws
// nothing and sends no NOTIFICATION, and the caller is expected to exit.
// The kernel then closes the sessions' connections, and routers with
// graceful restart keep the routes (stale) until the next process
// announces them again and sends End-of-RIB. Close after Abandon does
// nothing.
func (s *Speaker) Abandon() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	if s.cancel != nil {
		s.cancel()
	}
	s.log.Info("leaving the routes to the routers' graceful restart", "routes", len(s.paths))
}

// waitWithdrawn waits until no Established peer has prefixes advertised,
// or for at most d.
func (s *Speaker) waitWithdrawn(ctx context.Context, d time.Duration) {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		left := uint64(0)
		_ = s.srv.ListPeer(ctx, &api.ListPeerRequest{EnableAdvertised: true}, func(p *api.Peer) {
			if p.State.GetSessionState() != api.PeerState_ESTABLISHED {
				return
			}
			for _, a := range p.AfiSafis {
				left += a.GetState().GetAdvertised()
			}
		})
		if left == 0 {
			// Advertised counts the Adj-RIB-Out; give the writer a
			// moment to put the last UPDATE on the wire.
			time.Sleep(100 * time.Millisecond)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.log.Warn("withdrawals not confirmed before closing sessions", "waited", d)
}

// Preview says, without changing anything, what Configure(cfg) would do to
// the sessions: one line per peer added, removed or reset (and why), or
// every session restarted when the local AS or router ID changes.
func (s *Speaker) Preview(cfg Config) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	want, _, err := sessions(cfg.Peers)
	if err != nil {
		return nil, err
	}
	g := globalKey{asn: cfg.ASN, routerID: cfg.RouterID}
	if !g.routerID.IsValid() {
		if g.routerID, err = RouterIDFor(cfg.Peers); err != nil {
			return nil, err
		}
	}
	var out []string
	if s.global != (globalKey{}) && s.global != g {
		return []string{fmt.Sprintf("the local AS or router ID changes (AS %d, %s): every session restarts", g.asn, g.routerID)}, nil
	}
	for addr, e := range s.peers {
		w, ok := want[addr]
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("peer %s (%s) removed: its session ends", e.s.name, addr))
		case w != e.s:
			why := "settings changed"
			if w.passwordSum != e.s.passwordSum && w.withoutPassword() == e.s.withoutPassword() {
				why = "password changed"
			}
			out = append(out, fmt.Sprintf("peer %s (%s): its session is reset (%s)", e.s.name, addr, why))
		}
	}
	for addr, w := range want {
		if _, ok := s.peers[addr]; !ok {
			out = append(out, fmt.Sprintf("peer %s (%s) added: a session opens", w.name, addr))
		}
	}
	slices.Sort(out)
	return out, nil
}

func (w session) withoutPassword() session {
	w.passwordSum, w.passwordFP = [32]byte{}, ""
	return w
}

// ResetPeer ends the session with the peer at addr at once (BFD said the
// path is down): GoBGP would otherwise keep it until the hold time, and
// then wait before dialling again. The peer is dialled again after
// idleHoldAfterReset, so the session returns as soon as the router does.
func (s *Speaker) ResetPeer(ctx context.Context, addr netip.Addr) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.srv == nil || s.peers[addr] == nil {
		return nil
	}
	if err := s.srv.ResetPeer(ctx, &api.ResetPeerRequest{Address: addr.String(), Communication: "BFD session down"}); err != nil {
		return fmt.Errorf("bgp: reset peer %s: %w", addr, err)
	}
	return nil
}
