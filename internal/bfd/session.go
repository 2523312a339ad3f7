package bfd

import (
	"time"
)

// Timers are a session's intervals as configured (bfd: under a peer).
type Timers struct {
	// DesiredMinTx is how often this system would like to send.
	DesiredMinTx time.Duration
	// RequiredMinRx is how often it can take packets.
	RequiredMinRx time.Duration
	// DetectMult: the peer declares the session down after this many
	// intervals without a packet.
	DetectMult uint8
}

// slowTx is the least transmit interval while a session is not Up
// (RFC 5880 §6.8.3: one packet a second).
const slowTx = time.Second

// session is one BFD session's state (RFC 5880 §6.8.1) and its timers.
// It is pure: the caller hands it packets and the time and sends what it
// returns. Not safe for concurrent use.
type session struct {
	timers Timers // as configured

	state, remoteState State
	localDisc          uint32
	remoteDisc         uint32
	diag               Diag // why it last went down (sent in every packet)

	// What this system advertises: DesiredMinTx is at least slowTx while
	// not Up.
	desiredMinTx, requiredMinRx time.Duration
	// What it uses for its own timing: during a Poll sequence an
	// increase of the transmit interval and a decrease of the receive
	// interval wait for the Final (§6.8.3).
	effTx, effRx time.Duration
	polling      bool

	remoteDesiredMinTx time.Duration
	remoteMinRx        time.Duration
	remoteDetectMult   uint8

	lastRx   time.Time // the last valid packet
	nextTx   time.Time
	final    bool // the next packet carries the Final bit (answer to a Poll)
	jitter   func() float64
	upSince  time.Time
	downAt   time.Time // when it last went down
	lastDiag Diag      // the diagnostic of the last transition to Down
}

func newSession(t Timers, disc uint32, jitter func() float64, now time.Time) *session {
	s := &session{timers: t, state: Down, remoteState: Down, localDisc: disc, jitter: jitter,
		// §6.8.1: until the peer says otherwise it may receive at any
		// rate (1 µs), so this system sends at its own.
		remoteMinRx: time.Microsecond, remoteDetectMult: 1}
	s.desiredMinTx, s.requiredMinRx = max(t.DesiredMinTx, slowTx), t.RequiredMinRx
	s.effTx, s.effRx = s.desiredMinTx, s.requiredMinRx
	s.nextTx = now
	return s
}

// txInterval is the interval between packets before jitter: the larger
// of what this system wants and what the peer can take (§6.8.7). Zero:
// the peer wants no packets.
func (s *session) txInterval() time.Duration {
	if s.remoteMinRx == 0 {
		return 0
	}
	return max(s.effTx, s.remoteMinRx)
}

// detectTime is how long without a packet means the session is down: the
// peer's multiplier times the larger of this system's receive interval
// and the peer's transmit interval (§6.8.4).
func (s *session) detectTime() time.Duration {
	return time.Duration(s.remoteDetectMult) * max(s.effRx, s.remoteDesiredMinTx)
}

// schedule sets the next transmission after now, with jitter: 75-100%
// of the interval, 75-90% with a multiplier of 1 (§6.8.7).
func (s *session) schedule(now time.Time) {
	ival := s.txInterval()
	if ival == 0 {
		s.nextTx = time.Time{}
		return
	}
	top := 1.0
	if s.timers.DetectMult == 1 {
		top = 0.9
	}
	f := 0.75 + (top-0.75)*s.jitter()
	s.nextTx = now.Add(time.Duration(float64(ival) * f))
}

// next is when the session wants attention: its next packet or the end
// of its detection time, whichever is first; zero: never.
func (s *session) next() time.Time {
	t := s.nextTx
	if d := s.deadline(); !d.IsZero() && (t.IsZero() || d.Before(t)) {
		t = d
	}
	return t
}

// deadline is when the detection time runs out (zero: not running).
func (s *session) deadline() time.Time {
	if s.lastRx.IsZero() || s.state == AdminDown {
		return time.Time{}
	}
	return s.lastRx.Add(s.detectTime())
}

// packet builds the packet to send now and schedules the next.
func (s *session) packet(now time.Time) Packet {
	p := Packet{
		Diag: s.diag, State: s.state, Poll: s.polling && !s.final, Final: s.final,
		DetectMult: s.timers.DetectMult, MyDisc: s.localDisc, YourDisc: s.remoteDisc,
		DesiredMinTx: s.desiredMinTx, RequiredMinRx: s.requiredMinRx,
	}
	s.final = false
	s.schedule(now)
	return p
}

// expire handles the timers at now: a detection time that ran out takes
// the session down (§6.8.4); in Down, the peer's discriminator is
// forgotten. It reports whether the state changed.
func (s *session) expire(now time.Time) bool {
	d := s.deadline()
	if d.IsZero() || now.Before(d) {
		return false
	}
	s.lastRx = time.Time{}
	switch s.state {
	case Init, Up:
		s.goDown(DiagDetectionExpired, now)
		s.remoteDisc = 0
		return true
	case Down:
		s.remoteDisc = 0
	}
	return false
}

// receive takes a valid packet addressed to this session (§6.8.6) and
// reports whether it must answer at once (a Poll, or a state change the
// peer should hear of without waiting for the next interval).
func (s *session) receive(p Packet, now time.Time) (answer bool) {
	if s.state == AdminDown {
		return false
	}
	s.remoteDisc, s.remoteState = p.MyDisc, p.State
	s.remoteDesiredMinTx, s.remoteMinRx, s.remoteDetectMult = p.DesiredMinTx, p.RequiredMinRx, p.DetectMult
	s.lastRx = now
	if p.Final && s.polling {
		s.polling = false
		s.effTx, s.effRx = s.desiredMinTx, s.requiredMinRx
	}
	before := s.state
	if p.State == AdminDown {
		if s.state != Down {
			s.goDown(DiagNeighborDown, now)
		}
	} else {
		switch s.state {
		case Down:
			switch p.State {
			case Down:
				s.state = Init
			case Init:
				s.goUp(now)
			}
		case Init:
			if p.State == Init || p.State == Up {
				s.goUp(now)
			}
		case Up:
			if p.State == Down {
				s.goDown(DiagNeighborDown, now)
			}
		}
	}
	if p.Poll {
		s.final = true
	}
	if s.state != before || p.Poll {
		return true
	}
	// The peer's intervals may have changed the schedule: never wait
	// longer than the new interval.
	if ival := s.txInterval(); ival > 0 && (s.nextTx.IsZero() || s.nextTx.Sub(now) > ival) {
		s.schedule(now)
	}
	return false
}

func (s *session) goUp(now time.Time) {
	s.state, s.upSince = Up, now
	// Up: the configured transmit interval, through a Poll sequence
	// (§6.8.3). A faster rate may start at once.
	s.setAdvertised(s.timers.DesiredMinTx, s.timers.RequiredMinRx)
}

func (s *session) goDown(d Diag, now time.Time) {
	s.state, s.diag, s.lastDiag, s.downAt = Down, d, d, now
	s.polling = false
	s.desiredMinTx = max(s.timers.DesiredMinTx, slowTx)
	s.requiredMinRx = s.timers.RequiredMinRx
	s.effTx, s.effRx = s.desiredMinTx, s.requiredMinRx
}

// setAdvertised changes what this system advertises while Up, through a
// Poll sequence: a faster transmit rate and a slower receive rate apply at
// once, the others once the peer's Final arrives.
func (s *session) setAdvertised(tx, rx time.Duration) {
	if tx == s.desiredMinTx && rx == s.requiredMinRx {
		return
	}
	s.desiredMinTx, s.requiredMinRx = tx, rx
	if tx < s.effTx {
		s.effTx = tx // sending faster is safe at once
	}
	if rx > s.effRx {
		s.effRx = rx // so is a longer detection time
	}
	s.polling = true
}

// retime applies new configured timers: while Up through a Poll
// sequence; otherwise at once (the transmit interval stays at least
// slowTx until Up). It reports whether a packet should go out now.
func (s *session) retime(t Timers) bool {
	if t == s.timers {
		return false
	}
	s.timers = t
	if s.state == Up {
		s.setAdvertised(t.DesiredMinTx, t.RequiredMinRx)
		return true
	}
	s.desiredMinTx, s.requiredMinRx = max(t.DesiredMinTx, slowTx), t.RequiredMinRx
	s.effTx, s.effRx = s.desiredMinTx, s.requiredMinRx
	return false
}

// adminDown takes the session administratively down (a planned stop): its
// packets say AdminDown, which a peer must not take for a failure (RFC
// 5882 §3.2).
func (s *session) adminDown(now time.Time) {
	s.state, s.diag = AdminDown, DiagAdminDown
	s.polling, s.final = false, false
	s.desiredMinTx = max(s.timers.DesiredMinTx, slowTx)
	s.nextTx = now
}
