package bgp

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/server"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/lbdproject/lbd/internal/config"
)

// router is a second, independent GoBGP server standing in for the
// top-of-rack router: passive, listening on addr:port, accepting the
// speaker at 127.0.0.1.
type router struct {
	srv  *server.BgpServer
	addr string
	port uint16
}

func freePort(t *testing.T, addr string) uint16 {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(addr, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return uint16(l.Addr().(*net.TCPAddr).Port)
}

func startRouter(t *testing.T, addr string, asn, peerASN uint32) *router {
	t.Helper()
	r := &router{srv: server.NewBgpServer(), addr: addr, port: freePort(t, addr)}
	go r.srv.Serve()
	ctx := context.Background()
	if err := r.srv.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{
		Asn: asn, RouterId: addr, ListenPort: int32(r.port), ListenAddresses: []string{addr},
	}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.srv.StopBgp(context.Background(), &api.StopBgpRequest{}) })
	if err := r.srv.AddPeer(ctx, &api.AddPeerRequest{Peer: &api.Peer{
		Conf:      &api.PeerConf{NeighborAddress: "127.0.0.1", PeerAsn: peerASN},
		Transport: &api.Transport{PassiveMode: true},
		Timers:    &api.Timers{Config: &api.TimersConfig{HoldTime: 9, KeepaliveInterval: 3}},
	}}); err != nil {
		t.Fatal(err)
	}
	return r
}

// routes returns the router's RIB: prefix -> the large communities and
// communities it holds.
func (r *router) routes(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := r.srv.ListPath(context.Background(), &api.ListPathRequest{
		TableType: api.TableType_GLOBAL,
		Family:    &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST},
	}, func(d *api.Destination) {
		for _, p := range d.Paths {
			var attrs []string
			for _, a := range p.Pattrs {
				m, err := a.UnmarshalNew()
				if err != nil {
					continue
				}
				switch v := m.(type) {
				case *api.CommunitiesAttribute:
					attrs = append(attrs, fmt.Sprint("c", v.Communities))
				case *api.LargeCommunitiesAttribute:
					for _, c := range v.Communities {
						attrs = append(attrs, fmt.Sprintf("l%d:%d:%d", c.GlobalAdmin, c.LocalData1, c.LocalData2))
					}
				case *api.NextHopAttribute:
					attrs = append(attrs, "nh="+v.NextHop)
				}
			}
			out[d.Prefix] = strings.Join(attrs, " ")
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func (r *router) peerUptime(t *testing.T) (api.PeerState_SessionState, int64) {
	t.Helper()
	var st api.PeerState_SessionState
	var up int64
	r.srv.ListPeer(context.Background(), &api.ListPeerRequest{}, func(p *api.Peer) {
		st = p.State.SessionState
		up = p.Timers.GetState().GetUptime().GetSeconds()*1e9 + int64(p.Timers.GetState().GetUptime().GetNanos())
	})
	return st, up
}

func waitFor(t *testing.T, what string, d time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// logBuf collects log lines for assertions.
type logBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}
func (l *logBuf) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

func testLogger(t *testing.T) (*slog.Logger, *logBuf) {
	if os.Getenv("LBD_BGP_DEBUG") != "" {
		buf := &logBuf{}
		return slog.New(slog.NewTextHandler(io.MultiWriter(buf, os.Stderr), &slog.HandlerOptions{Level: slog.LevelDebug})), buf
	}
	buf := &logBuf{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("speaker log:\n%s", buf)
		}
	})
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: testLevel()})), buf
}

func peer(name string, r *router, asn uint32) config.Peer {
	return config.Peer{
		Name: name, Address: netip.MustParseAddr(r.addr), ASN: asn, Port: r.port,
		HoldTime: 9 * time.Second, Keepalive: 3 * time.Second, ConnectRetry: time.Second,
		GracefulRestart: config.GracefulRestart{RestartTime: 120 * time.Second},
	}
}

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

// TestSpeakerAgainstGoBGP: sessions come up, routes reach the right
// peers with their communities (and without the internal tags), changes
// do not reset sessions, an unchanged Apply touches nothing, a changed
// peer is reset, and Close withdraws before it ends the session.
func TestSpeakerAgainstGoBGP(t *testing.T) {
	r1 := startRouter(t, "127.0.0.1", 64501, 64512)
	r2 := startRouter(t, "127.0.0.2", 64502, 64512)
	log, logs := testLogger(t)
	reg := prometheus.NewPedanticRegistry()
	s, err := New(log, reg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	cfg := Config{ASN: 64512, Peers: []config.Peer{peer("tor1", r1, 64501), peer("tor2", r2, 64502)}}
	start := time.Now()
	if err := s.Configure(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	if got := s.Status(context.Background()).RouterID; got != netip.MustParseAddr("127.0.0.1") {
		t.Errorf("router ID %s, want the source address towards the first peer, 127.0.0.1", got)
	}
	lp := uint32(200)
	routes := []Route{
		{Prefix: pfx("198.51.100.10/32"), Communities: []config.Community{64512<<16 | 100}},
		{Prefix: pfx("198.51.100.11/32"), Peers: []string{"tor2"}, LargeCommunities: []config.LargeCommunity{{Global: 64512, Data1: 1, Data2: 2}}},
		{Prefix: pfx("198.51.100.12/32"), LocalPref: &lp, Peers: []string{"tor1"}},
	}
	if err := s.Set(context.Background(), routes); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "both sessions established", 5*time.Second, func() bool {
		st := s.Status(context.Background())
		return len(st.Peers) == 2 && st.Peers[0].State == "established" && st.Peers[1].State == "established"
	})
	t.Logf("established %v after Apply", time.Since(start).Round(time.Millisecond))
	waitFor(t, "routes at both routers", 5*time.Second, func() bool {
		return len(r1.routes(t)) == 2 && len(r2.routes(t)) == 2
	})
	got1, got2 := r1.routes(t), r2.routes(t)
	if _, ok := got1["198.51.100.11/32"]; ok {
		t.Errorf("tor1 got a route restricted to tor2: %v", got1)
	}
	if _, ok := got2["198.51.100.12/32"]; ok {
		t.Errorf("tor2 got a route restricted to tor1: %v", got2)
	}
	if a := got2["198.51.100.11/32"]; a != "nh=127.0.0.1 l64512:1:2" {
		t.Errorf("tor2's attributes for .11: %q, want next hop self and only the user's large community", a)
	}
	if a := got1["198.51.100.10/32"]; !strings.Contains(a, fmt.Sprintf("c[%d]", 64512<<16|100)) || !strings.Contains(a, "nh=127.0.0.1") {
		t.Errorf("tor1's attributes for .10: %q", a)
	}
	_, up1 := r1.peerUptime(t)

	// New attributes and a moved restriction: no session reset.
	routes[0].Communities = []config.Community{64512<<16 | 200}
	routes[1].Peers = []string{"tor1"}
	if err := s.Set(context.Background(), routes); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the changes at the routers", 5*time.Second, func() bool {
		g1, g2 := r1.routes(t), r2.routes(t)
		_, on1 := g1["198.51.100.11/32"]
		_, on2 := g2["198.51.100.11/32"]
		return on1 && !on2 && strings.Contains(g1["198.51.100.10/32"], fmt.Sprintf("c[%d]", 64512<<16|200))
	})
	// The same config again touches nothing.
	if err := s.Configure(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if st, up := r1.peerUptime(t); st != api.PeerState_ESTABLISHED || up != up1 {
		t.Fatalf("tor1's session was reset by route changes or an unchanged Apply (state %v, uptime %d -> %d)", st, up1, up)
	}
	if n := testutil.ToFloat64(counterFor(t, reg, "lbd_bgp_session_state_changes_total", "tor1")); n == 0 {
		t.Errorf("no state changes counted")
	}

	// A changed hold time resets tor2 only.
	_, up2 := r2.peerUptime(t)
	cfg.Peers[1].HoldTime, cfg.Peers[1].Keepalive = 12*time.Second, 4*time.Second
	if err := s.Configure(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "tor2 re-established", 10*time.Second, func() bool {
		st, up := r2.peerUptime(t)
		return st == api.PeerState_ESTABLISHED && up != up2
	})
	if _, up := r1.peerUptime(t); up != up1 {
		t.Fatalf("tor1 was reset by a change to tor2")
	}

	text, err := testutil.GatherAndLint(reg)
	if err != nil || len(text) > 0 {
		t.Errorf("metrics lint: %v %v", err, text)
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP lbd_bgp_session_up 1 if the BGP session with the peer is established.
# TYPE lbd_bgp_session_up gauge
lbd_bgp_session_up{peer="tor1"} 1
lbd_bgp_session_up{peer="tor2"} 1
# HELP lbd_bgp_advertised_prefixes Prefixes advertised to the peer.
# TYPE lbd_bgp_advertised_prefixes gauge
lbd_bgp_advertised_prefixes{peer="tor1"} 3
lbd_bgp_advertised_prefixes{peer="tor2"} 1
`), "lbd_bgp_session_up", "lbd_bgp_advertised_prefixes"); err != nil {
		t.Error(err)
	}
	if !strings.Contains(logs.String(), "event=session_up peer=tor1") {
		t.Errorf("no session_up log line:\n%s", logs)
	}

	// Close: routes leave before the session ends.
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if g := r1.routes(t); len(g) != 0 {
		t.Errorf("routes left at tor1 after Close: %v", g)
	}
	waitFor(t, "tor1's session to end", 5*time.Second, func() bool {
		st, _ := r1.peerUptime(t)
		return st != api.PeerState_ESTABLISHED
	})
}

// grBits returns the Restart bit of the Graceful Restart capability r's
// peer sent, and the Forwarding bit of its IPv4 unicast tuple.
func (r *router) grBits(t *testing.T) (restart, forwarding, found bool) {
	t.Helper()
	r.srv.ListPeer(context.Background(), &api.ListPeerRequest{}, func(p *api.Peer) {
		for _, a := range p.GetState().GetRemoteCap() {
			m, err := a.UnmarshalNew()
			if err != nil {
				continue
			}
			if c, ok := m.(*api.GracefulRestartCapability); ok {
				found = true
				restart = c.Flags&0x08 != 0
				for _, tu := range c.Tuples {
					if tu.GetFamily().GetAfi() == api.Family_AFI_IP {
						forwarding = tu.Flags&0x80 != 0
					}
				}
			}
		}
	})
	return restart, forwarding, found
}

// TestSpeakerRestartBits: the first peers a Speaker opens carry the
// Restart and Forwarding bits (RFC 4724) even when its first Configure
// had no peers and the routes came in between, as after a restart:
// without them the router flushes the node's stale routes before its new
// UPDATEs arrive, and the next hop blinks. A peer added later opens
// without the Restart bit.
func TestSpeakerRestartBits(t *testing.T) {
	r1 := startRouter(t, "127.0.0.1", 64501, 64512)
	r2 := startRouter(t, "127.0.0.2", 64502, 64512)
	log, _ := testLogger(t)
	s, err := New(log, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	ctx := context.Background()
	id := netip.MustParseAddr("127.0.0.1")
	if err := s.Configure(ctx, Config{ASN: 64512, RouterID: id}); err != nil {
		t.Fatal(err)
	}
	if err := s.Set(ctx, []Route{{Prefix: pfx("198.51.100.10/32")}}); err != nil {
		t.Fatal(err)
	}
	cfg := Config{ASN: 64512, RouterID: id, Peers: []config.Peer{peer("tor1", r1, 64501)}}
	if err := s.Configure(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "tor1 established", 5*time.Second, func() bool { st, _ := r1.peerUptime(t); return st == api.PeerState_ESTABLISHED })
	if restart, fwd, found := r1.grBits(t); !found || !restart || !fwd {
		t.Errorf("the first peer's OPEN: graceful restart capability %v, Restart bit %v, Forwarding bit %v; want all three", found, restart, fwd)
	}
	cfg.Peers = append(cfg.Peers, peer("tor2", r2, 64502))
	if err := s.Configure(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "tor2 established", 5*time.Second, func() bool { st, _ := r2.peerUptime(t); return st == api.PeerState_ESTABLISHED })
	if restart, _, found := r2.grBits(t); !found || restart {
		t.Errorf("a peer added later: graceful restart capability %v, Restart bit %v; want the capability without the bit", found, restart)
	}
}

func counterFor(t *testing.T, reg *prometheus.Registry, name, peer string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.Metric {
			for _, l := range m.Label {
				if l.GetName() == "peer" && l.GetValue() == peer {
					v := m.GetCounter().GetValue()
					g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "x"})
					g.Set(v)
					return g
				}
			}
		}
	}
	t.Fatalf("no %s{peer=%q}", name, peer)
	return nil
}

// TestSpeakerASNMismatch: the router expects another AS from the
// speaker; the session never comes up and the log and status say why.
func TestSpeakerASNMismatch(t *testing.T) {
	r := startRouter(t, "127.0.0.1", 64501, 64999)
	log, logs := testLogger(t)
	s, err := New(log, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	if err := s.Configure(context.Background(), Config{ASN: 64512, Peers: []config.Peer{peer("tor", r, 64501)}}); err != nil {
		t.Fatal(err)
	}
	// As in TestSpeakerWrongPeerASN: GoBGP dials after 2-4s, and a loaded
	// machine running -race once took more than 15s.
	waitFor(t, "a log line about the AS", 30*time.Second, func() bool {
		return strings.Contains(logs.String(), "bad peer AS")
	})
	st := s.Status(context.Background())
	if st.Peers[0].State == "established" || !strings.Contains(st.Peers[0].Problem, "AS numbers do not match") {
		t.Errorf("status %+v", st.Peers[0])
	}
	t.Log(logs)
}

// TestSpeakerWrongPeerASN: the router's AS is not the configured one; the
// speaker refuses it and says why.
func TestSpeakerWrongPeerASN(t *testing.T) {
	r := startRouter(t, "127.0.0.1", 64501, 64512)
	log, logs := testLogger(t)
	s, err := New(log, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	if err := s.Configure(context.Background(), Config{ASN: 64512, Peers: []config.Peer{peer("tor", r, 64777)}}); err != nil {
		t.Fatal(err)
	}
	// GoBGP dials after 1-2s and idles 5s after a refusal: 30s is a generous
	// bound for a loaded machine running -race (10s once was not).
	waitFor(t, "a log line about the AS", 30*time.Second, func() bool {
		return strings.Contains(logs.String(), "NOTIFICATION sent to the peer: as number mismatch expected 64777, received 64501: the router's AS is not the asn configured for this peer")
	})
}

// TestSpeakerConnectionRefused: nothing listens; the log says so.
func TestSpeakerConnectionRefused(t *testing.T) {
	log, logs := testLogger(t)
	s, err := New(log, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	p := config.Peer{Name: "tor", Address: netip.MustParseAddr("127.0.0.1"), ASN: 64501, Port: freePort(t, "127.0.0.1"),
		HoldTime: 9 * time.Second, Keepalive: 3 * time.Second, ConnectRetry: time.Second}
	if err := s.Configure(context.Background(), Config{ASN: 64512, Peers: []config.Peer{p}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a log line about the refused connection", 30*time.Second, func() bool {
		return strings.Contains(logs.String(), "connection refused")
	})
	if n := strings.Count(logs.String(), "connection refused"); n != 1 {
		t.Errorf("%d log lines for the same problem, want 1:\n%s", n, logs)
	}
}

// TestPasswordFileRefused: the speaker reads password files with
// config.ReadPassword (the reader `lbd check` uses); a file others can
// read is refused with its name, never its content.
func TestPasswordFileRefused(t *testing.T) {
	open := filepath.Join(t.TempDir(), "open")
	os.WriteFile(open, []byte("s3cret"), 0o644)
	os.Chmod(open, 0o644)
	s, _ := New(slog.New(slog.DiscardHandler), nil)
	defer s.Close(context.Background())
	p := config.Peer{Name: "tor", Address: netip.MustParseAddr("127.0.0.1"), ASN: 64501, Port: 179, PasswordFile: open}
	err := s.Configure(context.Background(), Config{ASN: 64512, Peers: []config.Peer{p}})
	if err == nil || !strings.Contains(err.Error(), open) || !strings.Contains(err.Error(), "0644") || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("Configure with an open password file = %v", err)
	}
}

// TestMerge: two routes for one prefix become one.
func TestMerge(t *testing.T) {
	a, b := uint32(100), uint32(300)
	m := merge([]Route{
		{Prefix: pfx("198.51.100.1/32"), LocalPref: &a, Communities: []config.Community{2, 1}, Peers: []string{"x"}},
		{Prefix: pfx("198.51.100.1/32"), LocalPref: &b, Communities: []config.Community{1, 3}, Peers: []string{"y"}},
		{Prefix: pfx("198.51.100.2/32"), Peers: []string{"x"}},
		{Prefix: pfx("198.51.100.2/32")},
	})
	r := m[pfx("198.51.100.1/32")]
	if *r.LocalPref != 300 || fmt.Sprint(r.Communities) != "[0:1 0:2 0:3]" || fmt.Sprint(r.Peers) != "[x y]" {
		t.Errorf("merged %+v", r)
	}
	if p := m[pfx("198.51.100.2/32")].Peers; len(p) != 0 {
		t.Errorf("an unrestricted route merged into a restricted one is restricted to %v", p)
	}
}

func testLevel() slog.Level {
	if os.Getenv("LBD_BGP_DEBUG") != "" {
		return slog.LevelDebug
	}
	return slog.LevelInfo
}
