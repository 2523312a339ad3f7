package agent

import (
	"fmt"

	"github.com/lbdproject/lbd/internal/announce"
	"github.com/lbdproject/lbd/internal/config"
)

// L2Sink hands the L2 decisions to an L2 announcer (announce.L2): each
// announced address on each of its interfaces.
type L2Sink struct {
	// New builds an announcer with the given gratuitous settings; a
	// reload that changes them builds a new one, gives it the current
	// set, then closes the old one (make-before-break).
	New func(config.Gratuitous) (announce.Announcer, error)

	grat config.Gratuitous
	ann  announce.Announcer
	last []announce.Announcement
}

// NewL2Sink builds the first announcer with the configuration in force.
func NewL2Sink(cfg *config.Config, build func(config.Gratuitous) (announce.Announcer, error)) (*L2Sink, error) {
	a, err := build(cfg.L2.Gratuitous)
	if err != nil {
		return nil, err
	}
	return &L2Sink{New: build, grat: cfg.L2.Gratuitous, ann: a}, nil
}

// Announcements converts decisions into what an announcer takes.
func Announcements(ds []Decision) []announce.Announcement {
	var out []announce.Announcement
	for _, d := range ds {
		if !d.Announce {
			continue
		}
		for _, ifn := range d.Interfaces {
			out = append(out, announce.Announcement{Addr: d.Addr, Interface: ifn, Reason: fmt.Sprintf("%s of %s", d.Reason, d.Service)})
		}
	}
	return out
}

// Apply implements Sink.
func (s *L2Sink) Apply(ds []Decision) error {
	s.last = Announcements(ds)
	return s.ann.Set(s.last)
}

// Reload implements ConfigSink.
func (s *L2Sink) Reload(cfg *config.Config) error {
	if cfg.L2.Gratuitous == s.grat {
		return nil
	}
	next, err := s.New(cfg.L2.Gratuitous)
	if err != nil {
		return fmt.Errorf("L2 announcer with the new l2.gratuitous: %w", err)
	}
	// Addresses the new one cannot take yet are retried by the next
	// Apply, which the agent makes after every reload.
	_ = next.Set(s.last)
	old := s.ann
	s.ann, s.grat = next, cfg.L2.Gratuitous
	return old.Close()
}

// Close withdraws everything and closes the announcer.
func (s *L2Sink) Close() error { return s.ann.Close() }
