package controlplane

import (
	"fmt"
	"net"
	"net/url"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// LocalClient builds the client of the control-plane election: the
// credentials of the kubeconfig at path, but always sent to localURL, this
// node's own API server, whatever server the kubeconfig names (usually the
// VIP itself, which the election must never depend on).
//
// TLS keeps verifying the server: unless the kubeconfig sets
// tls-server-name, the local API server's certificate is checked against
// the host of the kubeconfig's server (the VIP or its DNS name). Every API
// server of a kubeadm cluster has that name in its certificate
// (--control-plane-endpoint), so https://127.0.0.1:6443 works although the
// certificate does not list 127.0.0.1. A kubeconfig whose server is already
// the local address is used as it is.
func LocalClient(path, localURL string, timeout time.Duration) (kubernetes.Interface, *rest.Config, error) {
	rc, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		return nil, nil, err
	}
	local, err := url.Parse(localURL)
	if err != nil {
		return nil, nil, fmt.Errorf("control_plane.local_api_server %q: %w", localURL, err)
	}
	if rc.TLSClientConfig.ServerName == "" && !rc.Insecure {
		if u, err := url.Parse(rc.Host); err == nil && u.Hostname() != "" && u.Hostname() != local.Hostname() {
			rc.TLSClientConfig.ServerName = u.Hostname()
		}
	}
	rc.Host = localURL
	// No rc.Timeout: it would cut the Lease watch. Every other request
	// carries its own deadline.
	rc.QPS, rc.Burst = 50, 100
	// A new connection per dead API server must fail fast, not after the
	// default 30s dial timeout.
	d := &net.Dialer{Timeout: timeout, KeepAlive: 5 * time.Second}
	rc.Dial = d.DialContext
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, nil, fmt.Errorf("kubeconfig %s: %w", path, err)
	}
	return client, rc, nil
}
