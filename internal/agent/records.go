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
	want    map[string]bool // Services to record this node on
	failing bool            // the last write failed (logged once per run of failures)
}

// retryRecord is how long after a failed write the records are tried again.
const retryRecord = 2 * time.Second

func newOwnerRecords(node string, log *slog.Logger) *ownerRecords {
	return &ownerRecords{node: node, log: log, kick: make(chan struct{}, 1), want: map[string]bool{}}
}

// set replaces the Services to record this node on; it never blocks.
func (r *ownerRecords) set(c Cluster, services []string) {
	r.mu.Lock()
	r.cluster = c
	r.want = make(map[string]bool, len(services))
	for _, s := range services {
		r.want[s] = true
	}
	r.mu.Unlock()
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// run writes the wanted records until ctx ends.
func (r *ownerRecords) run(ctx context.Context) {
	retry := time.NewTimer(time.Hour)
	defer retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.kick:
		case <-retry.C:
		}
		r.mu.Lock()
		c, keys := r.cluster, slices.Sorted(maps.Keys(r.want))
		r.mu.Unlock()
		failed := false
		for _, k := range keys {
			if ctx.Err() != nil {
				return
			}
			wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err := c.SetL2Owner(wctx, k, r.node)
			cancel()
			r.mu.Lock()
			if err == nil {
				delete(r.want, k) // written, or already recorded
			} else if !r.failing {
				r.log.Warn("cannot record this node as the owner of a Service's layer-2 addresses; retrying (until it is recorded, the former owner takes them back if it returns)",
					"service", k, "err", err)
			}
			r.failing = err != nil
			failed = failed || err != nil
			r.mu.Unlock()
		}
		if failed {
			retry.Reset(retryRecord)
		}
	}
}
