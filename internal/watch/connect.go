package watch

import (
	"context"
	"log/slog"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// Connect builds a client from the kubeconfig at path, retrying every 2s
// until it can (the file does not exist yet on a node being bootstrapped)
// or ctx ends (nil then).
func Connect(ctx context.Context, path, userAgent string, log *slog.Logger) kubernetes.Interface {
	for attempt := 0; ; attempt++ {
		rc, err := clientcmd.BuildConfigFromFlags("", path)
		if err == nil {
			rc.UserAgent = userAgent
			// Each new Service costs the allocator holder two writes and
			// an Event; at client-go's default 5 QPS a burst of Services
			// would wait minutes (measured: p50 24s over 1000 at 50 QPS,
			// 16ms at 200). The API server's priority and fairness still
			// protects it; the other nodes only watch.
			rc.QPS, rc.Burst = 200, 400
			client, err := kubernetes.NewForConfig(rc)
			if err == nil {
				return client
			}
			log.Error("bad kubeconfig", "kubeconfig", path, "err", err)
		} else if attempt%30 == 0 {
			log.Warn("cannot load kubeconfig yet; retrying", "kubeconfig", path, "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(2 * time.Second):
		}
	}
}
