package allocate

import (
	"context"
	"sync"
	"time"
)

// queue is a set of Service keys waiting to be synced, in arrival order,
// each at most once. Retries wait with exponential backoff per key.
type queue struct {
	mu      sync.Mutex
	order   []string
	queued  map[string]bool
	backoff map[string]time.Duration
	wake    chan struct{}
}

func newQueue() *queue {
	return &queue{queued: map[string]bool{}, backoff: map[string]time.Duration{}, wake: make(chan struct{}, 1)}
}

// add queues key unless it is queued already.
func (q *queue) add(key string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.queued[key] {
		return
	}
	q.queued[key] = true
	q.order = append(q.order, key)
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// retry queues key again after a delay that doubles with each failure,
// from 100ms up to 30s.
func (q *queue) retry(key string) {
	q.mu.Lock()
	d := q.backoff[key]
	d = min(max(2*d, 100*time.Millisecond), 30*time.Second)
	q.backoff[key] = d
	q.mu.Unlock()
	time.AfterFunc(d, func() { q.add(key) })
}

// forget resets the backoff of key after a success.
func (q *queue) forget(key string) {
	q.mu.Lock()
	delete(q.backoff, key)
	q.mu.Unlock()
}

// get waits for the next key; it returns false when ctx ends.
func (q *queue) get(ctx context.Context) (string, bool) {
	for {
		q.mu.Lock()
		if len(q.order) > 0 {
			key := q.order[0]
			q.order = q.order[1:]
			delete(q.queued, key)
			q.mu.Unlock()
			return key, true
		}
		q.mu.Unlock()
		select {
		case <-ctx.Done():
			return "", false
		case <-q.wake:
		}
	}
}
