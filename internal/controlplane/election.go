package controlplane

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/lbdproject/lbd/internal/election"
	"github.com/lbdproject/lbd/internal/event"
	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Holder is what the elected node does with the VIP. The election calls
// it from its own goroutine only, one call at a time.
type Holder interface {
	// Take adds the VIP and sends the first gratuitous ARP / unsolicited
	// NA before it returns (the failover time is measured up to then).
	Take() error
	// Renew renews the VIP's lifetime after each successful lease renewal,
	// and adds it again if someone removed it.
	Renew() error
	// Drop removes the VIP at once and stops the gratuitous refreshes.
	Drop() error
}

// Election elects the holder of the control-plane VIP over a Lease,
// talking only to this node's own API server, and campaigns only while
// that API server is ready. It does not use client-go's leader elector:
// that one retries on a jittered period and cannot react to a released
// Lease at once. Instead it keeps the Lease itself, with optimistic
// concurrency (every write carries the resourceVersion it read), and
// watches it, so that:
//
//   - a released Lease (holder cleared) is taken as soon as the watch says
//     so;
//   - a crashed holder's Lease is taken Lease.Duration after this node last
//     saw it change (its own clock; renewTime is only used for the
//     failover metric);
//   - the holder renews every RetryPeriod and drops the VIP when it has not
//     renewed for RenewDeadline, before anyone can take the Lease (Duration
//     > RenewDeadline);
//   - FailureThreshold failed readiness polls in a row make the holder drop
//     the VIP and release the Lease at once;
//   - shutdown (ctx ends) drops the VIP and releases the Lease.
//
// All state belongs to Run's goroutine; the readiness poll and the watch
// run in their own goroutines and send it events.
type Election struct {
	// Lease names the Lease, the identity (the node name) and the timings.
	Lease election.Lease
	// Connect returns the client for the local API server; it fails while
	// the credentials do not exist yet (a node being bootstrapped), and is
	// called again at every readiness poll until it succeeds.
	Connect func() (kubernetes.Interface, error)
	// Health is the readiness gate on the local API server.
	Health Health
	// VIP is what the holder does with the address; VIPs names it in logs.
	VIP  Holder
	VIPs string
	Log  *slog.Logger
	// Metrics may be nil.
	Metrics *Metrics
	// HandoverOverlap is how long both nodes hold the VIP on a planned
	// hand-over, once the next holder has the Lease (HandoverOverlapFor);
	// 0 means 50ms.
	HandoverOverlap time.Duration

	mu     sync.Mutex
	status Status
}

// Health configures the readiness poll of the local API server.
type Health struct {
	Interval, Timeout time.Duration
	FailureThreshold  int
}

// Status is the election as `lbd status` shows it.
type Status struct {
	// Holder is the node the Lease names ("" when free or unknown).
	Holder string
	// Leading says whether this node holds the VIP.
	Leading bool
	// State says what this node does, in words.
	State string
	// APIReady is the local API server's readiness; APIDetail says why not.
	APIReady  bool
	APIDetail string
}

// Reasons for transitions, in logs and lbd_control_plane_transitions_total.
const (
	ReasonElected      = "elected"        // the Lease was free or did not exist
	ReasonExpired      = "expired"        // the previous holder stopped renewing
	ReasonAPINotReady  = "api_not_ready"  // the local API server failed readiness
	ReasonRenewFailed  = "renew_failed"   // no renewal for renew_deadline
	ReasonLost         = "lost"           // another node holds the Lease
	ReasonShutdown     = "shutdown"       // lbd is stopping or reconfigured
	ReasonRestarted    = "restarted"      // the Lease named this node already
	reasonReleasedPrev = "released"       // the previous holder released it
	releasedLeaseSecs  = int32(1)         // what a released Lease says, as client-go writes it
	failoverColdStart  = 60 * time.Second // older "previous renewals" are cold starts, not failovers
)

// Status returns a snapshot for `lbd status`.
func (c *Election) Status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.status
}

func (c *Election) setStatus(f func(*Status)) {
	c.mu.Lock()
	f(&c.status)
	c.mu.Unlock()
}

// campaign is the state of one Run, owned by its goroutine.
type campaign struct {
	*Election
	ctx    context.Context
	client kubernetes.Interface
	ready  bool
	// lease is the Lease as last seen (watch, read or our own write); nil
	// when it does not exist or is unknown. seenAt is when it last changed.
	lease  *coordinationv1.Lease
	seenAt time.Time
	// leading: this node holds the Lease and the VIP; renewed is the last
	// successful write.
	leading bool
	renewed time.Time
	// due is the earliest next write (renewal or attempt to take).
	due time.Time
}

type readyEvent struct {
	ready  bool
	detail string
	client kubernetes.Interface
}

// Run campaigns until ctx ends, then releases what it holds. It never
// returns early: a missing kubeconfig or a dead API server is waited for.
func (c *Election) Run(ctx context.Context) {
	c.setStatus(func(s *Status) { *s = Status{State: "starting"} })
	r := &campaign{Election: c, ctx: ctx}
	readyCh := make(chan readyEvent, 1)
	leaseCh := make(chan leaseEvent, 16)
	var wg sync.WaitGroup
	wg.Go(func() { c.poll(ctx, readyCh) })
	watching := false
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		var wake time.Duration = -1
		if r.client != nil {
			wake = r.step()
		}
		r.updateStatus()
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		if wake >= 0 {
			timer.Reset(wake)
		}
		select {
		case <-ctx.Done():
			if r.leading {
				r.release(ReasonShutdown)
			}
			wg.Wait()
			r.updateStatus()
			return
		case ev := <-readyCh:
			if ev.client != nil && r.client == nil {
				r.client = ev.client
			}
			if r.client != nil && !watching {
				watching = true
				wg.Go(func() { watchLease(ctx, r.client, c.Lease, c.Health.Interval, leaseCh) })
			}
			c.setStatus(func(s *Status) { s.APIReady, s.APIDetail = ev.ready, ev.detail })
			c.Metrics.apiReady(ev.ready)
			if r.ready && !ev.ready {
				c.Log.Warn("local API server not ready", "reason", ev.detail, "failures", c.Health.FailureThreshold)
				if r.leading {
					r.release(ReasonAPINotReady)
				}
			}
			if !r.ready && ev.ready {
				c.Log.Info("local API server ready; campaigning", "node", c.Lease.Identity)
			}
			r.ready = ev.ready
		case ev := <-leaseCh:
			r.observe(ev.lease, ev.gone)
		case <-timer.C:
		}
	}
}

// step does what is due now and returns when to be woken next (-1: only by
// an event).
func (r *campaign) step() time.Duration {
	l := r.Lease
	if r.leading {
		if wait := time.Until(r.due); wait > 0 {
			return wait
		}
		r.renew()
		if r.leading {
			return time.Until(r.due)
		}
		// Lost: see at once whether to campaign again.
	}
	if !r.ready {
		return -1
	}
	free := r.lease == nil || holder(r.lease) == "" || holder(r.lease) == l.Identity
	if expiry := r.seenAt.Add(l.Duration); !free && time.Now().Before(expiry) {
		return time.Until(expiry)
	}
	if wait := time.Until(r.due); wait > 0 {
		return wait
	}
	if !r.acquire() {
		r.due = time.Now().Add(l.RetryPeriod)
	}
	return max(time.Until(r.due), 0)
}

// observe records a Lease seen by the watch. While leading, our own writes
// are the truth; a conflicting write shows up as a failed renewal.
func (r *campaign) observe(lease *coordinationv1.Lease, gone bool) {
	if r.leading {
		return
	}
	if gone {
		r.lease, r.seenAt, r.due = nil, time.Now(), time.Time{}
		return
	}
	if r.lease == nil || r.lease.ResourceVersion != lease.ResourceVersion {
		// A change: judge it at once (a released Lease is taken now).
		r.lease, r.seenAt, r.due = lease, time.Now(), time.Time{}
	}
}

// acquire tries to take the Lease once; it reports whether it did.
func (r *campaign) acquire() bool {
	l := r.Lease
	ctx, cancel := context.WithTimeout(r.ctx, l.RenewDeadline)
	defer cancel()
	leases := r.client.CoordinationV1().Leases(l.Namespace)
	now := metav1.NewMicroTime(time.Now())
	secs := int32(math.Ceil(l.Duration.Seconds()))
	prev := r.lease
	var got *coordinationv1.Lease
	var err error
	if prev == nil {
		got, err = leases.Create(ctx, &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: l.Name, Namespace: l.Namespace, Labels: map[string]string{"app.kubernetes.io/name": "lbd"}},
			Spec: coordinationv1.LeaseSpec{
				HolderIdentity: &l.Identity, LeaseDurationSeconds: &secs,
				AcquireTime: &now, RenewTime: &now,
			},
		}, metav1.CreateOptions{})
	} else {
		next := prev.DeepCopy()
		if holder(prev) != l.Identity {
			t := int32(0)
			if prev.Spec.LeaseTransitions != nil {
				t = *prev.Spec.LeaseTransitions
			}
			t++
			next.Spec.LeaseTransitions = &t
		}
		next.Spec.HolderIdentity, next.Spec.LeaseDurationSeconds = &l.Identity, &secs
		next.Spec.AcquireTime, next.Spec.RenewTime = &now, &now
		got, err = leases.Update(ctx, next, metav1.UpdateOptions{})
	}
	if err != nil {
		if r.ctx.Err() != nil {
			return false
		}
		if apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) {
			// Someone else wrote first: read what they wrote.
			r.refresh()
			return false
		}
		r.Log.Debug("cannot take the Lease", "err", err)
		if apierrors.IsNotFound(err) {
			r.lease = nil
		}
		return false
	}
	r.lease, r.leading, r.renewed = got, true, now.Time
	r.due = now.Add(l.RetryPeriod)
	reason := r.acquireReason(prev)
	if err := r.VIP.Take(); err != nil {
		r.Log.Error("cannot add the VIP", "vip", r.VIPs, "err", err)
	}
	failover := time.Duration(-1)
	if prev != nil && prev.Spec.RenewTime != nil {
		failover = time.Since(prev.Spec.RenewTime.Time)
	}
	attrs := []any{event.Attr(event.Takeover), "vip", r.VIPs, "reason", reason, "node", l.Identity}
	if prev != nil && holder(prev) != "" && holder(prev) != l.Identity {
		attrs = append(attrs, "previous", holder(prev))
	}
	if failover >= 0 && failover < failoverColdStart {
		r.Metrics.failover(failover)
		attrs = append(attrs, "failover", failover.Round(time.Millisecond))
	}
	r.Log.Info("this node holds the VIP", attrs...)
	r.Metrics.transition("acquired", reason)
	r.Metrics.leading(true)
	return true
}

func (r *campaign) acquireReason(prev *coordinationv1.Lease) string {
	switch {
	case prev == nil:
		return ReasonElected
	case holder(prev) == r.Lease.Identity:
		return ReasonRestarted
	case holder(prev) == "":
		if prev.Spec.LeaseDurationSeconds != nil && *prev.Spec.LeaseDurationSeconds == releasedLeaseSecs && prev.Spec.LeaseTransitions != nil {
			return reasonReleasedPrev
		}
		return ReasonElected
	}
	return ReasonExpired
}

// refresh reads the Lease after a conflict.
func (r *campaign) refresh() {
	ctx, cancel := context.WithTimeout(r.ctx, r.Lease.RenewDeadline)
	defer cancel()
	got, err := r.client.CoordinationV1().Leases(r.Lease.Namespace).Get(ctx, r.Lease.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		r.lease, r.seenAt = nil, time.Now()
	case err == nil:
		r.observe(got, false)
	}
}

// renew writes a fresh renewTime; on failure it keeps the VIP until
// RenewDeadline has passed since the last success.
func (r *campaign) renew() {
	l := r.Lease
	deadline := r.renewed.Add(l.RenewDeadline)
	ctx, cancel := context.WithDeadline(r.ctx, deadline)
	defer cancel()
	start := time.Now()
	next := r.lease.DeepCopy()
	now := metav1.NewMicroTime(start)
	next.Spec.RenewTime = &now
	got, err := r.client.CoordinationV1().Leases(l.Namespace).Update(ctx, next, metav1.UpdateOptions{})
	if r.ctx.Err() != nil {
		if err == nil {
			r.lease = got // what Run's release must build on
		}
		return // shutting down: Run releases
	}
	r.due = start.Add(l.RetryPeriod)
	if err == nil {
		r.Metrics.renewed(time.Since(start))
		r.lease, r.renewed = got, start
		if err := r.VIP.Renew(); err != nil {
			r.Log.Warn("cannot renew the VIP", "vip", r.VIPs, "err", err)
		}
		return
	}
	r.Metrics.renewFailed()
	if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
		got, gerr := r.client.CoordinationV1().Leases(l.Namespace).Get(ctx, l.Name, metav1.GetOptions{})
		switch {
		case gerr == nil && holder(got) == l.Identity:
			r.lease, r.due = got, time.Time{} // ours, changed by someone else: renew on it now
			return
		case gerr == nil || apierrors.IsNotFound(gerr):
			r.lose(ReasonLost, fmt.Errorf("the Lease is held by %q", holderOf(got)))
			r.lease, r.seenAt = nil, time.Now()
			if gerr == nil {
				r.lease = got
			}
			return
		}
		err = errors.Join(err, gerr)
	}
	if !time.Now().Before(deadline) {
		r.lose(ReasonRenewFailed, err)
		return
	}
	r.Log.Warn("cannot renew the Lease; retrying", "err", err, "deadline", time.Until(deadline).Round(time.Millisecond))
}

// lose drops the VIP without touching the Lease (it cannot be written, or
// belongs to another node).
func (r *campaign) lose(reason string, err error) {
	r.leading = false
	r.drop()
	r.Log.Warn("this node gave the VIP up", event.Attr(event.Release), "vip", r.VIPs, "reason", reason, "node", r.Lease.Identity, "err", err)
	r.Metrics.transition("released", reason)
	r.Metrics.leading(false)
	r.lease, r.seenAt = nil, time.Now()
}

// release gives the VIP up and clears the Lease's holder, so that another
// node takes it at once; it takes at most about 800ms plus HandoverOverlap:
// the process may be stopping.
//
// When the local API server is not ready the VIP is useless here and goes
// first. Otherwise (shutdown, reconfiguration) this is a hand-over: the
// Lease is released first and the VIP stays until another node holds the
// Lease (and has had a moment to announce the VIP) or handoverWait has
// passed, so that new connections never meet a VIP that nobody has.
func (r *campaign) release(reason string) {
	r.leading = false
	start := time.Now()
	handover := reason != ReasonAPINotReady
	if !handover {
		r.drop()
	}
	ctx, cancel := context.WithTimeout(context.Background(), releaseTimeout)
	defer cancel()
	leases := r.client.CoordinationV1().Leases(r.Lease.Namespace)
	cleared := func(l *coordinationv1.Lease) *coordinationv1.Lease {
		next := l.DeepCopy()
		now := metav1.NewMicroTime(time.Now())
		secs := releasedLeaseSecs
		next.Spec.HolderIdentity, next.Spec.LeaseDurationSeconds = nil, &secs
		next.Spec.AcquireTime, next.Spec.RenewTime = &now, &now
		return next
	}
	got, err := leases.Update(ctx, cleared(r.lease), metav1.UpdateOptions{})
	if apierrors.IsConflict(err) {
		// Our copy is stale: a renewal cut short by the shutdown may have
		// been written, or someone labelled the Lease. Release what is
		// there if it still names this node; otherwise it is not ours.
		cur, gerr := leases.Get(ctx, r.Lease.Name, metav1.GetOptions{})
		switch {
		case gerr != nil:
			err = errors.Join(err, gerr)
		case holder(cur) == r.Lease.Identity:
			got, err = leases.Update(ctx, cleared(cur), metav1.UpdateOptions{})
		default:
			err = fmt.Errorf("the Lease is held by %q", holderOf(cur))
		}
	}
	attrs := []any{event.Attr(event.Release), "vip", r.VIPs, "reason", reason, "node", r.Lease.Identity}
	if err != nil {
		r.lease = nil
	} else {
		r.lease = got
	}
	if handover && err == nil {
		// Wait for the next holder, polling: the watch may be stopping.
		deadline := start.Add(handoverWait)
		for time.Now().Before(deadline) {
			l, gerr := leases.Get(ctx, r.Lease.Name, metav1.GetOptions{})
			if gerr == nil && holder(l) != "" {
				attrs = append(attrs, "next", holder(l))
				overlap := r.HandoverOverlap
				if overlap == 0 {
					overlap = 50 * time.Millisecond
				}
				time.Sleep(overlap)
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if handover {
		r.drop()
	}
	if err != nil {
		attrs = append(attrs, "err", err)
		r.Log.Warn("VIP removed; the Lease could not be released and expires by itself", attrs...)
	} else {
		r.Log.Info("VIP removed and Lease released", attrs...)
	}
	r.seenAt = time.Now()
	r.Metrics.transition("released", reason)
	r.Metrics.leading(false)
}

// Bounds of a release: the Lease write and the wait for the next holder.
// Then both nodes have the VIP for HandoverOverlap (both API servers are
// ready, so either may answer).
const (
	releaseTimeout = 400 * time.Millisecond
	handoverWait   = 400 * time.Millisecond
)

// neighLocktime is Linux's default neigh/locktime: a client ignores an ARP
// update to a neighbour entry that changed less than this long ago.
const neighLocktime = time.Second

// HandoverOverlapFor is how long the old holder keeps the VIP after the
// next holder took the Lease, for a gratuitous burst of count packets
// interval apart: until a packet sent at least neighLocktime after the
// first one has gone out, plus 100ms. A client whose entry changed just
// before the hand-over ignores the first packet (measured: about one
// graceful stop in ten lost connections for the 1s until the second
// packet, with a 50ms overlap); the old holder answers meanwhile.
func HandoverOverlapFor(count int, interval time.Duration) time.Duration {
	for k := 1; k < count; k++ {
		if t := time.Duration(k) * interval; t >= neighLocktime {
			return t + 100*time.Millisecond
		}
	}
	return neighLocktime + 100*time.Millisecond
}

func (r *campaign) drop() {
	if err := r.VIP.Drop(); err != nil {
		r.Log.Error("cannot remove the VIP", "vip", r.VIPs, "err", err)
	}
}

func (r *campaign) updateStatus() {
	h := ""
	if r.lease != nil {
		h = holder(r.lease)
	}
	var state string
	switch {
	case r.leading:
		state = "leader: holds the VIP"
	case r.client == nil:
		state = "waiting for the kubeconfig"
	case !r.ready:
		state = "not a candidate: the local API server is not ready"
	case h == "":
		state = "candidate: the Lease is free"
	default:
		state = "follower: " + h + " holds the VIP"
	}
	r.setStatus(func(s *Status) { s.Holder, s.Leading, s.State = h, r.leading, state })
}

func holder(l *coordinationv1.Lease) string {
	if l == nil || l.Spec.HolderIdentity == nil {
		return ""
	}
	return *l.Spec.HolderIdentity
}

func holderOf(l *coordinationv1.Lease) string { return holder(l) }
