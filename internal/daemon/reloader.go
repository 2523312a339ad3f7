package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lbdproject/lbd/internal/config"
	"github.com/lbdproject/lbd/internal/event"
)

// A Subsystem is a part of the daemon that follows the configuration. The
// reloader calls Check on every subsystem, and only when all agree, Apply on
// each in order. Both are called from the reloader's goroutine only.
type Subsystem interface {
	// Name is used in logs and errors ("bgp", "allocator", ...).
	Name() string
	// Check reports whether next may replace prev, the configuration in
	// force, given live state (for example, a pool may not shrink under an
	// address in use). It must not change anything.
	Check(ctx context.Context, prev, next *config.Config) error
	// Apply makes next effective; prev is what ran before. If a later
	// subsystem fails, Apply is called again with the two swapped.
	Apply(ctx context.Context, prev, next *config.Config) error
}

// A Previewer is a Subsystem that can say, without changing anything,
// what applying next would do (`lbd reload --dry-run`): one line each.
type Previewer interface {
	Preview(ctx context.Context, prev, next *config.Config) ([]string, error)
}

// Preview is what a dry run found.
type Preview struct {
	Hash string
	// Changed names the sections of the file whose meaning changed.
	Changed []string
	// Effects are what applying it would do, one line each.
	Effects []string
	// Err is why it would be rejected; nil if it would be applied.
	Err error
}

// Result says what one reload did.
type Result struct {
	Source  string // "file", "signal", "socket", "start"
	Outcome string // "success", "unchanged" or "failure"
	Err     error
	Hash    string
	At      time.Time
}

// Outcomes of a reload.
const (
	OutcomeSuccess   = "success"
	OutcomeUnchanged = "unchanged"
	OutcomeFailure   = "failure"
)

type request struct {
	source string
	reply  chan Result
	// preview asks for a dry run instead; its answer comes here.
	preview chan Preview
}

// Reloader owns the current configuration. Every trigger (file change,
// SIGHUP, `lbd reload`) becomes a request to its one goroutine, so reloads
// never overlap. A reload reads and validates the file, asks every
// subsystem to check it against live state, applies it, and only then makes
// it current; on any failure the previous configuration stays in force.
type Reloader struct {
	path string
	log  *slog.Logger
	subs []Subsystem
	opts config.Options
	reqs chan request
	// parse reads and validates the file (opts.Parse; tests slow it).
	parse func(file string, data []byte) (*config.Config, error)
	// parseTimeout bounds one parse; parsing runs in a goroutine of its
	// own so that the heartbeat (systemd's watchdog) keeps beating.
	parseTimeout time.Duration
	// parsing is closed when the parse in flight ends; nil when none is.
	parsing chan struct{}

	mu      sync.Mutex // guards the fields below, read by Status
	current *config.Config
	hash    string
	last    Result
	// judged identifies what the last reload judged: the file's bytes
	// and the passwords its password files held (a rotated password is
	// a change even when the file is not).
	judged string

	beatEvery time.Duration // how often Run calls beat
	beat      func()

	lastOK        prometheus.Gauge
	lastOKTime    prometheus.Gauge
	reloadsByKind *prometheus.CounterVec
}

// NewReloader returns a reloader for the file at path whose first
// configuration, cfg (read from content with hash), is already in force.
func NewReloader(path string, cfg *config.Config, hash string, log *slog.Logger, reg prometheus.Registerer, subs ...Subsystem) *Reloader {
	r := &Reloader{
		path:         path,
		log:          log,
		subs:         subs,
		reqs:         make(chan request),
		current:      cfg,
		parseTimeout: DefaultParseTimeout,
		hash:         hash,
		last:         Result{Source: "start", Outcome: OutcomeSuccess, Hash: hash, At: time.Now()},
		lastOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "lbd_config_last_reload_successful",
			Help: "Whether the last configuration reload attempt succeeded (1) or was rejected (0).",
		}),
		lastOKTime: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "lbd_config_last_reload_success_timestamp_seconds",
			Help: "Unix time of the last configuration reload that succeeded.",
		}),
		reloadsByKind: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lbd_config_reloads_total",
			Help: "Configuration reload attempts by result (success, unchanged, failure).",
		}, []string{"result"}),
	}
	for _, o := range []string{OutcomeSuccess, OutcomeUnchanged, OutcomeFailure} {
		r.reloadsByKind.WithLabelValues(o)
	}
	r.lastOK.Set(1)
	r.lastOKTime.Set(float64(r.last.At.UnixNano()) / 1e9)
	reg.MustRegister(r.lastOK, r.lastOKTime, r.reloadsByKind)
	return r
}

// DefaultParseTimeout bounds how long a reload may spend reading and
// validating the file (a valid /16 written out address by address takes
// about 0.2s; the size and node limits bound the worst file).
const DefaultParseTimeout = 10 * time.Second

// Current returns the configuration in force.
func (r *Reloader) Current() (*config.Config, string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.current, r.hash
}

// Last returns the result of the latest reload attempt.
func (r *Reloader) Last() Result {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last
}

// Reload asks the reloader's goroutine to reload and waits for the result.
func (r *Reloader) Reload(ctx context.Context, source string) (Result, error) {
	req := request{source: source, reply: make(chan Result, 1)}
	select {
	case r.reqs <- req:
	case <-ctx.Done():
		return Result{}, ctx.Err()
	}
	select {
	case res := <-req.reply:
		return res, nil
	case <-ctx.Done():
		return Result{}, ctx.Err()
	}
}

// DryRun reads and checks the file as a reload would, and says what
// applying it would change, without applying it.
func (r *Reloader) DryRun(ctx context.Context) (Preview, error) {
	req := request{preview: make(chan Preview, 1)}
	select {
	case r.reqs <- req:
	case <-ctx.Done():
		return Preview{}, ctx.Err()
	}
	select {
	case p := <-req.preview:
		return p, nil
	case <-ctx.Done():
		return Preview{}, ctx.Err()
	}
}

func (r *Reloader) dryRun(ctx context.Context, tick <-chan time.Time) Preview {
	prev, _ := r.Current()
	data, err := os.ReadFile(r.path)
	if err != nil {
		return Preview{Err: fmt.Errorf("read %s: %w", r.path, err)}
	}
	p := Preview{Hash: config.Hash(data)}
	next, err := r.load(ctx, data, tick)
	if err != nil {
		p.Err = err
		return p
	}
	p.Changed = config.Changed(prev, next)
	if len(p.Changed) == 0 {
		return p
	}
	var errs []error
	for _, s := range r.subs {
		if err := s.Check(ctx, prev, next); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", s.Name(), err))
		}
	}
	if p.Err = errors.Join(errs...); p.Err != nil {
		return p
	}
	for _, s := range r.subs {
		if pv, ok := s.(Previewer); ok {
			lines, err := pv.Preview(ctx, prev, next)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", s.Name(), err))
			}
			p.Effects = append(p.Effects, lines...)
		}
	}
	p.Err = errors.Join(errs...)
	return p
}

// SetHeartbeat makes Run call fn every interval, from its own loop: a
// watchdog fed this way stops being fed when the loop that owns the
// configuration hangs. Call before Run.
func (r *Reloader) SetHeartbeat(every time.Duration, fn func()) {
	r.beatEvery, r.beat = every, fn
}

// Run serves reload requests until ctx ends.
func (r *Reloader) Run(ctx context.Context) {
	var tick <-chan time.Time
	if r.beat != nil && r.beatEvery > 0 {
		t := time.NewTicker(r.beatEvery)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick:
			r.beat()
		case req := <-r.reqs:
			if req.preview != nil {
				req.preview <- r.dryRun(ctx, tick)
				continue
			}
			res := r.reload(ctx, req.source, tick)
			req.reply <- res
		}
	}
}

// load reads and validates the file in a goroutine of its own, beating
// the heartbeat on tick meanwhile: a file that takes long to judge (or a
// bug that hangs the parser) must not get the daemon killed by systemd's
// watchdog. It gives up after parseTimeout; the parse left running is
// waited for before the next one starts, so at most one runs.
func (r *Reloader) load(ctx context.Context, data []byte, tick <-chan time.Time) (*config.Config, error) {
	if r.parsing != nil {
		select {
		case <-r.parsing:
		default:
			return nil, fmt.Errorf("%s: still validating an earlier version of the file, which took more than %s; try again later", r.path, r.parseTimeout)
		}
	}
	type result struct {
		cfg *config.Config
		err error
	}
	out := make(chan result, 1)
	done := make(chan struct{})
	r.parsing = done
	parse := r.parse
	if parse == nil {
		parse = r.opts.Parse
	}
	go func() {
		defer close(done)
		c, err := parse(r.path, data)
		out <- result{c, err}
	}()
	deadline := time.NewTimer(r.parseTimeout)
	defer deadline.Stop()
	for {
		select {
		case res := <-out:
			// The parse is over: the next load must not find it running
			// (its goroutine closes done just after sending).
			<-done
			r.parsing = nil
			return res.cfg, res.err
		case <-tick:
			r.beat()
		case <-deadline.C:
			return nil, fmt.Errorf("%s: validating the file took more than %s; it is not applied", r.path, r.parseTimeout)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (r *Reloader) reload(ctx context.Context, source string, tick <-chan time.Time) Result {
	res := Result{Source: source, At: time.Now()}
	prev, prevHash := r.Current()
	var hash string
	data, err := os.ReadFile(r.path)
	if err != nil {
		err = fmt.Errorf("read %s: %w", r.path, err)
	} else {
		hash = config.Hash(data)
	}
	judged := hash + passwordsKey(prev)
	r.mu.Lock()
	same := judged == r.judged
	r.judged = judged
	r.mu.Unlock()
	if last := r.Last(); source == "file" && err == nil && same {
		// The same bytes (and passwords) were judged already (a reload
		// through the socket usually races the file watcher): no work, no
		// new verdict.
		return last
	}
	var next *config.Config
	if err == nil {
		next, err = r.load(ctx, data, tick)
	}
	res.Hash = hash
	switch {
	case err != nil:
		res.Err = err
	case config.Equal(prev, next):
		res.Outcome = OutcomeUnchanged
	default:
		res.Err = r.apply(ctx, prev, next)
	}
	if res.Err != nil {
		res.Outcome = OutcomeFailure
	} else if res.Outcome == "" {
		res.Outcome = OutcomeSuccess
	}

	r.mu.Lock()
	switch res.Outcome {
	case OutcomeSuccess:
		r.current, r.hash = next, hash
	case OutcomeUnchanged:
		r.hash = hash // same meaning, perhaps new comments or layout
	}
	r.last = res
	r.mu.Unlock()

	r.reloadsByKind.WithLabelValues(res.Outcome).Inc()
	switch res.Outcome {
	case OutcomeFailure:
		r.lastOK.Set(0)
		r.log.Error("configuration rejected; the previous one stays in force",
			event.Attr(event.ConfigRejected), "source", source, "file", r.path, "running_hash", prevHash, "err", res.Err)
	case OutcomeUnchanged:
		r.lastOK.Set(1)
		r.lastOKTime.Set(float64(res.At.UnixNano()) / 1e9)
		r.log.Debug("configuration unchanged", "source", source, "file", r.path, "hash", hash)
	default:
		r.lastOK.Set(1)
		r.lastOKTime.Set(float64(res.At.UnixNano()) / 1e9)
		r.log.Info("configuration reloaded", event.Attr(event.ConfigApplied), "source", source, "file", r.path,
			"hash", hash, "previous_hash", prevHash, "summary", next.Summary())
	}
	if res.Outcome != OutcomeFailure {
		LogWarnings(r.log, next)
	}
	return res
}

// PasswordFiles lists the password files cfg names, for the file watcher.
func PasswordFiles(cfg *config.Config) []string {
	var out []string
	for _, p := range cfg.BGP.Peers {
		if p.PasswordFile != "" {
			out = append(out, p.PasswordFile)
		}
	}
	return out
}

// passwordsKey fingerprints what the password files cfg names hold now.
func passwordsKey(cfg *config.Config) string {
	var b strings.Builder
	for _, f := range PasswordFiles(cfg) {
		pw, err := config.ReadPassword(f)
		if err != nil {
			pw = err.Error()
		}
		b.WriteString(" " + config.Fingerprint(pw))
	}
	return b.String()
}

// LogWarnings logs what lbd check would warn about in cfg.
func LogWarnings(log *slog.Logger, cfg *config.Config) {
	if cfg == nil {
		return
	}
	for _, w := range cfg.Warnings {
		log.Warn("configuration warning", "file", w.File, "line", w.Line, "field", w.Field, "value", w.Value, "warning", w.Msg)
	}
}

// apply checks next with every subsystem, then applies it, rolling back the
// subsystems already applied if one fails.
func (r *Reloader) apply(ctx context.Context, prev, next *config.Config) error {
	var errs []error
	for _, s := range r.subs {
		if err := s.Check(ctx, prev, next); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", s.Name(), err))
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	for i, s := range r.subs {
		err := s.Apply(ctx, prev, next)
		if err == nil {
			continue
		}
		err = fmt.Errorf("%s: %w", s.Name(), err)
		for j := i - 1; j >= 0; j-- {
			if rerr := r.subs[j].Apply(ctx, next, prev); rerr != nil {
				r.log.Error("rollback failed", "subsystem", r.subs[j].Name(), "err", rerr)
				err = errors.Join(err, fmt.Errorf("rolling back %s: %w", r.subs[j].Name(), rerr))
			}
		}
		return err
	}
	return nil
}
