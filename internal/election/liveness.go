package election

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// NodeLeasePrefix starts the name of every node's liveness Lease.
const NodeLeasePrefix = "lbd-node-"

// Liveness keeps this node's liveness Lease (NAMESPACE/lbd-node-NODE)
// renewed, so that every node can tell which lbd are alive from the Leases
// alone: one write per node per interval, whatever the number of Services.
// On shutdown it deletes the Lease, so the others see the node leave at
// once instead of after the Lease expires.
type Liveness struct {
	Client    kubernetes.Interface
	Namespace string
	Node      string
	Duration  time.Duration // a node is dead this long after its last renewal
	Interval  time.Duration // how often to renew
	Log       *slog.Logger
	// Annotations, if set, are written with every renewal (the node
	// agent publishes its interfaces this way, at no extra write).
	Annotations func() map[string]string
	// Recovered, if set, is called (from Run's goroutine) when a renewal
	// succeeds after failures: the API is reachable again.
	Recovered func()
	// Renewed, if set, is told the outcome of every renewal.
	Renewed func(err error)
	// Pace, if set, gives the interval and duration to use from the next
	// renewal on, instead of Interval and Duration (the peer detector
	// slows the Lease to a heartbeat while the node is in a quorum).
	Pace func() (interval, duration time.Duration)
	// Kick, if set, makes a renewal at once (what the annotations say
	// changed).
	Kick <-chan struct{}
	// Term, if set, gives this node's term of life, written as the
	// Lease's acquireTime whatever the Lease said before (with the peer
	// detector, a term begins each time the node joins a quorum).
	Term func() time.Time
}

// pace is the interval and duration in force.
func (l *Liveness) pace() (time.Duration, time.Duration) {
	if l.Pace != nil {
		return l.Pace()
	}
	return l.Interval, l.Duration
}

// Run renews the Lease every Interval until ctx ends, then deletes it.
// Failures are logged and retried at the next tick; the node keeps working.
func (l *Liveness) Run(ctx context.Context) {
	name := NodeLeasePrefix + l.Node
	log := l.Log.With("lease", l.Namespace+"/"+name)
	var cur *coordinationv1.Lease
	var lastOK time.Time
	failing := false
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		// The pace may have changed while waiting (a kick says so).
		interval, duration := l.pace()
		if !lastOK.IsZero() && time.Since(lastOK) >= duration {
			// The others saw this Lease expire: whatever the API says,
			// read it anew so that a new term of life begins.
			cur = nil
		}
		// A renewal that hangs (a cable out) must not outlive the
		// Lease: fail it and start over with a fresh read.
		rctx, cancel := context.WithTimeout(ctx, min(duration, l.Duration))
		next, err := l.renew(rctx, name, cur, duration)
		cancel()
		if l.Renewed != nil && ctx.Err() == nil {
			l.Renewed(err)
		}
		switch {
		case err != nil && ctx.Err() == nil:
			if !failing {
				log.Warn("cannot renew the liveness Lease; retrying", "err", err)
			}
			failing, cur = true, nil // fetch it anew next time
		case err == nil:
			if failing {
				log.Info("liveness Lease renewed again")
				if l.Recovered != nil {
					l.Recovered()
				}
			}
			failing, cur, lastOK = false, next, time.Now()
		}
		t.Reset(interval)
		select {
		case <-ctx.Done():
			l.leave(name, log)
			return
		case <-t.C:
		case <-l.Kick:
		}
	}
}

// renew writes a fresh renewTime, creating the Lease if needed. cur is the
// Lease as last written (nil: read it first).
func (l *Liveness) renew(ctx context.Context, name string, cur *coordinationv1.Lease, duration time.Duration) (*coordinationv1.Lease, error) {
	leases := l.Client.CoordinationV1().Leases(l.Namespace)
	now := metav1.NewMicroTime(time.Now())
	secs := int32(math.Ceil(duration.Seconds()))
	since := now
	if l.Term != nil {
		since = metav1.NewMicroTime(l.Term())
	}
	if cur == nil {
		got, err := leases.Get(ctx, name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			return leases.Create(ctx, &coordinationv1.Lease{
				ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: l.Namespace, Labels: map[string]string{"app.kubernetes.io/name": "lbd"}, Annotations: l.annotations()},
				Spec: coordinationv1.LeaseSpec{
					HolderIdentity: &l.Node, LeaseDurationSeconds: &secs,
					AcquireTime: &since, RenewTime: &now,
				},
			}, metav1.CreateOptions{})
		case err != nil:
			return nil, fmt.Errorf("read: %w", err)
		}
		cur = got
		if l.Term != nil {
			cur.Spec.AcquireTime = &since
		} else if !stillValid(cur, now.Time) {
			// The others saw this node dead (or it left cleanly): a
			// new term of life. A crash and quick restart within the
			// Lease keeps the term, so nothing moves for it.
			cur.Spec.AcquireTime = &now
		}
	}
	next := cur.DeepCopy()
	if l.Annotations != nil {
		if next.Annotations == nil {
			next.Annotations = map[string]string{}
		}
		maps.Copy(next.Annotations, l.Annotations())
	}
	next.Spec.HolderIdentity, next.Spec.LeaseDurationSeconds, next.Spec.RenewTime = &l.Node, &secs, &now
	if l.Term != nil {
		next.Spec.AcquireTime = &since
	}
	return leases.Update(ctx, next, metav1.UpdateOptions{})
}

func (l *Liveness) annotations() map[string]string {
	if l.Annotations == nil {
		return nil
	}
	return l.Annotations()
}

// leave deletes the Lease, bounded in time: the process is exiting.
func (l *Liveness) leave(name string, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := l.Client.CoordinationV1().Leases(l.Namespace).Delete(ctx, name, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		log.Warn("could not delete the liveness Lease; it expires by itself", "err", err)
		return
	}
	log.Info("liveness Lease deleted: this node is leaving")
}

// stillValid reports whether l had not expired at now.
func stillValid(l *coordinationv1.Lease, now time.Time) bool {
	if l.Spec.RenewTime == nil || l.Spec.LeaseDurationSeconds == nil {
		return false
	}
	return now.Before(l.Spec.RenewTime.Add(time.Duration(*l.Spec.LeaseDurationSeconds) * time.Second))
}
