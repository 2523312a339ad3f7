package controlplane

import (
	"context"
	"fmt"
	"time"

	"github.com/lbdproject/lbd/internal/election"
	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
)

// poll checks the local API server's /readyz every Health.Interval and
// sends a readyEvent when readiness changes (and the first client with it):
// ready at the first success, not ready after FailureThreshold failures in
// a row. Until the kubeconfig can be loaded it is not ready. While not
// ready it polls four times as often, so that a node whose API server
// comes up (kubeadm init) becomes a candidate within a fraction of the
// interval.
func (c *Election) poll(ctx context.Context, out chan<- readyEvent) {
	var client kubernetes.Interface
	sent, ready, failures := false, false, 0
	detail := ""
	for {
		start := time.Now()
		var err error
		newClient := false
		if client == nil {
			client, err = c.Connect()
			if err != nil {
				client = nil
				err = fmt.Errorf("no client for the local API server yet: %w", err)
			} else {
				newClient = true
			}
		}
		if client != nil {
			err = readyz(ctx, client, c.Health.Timeout)
		}
		if ctx.Err() != nil {
			return
		}
		now := ready
		if err == nil {
			failures, now, detail = 0, true, ""
		} else {
			failures++
			detail = err.Error()
			if failures >= c.Health.FailureThreshold || !sent {
				now = false
			}
		}
		if !sent || now != ready || newClient {
			ev := readyEvent{ready: now, detail: detail}
			if newClient {
				ev.client = client
			}
			select {
			case out <- ev:
			case <-ctx.Done():
				return
			}
			sent, ready = true, now
		}
		every := c.Health.Interval
		if !ready {
			every /= 4
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Until(start.Add(every))):
		}
	}
}

// readyz asks the API server whether it is ready to serve.
func readyz(ctx context.Context, client kubernetes.Interface, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	body, err := client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
	if err != nil {
		if len(body) > 0 && len(body) < 200 {
			return fmt.Errorf("/readyz: %w: %s", err, body)
		}
		return fmt.Errorf("/readyz: %w", err)
	}
	return nil
}

// leaseEvent is the Lease as the watch saw it; gone when deleted.
type leaseEvent struct {
	lease *coordinationv1.Lease
	gone  bool
}

// watchLease sends every version of the Lease it sees, reading it first
// and then watching from there; it starts again after errors, every
// retry, until ctx ends.
func watchLease(ctx context.Context, client kubernetes.Interface, l election.Lease, retry time.Duration, out chan<- leaseEvent) {
	leases := client.CoordinationV1().Leases(l.Namespace)
	send := func(ev leaseEvent) bool {
		select {
		case out <- ev:
			return true
		case <-ctx.Done():
			return false
		}
	}
	for ctx.Err() == nil {
		list, err := leases.List(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + l.Name})
		if err == nil {
			if len(list.Items) == 1 {
				if !send(leaseEvent{lease: &list.Items[0]}) {
					return
				}
			} else if !send(leaseEvent{gone: true}) {
				return
			}
			var w watch.Interface
			w, err = leases.Watch(ctx, metav1.ListOptions{
				FieldSelector:   "metadata.name=" + l.Name,
				ResourceVersion: list.ResourceVersion,
			})
			if err == nil {
				for ev := range w.ResultChan() {
					lease, ok := ev.Object.(*coordinationv1.Lease)
					switch {
					case ev.Type == watch.Deleted && ok:
						ok = send(leaseEvent{gone: true})
					case (ev.Type == watch.Added || ev.Type == watch.Modified) && ok:
						ok = send(leaseEvent{lease: lease})
					default:
						ok = !(ev.Type == watch.Error && apierrors.IsGone(apierrors.FromObject(ev.Object)))
					}
					if !ok {
						break
					}
				}
				w.Stop()
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(retry):
		}
	}
}
