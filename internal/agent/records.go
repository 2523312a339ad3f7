package agent

import (
	"context"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"
)

// ownerRecords writes this node's name on the Services whose layer-2
// addresses it took (watch.AnnotationL2Owner), off the agent's goroutine:
// a slow or unreachable API server never delays an announcement. The
// record is what keeps an address where it is when its former owner comes
// back (owner.Choose), so it is written once per move, never in steady
// state. A failed write is retried every retryRecord while still wanted.
type ownerRecords struct {
	node string
	log  *slog.Logger
	kick chan struct{}

	mu      sync.Mutex
	cluster Cluster
	since   time.Time       // this node's term of life, written with each record
	listed  map[string]bool // the latest plan's Services that do not name this node yet
	failing bool            // the last write failed (logged once per run of failures)
	// written is when each Service was last recorded: until the
	// informer shows the record, plans still list it; it is written
	// again only rewriteAfter later.
	written map[string]time.Time
}

const (
	// retryRecord is how long after a failed write it is tried again.
	retryRecord = 2 * time.Second
	// rewriteAfter is how long a written record is given to show up in
	// the Service informer before it is written again.
	rewriteAfter = 10 * time.Second
)

func newOwnerRecords(node string, log *slog.Logger) *ownerRecords {
	return &ownerRecords{node: node, log: log, kick: make(chan struct{}, 1), listed: map[string]bool{}, written: map[string]time.Time{}}
}

// set says which Services the latest plan gives this node while their
// record names another (or none); it never blocks.
func (r *ownerRecords) set(c Cluster, services []string, since time.Time) {
	r.mu.Lock()
	r.cluster = c
	if !since.Equal(r.since) {
		// A new term: every record is due again, with it.
		r.since = since
		clear(r.written)
	}
	r.listed = make(map[string]bool, len(services))
	for _, s := range services {
		r.listed[s] = true
	}
	r.mu.Unlock()
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// due returns the listed Services to write now, and when to look again.
func (r *ownerRecords) due(now time.Time) ([]string, time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	next := now.Add(time.Hour)
	var out []string
	for _, k := range slices.Sorted(maps.Keys(r.listed)) {
		if again := r.written[k].Add(rewriteAfter); now.Before(again) {
			next = minTime(next, again)
			continue
		}
		out = append(out, k)
	}
	for k, t := range r.written {
		if !r.listed[k] && !now.Before(t.Add(rewriteAfter)) {
			delete(r.written, k)
		}
	}
	return out, next
}

// run writes the due records until ctx ends.
func (r *ownerRecords) run(ctx context.Context) {
	wake := time.NewTimer(time.Hour)
	defer wake.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.kick:
		case <-wake.C:
		}
		keys, next := r.due(time.Now())
		r.mu.Lock()
		c, since := r.cluster, r.since
		r.mu.Unlock()
		for _, k := range keys {
			if ctx.Err() != nil {
				return
			}
			wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err := c.SetL2Owner(wctx, k, r.node, since)
			cancel()
			r.mu.Lock()
			if err == nil {
				r.written[k] = time.Now()
				r.log.Debug("recorded this node as the owner of a Service's layer-2 addresses", "service", k, "since", since.UTC().Format(time.RFC3339Nano))
			} else {
				if !r.failing {
					r.log.Warn("cannot record this node as the owner of a Service's layer-2 addresses; retrying (until it is recorded, the former owner takes them back if it returns)",
						"service", k, "err", err)
				}
				next = minTime(next, time.Now().Add(retryRecord))
			}
			r.failing = err != nil
			r.mu.Unlock()
		}
		wake.Reset(max(time.Until(next), time.Millisecond))
	}
}
