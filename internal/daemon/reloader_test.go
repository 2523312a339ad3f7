package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/lbdproject/lbd/internal/config"
)

// fakeSub is a Subsystem that records what it was asked to do.
type fakeSub struct {
	name     string
	checkErr error
	applyErr func(next *config.Config) error
	inFlight *atomic.Int32
	overlaps atomic.Int32
	mu       sync.Mutex
	applied  []string // log levels applied, in order
}

func (f *fakeSub) Name() string { return f.name }

func (f *fakeSub) Check(_ context.Context, _, _ *config.Config) error { return f.checkErr }

func (f *fakeSub) Apply(_ context.Context, _, next *config.Config) error {
	if f.inFlight != nil {
		if f.inFlight.Add(1) > 1 {
			f.overlaps.Add(1)
		}
		defer f.inFlight.Add(-1)
		// Real work takes time: two applies that are not serialised
		// overlap within it (without it this test passed with the
		// serialisation removed).
		time.Sleep(5 * time.Millisecond)
	}
	f.mu.Lock()
	f.applied = append(f.applied, string(next.Log.Level))
	f.mu.Unlock()
	if f.applyErr != nil {
		return f.applyErr(next)
	}
	return nil
}

// Preview implements Previewer.
func (f *fakeSub) Preview(_ context.Context, prev, next *config.Config) ([]string, error) {
	return []string{fmt.Sprintf("%s: level %s to %s", f.name, prev.Log.Level, next.Log.Level)}, nil
}

func (f *fakeSub) history() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return strings.Join(f.applied, ",")
}

var testOpts = config.Options{Hostname: func() (string, error) { return "n1", nil }}

func setup(t *testing.T, subs ...Subsystem) (*Reloader, string, *prometheus.Registry) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "lbd.yaml")
	writeLevel(t, path, "info")
	data, _ := os.ReadFile(path)
	cfg, err := testOpts.Parse(path, data)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	r := NewReloader(path, cfg, config.Hash(data), slog.New(slog.NewTextHandler(io.Discard, nil)), reg, subs...)
	r.opts = testOpts
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return r, path, reg
}

func writeLevel(t *testing.T, path, level string) {
	t.Helper()
	if err := os.WriteFile(path, []byte("version: 1\nlog: {level: "+level+"}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

func level(r *Reloader) config.LogLevel {
	c, _ := r.Current()
	return c.Log.Level
}

func TestReloadAppliesInOrder(t *testing.T) {
	a, b := &fakeSub{name: "a"}, &fakeSub{name: "b"}
	r, path, reg := setup(t, a, b)
	writeLevel(t, path, "debug")
	res, err := r.Reload(context.Background(), "socket")
	if err != nil || res.Outcome != OutcomeSuccess || level(r) != config.LogDebug {
		t.Fatalf("got %+v, %v, level %s", res, err, level(r))
	}
	if a.history() != "debug" || b.history() != "debug" {
		t.Errorf("applied: a=%s b=%s", a.history(), b.history())
	}
	if v := testutil.ToFloat64(r.lastOK); v != 1 {
		t.Errorf("last_reload_successful = %v", v)
	}
	if n, _ := testutil.GatherAndCount(reg, "lbd_config_reloads_total"); n != 3 {
		t.Errorf("reloads_total has %d series, want one per result", n)
	}

	res, _ = r.Reload(context.Background(), "socket")
	if res.Outcome != OutcomeUnchanged || a.history() != "debug" {
		t.Errorf("unchanged file: %+v, applied %s", res, a.history())
	}
}

func TestReloadRejectedByCheck(t *testing.T) {
	a := &fakeSub{name: "a"}
	b := &fakeSub{name: "allocator", checkErr: errors.New("pool p would lose 192.0.2.5 used by default/web")}
	r, path, _ := setup(t, a, b)
	writeLevel(t, path, "debug")
	res, _ := r.Reload(context.Background(), "socket")
	if res.Outcome != OutcomeFailure || !strings.Contains(res.Err.Error(), "allocator: pool p would lose 192.0.2.5 used by default/web") {
		t.Fatalf("got %+v", res)
	}
	if a.history() != "" || level(r) != config.LogInfo {
		t.Errorf("a rejected config was applied: %s, level %s", a.history(), level(r))
	}
	if v := testutil.ToFloat64(r.lastOK); v != 0 {
		t.Errorf("last_reload_successful = %v", v)
	}
}

func TestReloadRollsBack(t *testing.T) {
	a := &fakeSub{name: "a"}
	b := &fakeSub{name: "bgp", applyErr: func(next *config.Config) error {
		if next.Log.Level == config.LogDebug {
			return errors.New("peer tor: cannot bind")
		}
		return nil
	}}
	r, path, _ := setup(t, a, b)
	writeLevel(t, path, "debug")
	res, _ := r.Reload(context.Background(), "socket")
	if res.Outcome != OutcomeFailure || !strings.Contains(res.Err.Error(), "bgp: peer tor: cannot bind") {
		t.Fatalf("got %+v", res)
	}
	if a.history() != "debug,info" {
		t.Errorf("a was not rolled back: %s", a.history())
	}
	if level(r) != config.LogInfo {
		t.Errorf("current level %s after a failed apply", level(r))
	}
}

func TestReloadInvalidKeepsOld(t *testing.T) {
	r, path, _ := setup(t)
	writeLevel(t, path, "loud")
	res, _ := r.Reload(context.Background(), "signal")
	var errs config.Errors
	if res.Outcome != OutcomeFailure || !errors.As(res.Err, &errs) || level(r) != config.LogInfo {
		t.Fatalf("got %+v", res)
	}
	if last := r.Last(); last.Source != "signal" || last.Outcome != OutcomeFailure {
		t.Errorf("Last() = %+v", last)
	}
	// The watcher seeing the same bytes again does no work.
	again, _ := r.Reload(context.Background(), "file")
	if again.At != res.At {
		t.Errorf("the same rejected bytes were judged twice")
	}
	os.Remove(path)
	res, _ = r.Reload(context.Background(), "socket")
	if res.Outcome != OutcomeFailure || !errors.Is(res.Err, os.ErrNotExist) {
		t.Errorf("missing file: %+v", res)
	}
}

// TestReloadsNeverOverlap fires reloads from many goroutines; Apply must
// never run twice at once.
func TestReloadsNeverOverlap(t *testing.T) {
	var inFlight atomic.Int32
	a := &fakeSub{name: "a", inFlight: &inFlight}
	r, path, _ := setup(t, a)
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			lv := []string{"debug", "info", "warn", "error"}[i%4]
			writeLevel(t, fmt.Sprintf("%s.%d", path, i), lv)
			os.Rename(fmt.Sprintf("%s.%d", path, i), path)
			if _, err := r.Reload(context.Background(), "socket"); err != nil {
				t.Error(err)
			}
		}(i)
	}
	wg.Wait()
	if n := a.overlaps.Load(); n != 0 {
		t.Errorf("%d overlapping applies", n)
	}
	if a.history() == "" {
		t.Error("nothing was applied")
	}
}

// TestReloadParseKeepsTheWatchdogFed: a file that takes long to validate
// is parsed off the reloader's loop, which keeps beating the heartbeat
// (systemd's watchdog); past the deadline the reload fails and the old
// configuration stays; while that parse still runs, another reload is
// refused rather than piled up; afterwards reloads work again.
func TestReloadParseKeepsTheWatchdogFed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "lbd.yaml")
		writeLevel(t, path, "info")
		data, _ := os.ReadFile(path)
		cfg, err := testOpts.Parse(path, data)
		if err != nil {
			t.Fatal(err)
		}
		r := NewReloader(path, cfg, config.Hash(data), slog.New(slog.DiscardHandler), prometheus.NewRegistry())
		r.parseTimeout = 10 * time.Second
		release := make(chan struct{})
		var slow atomic.Bool
		r.parse = func(file string, data []byte) (*config.Config, error) {
			if slow.Load() {
				time.Sleep(3 * time.Second)
			} else {
				<-release // hangs until the test lets it go
			}
			return testOpts.Parse(file, data)
		}
		var beats atomic.Int32
		r.SetHeartbeat(time.Second, func() { beats.Add(1) })
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { r.Run(ctx); close(done) }()
		defer func() { cancel(); <-done }()

		writeLevel(t, path, "debug")
		start := time.Now()
		res, err := r.Reload(ctx, "socket")
		if err != nil || res.Outcome != OutcomeFailure || !strings.Contains(res.Err.Error(), "took more than 10s") {
			t.Fatalf("hung parse: %+v, %v", res, err)
		}
		if took := time.Since(start); took != 10*time.Second {
			t.Errorf("gave up after %v, want the 10s deadline", took)
		}
		if n := beats.Load(); n < 9 {
			t.Errorf("%d heartbeats during a 10s parse, want one a second", n)
		}
		if level(r) != "info" {
			t.Errorf("level %s after a failed reload", level(r))
		}
		res, _ = r.Reload(ctx, "socket")
		if res.Outcome != OutcomeFailure || !strings.Contains(res.Err.Error(), "still validating") {
			t.Errorf("reload during a hung parse: %+v", res)
		}
		close(release)
		synctest.Wait()
		slow.Store(true)
		beats.Store(0)
		res, _ = r.Reload(ctx, "socket")
		if res.Outcome != OutcomeSuccess || level(r) != "debug" {
			t.Errorf("a slow but valid parse: %+v, level %s", res, level(r))
		}
		if n := beats.Load(); n < 2 {
			t.Errorf("%d heartbeats during a 3s parse", n)
		}
	})
}

// TestDryRun: a dry run parses and checks the file and says what would
// change, and applies nothing; a file a subsystem refuses would be
// rejected; an unchanged one would change nothing.
func TestDryRun(t *testing.T) {
	a := &fakeSub{name: "a"}
	r, path, _ := setup(t, a)
	writeLevel(t, path, "debug")
	p, err := r.DryRun(context.Background())
	if err != nil || p.Err != nil || !slices.Equal(p.Changed, []string{"log"}) || !slices.Equal(p.Effects, []string{"a: level info to debug"}) {
		t.Errorf("dry run: %+v, %v", p, err)
	}
	if level(r) != "info" || a.history() != "" || r.Last().Source != "start" {
		t.Errorf("a dry run changed something: level %s, applied %q, last %+v", level(r), a.history(), r.Last())
	}
	if got := testutil.ToFloat64(r.reloadsByKind.WithLabelValues(OutcomeSuccess)); got != 0 {
		t.Errorf("a dry run counted as a reload: %v", got)
	}
	a.checkErr = errors.New("no")
	if p, _ := r.DryRun(context.Background()); p.Err == nil || !strings.Contains(p.Err.Error(), "a: no") {
		t.Errorf("refused dry run: %+v", p)
	}
	writeLevel(t, path, "info")
	if p, _ := r.DryRun(context.Background()); p.Err != nil || len(p.Changed) != 0 {
		t.Errorf("unchanged dry run: %+v", p)
	}
}
