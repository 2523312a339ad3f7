package kubetest

import (
	"context"
	"net"
	"time"
)

// Option changes how Start runs the cluster.
type Option func(*config)

type config struct {
	binDir       string
	bindIP       net.IP
	port         int
	prefix       []string
	serviceCIDR  string
	extraArgs    []string
	startTimeout time.Duration
	stopGrace    time.Duration
	dial         func(ctx context.Context, network, addr string) (net.Conn, error)
	servingIPs   []net.IP
	sharedEtcd   bool
}

func defaultConfig() config {
	return config{
		bindIP:       net.IPv4(127, 0, 0, 1),
		serviceCIDR:  "10.0.0.0/24",
		startTimeout: 90 * time.Second,
		stopGrace:    10 * time.Second,
	}
}

// WithBinDir uses kube-apiserver and etcd from dir, ahead of LBD_KUBE_BINDIR
// and the hack/kube-bins.sh cache.
func WithBinDir(dir string) Option {
	return func(c *config) { c.binDir = dir }
}

// WithBindAddress makes kube-apiserver listen on, and advertise, ip instead
// of 127.0.0.1 (e.g. a lab address in a network namespace). The serving
// certificate covers it as well as 127.0.0.1, ::1 and localhost. An
// unspecified address (0.0.0.0, ::) listens everywhere; clients then use
// loopback. An invalid ip makes Start fail.
func WithBindAddress(ip string) Option {
	return func(c *config) { c.bindIP = net.ParseIP(ip) }
}

// WithPort makes kube-apiserver listen on port instead of a free one.
func WithPort(port int) Option {
	return func(c *config) { c.port = port }
}

// WithCommandPrefix runs etcd and kube-apiserver as prefix followed by their
// usual command line, e.g. WithCommandPrefix("ip", "netns", "exec", "lab-api").
// The prefix must exec the program (keep its PID), as ip netns exec and
// nsenter do, because processes are stopped by PID. etcd then listens on
// 127.0.0.1 inside the prefix's environment, so a network namespace needs
// its lo up. Ports are chosen free on the host; pass WithPort to choose.
func WithCommandPrefix(argv ...string) Option {
	return func(c *config) { c.prefix = append([]string(nil), argv...) }
}

// WithServiceClusterIPRange sets --service-cluster-ip-range (default
// 10.0.0.0/24).
func WithServiceClusterIPRange(cidr string) Option {
	return func(c *config) { c.serviceCIDR = cidr }
}

// WithAPIServerArgs appends flags to kube-apiserver's command line; a later
// flag overrides an earlier one, so this can change Start's defaults.
func WithAPIServerArgs(args ...string) Option {
	return func(c *config) { c.extraArgs = append(c.extraArgs, args...) }
}

// WithStartTimeout bounds how long Start and StartAPIServer wait for /readyz
// (default 90s).
func WithStartTimeout(d time.Duration) Option {
	return func(c *config) { c.startTimeout = d }
}

// WithStopGrace sets how long a process gets after SIGTERM before SIGKILL
// (default 10s).
func WithStopGrace(d time.Duration) Option {
	return func(c *config) { c.stopGrace = d }
}

// WithDialer makes the test's own clients (Client, RESTConfig and the
// /readyz poll) open their connections with dial, e.g. from inside the
// network namespace the API server runs in (netlab.Host.DialContext).
// Kubeconfig is unaffected: it is for processes that run where the API
// server's address is reachable.
func WithDialer(dial func(ctx context.Context, network, addr string) (net.Conn, error)) Option {
	return func(c *config) { c.dial = dial }
}

// WithServingIPs adds addresses to the serving certificate that every API
// server of the cluster uses: the bind addresses of API servers added
// later with AddAPIServer, and a VIP in front of them.
func WithServingIPs(ips ...string) Option {
	return func(c *config) {
		for _, s := range ips {
			c.servingIPs = append(c.servingIPs, net.ParseIP(s))
		}
	}
}

// WithSharedEtcd makes etcd listen on the bind address (not loopback), so
// that API servers added with AddAPIServer in other network namespaces
// reach it.
func WithSharedEtcd() Option {
	return func(c *config) { c.sharedEtcd = true }
}
