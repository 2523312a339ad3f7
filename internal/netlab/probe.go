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
//
// A try that failed or hung while the prober's own process did not run
// for half its time or more (its 20 ms ticks stopped arriving: a machine
// loaded with other work) says nothing of the network: Outage does not
// count it, and Failures says so.
type Prober struct {
	mu      sync.Mutex
	results []try
	stalls  [][2]time.Time // gaps of over 200 ms between ticks
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
		last := time.Now()
		for {
			select {
			case <-p.stop:
				return
			case <-tick.C:
			}
			now := time.Now()
			if now.Sub(last) > 200*time.Millisecond {
				p.mu.Lock()
				p.stalls = append(p.stalls, [2]time.Time{last, now})
				p.mu.Unlock()
			}
			last = now
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
	stalls := slices.Clone(p.stalls)
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
		if (!r.ok || r.end.Sub(r.at) >= 900*time.Millisecond) && !starved(stalls, r) {
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
		if starved(p.stalls, r) {
			what += fmt.Sprintf(" (the prober stalled %v of it: not counted)", Stalled(p.stalls, r.at, r.end).Round(time.Millisecond))
		}
		out = append(out, fmt.Sprintf("+%.3fs: %s", r.at.Sub(since).Seconds(), what))
	}
	return out
}

// Count is how many tries started after since failed with an error that
// match accepts (those Outage does not count left out too).
func (p *Prober) Count(since time.Time, match func(error) bool) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, r := range p.results {
		if !r.at.Before(since) && r.err != nil && match(r.err) && !starved(p.stalls, r) {
			n++
		}
	}
	return n
}

// starved reports whether the prober's process stalled for half of r's
// time or more.
func starved(stalls [][2]time.Time, r try) bool {
	return 2*Stalled(stalls, r.at, r.end) >= r.end.Sub(r.at)
}

// Stalled is how much of [from, to] the intervals cover (they do not
// overlap each other).
func Stalled(iv [][2]time.Time, from, to time.Time) time.Duration {
	var d time.Duration
	for _, x := range iv {
		a, b := x[0], x[1]
		if a.Before(from) {
			a = from
		}
		if b.After(to) {
			b = to
		}
		if b.After(a) {
			d += b.Sub(a)
		}
	}
	return d
}
