package kubetest

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// APIServer is one more kube-apiserver of a Cluster, sharing its etcd,
// certificates and credentials: a control-plane node of a highly available
// cluster. AddAPIServer starts it; Kill, Stop and Start act on it alone.
type APIServer struct {
	// URL is its https URL.
	URL string

	c          *Cluster
	argv       []string
	logPath    string
	timeout    time.Duration
	grace      time.Duration
	httpClient *http.Client

	mu sync.Mutex
	p  *process // nil while stopped
}

// AddAPIServer starts another kube-apiserver against the cluster's etcd and
// waits for its /readyz. The options say where it runs:
// WithCommandPrefix (e.g. a netlab host's Prefix), WithBindAddress (its
// address there, which the serving certificate must cover: see
// WithServingIPs), WithPort (default 6443), WithDialer (how this process
// reaches it), WithStartTimeout and WithStopGrace. The etcd must be
// reachable from there: start the cluster WithSharedEtcd. Cluster.Stop
// stops it too.
func (c *Cluster) AddAPIServer(opts ...Option) (*APIServer, error) {
	cfg := c.cfg
	cfg.prefix, cfg.bindIP, cfg.port, cfg.dial = nil, nil, 6443, nil
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.bindIP == nil || cfg.bindIP.IsUnspecified() {
		return nil, errors.New("kubetest: AddAPIServer needs WithBindAddress with a specific address")
	}
	caPEM, err := os.ReadFile(filepath.Join(c.Dir, caCertFile))
	if err != nil {
		return nil, fmt.Errorf("kubetest: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	url := "https://" + net.JoinHostPort(cfg.bindIP.String(), strconv.Itoa(cfg.port))
	a := &APIServer{
		URL: url, c: c,
		argv:    apiServerArgv(c.bins, c.Dir, c.etcdURL, cfg, cfg.port),
		logPath: filepath.Join(c.Dir, "kube-apiserver-"+cfg.bindIP.String()+".log"),
		timeout: cfg.startTimeout, grace: cfg.stopGrace,
		httpClient: &http.Client{
			Timeout:   2 * time.Second,
			Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, DialContext: cfg.dial},
		},
	}
	c.mu.Lock()
	c.added = append(c.added, a)
	c.mu.Unlock()
	return a, a.Start()
}

// Start starts the API server (again) and waits for its /readyz.
func (a *APIServer) Start() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.p != nil {
		if done, _ := a.p.exited(); !done {
			return errors.New("kube-apiserver is already running")
		}
	}
	p, err := startProcess("kube-apiserver", a.argv, a.logPath)
	if err != nil {
		return err
	}
	a.p = p
	if err := a.c.waitReady(p, a.URL, a.httpClient, a.timeout); err != nil {
		return fmt.Errorf("kube-apiserver at %s: %w", a.URL, err)
	}
	return nil
}

// Kill stops the API server with SIGKILL, like a crash.
func (a *APIServer) Kill() error { return a.stop(0) }

// Stop stops it with SIGTERM (SIGKILL after the stop grace).
func (a *APIServer) Stop() error { return a.stop(a.grace) }

func (a *APIServer) stop(grace time.Duration) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.p == nil {
		return nil
	}
	err := a.p.stop(grace)
	a.p = nil
	a.httpClient.CloseIdleConnections()
	return err
}
