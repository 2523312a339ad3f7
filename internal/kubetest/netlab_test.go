package kubetest_test

import (
	"context"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/lbdproject/lbd/internal/kubetest"
	"github.com/lbdproject/lbd/internal/netlab"
)

// TestStartIn: an API server inside one lab host, driven from the test
// process and reachable from another host with the kubeconfig.
func TestStartIn(t *testing.T) {
	netlab.Need(t, "ping")
	l := netlab.New(t)
	api := l.AddHost("api", "192.0.2.100/24")
	node := l.AddHost("node", "192.0.2.1/24")
	c := kubetest.StartIn(t, api, "192.0.2.100")
	if !strings.HasPrefix(c.URL, "https://192.0.2.100:") {
		t.Fatalf("URL %s", c.URL)
	}
	if _, err := c.Client.CoreV1().Namespaces().Get(context.Background(), "default", metav1.GetOptions{}); err != nil {
		t.Fatalf("test process to API server in the lab: %v", err)
	}
	// kubectl is not needed: the node's kernel reaches the port.
	hostPort := strings.TrimPrefix(c.URL, "https://")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := node.DialContext(ctx, "tcp", hostPort)
	if err != nil {
		t.Fatalf("node to API server over the segment: %v", err)
	}
	conn.Close()
}
