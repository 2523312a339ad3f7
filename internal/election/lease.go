package election

import (
	"context"
	"log/slog"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// Lease names one Lease and its client-go leader-election timings.
type Lease struct {
	Namespace, Name string
	// Identity is written as the holder: the node name, so that
	// `kubectl get lease` says which node holds the role.
	Identity      string
	Duration      time.Duration
	RenewDeadline time.Duration
	RetryPeriod   time.Duration
}

// Campaign competes for the Lease until ctx ends. Each time this node wins,
// lead runs with a context that ends when the lease is lost; lead must
// return promptly then. After a loss the node campaigns again. On shutdown
// a held Lease is released at once, so another node takes over without
// waiting for it to expire.
func Campaign(ctx context.Context, client kubernetes.Interface, l Lease, log *slog.Logger, lead func(ctx context.Context)) {
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: l.Namespace, Name: l.Name},
		Client:     client.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: l.Identity},
	}
	log = log.With("lease", l.Namespace+"/"+l.Name)
	for ctx.Err() == nil {
		le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
			Lock:            lock,
			LeaseDuration:   l.Duration,
			RenewDeadline:   l.RenewDeadline,
			RetryPeriod:     l.RetryPeriod,
			ReleaseOnCancel: true,
			Name:            l.Name,
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: func(ctx context.Context) {
					log.Info("lease acquired", "node", l.Identity)
					lead(ctx)
				},
				OnStoppedLeading: func() {
					log.Info("lease released or lost", "node", l.Identity)
				},
				OnNewLeader: func(id string) {
					if id != l.Identity {
						log.Info("lease held by another node", "node", id)
					}
				},
			},
		})
		if err != nil {
			// config.Load enforces the timing invariants client-go checks,
			// so this is a programming error; do not spin on it.
			log.Error("cannot campaign", "err", err)
			return
		}
		le.Run(ctx)
	}
}
