package allocate

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lbdproject/lbd/internal/cluster"
	"github.com/lbdproject/lbd/internal/config"
	"github.com/lbdproject/lbd/internal/pool"
)

// fakeCluster is a Source and Writer in memory: SetStatus updates the
// Service and notifies the controller, as the informer would.
type fakeCluster struct {
	mu     sync.Mutex
	svcs   map[string]cluster.Service
	events []string
	notify func(string)
	writes int
}

func (f *fakeCluster) Service(key string) (cluster.Service, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.svcs[key]
	return s, ok
}

func (f *fakeCluster) Services() []cluster.Service {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []cluster.Service
	for _, s := range f.svcs {
		if s.Served {
			out = append(out, s)
		}
	}
	return out
}

func (f *fakeCluster) SetStatus(_ context.Context, key string, addrs []netip.Addr, p string) error {
	f.mu.Lock()
	s := f.svcs[key]
	s.Status, s.AllocatedFrom = addrs, p
	f.svcs[key] = s
	f.writes++
	f.mu.Unlock()
	f.notify(key)
	return nil
}

func (f *fakeCluster) Event(key string, warning bool, reason, msg string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.events = append(f.events, fmt.Sprintf("%s %s: %s", key, reason, msg))
}

func (f *fakeCluster) put(s cluster.Service) {
	f.mu.Lock()
	f.svcs[s.Spec.Key] = s
	f.mu.Unlock()
	f.notify(s.Spec.Key)
}

func (f *fakeCluster) del(key string) {
	f.mu.Lock()
	delete(f.svcs, key)
	f.mu.Unlock()
	f.notify(key)
}

func (f *fakeCluster) status(key string) string {
	s, _ := f.Service(key)
	return config.JoinAddrs(s.Status)
}

func (f *fakeCluster) eventLog() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return strings.Join(f.events, "\n")
}

func lbService(key string, created int, status ...string) cluster.Service {
	ns, _, _ := strings.Cut(key, "/")
	s := cluster.Service{
		Served:  true,
		Created: time.Unix(int64(created), 0),
		Spec:    pool.Service{Key: key, Namespace: ns, Families: []pool.Family{pool.IPv4}, Ports: []pool.Port{{Protocol: "TCP", Port: 80}}},
	}
	for _, a := range status {
		s.Status = append(s.Status, netip.MustParseAddr(a))
	}
	return s
}

func pools(t *testing.T, ranges ...string) []config.Pool {
	t.Helper()
	p := config.Pool{Name: "p"}
	for _, s := range ranges {
		r, err := config.ParseRange(s)
		if err != nil {
			t.Fatal(err)
		}
		p.Addresses = append(p.Addresses, r)
	}
	return []config.Pool{p}
}

// lead starts a controller leading over f and returns a stop function.
func lead(t *testing.T, c *Controller, f *fakeCluster) func() {
	t.Helper()
	f.notify = c.Notify
	c.SetCluster(f, f)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Lead(ctx); close(done) }()
	stop := func() { cancel(); <-done }
	t.Cleanup(stop)
	return stop
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func newController(t *testing.T, p []config.Pool) *Controller {
	return New(p, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
}

func TestRebuildKeepsAddresses(t *testing.T) {
	f := &fakeCluster{svcs: map[string]cluster.Service{}, notify: func(string) {}}
	// An older pending Service must not take the address a newer one holds.
	f.svcs["default/old-pending"] = lbService("default/old-pending", 1)
	f.svcs["default/holder"] = lbService("default/holder", 2, "192.0.2.0")
	f.svcs["default/other"] = lbService("default/other", 3, "192.0.2.1")
	c := newController(t, pools(t, "192.0.2.0/30"))
	lead(t, c, f)
	eventually(t, "the pending Service to be served", func() bool { return f.status("default/old-pending") != "" })
	if got := f.status("default/holder") + " " + f.status("default/other") + " " + f.status("default/old-pending"); got != "192.0.2.0 192.0.2.1 192.0.2.2" {
		t.Errorf("after rebuild: %s", got)
	}
	if f.writes != 3 { // the pool annotation for the two, the address for one
		t.Errorf("%d writes", f.writes)
	}
}

func TestPendingUntilRoom(t *testing.T) {
	f := &fakeCluster{svcs: map[string]cluster.Service{}}
	c := newController(t, pools(t, "192.0.2.0/31"))
	lead(t, c, f)
	for i := range 3 {
		f.put(lbService(fmt.Sprintf("default/s%d", i), i))
		time.Sleep(10 * time.Millisecond)
	}
	eventually(t, "an exhaustion Event", func() bool {
		return strings.Contains(f.eventLog(), "default/s2 PoolExhausted: no address: no IPv4 address free in pool p")
	})
	if f.status("default/s2") != "" {
		t.Fatal("s2 got an address from a full pool")
	}
	f.del("default/s0")
	eventually(t, "s2 to get the freed address", func() bool { return f.status("default/s2") == "192.0.2.0" })

	// Type change away from LoadBalancer: lbd takes its status back.
	s := lbService("default/s1", 1, "192.0.2.1")
	s.Served, s.AllocatedFrom = false, "p"
	f.put(s)
	eventually(t, "the status to be cleared", func() bool { return f.status("default/s1") == "" })
	if !strings.Contains(f.eventLog(), "default/s1 IPReleased: released 192.0.2.1") {
		t.Errorf("events:\n%s", f.eventLog())
	}
}

func TestBadAnnotationKeepsAddress(t *testing.T) {
	f := &fakeCluster{svcs: map[string]cluster.Service{}}
	c := newController(t, pools(t, "192.0.2.0/30"))
	lead(t, c, f)
	f.put(lbService("default/web", 1))
	eventually(t, "an address", func() bool { return f.status("default/web") == "192.0.2.0" })
	s, _ := f.Service("default/web")
	s.Invalid = fmt.Errorf(`requested address "bogus" is not an IP address`)
	f.put(s)
	eventually(t, "a BadAnnotation Event", func() bool { return strings.Contains(f.eventLog(), "BadAnnotation") })
	if f.status("default/web") != "192.0.2.0" {
		t.Errorf("a bad annotation cost the address")
	}
}

func TestCheckStranding(t *testing.T) {
	f := &fakeCluster{svcs: map[string]cluster.Service{}, notify: func(string) {}}
	f.svcs["shop/cart"] = lbService("shop/cart", 1, "192.0.2.3")
	c := newController(t, pools(t, "192.0.2.0/30"))
	c.SetCluster(f, f)
	err := c.Check(context.Background(), nil, &config.Config{Pools: pools(t, "192.0.2.0/31")})
	if err == nil || !strings.Contains(err.Error(), "192.0.2.3 (shop/cart): it would be in no pool") {
		t.Errorf("got %v", err)
	}
	if err := c.Check(context.Background(), nil, &config.Config{Pools: pools(t, "192.0.2.0/29")}); err != nil {
		t.Errorf("growing a pool: %v", err)
	}
}

// TestFailureReasonsStartAtZero: every reason is exported before the first
// failure, so rate() sees that failure (the PoolExhausted alert relies on it).
func TestFailureReasonsStartAtZero(t *testing.T) {
	reg := prometheus.NewRegistry()
	New(nil, slog.New(slog.NewTextHandler(io.Discard, nil)), reg)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "lbd_allocation_failures_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" {
					got[l.GetValue()] = m.GetCounter().GetValue()
				}
			}
		}
	}
	for _, r := range failureReasons {
		if v, ok := got[string(r)]; !ok || v != 0 {
			t.Errorf("lbd_allocation_failures_total{reason=%q} = %v (exported %v), want 0", r, v, ok)
		}
	}
	if len(got) != len(failureReasons) || got[string(pool.ReasonPoolExhausted)] != 0 {
		t.Errorf("exported reasons %v, want exactly %v", got, failureReasons)
	}
}
