package bfd

import (
	"testing"
	"time"
)

var t0 = time.Unix(1_000_000, 0)

func fast() Timers {
	return Timers{DesiredMinTx: 300 * time.Millisecond, RequiredMinRx: 300 * time.Millisecond, DetectMult: 3}
}

// TestTransitions checks the state machine of RFC 5880 §6.8.6 against its
// table: for each local state, what each remote state leads to.
func TestTransitions(t *testing.T) {
	for _, tt := range []struct {
		local, remote State
		want          State
		diag          Diag
	}{
		{Down, AdminDown, Down, DiagNone},
		{Down, Down, Init, DiagNone},
		{Down, Init, Up, DiagNone},
		{Down, Up, Down, DiagNone},
		{Init, AdminDown, Down, DiagNeighborDown},
		{Init, Down, Init, DiagNone},
		{Init, Init, Up, DiagNone},
		{Init, Up, Up, DiagNone},
		{Up, AdminDown, Down, DiagNeighborDown},
		{Up, Down, Down, DiagNeighborDown},
		{Up, Init, Up, DiagNone},
		{Up, Up, Up, DiagNone},
		{AdminDown, Up, AdminDown, DiagAdminDown},
		{AdminDown, Down, AdminDown, DiagAdminDown},
	} {
		s := newSession(fast(), 1, func() float64 { return 0.5 }, t0)
		switch tt.local {
		case Init:
			s.state = Init
		case Up:
			s.goUp(t0)
		case AdminDown:
			s.adminDown(t0)
		}
		disc := uint32(7)
		your := uint32(1)
		if tt.remote == Down || tt.remote == AdminDown {
			your = 0
		}
		s.receive(Packet{State: tt.remote, MyDisc: disc, YourDisc: your, DetectMult: 3,
			DesiredMinTx: time.Second, RequiredMinRx: time.Second}, t0)
		if s.state != tt.want || s.diag != tt.diag {
			t.Errorf("local %s, remote %s: %s (diag %s), want %s (diag %s)", tt.local, tt.remote, s.state, s.diag, tt.want, tt.diag)
		}
	}
}

// pair runs two sessions against each other on a fake clock, delivering
// every packet at once, until until; it returns the packets a sent.
type pair struct {
	a, b *session
	now  time.Time
	sent []Packet // by a
	drop bool     // the link is down
	// aFromB counts packets b sent.
	bSent int
}

func newPair(ta, tb Timers) *pair {
	j := func() float64 { return 1 }
	return &pair{a: newSession(ta, 1, j, t0), b: newSession(tb, 2, j, t0), now: t0}
}

func (p *pair) run(until time.Time) {
	for p.now.Before(until) {
		next := until
		for _, s := range []*session{p.a, p.b} {
			if n := s.next(); !n.IsZero() && n.Before(next) {
				next = n
			}
		}
		if next.Before(p.now) {
			next = p.now
		}
		p.now = next
		for _, x := range []struct{ from, to *session }{{p.a, p.b}, {p.b, p.a}} {
			x.from.expire(p.now)
			if !x.from.nextTx.IsZero() && !p.now.Before(x.from.nextTx) {
				p.send(x.from, x.to)
			}
		}
		if next == until {
			break
		}
	}
}

func (p *pair) send(from, to *session) {
	pkt := from.packet(p.now)
	if from == p.a {
		p.sent = append(p.sent, pkt)
	} else {
		p.bSent++
	}
	if p.drop {
		return
	}
	if to.receive(pkt, p.now) {
		p.send(to, from)
	}
}

func TestSessionsComeUpAndNegotiate(t *testing.T) {
	p := newPair(fast(), fast())
	p.run(t0.Add(3 * time.Second))
	if p.a.state != Up || p.b.state != Up {
		t.Fatalf("states %s %s, want both up", p.a.state, p.b.state)
	}
	// Up: the configured 300ms, reached through a Poll sequence.
	if p.a.txInterval() != 300*time.Millisecond || p.a.polling || p.b.polling {
		t.Errorf("tx interval %v, polling %v %v", p.a.txInterval(), p.a.polling, p.b.polling)
	}
	if d := p.a.detectTime(); d != 900*time.Millisecond {
		t.Errorf("detection time %v, want 900ms", d)
	}
	// One packet a second until Up.
	for i := 1; i < len(p.sent) && p.sent[i].State != Up; i++ {
		if p.sent[i].State == p.sent[i-1].State && p.sent[i].DesiredMinTx < time.Second {
			t.Errorf("packet %d before Up advertises %v", i, p.sent[i].DesiredMinTx)
		}
	}
}

// TestDetection: a silent peer is declared down after its multiplier
// times the negotiated interval, with diagnostic 1.
func TestDetection(t *testing.T) {
	p := newPair(fast(), fast())
	p.run(t0.Add(3 * time.Second))
	p.drop = true
	cut := p.now
	p.run(cut.Add(2 * time.Second))
	if p.a.state != Down || p.a.lastDiag != DiagDetectionExpired {
		t.Fatalf("after silence: %s (%s)", p.a.state, p.a.lastDiag)
	}
	if took := p.a.downAt.Sub(cut); took > 900*time.Millisecond || took < 600*time.Millisecond {
		t.Errorf("down %v after the last packet, want within the 900ms detection time", took)
	}
	// Down again: one packet a second, and it comes back.
	p.drop = false
	p.run(p.now.Add(5 * time.Second))
	if p.a.state != Up || p.b.state != Up {
		t.Errorf("after the link returned: %s %s", p.a.state, p.b.state)
	}
}

// TestSlowerPeer: a peer that can receive only every second gets packets
// no faster, whatever this system would like.
func TestSlowerPeer(t *testing.T) {
	slow := Timers{DesiredMinTx: time.Second, RequiredMinRx: time.Second, DetectMult: 3}
	p := newPair(fast(), slow)
	p.run(t0.Add(5 * time.Second))
	if p.a.state != Up {
		t.Fatal(p.a.state)
	}
	start := len(p.sent)
	p.run(p.now.Add(10 * time.Second))
	if n := len(p.sent) - start; n > 11 {
		t.Errorf("%d packets in 10s to a peer that takes one a second", n)
	}
	if d := p.a.detectTime(); d != 3*time.Second {
		t.Errorf("detection time %v, want 3 x 1s", d)
	}
}

// TestRetimeWithPoll: new intervals while Up go through a Poll sequence:
// a slower transmit interval applies only after the Final, and the
// session stays Up.
func TestRetimeWithPoll(t *testing.T) {
	p := newPair(fast(), fast())
	p.run(t0.Add(3 * time.Second))
	slower := Timers{DesiredMinTx: 600 * time.Millisecond, RequiredMinRx: 600 * time.Millisecond, DetectMult: 3}
	if !p.a.retime(slower) {
		t.Fatal("retime while Up must send at once")
	}
	if !p.a.polling || p.a.txInterval() != 300*time.Millisecond {
		t.Fatalf("polling %v, tx %v: the slower rate must wait for the Final", p.a.polling, p.a.txInterval())
	}
	p.send(p.a, p.b) // the Poll; b answers with the Final at once
	if p.a.polling || p.a.txInterval() != 600*time.Millisecond || p.a.state != Up || p.b.state != Up {
		t.Errorf("after the Final: polling %v, tx %v, states %s %s", p.a.polling, p.a.txInterval(), p.a.state, p.b.state)
	}
	if d := p.b.detectTime(); d != 1800*time.Millisecond {
		t.Errorf("the peer's detection time %v, want 3 x 600ms", d)
	}
}

// TestAdminDown: a session taken down administratively says so; the peer
// goes Down with diagnostic 3 and does not count it as detection.
func TestAdminDown(t *testing.T) {
	p := newPair(fast(), fast())
	p.run(t0.Add(3 * time.Second))
	p.a.adminDown(p.now)
	p.send(p.a, p.b)
	if p.b.state != Down || p.b.lastDiag != DiagNeighborDown {
		t.Errorf("peer after AdminDown: %s (%s)", p.b.state, p.b.lastDiag)
	}
	if pkt := p.sent[len(p.sent)-1]; pkt.State != AdminDown || pkt.Diag != DiagAdminDown {
		t.Errorf("AdminDown packet %+v", pkt)
	}
}

// TestJitter: intervals are 75-100% of the negotiated one, 75-90% with a
// multiplier of 1 (§6.8.7).
func TestJitter(t *testing.T) {
	for _, mult := range []uint8{3, 1} {
		for _, j := range []float64{0, 0.5, 0.999} {
			tm := fast()
			tm.DetectMult = mult
			s := newSession(tm, 1, func() float64 { return j }, t0)
			s.goUp(t0)
			s.effTx, s.remoteMinRx = 300*time.Millisecond, time.Microsecond
			s.schedule(t0)
			got := s.nextTx.Sub(t0)
			top := 300 * time.Millisecond
			if mult == 1 {
				top = 270 * time.Millisecond
			}
			if got < 225*time.Millisecond || got > top {
				t.Errorf("mult %d, jitter %v: interval %v, want 225ms-%v", mult, j, got, top)
			}
		}
	}
}

// TestPacketRoundTrip: Marshal and Unmarshal agree, and Unmarshal applies
// the discard rules of §6.8.6.
func TestPacketRoundTrip(t *testing.T) {
	p := Packet{Diag: DiagDetectionExpired, State: Up, Poll: true, DetectMult: 3, MyDisc: 9, YourDisc: 4,
		DesiredMinTx: 300 * time.Millisecond, RequiredMinRx: 250 * time.Millisecond}
	got, err := Unmarshal(p.Marshal())
	if err != nil || got != p {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	bad := func(mod func(b []byte)) error {
		b := p.Marshal()
		mod(b)
		_, err := Unmarshal(b)
		return err
	}
	for name, mod := range map[string]func([]byte){
		"version 2":      func(b []byte) { b[0] = 2<<5 | b[0]&0x1f },
		"mult 0":         func(b []byte) { b[2] = 0 },
		"length 20":      func(b []byte) { b[3] = 20 },
		"length 30":      func(b []byte) { b[3] = 30 },
		"my disc 0":      func(b []byte) { copy(b[4:8], []byte{0, 0, 0, 0}) },
		"your disc 0 up": func(b []byte) { copy(b[8:12], []byte{0, 0, 0, 0}) },
		"multipoint":     func(b []byte) { b[1] |= 0x01 },
		"auth":           func(b []byte) { b[1] |= 0x04 },
		"poll and final": func(b []byte) { b[1] |= 0x10 },
	} {
		if bad(mod) == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := Unmarshal(p.Marshal()[:20]); err == nil {
		t.Error("a short packet was accepted")
	}
}
