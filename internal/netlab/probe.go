package netlab

import (
	"fmt"
	"slices"
	"sync"
	"time"
)

// Prober tries something every 20ms (a TCP connection, an HTTP request
// from a lab host), each try on its own goroutine so that a slow one does
// not delay the schedule, and records the outcomes: the client a user
// would be. The control-plane lab tests and the demo measure failovers
// with it.
type Prober struct {
	mu      sync.Mutex
	results []try
	stop    chan struct{}
	wg      sync.WaitGroup
}

type try struct {
	at, end time.Time // started; answered or failed
	ok      bool
	err     error
}

// StartProbe starts trying do every 20ms until Close.
func StartProbe(do func() error) *Prober {
	p := &Prober{stop: make(chan struct{})}
	p.wg.Go(func() {
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-tick.C:
			}
			p.wg.Go(func() {
				at := time.Now()
				err := do()
				p.mu.Lock()
				p.results = append(p.results, try{at: at, end: time.Now(), ok: err == nil, err: err})
				p.mu.Unlock()
			})
		}
	})
	return p
}

// Close stops the probe and waits for the tries in flight.
func (p *Prober) Close() { close(p.stop); p.wg.Wait() }

// OKAfter reports whether a try started after t succeeded.
func (p *Prober) OKAfter(t time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, r := range p.results {
		if r.ok && r.at.After(t) {
			return true
		}
	}
	return false
}

// Outage returns, over the tries started after since, the longest time
// without an answer (between the ends of two successful tries), how many
// failed or hung (900ms or more: a lost SYN retransmitted), and how many
// there were.
func (p *Prober) Outage(since time.Time) (gap time.Duration, failed, total int) {
	p.mu.Lock()
	rs := slices.Clone(p.results)
	p.mu.Unlock()
	slices.SortFunc(rs, func(a, b try) int { return a.end.Compare(b.end) })
	var last time.Time
	for _, r := range rs {
		if r.at.Before(since) {
			if r.ok {
				last = r.end
			}
			continue
		}
		total++
		if !r.ok || r.end.Sub(r.at) >= 900*time.Millisecond {
			failed++
		}
		if !r.ok {
			continue
		}
		if !last.IsZero() && r.end.Sub(last) > gap {
			gap = r.end.Sub(last)
		}
		last = r.end
	}
	return gap, failed, total
}

// Failures describes the tries started after since that failed or hung,
// with their times relative to since.
func (p *Prober) Failures(since time.Time) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, r := range p.results {
		if r.at.Before(since) || (r.ok && r.end.Sub(r.at) < 900*time.Millisecond) {
			continue
		}
		what := "answered after " + r.end.Sub(r.at).Round(time.Millisecond).String()
		if !r.ok {
			what = r.err.Error()
		}
		out = append(out, fmt.Sprintf("+%.3fs: %s", r.at.Sub(since).Seconds(), what))
	}
	return out
}

// Count is how many tries started after since failed with an error that
// match accepts.
func (p *Prober) Count(since time.Time, match func(error) bool) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, r := range p.results {
		if !r.at.Before(since) && r.err != nil && match(r.err) {
			n++
		}
	}
	return n
}
