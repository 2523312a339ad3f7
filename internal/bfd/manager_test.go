package bfd

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/net/ipv4"
)

// changes collects a Manager's changes.
type changes struct {
	mu  sync.Mutex
	all []Change
}

func (c *changes) add(ch Change) { c.mu.Lock(); c.all = append(c.all, ch); c.mu.Unlock() }
func (c *changes) list() []Change {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Change(nil), c.all...)
}

func startManager(t *testing.T, port, peerPort int) (*Manager, *changes, *prometheus.Registry) {
	t.Helper()
	ch := &changes{}
	reg := prometheus.NewRegistry()
	m, err := New(slog.New(slog.NewTextHandler(io.Discard, nil)), reg, ch.add)
	if err != nil {
		t.Fatal(err)
	}
	m.port, m.peerPort = port, peerPort
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { m.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return m, ch, reg
}

func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(d); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
	}
}

func state(m *Manager) State {
	st := m.Status()
	if len(st) != 1 {
		return AdminDown
	}
	return st[0].State
}

// TestManagersOnLoopback: two Managers, on 127.0.0.1 and 127.0.0.2 with
// ports of their own, bring a session up over real UDP sockets (TTL 255),
// negotiate the intervals, retime without going down, and the one that
// stays sees AdminDown when the other shuts down, as a diagnostic 3 and
// not a detection timeout.
func TestManagersOnLoopback(t *testing.T) {
	a, ach, areg := startManager(t, 47841, 47842)
	b, bch, _ := startManager(t, 47842, 47841)
	ctx := context.Background()
	tm := Timers{DesiredMinTx: 50 * time.Millisecond, RequiredMinRx: 50 * time.Millisecond, DetectMult: 3}
	if err := a.Set(ctx, []Peer{{Name: "b", Addr: netip.MustParseAddr("127.0.0.2"), Source: netip.MustParseAddr("127.0.0.1"), Timers: tm}}); err != nil {
		t.Fatal(err)
	}
	if err := b.Set(ctx, []Peer{{Name: "a", Addr: netip.MustParseAddr("127.0.0.1"), Source: netip.MustParseAddr("127.0.0.2"), Timers: tm}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "both Up", 5*time.Second, func() bool { return state(a) == Up && state(b) == Up })
	waitFor(t, "the 50ms interval", 2*time.Second, func() bool { return a.Status()[0].TxInterval == 50*time.Millisecond })
	if got := testutil.ToFloat64(a.up.WithLabelValues("b")); got != 1 {
		t.Errorf("lbd_bfd_session_up = %v", got)
	}

	// New timers: a Poll sequence, the session stays Up.
	slower := Timers{DesiredMinTx: 200 * time.Millisecond, RequiredMinRx: 200 * time.Millisecond, DetectMult: 5}
	if err := a.Set(ctx, []Peer{{Name: "b", Addr: netip.MustParseAddr("127.0.0.2"), Source: netip.MustParseAddr("127.0.0.1"), Timers: slower}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the new intervals", 3*time.Second, func() bool {
		s := b.Status()[0]
		return s.DetectTime == time.Second // 5 x 200ms
	})
	time.Sleep(500 * time.Millisecond)
	if n := len(ach.list()); n != 1 || state(a) != Up || state(b) != Up {
		t.Errorf("retiming took the session down: %v", ach.list())
	}

	// a shuts down: b hears AdminDown.
	if err := a.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "b down", 2*time.Second, func() bool { return state(b) == Down })
	got := bch.list()
	if len(got) != 2 || !got[0].Up || got[1].Up || got[1].Diag != DiagNeighborDown {
		t.Errorf("b's changes: %+v, want up, then down with neighbor_signaled_session_down", got)
	}
	if n, err := testutil.GatherAndCount(areg, "lbd_bfd_session_down_total"); err != nil || n == 0 {
		t.Errorf("lbd_bfd_session_down_total: %d series, %v", n, err)
	}
}

// TestManagersOnLoopbackIPv6: the same over IPv6 (::1, ports of their
// own): hop limit 255 sent and checked, the session comes up.
func TestManagersOnLoopbackIPv6(t *testing.T) {
	a, _, _ := startManager(t, 47861, 47862)
	b, _, _ := startManager(t, 47862, 47861)
	ctx := context.Background()
	tm := Timers{DesiredMinTx: 50 * time.Millisecond, RequiredMinRx: 50 * time.Millisecond, DetectMult: 3}
	lo := netip.MustParseAddr("::1")
	for _, m := range []*Manager{a, b} {
		if err := m.Set(ctx, []Peer{{Name: "peer", Addr: lo, Source: lo, Timers: tm}}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "both Up over IPv6", 5*time.Second, func() bool { return state(a) == Up && state(b) == Up })
	if n := testutil.ToFloat64(b.dropped.WithLabelValues("ttl")); n != 0 {
		t.Errorf("%v packets dropped for their hop limit", n)
	}
}

// TestGTSM: a packet that arrives with TTL below 255 crossed a router and
// is dropped (RFC 5881 §5); the same packet with TTL 255 moves the session.
func TestGTSM(t *testing.T) {
	m, _, _ := startManager(t, 47871, 47872)
	ctx := context.Background()
	tm := Timers{DesiredMinTx: 50 * time.Millisecond, RequiredMinRx: 50 * time.Millisecond, DetectMult: 3}
	if err := m.Set(ctx, []Peer{{Name: "r", Addr: netip.MustParseAddr("127.0.0.2"), Source: netip.MustParseAddr("127.0.0.1"), Timers: tm}}); err != nil {
		t.Fatal(err)
	}
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2), Port: 49999})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p := Packet{State: Down, DetectMult: 3, MyDisc: 77, DesiredMinTx: time.Second, RequiredMinRx: 50 * time.Millisecond}
	pkt := p.Marshal()
	to := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 47871}
	send := func(ttl int) {
		t.Helper()
		if err := ipv4.NewConn(c).SetTTL(ttl); err != nil {
			t.Fatal(err)
		}
		if _, err := c.WriteToUDP(pkt, to); err != nil {
			t.Fatal(err)
		}
	}
	send(64)
	waitFor(t, "the TTL 64 packet dropped", 2*time.Second, func() bool { return testutil.ToFloat64(m.dropped.WithLabelValues("ttl")) == 1 })
	if s := state(m); s != Down {
		t.Fatalf("a TTL 64 packet moved the session to %v", s)
	}
	send(255)
	waitFor(t, "the TTL 255 packet taken (Down → Init)", 2*time.Second, func() bool { return state(m) == Init })
}
