package kubetest

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// Cluster is a running etcd and kube-apiserver.
type Cluster struct {
	// Kubeconfig is the path of a kubeconfig file for kubectl and lbd.
	Kubeconfig string
	// RESTConfig reaches the API server as a system:masters user; copy it
	// with rest.CopyConfig before changing it.
	RESTConfig *rest.Config
	// Client is a clientset built from RESTConfig.
	Client kubernetes.Interface
	// URL is the API server's https URL.
	URL string
	// Token is the static bearer token behind RESTConfig and Kubeconfig.
	Token string
	// Dir holds the certificates, keys, etcd's data and the logs
	// kube-apiserver.log and etcd.log. It is removed after the test.
	Dir string

	cfg        config
	bins       string
	etcdURL    string
	apiArgv    []string
	httpClient *http.Client // for /readyz

	mu        sync.Mutex
	etcd      *process
	apiserver *process // nil while stopped
	added     []*APIServer
}

// Start runs etcd and kube-apiserver for the test and returns once /readyz
// answers. It skips the test if the binaries are missing (see the package
// documentation) and stops everything in t.Cleanup.
func Start(t testing.TB, opts ...Option) *Cluster {
	t.Helper()
	cfg := defaultConfig()
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.bindIP == nil {
		t.Fatal("kubetest: WithBindAddress was given an invalid IP address")
	}
	bins, err := binDir(t.Context(), t, cfg.binDir)
	if errors.Is(err, errUnavailable) && !required() {
		t.Skipf("kubetest: %v", err)
	}
	if err != nil {
		t.Fatalf("kubetest: %v", err)
	}

	begin := time.Now()
	var c *Cluster
	for attempt := 1; ; attempt++ {
		c, err = start(t.TempDir(), bins, cfg)
		if attemptCluster := c; attemptCluster != nil {
			t.Cleanup(func() { attemptCluster.cleanup(t) })
		}
		// A free port can be taken by someone else before our child
		// binds it; try again with new ports.
		if err == nil || attempt == 3 || cfg.port != 0 ||
			!strings.Contains(err.Error(), "address already in use") {
			break
		}
		t.Logf("kubetest: port taken during startup, retrying: %v", err)
		if c != nil {
			if err := c.Stop(); err != nil {
				t.Logf("kubetest: stopping the failed attempt: %v", err)
			}
		}
	}
	if err != nil {
		t.Fatalf("kubetest: %v", err)
	}
	t.Logf("kubetest: kube-apiserver ready at %s in %v (binaries %s, files in %s)",
		c.URL, time.Since(begin).Round(time.Millisecond), bins, c.Dir)
	return c
}

// Run starts etcd and kube-apiserver outside a test, with binaries from
// bins and files in dir, and returns once /readyz answers. The caller
// stops them with Stop. The demo lab (cmd/lbd-lab) uses it.
func Run(dir, bins string, opts ...Option) (*Cluster, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.bindIP == nil {
		return nil, errors.New("kubetest: WithBindAddress was given an invalid IP address")
	}
	c, err := start(dir, bins, cfg)
	if err != nil && c != nil {
		_ = c.Stop()
	}
	return c, err
}

func required() bool {
	v := os.Getenv(EnvRequire)
	return v != "" && v != "0"
}

// start does Start's work; a non-nil Cluster may hold processes to stop even
// when err is not nil.
func start(dir, bins string, cfg config) (*Cluster, error) {
	loopback := net.IPv4(127, 0, 0, 1)
	ports, err := freePorts(loopback, 3)
	if err != nil {
		return nil, err
	}
	etcdClientPort, etcdPeerPort, port := ports[0], ports[1], ports[2]
	switch {
	case cfg.port != 0:
		port = cfg.port
	case len(cfg.prefix) == 0 && !cfg.bindIP.IsUnspecified() && !cfg.bindIP.Equal(loopback):
		// The bind address exists here, so ask for a port free on it.
		// Behind a prefix it may not, and a fresh namespace has all
		// ports free anyway.
		ps, err := freePorts(cfg.bindIP, 1)
		if err != nil {
			return nil, err
		}
		port = ps[0]
	}
	host := cfg.bindIP
	if host.IsUnspecified() {
		host = loopback
		if cfg.bindIP.To4() == nil {
			host = net.IPv6loopback
		}
	}
	url := "https://" + net.JoinHostPort(host.String(), strconv.Itoa(port))

	for _, ip := range cfg.servingIPs {
		if ip == nil {
			return nil, errors.New("WithServingIPs was given an invalid IP address")
		}
	}
	creds, err := writeCredentials(dir, cfg.bindIP, cfg.servingIPs)
	if err != nil {
		return nil, err
	}
	kubeconfig := filepath.Join(dir, kubeconfigFile)
	if err := writeKubeconfig(kubeconfig, url, creds); err != nil {
		return nil, err
	}
	restConfig := &rest.Config{
		Host:            url,
		BearerToken:     creds.token,
		TLSClientConfig: rest.TLSClientConfig{CAData: creds.caPEM},
		QPS:             200,
		Burst:           400,
		Dial:            cfg.dial,
	}
	client, err := kubernetes.NewForConfig(restConfig)
	if err != nil {
		return nil, fmt.Errorf("building clientset: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(creds.caPEM)

	etcdHost := loopback
	if cfg.sharedEtcd && !cfg.bindIP.IsUnspecified() {
		etcdHost = cfg.bindIP
	}
	etcdURL := "http://" + net.JoinHostPort(etcdHost.String(), strconv.Itoa(etcdClientPort))
	peerURL := "http://" + net.JoinHostPort(loopback.String(), strconv.Itoa(etcdPeerPort))
	c := &Cluster{
		Kubeconfig: kubeconfig,
		RESTConfig: restConfig,
		Client:     client,
		URL:        url,
		Token:      creds.token,
		Dir:        dir,
		cfg:        cfg,
		bins:       bins,
		etcdURL:    etcdURL,
		apiArgv:    apiServerArgv(bins, dir, etcdURL, cfg, port),
		httpClient: &http.Client{
			Timeout:   2 * time.Second,
			Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, DialContext: cfg.dial},
		},
	}

	etcdArgv := append(append([]string(nil), cfg.prefix...),
		filepath.Join(bins, "etcd"),
		"--name=kubetest",
		"--data-dir="+filepath.Join(dir, "etcd-data"),
		"--listen-client-urls="+etcdURL,
		"--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL,
		"--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=kubetest="+peerURL,
		"--unsafe-no-fsync", // test data only; much faster on slow disks
	)
	c.etcd, err = startProcess("etcd", etcdArgv, filepath.Join(dir, "etcd.log"))
	if err != nil {
		return nil, err
	}
	if len(cfg.prefix) == 0 {
		// Behind a prefix etcd may be unreachable from here; then
		// kube-apiserver's own etcd check in /readyz covers it.
		if err := c.waitEtcd(etcdURL); err != nil {
			return c, err
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c, c.startAPIServerLocked()
}

func apiServerArgv(bins, dir, etcdURL string, cfg config, port int) []string {
	argv := append([]string(nil), cfg.prefix...)
	argv = append(argv,
		filepath.Join(bins, "kube-apiserver"),
		"--etcd-servers="+etcdURL,
		"--bind-address="+cfg.bindIP.String(),
		"--secure-port="+strconv.Itoa(port),
		"--cert-dir="+filepath.Join(dir, "apiserver-certs"),
		"--tls-cert-file="+filepath.Join(dir, servingCert),
		"--tls-private-key-file="+filepath.Join(dir, servingKey),
		"--token-auth-file="+filepath.Join(dir, tokenFile),
		"--client-ca-file="+filepath.Join(dir, caCertFile),
		"--authorization-mode=RBAC",
		"--service-account-key-file="+filepath.Join(dir, saKeyFile),
		"--service-account-signing-key-file="+filepath.Join(dir, saKeyFile),
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-cluster-ip-range="+cfg.serviceCIDR,
		// No Pods run, and nothing creates ServiceAccounts.
		"--disable-admission-plugins=ServiceAccount",
		// Endpoints for the kubernetes Service would point at the
		// (possibly loopback) bind address, which validation rejects.
		"--endpoint-reconciler-type=none",
		"--allow-privileged=true",
		"--profiling=false",
	)
	if !cfg.bindIP.IsUnspecified() {
		argv = append(argv, "--advertise-address="+cfg.bindIP.String())
	} else {
		argv = append(argv, "--advertise-address=127.0.0.1")
	}
	return append(argv, cfg.extraArgs...)
}

// waitEtcd waits until etcd answers /health.
func (c *Cluster) waitEtcd(etcdURL string) error {
	deadline := time.Now().Add(c.cfg.startTimeout)
	client := &http.Client{Timeout: time.Second}
	for {
		if done, werr := c.etcd.exited(); done {
			return c.etcd.failure(fmt.Errorf("etcd exited during startup: %v", werr))
		}
		resp, err := client.Get(etcdURL + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("status %s", resp.Status)
		}
		if time.Now().After(deadline) {
			return c.etcd.failure(fmt.Errorf("etcd not healthy after %v: %w", c.cfg.startTimeout, err))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// StopAPIServer stops kube-apiserver (SIGTERM, then SIGKILL after the stop
// grace), leaving etcd and its data. A no-op when it is already stopped.
func (c *Cluster) StopAPIServer() error {
	return c.stopAPIServer(c.cfg.stopGrace)
}

// KillAPIServer stops kube-apiserver with SIGKILL at once, like a crash.
func (c *Cluster) KillAPIServer() error {
	return c.stopAPIServer(0)
}

func (c *Cluster) stopAPIServer(grace time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.apiserver == nil {
		return nil
	}
	err := c.apiserver.stop(grace)
	c.apiserver = nil
	return err
}

// StartAPIServer starts kube-apiserver again after StopAPIServer, on the
// same address and port, with the same etcd and credentials, and waits for
// /readyz. It fails if the API server is running.
func (c *Cluster) StartAPIServer() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.apiserver != nil {
		if done, _ := c.apiserver.exited(); !done {
			return errors.New("kube-apiserver is already running")
		}
	}
	return c.startAPIServerLocked()
}

func (c *Cluster) startAPIServerLocked() error {
	p, err := startProcess("kube-apiserver", c.apiArgv, filepath.Join(c.Dir, "kube-apiserver.log"))
	if err != nil {
		return err
	}
	c.apiserver = p
	return c.waitReady(p, c.URL, c.httpClient, c.cfg.startTimeout)
}

// waitReady polls url's /readyz until it answers 200.
func (c *Cluster) waitReady(p *process, url string, hc *http.Client, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last string
	for {
		if done, werr := p.exited(); done {
			return p.failure(fmt.Errorf("kube-apiserver exited during startup: %v", werr))
		}
		if done, werr := c.etcd.exited(); done {
			return c.etcd.failure(fmt.Errorf("etcd exited: %v", werr))
		}
		var permanent bool
		last, permanent = c.readyz(url, hc)
		if last == "" {
			return nil
		}
		if permanent {
			return p.failure(fmt.Errorf("kube-apiserver /readyz: %s", last))
		}
		if time.Now().After(deadline) {
			return p.failure(fmt.Errorf("kube-apiserver not ready after %v; last /readyz: %s",
				timeout, last))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// readyz returns "" when /readyz answers 200, otherwise what went wrong and
// whether waiting longer cannot help (a certificate that does not match).
func (c *Cluster) readyz(url string, hc *http.Client) (problem string, permanent bool) {
	req, err := http.NewRequest(http.MethodGet, url+"/readyz", nil)
	if err != nil {
		return err.Error(), true
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	resp, err := hc.Do(req)
	if err != nil {
		var certErr *tls.CertificateVerificationError
		return err.Error(), errors.As(err, &certErr)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		return "", false
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 2048))
	return fmt.Sprintf("%s: %s", resp.Status, body), false
}

// APIServerPID is the first API server's process ID (0 while stopped),
// for benchmarks that measure its CPU time.
func (c *Cluster) APIServerPID() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.apiserver == nil {
		return 0
	}
	return c.apiserver.cmd.Process.Pid
}

// Stop stops kube-apiserver and then etcd. Start's cleanup calls it; it is
// safe to call more than once.
func (c *Cluster) Stop() error {
	c.mu.Lock()
	added := c.added
	c.mu.Unlock()
	var errs []error
	for _, a := range added {
		errs = append(errs, a.Stop())
	}
	errAPI := errors.Join(append(errs, c.StopAPIServer())...)
	c.mu.Lock()
	defer c.mu.Unlock()
	var errEtcd error
	if c.etcd != nil {
		errEtcd = c.etcd.stop(c.cfg.stopGrace)
	}
	return errors.Join(errAPI, errEtcd)
}

func (c *Cluster) cleanup(t testing.TB) {
	if t.Failed() {
		for _, name := range []string{"kube-apiserver.log", "etcd.log"} {
			t.Logf("kubetest: last lines of %s:\n%s", name, fileTail(filepath.Join(c.Dir, name), 20))
		}
	}
	if err := c.Stop(); err != nil {
		t.Logf("kubetest: stopping: %v", err)
	}
	c.httpClient.CloseIdleConnections()
}
