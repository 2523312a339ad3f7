package bfd

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestHandOverOnLoopback: a restart of one side (HandOver, the file, a new
// Manager that Resumes) is not seen by the other: its session never leaves
// Up and the discriminator it talks to stays the same.
func TestHandOverOnLoopback(t *testing.T) {
	a, _, _ := startManager(t, 47851, 47852)
	b, bch, _ := startManager(t, 47852, 47851)
	ctx := context.Background()
	tm := Timers{DesiredMinTx: 50 * time.Millisecond, RequiredMinRx: 50 * time.Millisecond, DetectMult: 3}
	toB := Peer{Name: "b", Addr: netip.MustParseAddr("127.0.0.2"), Source: netip.MustParseAddr("127.0.0.1"), Timers: tm}
	if err := a.Set(ctx, []Peer{toB}); err != nil {
		t.Fatal(err)
	}
	if err := b.Set(ctx, []Peer{{Name: "a", Addr: netip.MustParseAddr("127.0.0.1"), Source: netip.MustParseAddr("127.0.0.2"), Timers: tm}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "both Up", 5*time.Second, func() bool { return state(a) == Up && state(b) == Up })
	waitFor(t, "the 50ms interval", 2*time.Second, func() bool { return b.Status()[0].DetectTime == 150*time.Millisecond })
	var remoteDisc uint32
	b.do(ctx, func() { remoteDisc = b.sessions[toB.Source].s.remoteDisc })

	h, err := a.HandOver(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Sessions) != 1 || h.Sessions[0].RemoteDisc == 0 || h.Sessions[0].SourcePort < 49152 {
		t.Fatalf("hand-over: %+v", h)
	}
	path := filepath.Join(t.TempDir(), "bfd-handoff.json")
	if err := WriteHandoff(path, h); err != nil {
		t.Fatal(err)
	}
	got, err := ReadHandoff(path, 30*time.Second, time.Now())
	if err != nil || len(got.Sessions) != 1 {
		t.Fatalf("read back: %+v, %v; wrote %+v", got, err, h)
	}
	if g, w := got.Sessions[0], h.Sessions[0]; !g.UpSince.Equal(w.UpSince) || func() bool { g.UpSince = w.UpSince; return g != w }() {
		t.Fatalf("read back %+v, wrote %+v", g, w)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("the hand-over file is still there after reading: %v", err)
	}

	// The next process, well within b's 150ms detection time.
	a2, a2ch, _ := startManager(t, 47851, 47852)
	// Slower timers in the new configuration: a Poll sequence, not a new
	// session.
	toB.Timers.DesiredMinTx = 100 * time.Millisecond
	n, err := a2.Resume(ctx, got, []Peer{toB})
	if err != nil || n != 1 {
		t.Fatalf("Resume: %d, %v", n, err)
	}
	if state(a2) != Up {
		t.Errorf("resumed session is %v", state(a2))
	}
	waitFor(t, "b to see the new interval", 2*time.Second, func() bool { return b.Status()[0].DetectTime == 300*time.Millisecond })
	time.Sleep(500 * time.Millisecond)
	var after uint32
	b.do(ctx, func() { after = b.sessions[toB.Source].s.remoteDisc })
	if changes := bch.list(); len(changes) != 1 || state(b) != Up || after != remoteDisc {
		t.Errorf("b saw the restart: changes %+v, state %v, discriminator %d then %d", changes, state(b), remoteDisc, after)
	}
	if len(a2ch.list()) != 0 || state(a2) != Up {
		t.Errorf("the resumed side: changes %+v, state %v", a2ch.list(), state(a2))
	}
}

func TestReadHandoffTooOld(t *testing.T) {
	path := filepath.Join(t.TempDir(), "h.json")
	at := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	if err := WriteHandoff(path, Handoff{At: at, Sessions: []Saved{{Peer: "tor", LocalDisc: 1}}}); err != nil {
		t.Fatal(err)
	}
	h, err := ReadHandoff(path, 30*time.Second, at.Add(31*time.Second))
	if err != nil || len(h.Sessions) != 0 || !h.At.Equal(at) {
		t.Errorf("a 31s old hand-over: %+v, %v; want no sessions", h, err)
	}
	if h, err := ReadHandoff(path, 30*time.Second, at); err != nil || len(h.Sessions) != 0 {
		t.Errorf("read twice: %+v, %v; want nothing (the first read removes it)", h, err)
	}
	os.WriteFile(path, []byte("{"), 0o600)
	if _, err := ReadHandoff(path, 30*time.Second, at); err == nil {
		t.Error("a damaged file reads without an error")
	}
}

// TestResumeSession: a resumed session is Up, sends at once, and detects
// from the resume on.
func TestResumeSession(t *testing.T) {
	now := time.Unix(1000, 0)
	tm := Timers{DesiredMinTx: 300 * time.Millisecond, RequiredMinRx: 300 * time.Millisecond, DetectMult: 3}
	sv := Saved{LocalDisc: 7, RemoteDisc: 9, Timers: tm, RemoteDesiredMinTx: 300 * time.Millisecond,
		RemoteMinRx: time.Second, RemoteDetectMult: 3, UpSince: now.Add(-time.Hour)}
	s := resumeSession(sv, tm, func() float64 { return 1 }, now)
	if s.state != Up || s.polling || !s.nextTx.Equal(now) {
		t.Fatalf("resumed: state %v polling %v next %v", s.state, s.polling, s.nextTx)
	}
	p := s.packet(now)
	if p.State != Up || p.MyDisc != 7 || p.YourDisc != 9 || p.Poll || p.DesiredMinTx != 300*time.Millisecond {
		t.Errorf("first packet %+v", p)
	}
	if got := s.txInterval(); got != time.Second {
		t.Errorf("tx interval %v, want the peer's required 1s", got)
	}
	if s.expire(now.Add(899 * time.Millisecond)) {
		t.Error("down before the detection time")
	}
	if !s.expire(now.Add(900*time.Millisecond)) || s.state != Down || s.diag != DiagDetectionExpired {
		t.Errorf("after 900ms of silence: %v %v", s.state, s.diag)
	}
	// Changed timers: a Poll sequence.
	s = resumeSession(sv, Timers{DesiredMinTx: time.Second, RequiredMinRx: time.Second, DetectMult: 3}, func() float64 { return 1 }, now)
	if p := s.packet(now); !p.Poll || p.DesiredMinTx != time.Second || s.state != Up {
		t.Errorf("resumed with new timers: %+v, state %v", p, s.state)
	}
}
