package bfd

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"time"
)

// A planned restart of lbd (SIGUSR2) must not look like a dead node to
// the routers: BFD shares fate with the lbd process (its C bit is clear),
// and a router tears the BGP session down, and the node's routes with it,
// when BFD goes down. So the stopping process hands its Up sessions to
// the next one, which carries on with the same discriminators and source
// ports: the routers see a gap in the packets shorter than their
// detection time, not a new session. A crash or a stop hands nothing
// over: the routers' detection time runs out, as it should.

// Saved is one Up session as handed from one process to the next.
type Saved struct {
	Peer       string     `json:"peer"`
	Addr       netip.Addr `json:"addr"`
	Source     netip.Addr `json:"source,omitzero"`
	SourcePort int        `json:"source_port"`
	LocalDisc  uint32     `json:"local_discriminator"`
	RemoteDisc uint32     `json:"remote_discriminator"`
	// Timers is what this system advertised (the configured timers).
	Timers             Timers        `json:"timers"`
	RemoteDesiredMinTx time.Duration `json:"remote_desired_min_tx"`
	RemoteMinRx        time.Duration `json:"remote_required_min_rx"`
	RemoteDetectMult   uint8         `json:"remote_detect_mult"`
	UpSince            time.Time     `json:"up_since"`
}

// Handoff is what a stopping process leaves for the next.
type Handoff struct {
	// At is when the last packets went out.
	At       time.Time `json:"at"`
	Sessions []Saved   `json:"sessions"`
}

// WriteHandoff writes h to path atomically, readable by root only.
func WriteHandoff(path string, h Handoff) error {
	b, err := json.Marshal(h)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".bfd-handoff-*")
	if err != nil {
		return fmt.Errorf("bfd: hand-over file: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("bfd: hand-over file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("bfd: hand-over file: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("bfd: hand-over file: %w", err)
	}
	return nil
}

// ReadHandoff reads and removes the hand-over at path. A missing file is
// an empty Handoff; one older than maxAge at now too (the routers have
// declared those sessions down long since).
func ReadHandoff(path string, maxAge time.Duration, now time.Time) (Handoff, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return Handoff{}, nil
	}
	if err != nil {
		return Handoff{}, fmt.Errorf("bfd: hand-over file: %w", err)
	}
	os.Remove(path)
	var h Handoff
	if err := json.Unmarshal(b, &h); err != nil {
		return Handoff{}, fmt.Errorf("bfd: hand-over file %s: %w", path, err)
	}
	if now.Sub(h.At) > maxAge || h.At.After(now.Add(time.Minute)) {
		return Handoff{At: h.At}, nil
	}
	return h, nil
}

// save is e as Saved; ok is false unless it is Up.
func (e *entry) save() (Saved, bool) {
	s := e.s
	if s.state != Up {
		return Saved{}, false
	}
	return Saved{
		Peer: e.peer.Name, Addr: e.peer.Addr, Source: e.peer.Source, SourcePort: e.tx.port(),
		LocalDisc: s.localDisc, RemoteDisc: s.remoteDisc, Timers: s.timers,
		RemoteDesiredMinTx: s.remoteDesiredMinTx, RemoteMinRx: s.remoteMinRx, RemoteDetectMult: s.remoteDetectMult,
		UpSince: s.upSince.Round(0),
	}, true
}

// resumeSession is sv carried on at now under the configured timers t:
// Up, its detection time running from now, its first packet due at once.
// Timers that changed since sv go through a Poll sequence.
func resumeSession(sv Saved, t Timers, jitter func() float64, now time.Time) *session {
	s := newSession(sv.Timers, sv.LocalDisc, jitter, now)
	s.state, s.remoteState, s.remoteDisc = Up, Up, sv.RemoteDisc
	s.remoteDesiredMinTx, s.remoteMinRx, s.remoteDetectMult = sv.RemoteDesiredMinTx, sv.RemoteMinRx, max(sv.RemoteDetectMult, 1)
	s.desiredMinTx, s.requiredMinRx = sv.Timers.DesiredMinTx, sv.Timers.RequiredMinRx
	s.effTx, s.effRx = s.desiredMinTx, s.requiredMinRx
	s.upSince, s.lastRx, s.nextTx = sv.UpSince, now, now
	s.retime(t)
	return s
}
