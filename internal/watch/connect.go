package watch

import (
	"context"
	"log/slog"
	"os"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// HTTP/2 health checks of the API connection. client-go's defaults (no
// frame for 30s, then a ping unanswered for 15s) let a connection that a
// cable pull or a firewall silently killed linger 45s, during which every
// request on it hangs; after a long outage, TCP's retransmission backoff
// could keep it dead tens of seconds more once the path is back. lbd
// watches Leases renewed every 500ms, so a connection idle for 5s is dead,
// and a fresh one is dialled within 7s. An operator may still override
// them with the same environment variables.
const (
	http2ReadIdle = "5"
	http2Ping     = "2"
)

// TuneHTTP2 sets client-go's HTTP/2 health checks to lbd's values unless
// the environment already sets them. Call once, before any client exists.
func TuneHTTP2() {
	for k, v := range map[string]string{"HTTP2_READ_IDLE_TIMEOUT_SECONDS": http2ReadIdle, "HTTP2_PING_TIMEOUT_SECONDS": http2Ping} {
		if _, set := os.LookupEnv(k); !set {
			os.Setenv(k, v)
		}
	}
}

// Connect builds a client from the kubeconfig at path, retrying every 2s
// until it can (the file does not exist yet on a node being bootstrapped)
// or ctx ends (nil then). It returns the configuration too.
func Connect(ctx context.Context, path, userAgent string, log *slog.Logger) (kubernetes.Interface, *rest.Config) {
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
				return client, rc
			}
			log.Error("bad kubeconfig", "kubeconfig", path, "err", err)
		} else if attempt%30 == 0 {
			log.Warn("cannot load kubeconfig yet; retrying", "kubeconfig", path, "err", err)
		}
		select {
		case <-ctx.Done():
			return nil, nil
		case <-time.After(2 * time.Second):
		}
	}
}
