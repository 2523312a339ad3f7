package announce

import (
	"bytes"
	"encoding/binary"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/ndp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/lbdproject/lbd/internal/config"
)

var (
	foreignMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x0f}
	peerMAC    = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x0e}
	vip6       = netip.MustParseAddr("2001:db8::10")
	testProbe  = config.ConflictProbe{Count: 3, Interval: 100 * time.Millisecond, Recheck: 30 * time.Second}
)

// conflictRig is an L2 with conflict detection on one fake interface,
// eth0, without sockets: its claims probe and announce through channels,
// and packets are fed to observe directly. Time moves only with the fake
// clock.
type conflictRig struct {
	t       *testing.T
	l       *L2
	clk     *fakeClock
	reg     *prometheus.Registry
	lk      *link
	probes  chan netip.Addr
	grats   chan netip.Addr
	mu      sync.Mutex
	events  []string // "conflict ADDR MAC REASON" and "clear ADDR"
	nowTime time.Time
}

func newConflictRig(t *testing.T) *conflictRig {
	t.Helper()
	r := &conflictRig{t: t, clk: newFakeClock(), reg: prometheus.NewPedanticRegistry(),
		probes: make(chan netip.Addr, 10), grats: make(chan netip.Addr, 10), nowTime: time.Unix(1e9, 0)}
	l, err := NewL2(slog.New(slog.DiscardHandler), r.clk, config.Gratuitous{Count: 1}, r.reg)
	if err != nil {
		t.Fatal(err)
	}
	l.now = func() time.Time { return r.nowTime }
	err = l.DetectConflicts(ConflictOptions{
		Probe: testProbe,
		OnConflict: func(c Conflict) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.events = append(r.events, "conflict "+c.Addr.String()+" "+c.MAC.String()+" "+string(c.Reason))
		},
		OnClear: func(c Conflict) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.events = append(r.events, "clear "+c.Addr.String())
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	r.l = l
	r.lk = &link{l: l, ifi: &net.Interface{Name: "eth0", HardwareAddr: nodeMAC}, addrs: map[netip.Addr]*claim{}}
	l.links["eth0"] = r.lk
	t.Cleanup(func() {
		// Withdraw what is left and wait for the claims' goroutines.
		l.mu.Lock()
		for a, c := range r.lk.addrs {
			delete(r.lk.addrs, a)
			close(c.stop)
			if c.state == announced {
				close(c.announcing)
			}
		}
		l.closed = true
		l.mu.Unlock()
		l.wg.Wait()
	})
	return r
}

// add takes addr in state st and runs the claim, as Set does.
func (r *conflictRig) add(addr netip.Addr, st claimState) *claim {
	l := r.l
	l.mu.Lock()
	c := r.lk.newClaim(addr, "test", st)
	l.publish()
	ann := c.announcing
	l.mu.Unlock()
	l.goroutine(func() {
		c.run(ann, st != announced,
			func() error { r.probes <- addr; return nil },
			func() error { r.grats <- addr; return nil })
	})
	return c
}

// expect waits for one send on ch of addr.
func (r *conflictRig) expect(ch chan netip.Addr, what string, addr netip.Addr) {
	r.t.Helper()
	select {
	case got := <-ch:
		if got != addr {
			r.t.Fatalf("%s for %s, want %s", what, got, addr)
		}
	case <-time.After(5 * time.Second):
		r.t.Fatalf("no %s for %s", what, addr)
	}
}

// quiet checks that nothing is sent on ch for a moment.
func (r *conflictRig) quiet(ch chan netip.Addr, what string) {
	r.t.Helper()
	select {
	case got := <-ch:
		r.t.Fatalf("unexpected %s for %s", what, got)
	case <-time.After(50 * time.Millisecond):
	}
}

// tokens waits for n calls of the clock's After.
func (r *conflictRig) tokens(n int) {
	r.t.Helper()
	for range n {
		select {
		case <-r.clk.added:
		case <-time.After(5 * time.Second):
			r.t.Fatal("nothing waits on the clock")
		}
	}
}

// step waits until the claim waits on the clock, then advances it by d.
func (r *conflictRig) step(d time.Duration) {
	r.t.Helper()
	select {
	case <-r.clk.added:
	case <-time.After(5 * time.Second):
		r.t.Fatal("nothing waits on the clock")
	}
	r.clk.advance(d)
}

func (r *conflictRig) announced(addr netip.Addr) bool {
	here, _ := r.l.owners.Load().lookup(addr, "eth0")
	return here
}

func (r *conflictRig) wantEvents(want ...string) {
	r.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		r.mu.Lock()
		got := slices.Clone(r.events)
		r.mu.Unlock()
		if slices.Equal(got, want) {
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("events %q, want %q", got, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// probeClean runs a full probe round that nobody answers.
func (r *conflictRig) probeClean(addr netip.Addr) {
	r.t.Helper()
	for range testProbe.Count {
		r.expect(r.probes, "probe", addr)
		r.step(testProbe.Interval)
	}
}

func TestConflictProbeClean(t *testing.T) {
	r := newConflictRig(t)
	r.add(vip4, probing)
	r.expect(r.probes, "probe", vip4)
	if r.announced(vip4) {
		t.Fatal("announced while probing")
	}
	r.step(testProbe.Interval)
	r.expect(r.probes, "probe", vip4)
	r.step(testProbe.Interval)
	r.expect(r.probes, "probe", vip4)
	r.quiet(r.grats, "gratuitous packet")
	r.step(testProbe.Interval) // the wait after the last probe
	r.expect(r.grats, "gratuitous packet", vip4)
	if !r.announced(vip4) {
		t.Error("not announced after a clean probe")
	}
	r.quiet(r.probes, "probe")
	r.wantEvents()
	if n := testutil.ToFloat64(r.l.conflictsTotal.WithLabelValues("ipv4")); n != 0 {
		t.Errorf("lbd_l2_conflicts_total{family=ipv4} = %v", n)
	}
}

func TestConflictProbeAnswered(t *testing.T) {
	r := newConflictRig(t)
	c := r.add(vip6, probing)
	r.expect(r.probes, "probe", vip6)
	// Our own looped-back packets and a peer's are not answers.
	r.l.SetPeers([]net.HardwareAddr{peerMAC})
	r.l.observe("eth0", vip6, nodeMAC, nodeMAC)
	r.l.observe("eth0", vip6, peerMAC, nodeMAC)
	// Another interface's address is not this one.
	r.l.observe("eth1", vip6, foreignMAC, nodeMAC)
	r.wantEvents()
	r.l.observe("eth0", vip6, foreignMAC, nodeMAC)
	r.wantEvents("conflict 2001:db8::10 02:00:00:00:00:0f probe_answered")
	if got := r.l.Conflicts(); len(got) != 1 || got[0].Addr != vip6 || got[0].Interface != "eth0" ||
		!bytes.Equal(got[0].MAC, foreignMAC) || got[0].Reason != ProbeAnswered || !got[0].Since.Equal(r.nowTime) {
		t.Errorf("Conflicts() = %+v", got)
	}
	if n := testutil.ToFloat64(r.l.conflictsTotal.WithLabelValues("ipv6")); n != 1 {
		t.Errorf("lbd_l2_conflicts_total{family=ipv6} = %v, want 1", n)
	}
	if r.announced(vip6) {
		t.Error("announced in conflict")
	}
	since := r.nowTime
	r.tokens(2) // the first probe's wait, and the recheck

	// The foreign host is heard again during the quiet period, which
	// starts over: no probe at Recheck after the first conflict.
	r.clk.advance(testProbe.Recheck / 2)
	r.l.observe("eth0", vip6, foreignMAC, nodeMAC)
	r.tokens(1) // the new recheck
	r.clk.advance(testProbe.Recheck / 2)
	r.quiet(r.probes, "probe")
	r.clk.advance(testProbe.Recheck / 2)

	// The re-probe is answered: still in conflict, reported once.
	r.nowTime = r.nowTime.Add(time.Minute)
	r.expect(r.probes, "probe", vip6)
	r.l.observe("eth0", vip6, foreignMAC, nodeMAC)
	r.tokens(2) // the probe's wait, and the recheck
	if got := r.l.Conflicts(); len(got) != 1 || !got[0].Since.Equal(since) || !got[0].LastSeen.Equal(r.nowTime) {
		t.Errorf("Conflicts() after a second answer = %+v, want Since %v, LastSeen %v", got, since, r.nowTime)
	}
	r.wantEvents("conflict 2001:db8::10 02:00:00:00:00:0f probe_answered")

	// The host is gone: the next round is clean.
	r.clk.advance(testProbe.Recheck)
	r.probeClean(vip6)
	r.expect(r.grats, "gratuitous packet", vip6)
	r.wantEvents("conflict 2001:db8::10 02:00:00:00:00:0f probe_answered", "clear 2001:db8::10")
	r.l.mu.Lock()
	defer r.l.mu.Unlock()
	if !r.announced(vip6) || len(r.l.conflicts) != 0 {
		t.Errorf("after a clean re-probe: announced %v, conflicts %v", r.announced(vip6), r.l.conflicts)
	}
	if c.state != announced {
		t.Errorf("state %v", c.state)
	}
}

func TestConflictForeignClaim(t *testing.T) {
	r := newConflictRig(t)
	r.add(vip4, announced)
	r.expect(r.grats, "gratuitous packet", vip4)
	if !r.announced(vip4) {
		t.Fatal("not announced")
	}
	r.l.SetPeers([]net.HardwareAddr{peerMAC})
	r.l.observe("eth0", vip4, peerMAC, nodeMAC) // a hand-over: not a conflict
	r.l.observe("eth0", other4, foreignMAC, nodeMAC)
	r.wantEvents()
	r.l.observe("eth0", vip4, foreignMAC, nodeMAC)
	r.wantEvents("conflict 192.0.2.10 02:00:00:00:00:0f foreign_claim")
	if r.announced(vip4) {
		t.Error("still answering after a foreign claim")
	}
	// Quiet period, then a clean probe: announced again.
	r.step(testProbe.Recheck)
	r.probeClean(vip4)
	r.expect(r.grats, "gratuitous packet", vip4)
	r.wantEvents("conflict 192.0.2.10 02:00:00:00:00:0f foreign_claim", "clear 192.0.2.10")
	if !r.announced(vip4) {
		t.Error("not announced after the conflict cleared")
	}
}

// TestConflictPeersWake: an address in conflict with a host that SetPeers
// then names as an lbd node is probed again at once.
func TestConflictPeersWake(t *testing.T) {
	r := newConflictRig(t)
	r.add(vip4, probing)
	r.expect(r.probes, "probe", vip4)
	r.l.observe("eth0", vip4, foreignMAC, nodeMAC)
	r.wantEvents("conflict 192.0.2.10 02:00:00:00:00:0f probe_answered")
	r.tokens(2) // the first probe's wait, and the recheck
	r.l.SetPeers([]net.HardwareAddr{peerMAC})
	r.quiet(r.probes, "probe")
	r.l.SetPeers([]net.HardwareAddr{peerMAC, foreignMAC})
	r.expect(r.probes, "probe", vip4)
	r.l.observe("eth0", vip4, foreignMAC, nodeMAC) // now a peer: ignored
	r.step(testProbe.Interval)
	r.expect(r.probes, "probe", vip4)
	r.step(testProbe.Interval)
	r.expect(r.probes, "probe", vip4)
	r.step(testProbe.Interval)
	r.expect(r.grats, "gratuitous packet", vip4)
	r.wantEvents("conflict 192.0.2.10 02:00:00:00:00:0f probe_answered", "clear 192.0.2.10")
}

// TestConflictWithdrawn: withdrawing a claim ends its goroutine in every
// state and forgets its conflict.
func TestConflictWithdrawn(t *testing.T) {
	r := newConflictRig(t)
	c := r.add(vip4, probing)
	r.expect(r.probes, "probe", vip4)
	r.l.observe("eth0", vip4, foreignMAC, nodeMAC)
	r.wantEvents("conflict 192.0.2.10 02:00:00:00:00:0f probe_answered")
	r.l.mu.Lock()
	err := r.lk.remove(vip4)
	r.l.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	<-c.stop
	if n := len(r.l.Conflicts()); n != 0 {
		t.Errorf("%d conflicts after withdrawal", n)
	}
	r.l.observe("eth0", vip4, foreignMAC, nodeMAC) // no claim: nothing happens
	r.wantEvents("conflict 192.0.2.10 02:00:00:00:00:0f probe_answered")
}

func TestFirstState(t *testing.T) {
	l := newTestL2(t, nil)
	k := claimKey{"eth0", vip4}
	now := time.Unix(1e9, 0)
	if st := l.firstState(k, now, false); st != announced {
		t.Errorf("without detection: %v, want announced", st)
	}
	if err := l.DetectConflicts(ConflictOptions{Probe: testProbe}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		recent time.Duration // ago; 0: never
		want   claimState
	}{
		{"never announced", 0, probing},
		{"withdrawn 30s ago", 30 * time.Second, announced},
		{"withdrawn 2m ago", 2 * time.Minute, probing},
	} {
		clear(l.recent)
		if tc.recent > 0 {
			l.recent[k] = now.Add(-tc.recent)
		}
		if st := l.firstState(k, now, false); st != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, st, tc.want)
		}
		// Taken from another lbd node: never probed.
		if st := l.firstState(k, now, true); st != announced {
			t.Errorf("%s, from a peer: %v, want announced", tc.name, st)
		}
	}
	if st := l.firstState(claimKey{"eth1", vip4}, now, false); st != probing {
		t.Errorf("recent on another interface: %v, want probing", st)
	}
}

func TestDetectConflictsRejects(t *testing.T) {
	l := newTestL2(t, nil)
	if err := l.DetectConflicts(ConflictOptions{}); err == nil {
		t.Error("zero probe accepted")
	}
	if err := l.Set(nil); err != nil {
		t.Fatal(err)
	}
	if err := l.DetectConflicts(ConflictOptions{Probe: testProbe}); err != ErrStarted {
		t.Errorf("after Set: %v, want ErrStarted", err)
	}
	l.Close()
}

func TestARPProbe(t *testing.T) {
	p, err := arpProbe(nodeMAC, vip4)
	if err != nil {
		t.Fatal(err)
	}
	if p.Operation != arp.OperationRequest || !p.SenderIP.IsUnspecified() || p.TargetIP != vip4 ||
		!bytes.Equal(p.SenderHardwareAddr, nodeMAC) || !bytes.Equal(p.TargetHardwareAddr, make(net.HardwareAddr, 6)) {
		t.Errorf("probe = %+v", p)
	}
	// The node's own responder does not answer it (its own MAC), and
	// it claims nothing.
	pb, _ := p.MarshalBinary()
	fb, _ := (&ethernet.Frame{Destination: ethernet.Broadcast, Source: nodeMAC, EtherType: ethernet.EtherTypeARP, Payload: pb}).MarshalBinary()
	if _, reason := decideARP(fb, "eth0", nodeMAC, testOwn); reason != fromSelf {
		t.Errorf("own probe: %v, want from_self", reason)
	}
	if _, _, ok := arpSender(fb); ok {
		t.Error("a probe claims an address")
	}
}

func TestDADFrame(t *testing.T) {
	b, err := dadFrame(nodeMAC, vip6)
	if err != nil {
		t.Fatal(err)
	}
	var f ethernet.Frame
	if err := f.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if want := (net.HardwareAddr{0x33, 0x33, 0xff, 0, 0, 0x10}); !bytes.Equal(f.Destination, want) || !bytes.Equal(f.Source, nodeMAC) || f.EtherType != ethernet.EtherTypeIPv6 {
		t.Fatalf("frame %v -> %v type %v", f.Source, f.Destination, f.EtherType)
	}
	ip := f.Payload
	if len(ip) < 40 || ip[0]>>4 != 6 || ip[6] != 58 || ip[7] != 255 || int(binary.BigEndian.Uint16(ip[4:6])) != len(ip)-40 {
		t.Fatalf("IPv6 header % x", ip[:min(len(ip), 40)])
	}
	src, _ := netip.AddrFromSlice(ip[8:24])
	dst, _ := netip.AddrFromSlice(ip[24:40])
	if !src.IsUnspecified() || dst != netip.MustParseAddr("ff02::1:ff00:10") {
		t.Errorf("%s -> %s, want :: -> ff02::1:ff00:10", src, dst)
	}
	m, err := ndp.ParseMessage(ip[40:])
	if err != nil {
		t.Fatal(err)
	}
	ns, ok := m.(*ndp.NeighborSolicitation)
	if !ok || ns.TargetAddress != vip6 || len(ns.Options) != 0 {
		t.Errorf("message %#v, want a solicitation for %s without options", m, vip6)
	}
	// The ICMPv6 checksum covers the pseudo-header (RFC 8200 §8.1).
	if sum := icmpv6Checksum(src, dst, ip[40:]); sum != 0 {
		t.Errorf("checksum does not verify: %#04x", sum)
	}
}

// icmpv6Checksum is the one's complement sum over the pseudo-header and
// the message; 0 when the message's checksum is right.
func icmpv6Checksum(src, dst netip.Addr, msg []byte) uint16 {
	var sum uint32
	add := func(b []byte) {
		for i := 0; i+1 < len(b); i += 2 {
			sum += uint32(binary.BigEndian.Uint16(b[i:]))
		}
		if len(b)%2 == 1 {
			sum += uint32(b[len(b)-1]) << 8
		}
	}
	s, d := src.As16(), dst.As16()
	add(s[:])
	add(d[:])
	add(binary.BigEndian.AppendUint32(nil, uint32(len(msg))))
	add([]byte{0, 0, 0, 58})
	add(msg)
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

func TestARPSender(t *testing.T) {
	zero := make(net.HardwareAddr, 6)
	tests := []struct {
		name  string
		frame []byte
		want  netip.Addr
	}{
		{"request", arpFrame(t, arp.OperationRequest, foreignMAC, vip4, zero, client4), vip4},
		{"gratuitous", arpFrame(t, arp.OperationRequest, foreignMAC, vip4, zero, vip4), vip4},
		{"reply to a probe", arpFrame(t, arp.OperationReply, foreignMAC, vip4, nodeMAC, netip.IPv4Unspecified()), vip4},
		{"probe", arpFrame(t, arp.OperationRequest, foreignMAC, netip.IPv4Unspecified(), zero, vip4), netip.Addr{}},
		{"truncated", arpFrame(t, arp.OperationRequest, foreignMAC, vip4, zero, client4)[:20], netip.Addr{}},
	}
	for _, tc := range tests {
		addr, mac, ok := arpSender(tc.frame)
		if ok != tc.want.IsValid() || addr != tc.want || (ok && !bytes.Equal(mac, foreignMAC)) {
			t.Errorf("%s: %s %s %v, want %s", tc.name, addr, mac, ok, tc.want)
		}
	}
}

func TestNDPSender(t *testing.T) {
	tlla := []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Target, Addr: foreignMAC}}
	slla := []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Source, Addr: foreignMAC}}
	host := netip.MustParseAddr("2001:db8::3")
	tests := []struct {
		name string
		in   nsIn
		want netip.Addr
	}{
		{"advertisement", nsIn{msg: &ndp.NeighborAdvertisement{TargetAddress: vip6, Options: tlla}, src: host, hopLimit: 255}, vip6},
		{"advertisement, hop limit unknown", nsIn{msg: &ndp.NeighborAdvertisement{TargetAddress: vip6, Options: tlla}, src: host}, vip6},
		{"advertisement from off-link", nsIn{msg: &ndp.NeighborAdvertisement{TargetAddress: vip6, Options: tlla}, src: host, hopLimit: 64}, netip.Addr{}},
		{"advertisement without target link-layer address", nsIn{msg: &ndp.NeighborAdvertisement{TargetAddress: vip6}, src: host, hopLimit: 255}, netip.Addr{}},
		{"solicitation from the address", nsIn{msg: &ndp.NeighborSolicitation{TargetAddress: host, Options: slla}, src: vip6, hopLimit: 255}, vip6},
		{"duplicate address detection", nsIn{msg: &ndp.NeighborSolicitation{TargetAddress: vip6}, src: netip.IPv6Unspecified(), hopLimit: 255}, netip.Addr{}},
		{"solicitation from link-local", nsIn{msg: &ndp.NeighborSolicitation{TargetAddress: vip6, Options: slla}, src: netip.MustParseAddr("fe80::3"), hopLimit: 255}, netip.Addr{}},
		{"not NDP", nsIn{msg: &ndp.RouterSolicitation{}, src: host, hopLimit: 255}, netip.Addr{}},
		{"unparsed", nsIn{src: host, hopLimit: 255}, netip.Addr{}},
	}
	for _, tc := range tests {
		addr, mac, ok := ndpSender(tc.in)
		if ok != tc.want.IsValid() || addr != tc.want || (ok && !bytes.Equal(mac, foreignMAC)) {
			t.Errorf("%s: %s %s %v, want %s", tc.name, addr, mac, ok, tc.want)
		}
	}
}
