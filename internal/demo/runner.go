package demo

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"
	"testing"
)

// runner lets the demo use the lab packages (netlab, kubetest), which
// take a testing.TB, outside a test: Cleanup stacks functions that Close
// runs, Fatal stops the story (a panic that Run recovers), Log goes to the
// lab's log file. The embedded nil testing.TB only satisfies the
// interface's unexported method; the lab packages call none of the
// methods it leaves out.
type runner struct {
	testing.TB
	ctx context.Context
	dir string
	log io.Writer

	mu       sync.Mutex
	cleanups []func()
	failed   bool
	closed   bool
}

// fatal is the panic value of Fatal and Skip.
type fatal struct{ msg string }

func newRunner(ctx context.Context, dir string, log io.Writer) *runner {
	return &runner{ctx: ctx, dir: dir, log: log}
}

func (r *runner) Helper()                  {}
func (r *runner) Name() string             { return "demo" }
func (r *runner) Context() context.Context { return r.ctx }

func (r *runner) Cleanup(f func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		// Close has run (a signal): undo at once.
		go f()
		return
	}
	r.cleanups = append(r.cleanups, f)
}

func (r *runner) Logf(format string, args ...any) { fmt.Fprintf(r.log, format+"\n", args...) }
func (r *runner) Log(args ...any)                 { fmt.Fprintln(r.log, args...) }

func (r *runner) Errorf(format string, args ...any) {
	r.setFailed()
	r.Logf("error: "+format, args...)
}
func (r *runner) Error(args ...any) { r.Errorf("%s", fmt.Sprint(args...)) }

func (r *runner) Fatalf(format string, args ...any) {
	r.setFailed()
	panic(fatal{fmt.Sprintf(format, args...)})
}
func (r *runner) Fatal(args ...any) { r.Fatalf("%s", fmt.Sprint(args...)) }
func (r *runner) FailNow()          { r.Fatalf("failed") }

// Skip means a missing tool or binary: for the demo, a failure.
func (r *runner) Skipf(format string, args ...any) { r.Fatalf("cannot run: "+format, args...) }
func (r *runner) Skip(args ...any)                 { r.Skipf("%s", fmt.Sprint(args...)) }
func (r *runner) SkipNow()                         { r.Skipf("skipped") }

func (r *runner) Failed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.failed
}

func (r *runner) setFailed() {
	r.mu.Lock()
	r.failed = true
	r.mu.Unlock()
}

func (r *runner) TempDir() string {
	d, err := os.MkdirTemp(r.dir, "tmp")
	if err != nil {
		r.Fatal(err)
	}
	return d
}

// Close runs the cleanups, last first, once.
func (r *runner) Close() {
	r.mu.Lock()
	fs := r.cleanups
	r.cleanups, r.closed = nil, true
	r.mu.Unlock()
	for _, f := range slices.Backward(fs) {
		f()
	}
}
