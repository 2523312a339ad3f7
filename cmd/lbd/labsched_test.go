package main

import (
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"
)

// The lab tests that each build a network of their own run beside each
// other, labSlots at a time, longest first: the package's wall time is
// then about its longest lab, not the sum of the labs that happened to
// start last. go test's own -parallel must let them all through
// (scripts/test.sh passes -parallel 16); the slots are LBD_LAB_SLOTS
// (default 4, the most a 2-core machine runs without a lab's timing
// figures suffering; see docs/testing.md).
var labs = &labScheduler{gather: 300 * time.Millisecond}

// labParallel makes t a parallel lab test that waits for a slot, and
// frees it after t's own cleanups (the lab's teardown). expected is
// roughly how long the test takes; the longest waiting lab goes first.
func labParallel(t *testing.T, expected time.Duration) {
	t.Parallel()
	start := time.Now()
	labs.acquire(expected)
	t.Cleanup(labs.release)
	if waited := time.Since(start); waited > time.Second {
		t.Logf("waited %v for a lab slot", waited.Round(time.Second))
	}
}

type labScheduler struct {
	gather time.Duration // how long the first arrival waits for the others

	mu       sync.Mutex
	slots    int // free slots; set on first use
	started  bool
	gathered bool
	waiting  []*labWaiter
}

type labWaiter struct {
	expected time.Duration
	start    chan struct{}
}

func labSlots() int {
	if n, err := strconv.Atoi(os.Getenv("LBD_LAB_SLOTS")); err == nil && n > 0 {
		return n
	}
	return 4
}

// acquire blocks until the caller may run. Parallel tests are released
// together once the package's sequential tests end; the first to arrive
// waits gather for the others, so that the order is by expected
// duration, not by the scheduler's whim.
func (s *labScheduler) acquire(expected time.Duration) {
	w := &labWaiter{expected: expected, start: make(chan struct{})}
	s.mu.Lock()
	if !s.started {
		s.started = true
		s.slots = labSlots()
		time.AfterFunc(s.gather, func() {
			s.mu.Lock()
			s.gathered = true
			s.dispatch()
			s.mu.Unlock()
		})
	}
	s.waiting = append(s.waiting, w)
	if s.gathered {
		s.dispatch()
	}
	s.mu.Unlock()
	<-w.start
}

func (s *labScheduler) release() {
	s.mu.Lock()
	s.slots++
	s.dispatch()
	s.mu.Unlock()
}

// dispatch starts the longest waiting labs while slots are free. Callers
// hold s.mu.
func (s *labScheduler) dispatch() {
	for s.slots > 0 && len(s.waiting) > 0 {
		longest := 0
		for i, w := range s.waiting {
			if w.expected > s.waiting[longest].expected {
				longest = i
			}
		}
		w := s.waiting[longest]
		s.waiting = append(s.waiting[:longest], s.waiting[longest+1:]...)
		s.slots--
		close(w.start)
	}
}

// TestLabScheduler: labs that arrive together start longest first, never
// more than the slots at once, and a late arrival runs when a slot frees.
func TestLabScheduler(t *testing.T) {
	try := func(slots string, labs ...time.Duration) (order []time.Duration, most int) {
		t.Setenv("LBD_LAB_SLOTS", slots)
		s := &labScheduler{gather: 100 * time.Millisecond}
		var mu sync.Mutex
		running := 0
		var wg sync.WaitGroup
		run := func(d time.Duration) {
			defer wg.Done()
			s.acquire(d)
			mu.Lock()
			order = append(order, d)
			running++
			most = max(most, running)
			mu.Unlock()
			time.Sleep(20 * time.Millisecond)
			mu.Lock()
			running--
			mu.Unlock()
			s.release()
		}
		for _, d := range labs {
			wg.Add(1)
			go run(d)
		}
		wg.Wait()
		wg.Add(1)
		run(7) // after the gathering: runs at once, a slot being free
		return order, most
	}
	order, most := try("1", 1, 5, 3, 4, 2)
	if want := []time.Duration{5, 4, 3, 2, 1, 7}; !slices.Equal(order, want) {
		t.Errorf("one slot: labs started in the order %v, want %v", order, want)
	}
	if most != 1 {
		t.Errorf("one slot: %d labs ran at once", most)
	}
	if _, most := try("2", 1, 1, 1, 1, 1); most != 2 {
		t.Errorf("two slots: %d labs ran at once, want 2", most)
	}
}
