package kubetest_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/lbdproject/lbd/internal/kubetest"
)

func TestClusterServesLBDObjects(t *testing.T) {
	begin := time.Now()
	c := kubetest.Start(t)
	t.Logf("startup took %v", time.Since(begin).Round(time.Millisecond))
	ctx := t.Context()
	cs := c.Client

	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-a"}}
	if _, err := cs.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating node: %v", err)
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "demo"}}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating namespace: %v", err)
	}

	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "demo"},
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeLoadBalancer,
			Selector: map[string]string{"app": "web"},
			Ports: []corev1.ServicePort{{
				Name: "http", Protocol: corev1.ProtocolTCP,
				Port: 80, TargetPort: intstr.FromInt32(8080),
			}},
		},
	}
	got, err := cs.CoreV1().Services("demo").Create(ctx, svc, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating LoadBalancer service: %v", err)
	}
	if got.Spec.ClusterIP == "" || got.Spec.Ports[0].NodePort == 0 {
		t.Errorf("service got clusterIP %q nodePort %d; want both allocated",
			got.Spec.ClusterIP, got.Spec.Ports[0].NodePort)
	}
	got, err = cs.CoreV1().Services("demo").Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("reading service back: %v", err)
	}
	if ing := got.Status.LoadBalancer.Ingress; len(ing) != 0 {
		t.Errorf("status.loadBalancer.ingress = %v; want empty (pending)", ing)
	}

	lease := &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: "lbd-leader", Namespace: "demo"},
		Spec: coordinationv1.LeaseSpec{
			HolderIdentity:       new("node-a"),
			LeaseDurationSeconds: ptr.To[int32](15),
			RenewTime:            &metav1.MicroTime{Time: time.Now()},
		},
	}
	if _, err := cs.CoordinationV1().Leases("demo").Create(ctx, lease, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating lease: %v", err)
	}
	readLease, err := cs.CoordinationV1().Leases("demo").Get(ctx, "lbd-leader", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("reading lease back: %v", err)
	}
	if h := ptr.Deref(readLease.Spec.HolderIdentity, ""); h != "node-a" {
		t.Errorf("lease holder = %q; want node-a", h)
	}
}

func TestAPIServerRestartKeepsData(t *testing.T) {
	c := kubetest.Start(t)
	ctx := t.Context()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "survivor"}}
	if _, err := c.Client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating namespace: %v", err)
	}

	begin := time.Now()
	if err := c.StopAPIServer(); err != nil {
		t.Fatalf("stopping kube-apiserver: %v", err)
	}
	t.Logf("kube-apiserver stopped in %v", time.Since(begin).Round(time.Millisecond))
	shortCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if _, err := c.Client.CoreV1().Namespaces().Get(shortCtx, "survivor", metav1.GetOptions{}); err == nil {
		t.Fatal("API answered while kube-apiserver was stopped")
	}

	begin = time.Now()
	if err := c.StartAPIServer(); err != nil {
		t.Fatalf("restarting kube-apiserver: %v", err)
	}
	t.Logf("kube-apiserver restarted in %v", time.Since(begin).Round(time.Millisecond))
	if _, err := c.Client.CoreV1().Namespaces().Get(ctx, "survivor", metav1.GetOptions{}); err != nil {
		t.Fatalf("namespace lost across restart: %v", err)
	}
	if err := c.StartAPIServer(); err == nil {
		t.Error("StartAPIServer on a running server: want an error")
	}

	if err := c.KillAPIServer(); err != nil {
		t.Fatalf("killing kube-apiserver: %v", err)
	}
	if err := c.StartAPIServer(); err != nil {
		t.Fatalf("starting kube-apiserver after SIGKILL: %v", err)
	}
}

// TestKubeconfigWorksWithKubectl checks the kubeconfig file with kubectl, if
// kubectl sits next to the other binaries.
func TestKubeconfigWorksWithKubectl(t *testing.T) {
	c := kubetest.Start(t)
	kubectl := filepath.Join(os.Getenv(kubetest.EnvBinDir), "kubectl")
	if os.Getenv(kubetest.EnvBinDir) == "" {
		out, err := exec.Command("bash", "../../hack/kube-bins.sh", "--check").Output()
		if err != nil {
			t.Skipf("kubectl not found: %v", err)
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		kubectl = filepath.Join(lines[len(lines)-1], "kubectl")
	}
	if _, err := os.Stat(kubectl); errors.Is(err, os.ErrNotExist) {
		t.Skipf("no kubectl at %s", kubectl)
	}
	out, err := exec.CommandContext(t.Context(), kubectl, "--kubeconfig", c.Kubeconfig,
		"get", "namespace", "default", "-o", "name").CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl get namespace: %v\n%s", err, out)
	}
	if strings.TrimSpace(string(out)) != "namespace/default" {
		t.Errorf("kubectl printed %q; want namespace/default", out)
	}
}

// TestBindAddressAndPrefix runs both processes behind a command prefix that
// keeps the PID (env, standing in for ip netns exec) and the API server on
// another loopback address, which the serving certificate must cover.
func TestBindAddressAndPrefix(t *testing.T) {
	c := kubetest.Start(t,
		kubetest.WithBindAddress("127.0.0.2"),
		kubetest.WithCommandPrefix("env", "LBD_KUBETEST_PREFIXED=1"))
	if !strings.HasPrefix(c.URL, "https://127.0.0.2:") {
		t.Errorf("URL = %s; want https://127.0.0.2:<port>", c.URL)
	}
	if _, err := c.Client.CoreV1().Namespaces().Get(t.Context(), "default", metav1.GetOptions{}); err != nil {
		t.Fatalf("getting namespace default: %v", err)
	}
	if err := c.StopAPIServer(); err != nil {
		t.Fatalf("stopping kube-apiserver behind the prefix: %v", err)
	}
}
