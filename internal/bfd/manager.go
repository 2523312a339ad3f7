package bfd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lbdproject/lbd/internal/event"
)

// Peer is one session to run.
type Peer struct {
	// Name names the session in logs, metrics and status (the BGP peer's).
	Name string
	Addr netip.Addr
	// Source, if valid, is the address to send from.
	Source netip.Addr
	Timers Timers
}

// Change is a session going Up or leaving Up.
type Change struct {
	Peer string
	Addr netip.Addr
	Up   bool
	// Diag says why it went down.
	Diag Diag
	// RemoteAdminDown: the peer took its side down on purpose (RFC 5882
	// §3.2: not a failure of the path).
	RemoteAdminDown bool
}

// Status is one session as `lbd status` shows it.
type Status struct {
	Peer        string
	Addr        netip.Addr
	State       State
	RemoteState State
	// TxInterval is the negotiated interval between this system's
	// packets (before jitter); DetectTime how long the peer may be
	// silent before the session goes down.
	TxInterval, DetectTime time.Duration
	// Since is when the state last changed; LastDiag why it last went
	// down (DiagNone: never).
	Since    time.Time
	LastDiag Diag
}

// Manager runs BFD sessions: the desired set comes through Set, state
// changes go to the callback. One goroutine (Run) owns the sessions and
// sockets; the listeners are opened for a family when a session of that
// family exists, so a node without BFD peers binds nothing.
type Manager struct {
	log      *slog.Logger
	onChange func(Change)

	cmds    chan func()
	in      chan received
	changes chan Change
	done    chan struct{}
	wg      sync.WaitGroup

	statusMu sync.Mutex
	status   []Status

	up      *prometheus.GaugeVec
	downs   *prometheus.CounterVec
	dropped *prometheus.CounterVec

	// Owned by Run's goroutine.
	sessions map[netip.Addr]*entry
	byDisc   map[uint32]*entry
	rx       map[bool]*listener // by IPv6
	rng      *rand.Rand
	// port is where it listens, peerPort where it sends: Port, but for
	// two Managers on one host in tests.
	port, peerPort int
}

type entry struct {
	peer  Peer
	s     *session
	tx    *sender
	since time.Time
}

// New builds a Manager whose changes go to onChange (called from one
// goroutine, in order); reg may be nil. Run starts it.
func New(log *slog.Logger, reg prometheus.Registerer, onChange func(Change)) (*Manager, error) {
	m := &Manager{
		log: log, onChange: onChange,
		cmds: make(chan func()), in: make(chan received, 256), changes: make(chan Change, 64),
		done: make(chan struct{}), sessions: map[netip.Addr]*entry{}, byDisc: map[uint32]*entry{},
		rx: map[bool]*listener{}, rng: rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
		port: Port, peerPort: Port,
		up: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "lbd_bfd_session_up",
			Help: "1 while the BFD session with the BGP peer is Up.",
		}, []string{"peer"}),
		downs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lbd_bfd_session_down_total",
			Help: "BFD sessions that left Up, by peer and diagnostic.",
		}, []string{"peer", "diag"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lbd_bfd_packets_dropped_total",
			Help: "BFD packets received and discarded, by reason (ttl, malformed, unknown_session).",
		}, []string{"reason"}),
	}
	for _, r := range []string{"ttl", "malformed", "unknown_session"} {
		m.dropped.WithLabelValues(r)
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.up, m.downs, m.dropped} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("bfd metrics: %w", err)
			}
		}
	}
	return m, nil
}

// Run runs the sessions until ctx ends, then closes every socket without
// a word to the peers (Close says AdminDown first).
func (m *Manager) Run(ctx context.Context) {
	m.wg.Go(func() {
		for c := range m.changes {
			if m.onChange != nil {
				m.onChange(c)
			}
		}
	})
	defer m.wg.Wait()
	defer close(m.changes)
	defer close(m.done)
	defer m.closeSockets()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		m.arm(timer, time.Now())
		select {
		case <-ctx.Done():
			return
		case c := <-m.cmds:
			c()
		case r := <-m.in:
			m.handle(r, time.Now())
		case <-timer.C:
		}
		m.tick(time.Now())
		m.publish()
	}
}

// do runs f on Run's goroutine and waits for it.
func (m *Manager) do(ctx context.Context, f func()) error {
	done := make(chan struct{})
	select {
	// The status shows what the command did by the time it returns.
	case m.cmds <- func() { f(); m.publish(); close(done) }:
	case <-m.done:
		return errors.New("bfd: stopped")
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Set makes the sessions those of peers: new ones start Down, removed ones
// end (AdminDown first), changed timers go through a Poll sequence
// without taking the session down.
func (m *Manager) Set(ctx context.Context, peers []Peer) error {
	var err error
	if derr := m.do(ctx, func() { err = m.set(peers, time.Now()) }); derr != nil {
		return derr
	}
	return err
}

func (m *Manager) set(peers []Peer, now time.Time) error {
	want := map[netip.Addr]Peer{}
	for _, p := range peers {
		want[p.Addr] = p
	}
	for addr, e := range m.sessions {
		if p, ok := want[addr]; !ok || p.Source != e.peer.Source {
			m.remove(e, now)
		}
	}
	var errs []error
	for addr, p := range want {
		if e, ok := m.sessions[addr]; ok {
			e.peer.Name = p.Name
			if e.s.retime(p.Timers) {
				m.send(e, now)
			}
			continue
		}
		if err := m.add(p, nil, now); err != nil {
			errs = append(errs, err)
		}
	}
	// Listeners only for the families in use.
	for v6, l := range m.rx {
		if !slices.ContainsFunc(peers, func(p Peer) bool { return p.Addr.Is6() == v6 }) {
			l.conn.Close()
			delete(m.rx, v6)
		}
	}
	return errors.Join(errs...)
}

// add starts a session with p: new and Down, or, given sv, carried on
// from the previous process.
func (m *Manager) add(p Peer, sv *Saved, now time.Time) error {
	v6 := p.Addr.Is6()
	if m.rx[v6] == nil {
		l, err := listen(v6, m.port)
		if err != nil {
			return err
		}
		m.rx[v6] = l
		m.wg.Go(func() { m.read(l) })
	}
	port := 0
	if sv != nil {
		port = sv.SourcePort
	}
	tx, err := newSender(p.Addr, p.Source, m.peerPort, port, m.rng)
	if err != nil {
		return err
	}
	for _, d := range Diags {
		m.downs.WithLabelValues(p.Name, d.String())
	}
	if sv != nil && sv.LocalDisc != 0 && m.byDisc[sv.LocalDisc] == nil {
		e := &entry{peer: p, tx: tx, since: sv.UpSince, s: resumeSession(*sv, p.Timers, m.rng.Float64, now)}
		m.sessions[p.Addr], m.byDisc[sv.LocalDisc] = e, e
		m.up.WithLabelValues(p.Name).Set(1)
		m.send(e, now)
		return nil
	}
	disc := m.rng.Uint32()
	for disc == 0 || m.byDisc[disc] != nil {
		disc = m.rng.Uint32()
	}
	e := &entry{peer: p, tx: tx, since: now,
		s: newSession(p.Timers, disc, m.rng.Float64, now)}
	m.sessions[p.Addr], m.byDisc[disc] = e, e
	m.up.WithLabelValues(p.Name).Set(0)
	m.log.Info("BFD session started", "peer", p.Name, "ip", p.Addr)
	return nil
}

// Resume carries on the sessions of h (the previous process's, handed
// over on a restart) for which peers still ask, Up, before anything else
// of lbd is running: the routers must hear from this node within their
// detection time. It returns how many it resumed. Set later makes the
// sessions those of this node's peers, as usual.
func (m *Manager) Resume(ctx context.Context, h Handoff, peers []Peer) (int, error) {
	byAddr := map[netip.Addr]Peer{}
	for _, p := range peers {
		byAddr[p.Addr] = p
	}
	n := 0
	var errs []error
	err := m.do(ctx, func() {
		now := time.Now()
		for _, sv := range h.Sessions {
			p, ok := byAddr[sv.Addr]
			if !ok || p.Source != sv.Source || m.sessions[sv.Addr] != nil {
				continue
			}
			if err := m.add(p, &sv, now); err != nil {
				errs = append(errs, err)
				continue
			}
			n++
			m.log.Info("BFD session resumed from the previous process", "peer", p.Name, "ip", p.Addr,
				"gap", now.Sub(h.At).Round(time.Millisecond))
		}
	})
	return n, errors.Join(err, errors.Join(errs...))
}

// Prune ends the sessions peers no longer ask for and retimes the others,
// starting none: for the sessions resumed before the peers are known.
func (m *Manager) Prune(ctx context.Context, peers []Peer) error {
	var err error
	if derr := m.do(ctx, func() {
		now := time.Now()
		var keep []Peer
		for _, p := range peers {
			if e := m.sessions[p.Addr]; e != nil && e.peer.Source == p.Source {
				keep = append(keep, p)
			}
		}
		err = m.set(keep, now)
	}); derr != nil {
		return derr
	}
	return err
}

// HandOver stops every session without a word to the peers and returns
// the Up ones for the next process (a restart); Run goes on until its
// context ends.
func (m *Manager) HandOver(ctx context.Context) (Handoff, error) {
	var h Handoff
	err := m.do(ctx, func() {
		h.At = time.Now()
		for _, e := range m.sessions {
			if sv, ok := e.save(); ok {
				h.Sessions = append(h.Sessions, sv)
			}
			e.tx.close()
			delete(m.sessions, e.peer.Addr)
			delete(m.byDisc, e.s.localDisc)
		}
		for v6, l := range m.rx {
			l.conn.Close()
			delete(m.rx, v6)
		}
	})
	slices.SortFunc(h.Sessions, func(a, b Saved) int { return strings.Compare(a.Peer, b.Peer) })
	return h, err
}

func (m *Manager) remove(e *entry, now time.Time) {
	e.s.adminDown(now)
	for range 3 {
		m.send(e, now)
	}
	if e.s.state == Up {
		m.changed(e, Up)
	}
	e.tx.close()
	delete(m.sessions, e.peer.Addr)
	delete(m.byDisc, e.s.localDisc)
	m.up.DeleteLabelValues(e.peer.Name)
	m.log.Info("BFD session removed", "peer", e.peer.Name, "ip", e.peer.Addr)
}

// read passes every packet of l to Run's goroutine until l is closed.
func (m *Manager) read(l *listener) {
	buf := make([]byte, 1500)
	for {
		r, err := l.read(buf)
		if err != nil {
			return
		}
		select {
		case m.in <- r:
		case <-m.done:
			return
		}
	}
}

// handle takes one received packet (§6.8.6).
func (m *Manager) handle(r received, now time.Time) {
	if r.ttl != ttl {
		m.dropped.WithLabelValues("ttl").Inc()
		return
	}
	p, err := Unmarshal(r.data)
	if err != nil {
		m.dropped.WithLabelValues("malformed").Inc()
		return
	}
	var e *entry
	if p.YourDisc != 0 {
		e = m.byDisc[p.YourDisc]
		if e != nil && e.peer.Addr != r.from {
			e = nil
		}
	} else {
		e = m.sessions[r.from]
	}
	if e == nil {
		m.dropped.WithLabelValues("unknown_session").Inc()
		return
	}
	before := e.s.state
	if e.s.receive(p, now) {
		m.send(e, now)
	}
	m.changed(e, before)
}

// tick handles the timers: detection times that ran out, packets due.
func (m *Manager) tick(now time.Time) {
	for _, e := range m.sessions {
		before := e.s.state
		e.s.expire(now)
		m.changed(e, before)
		if !e.s.nextTx.IsZero() && !now.Before(e.s.nextTx) {
			m.send(e, now)
		}
	}
}

func (m *Manager) send(e *entry, now time.Time) {
	if err := e.tx.send(e.s.packet(now)); err != nil {
		m.log.Debug("BFD send failed", "peer", e.peer.Name, "ip", e.peer.Addr, "err", err)
	}
}

// changed reports a session that went Up or left it.
func (m *Manager) changed(e *entry, before State) {
	after := e.s.state
	if before == after {
		return
	}
	e.since = time.Now()
	switch {
	case after == Up:
		m.up.WithLabelValues(e.peer.Name).Set(1)
		m.log.Info("BFD session up", event.Attr(event.BFDUp), "peer", e.peer.Name, "ip", e.peer.Addr,
			"tx", e.s.txInterval(), "detect", e.s.detectTime())
		m.changes <- Change{Peer: e.peer.Name, Addr: e.peer.Addr, Up: true}
	case before == Up:
		diag := e.s.lastDiag
		if after == AdminDown {
			diag = DiagAdminDown
		}
		m.up.WithLabelValues(e.peer.Name).Set(0)
		m.downs.WithLabelValues(e.peer.Name, diag.String()).Inc()
		m.log.Warn("BFD session down", event.Attr(event.BFDDown), "peer", e.peer.Name, "ip", e.peer.Addr,
			"diag", diag.String())
		m.changes <- Change{Peer: e.peer.Name, Addr: e.peer.Addr, Diag: diag, RemoteAdminDown: e.s.remoteState == AdminDown}
	}
}

// arm sets timer to the earliest time a session wants attention.
func (m *Manager) arm(timer *time.Timer, now time.Time) {
	next := now.Add(time.Hour)
	for _, e := range m.sessions {
		if n := e.s.next(); !n.IsZero() && n.Before(next) {
			next = n
		}
	}
	timer.Reset(max(next.Sub(now), 0))
}

func (m *Manager) publish() {
	out := make([]Status, 0, len(m.sessions))
	for _, e := range m.sessions {
		out = append(out, Status{Peer: e.peer.Name, Addr: e.peer.Addr, State: e.s.state, RemoteState: e.s.remoteState,
			TxInterval: e.s.txInterval(), DetectTime: e.s.detectTime(), Since: e.since, LastDiag: e.s.lastDiag})
	}
	slices.SortFunc(out, func(a, b Status) int { return strings.Compare(a.Peer, b.Peer) })
	m.statusMu.Lock()
	m.status = out
	m.statusMu.Unlock()
}

// Status returns every session, sorted by peer.
func (m *Manager) Status() []Status {
	m.statusMu.Lock()
	defer m.statusMu.Unlock()
	return slices.Clone(m.status)
}

// Shutdown takes every session administratively down, telling the peers
// (three AdminDown packets each, RFC 5882 §3.2: not a failure), and
// removes them; Run goes on until its context ends.
func (m *Manager) Shutdown(ctx context.Context) error {
	return m.do(ctx, func() {
		now := time.Now()
		for _, e := range m.sessions {
			m.remove(e, now)
		}
		for v6, l := range m.rx {
			l.conn.Close()
			delete(m.rx, v6)
		}
	})
}

func (m *Manager) closeSockets() {
	for _, e := range m.sessions {
		e.tx.close()
	}
	for _, l := range m.rx {
		l.conn.Close()
	}
}
