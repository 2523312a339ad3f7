package announce

import (
	"sync"
	"testing"
	"time"

	"github.com/lbdproject/lbd/internal/config"
)

// fakeClock fires timers only when the test advances it.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Duration
	waiters []fakeTimer
	added   chan struct{} // one token per After call
}

type fakeTimer struct {
	at time.Duration
	c  chan time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{added: make(chan struct{}, 100)} }

func (f *fakeClock) After(d time.Duration) <-chan time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := make(chan time.Time, 1)
	f.waiters = append(f.waiters, fakeTimer{at: f.now + d, c: c})
	f.added <- struct{}{}
	return c
}

// advance moves the clock by d and fires the timers that are due.
func (f *fakeClock) advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now += d
	kept := f.waiters[:0]
	for _, w := range f.waiters {
		if w.at <= f.now {
			w.c <- time.Time{}
		} else {
			kept = append(kept, w)
		}
	}
	f.waiters = kept
}

func TestGratuitousLoopSchedule(t *testing.T) {
	clk := newFakeClock()
	stop := make(chan struct{})
	sent := make(chan time.Duration, 100)
	done := make(chan struct{})
	g := config.Gratuitous{Count: 3, Interval: time.Second, Refresh: 10 * time.Second}
	go func() {
		defer close(done)
		gratuitousLoop(stop, clk, g, func() {
			clk.mu.Lock()
			sent <- clk.now
			clk.mu.Unlock()
		})
	}()
	want := []time.Duration{0, time.Second, 2 * time.Second, 12 * time.Second, 22 * time.Second}
	for i, w := range want {
		if i > 0 {
			<-clk.added // the loop waits for the next packet
			clk.advance(want[i] - want[i-1])
		}
		select {
		case at := <-sent:
			if at != w {
				t.Errorf("packet %d sent at %v, want %v", i, at, w)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("packet %d not sent", i)
		}
	}
	<-clk.added
	close(stop)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("loop did not stop")
	}
	if len(sent) != 0 {
		t.Errorf("%d packets after stop", len(sent))
	}
}

func TestGratuitousLoopEnds(t *testing.T) {
	clk := newFakeClock()
	n := 0
	done := make(chan struct{})
	go func() {
		defer close(done)
		gratuitousLoop(make(chan struct{}), clk, config.Gratuitous{Count: 2, Interval: time.Second}, func() { n++ })
	}()
	<-clk.added
	clk.advance(time.Second)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("loop without refresh did not end")
	}
	if n != 2 {
		t.Errorf("sent %d, want 2", n)
	}
}
