package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// HTTPServer serves /metrics, /livez and /readyz. It can move to a new
// address on reload: the new listener is bound before the old one closes,
// so a bad address leaves the old one serving.
type HTTPServer struct {
	log     *slog.Logger
	handler http.Handler

	mu   sync.Mutex
	srv  *http.Server
	addr string
	wg   sync.WaitGroup
}

// NewHTTPServer builds the handler; nothing listens until Listen.
// ready reports whether the daemon is ready, and why not.
func NewHTTPServer(log *slog.Logger, gather prometheus.Gatherer, ready func() error) *HTTPServer {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(gather, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}))
	mux.HandleFunc("GET /livez", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if err := ready(); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "lbd: see /metrics, /livez, /readyz")
	})
	return &HTTPServer{log: log, handler: mux}
}

// Listen binds addr and starts serving there, then stops serving on the
// previous address, if any.
func (h *HTTPServer) Listen(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen.http %s: %w", addr, err)
	}
	srv := &http.Server{Handler: h.handler, ReadHeaderTimeout: 5 * time.Second}
	h.wg.Go(func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			h.log.Error("HTTP server stopped", "addr", ln.Addr().String(), "err", err)
		}
	})
	h.mu.Lock()
	old := h.srv
	h.srv, h.addr = srv, ln.Addr().String()
	h.mu.Unlock()
	if old != nil {
		shutdown(old)
	}
	h.log.Info("serving metrics and health", "addr", h.addr)
	return nil
}

// Addr is the address actually bound (useful with port 0).
func (h *HTTPServer) Addr() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.addr
}

// Close stops serving and waits.
func (h *HTTPServer) Close() {
	h.mu.Lock()
	srv := h.srv
	h.srv = nil
	h.mu.Unlock()
	if srv != nil {
		shutdown(srv)
	}
	h.wg.Wait()
}

func shutdown(srv *http.Server) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = srv.Shutdown(ctx)
}
