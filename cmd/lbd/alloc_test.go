package main

// Allocation against a real kube-apiserver + etcd (internal/kubetest):
// real lbd processes assign addresses and write them to Service status.

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/lbdproject/lbd/internal/kubetest"
	"github.com/lbdproject/lbd/internal/watch"
)

const allocPools = `pools:
  - name: general
    addresses: [192.0.2.10-192.0.2.13, 2001:db8::10-2001:db8::13]
  - name: ingress
    addresses: [203.0.113.10/32]
    auto_assign: false
    namespaces: [ingress]
l2:
  advertisements:
    # These lbd run in the host's own namespace: an interface that does
    # not exist keeps them from ever announcing there.
    - {name: all, pools: [general, ingress], interfaces: [lbdtest0]}
`

// lbdNode is one lbd process in an allocation test.
type lbdNode struct {
	*daemonProc
	name string
	http string // listen.http
}

// startNode runs lbd as node name against the cluster with extra config.
func startNode(t testing.TB, kc *kubetest.Cluster, name, extra string) *lbdNode {
	t.Helper()
	return startNodeEdited(t, kc, name, extra, nil)
}

// startNodeEdited is startNode with the configuration passed through edit
// (when not nil) before lbd reads it.
func startNodeEdited(t testing.TB, kc *kubetest.Cluster, name, extra string, edit func(string) string) *lbdNode {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "lbd.yaml")
	socket := filepath.Join(dir, "lbd.sock")
	httpAddr := freePort(t)
	cfg := nodeConfig(t, kc, name, socket, httpAddr, extra)
	if edit != nil {
		cfg = edit(cfg)
	}
	write(t, path, cfg)
	return &lbdNode{daemonProc: startDaemon(t, path, socket), name: name, http: httpAddr}
}

func nodeConfig(t testing.TB, kc *kubetest.Cluster, name, socket, httpAddr, extra string) string {
	return fmt.Sprintf(`version: 1
node: {name: %s}
kubernetes:
  kubeconfig: %s
  allocator_lease: {duration: 2s, renew_deadline: 1500ms, retry_period: 300ms}
  liveness: {duration: 3s, renew_interval: 500ms}
listen: {http: %q, socket: %q}
log: {level: debug}
%s`, name, lbdKubeconfig(t, kc, name, false, ""), httpAddr, socket, extra)
}

func lbSvc(ns, name string, mods ...func(*corev1.Service)) *corev1.Service {
	s := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeLoadBalancer,
			Selector: map[string]string{"app": name},
			Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080), Protocol: corev1.ProtocolTCP}},
		},
	}
	for _, m := range mods {
		m(s)
	}
	return s
}

func create(t testing.TB, c kubernetes.Interface, s *corev1.Service) {
	t.Helper()
	if _, err := c.CoreV1().Services(s.Namespace).Create(context.Background(), s, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create %s/%s: %v", s.Namespace, s.Name, err)
	}
}

func ensureNamespaces(t testing.TB, c kubernetes.Interface, names ...string) {
	t.Helper()
	for _, n := range names {
		_, err := c.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: n}}, metav1.CreateOptions{})
		if err != nil && !strings.Contains(err.Error(), "already exists") {
			t.Fatal(err)
		}
	}
}

// ingressIPs returns the Service's status addresses.
func ingressIPs(t testing.TB, c kubernetes.Interface, ns, name string) []string {
	t.Helper()
	s, err := c.CoreV1().Services(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get %s/%s: %v", ns, name, err)
	}
	var out []string
	for _, in := range s.Status.LoadBalancer.Ingress {
		out = append(out, in.IP)
	}
	return out
}

func waitIPs(t testing.TB, c kubernetes.Interface, ns, name string, want ...string) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%s/%s to have %v", ns, name, want), func() bool {
		return slices.Equal(ingressIPs(t, c, ns, name), want)
	})
}

// eventsOf returns "Reason: message" of every Event on a Service.
func eventsOf(t testing.TB, c kubernetes.Interface, ns, name string) string {
	t.Helper()
	evs, err := c.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{FieldSelector: "involvedObject.name=" + name})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range evs.Items {
		out = append(out, e.Type+" "+e.Reason+": "+e.Message)
	}
	return strings.Join(out, "\n")
}

func waitEvent(t testing.TB, c kubernetes.Interface, ns, name, text string) {
	t.Helper()
	waitFor(t, fmt.Sprintf("an Event on %s/%s containing %q", ns, name, text), func() bool {
		return strings.Contains(eventsOf(t, c, ns, name), text)
	})
}

func leaseHolder(t testing.TB, c kubernetes.Interface) string {
	t.Helper()
	l, err := c.CoordinationV1().Leases("lbd").Get(context.Background(), "lbd-allocator", metav1.GetOptions{})
	if err != nil || l.Spec.HolderIdentity == nil {
		return ""
	}
	return *l.Spec.HolderIdentity
}

func startKube(t testing.TB) *kubetest.Cluster {
	return kubetest.Start(t, kubetest.WithServiceClusterIPRange("10.96.0.0/12,fd00::/108"))
}

func TestAllocation(t *testing.T) {
	labParallel(t, 10*time.Second) // an API server of its own; fills a slot the labs leave
	kc := startKube(t)
	c := kc.Client
	ensureNamespaces(t, c, "ingress", "tenant")
	n := startNode(t, kc, "node-a", allocPools)
	waitFor(t, "node-a to hold the allocator Lease", func() bool { return leaseHolder(t, c) == "node-a" })

	// Three Services get three addresses, in order.
	for i := range 3 {
		create(t, c, lbSvc("default", fmt.Sprintf("web%d", i)))
		waitIPs(t, c, "default", fmt.Sprintf("web%d", i), fmt.Sprintf("192.0.2.1%d", i))
	}
	waitEvent(t, c, "default", "web0", "Normal IPAllocated: assigned 192.0.2.10 from pool general")
	s, _ := c.CoreV1().Services("default").Get(context.Background(), "web0", metav1.GetOptions{})
	if s.Annotations["lbd.io/allocated-from-pool"] != "general" {
		t.Errorf("pool annotation: %v", s.Annotations)
	}

	// A pinned address through MetalLB's annotation, in a restricted pool.
	create(t, c, lbSvc("ingress", "nginx", func(s *corev1.Service) {
		s.Annotations = map[string]string{"metallb.io/loadBalancerIPs": "203.0.113.10"}
	}))
	waitIPs(t, c, "ingress", "nginx", "203.0.113.10")

	// Another namespace may not have it: an Event, no address.
	create(t, c, lbSvc("tenant", "grab", func(s *corev1.Service) {
		s.Annotations = map[string]string{"metallb.io/address-pool": "ingress"}
	}))
	waitEvent(t, c, "tenant", "grab", "Warning NotAllowedInNamespace: no address: pool ingress may not be used by namespace tenant")
	if ips := ingressIPs(t, c, "tenant", "grab"); len(ips) != 0 {
		t.Errorf("tenant/grab got %v", ips)
	}

	// Dual stack: one address per family.
	create(t, c, lbSvc("default", "dual", func(s *corev1.Service) {
		p := corev1.IPFamilyPolicyRequireDualStack
		s.Spec.IPFamilyPolicy = &p
		s.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol, corev1.IPv6Protocol}
	}))
	waitIPs(t, c, "default", "dual", "192.0.2.13", "2001:db8::10")

	// The IPv4 pool is full now: pending, with an Event, until room frees.
	create(t, c, lbSvc("default", "late"))
	waitEvent(t, c, "default", "late", "Warning PoolExhausted")
	if err := c.CoreV1().Services("default").Delete(context.Background(), "web1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitIPs(t, c, "default", "late", "192.0.2.11")

	// A reload that would strand an address is refused, naming the Service.
	shrunk := strings.Replace(allocPools, "192.0.2.10-192.0.2.13", "192.0.2.10-192.0.2.11", 1)
	write(t, n.path, nodeConfig(t, kc, "node-a", n.socket, n.http, shrunk))
	code, _, errOut := lbd(t, "reload", "--dry-run", "--socket", n.socket)
	if code != 1 || !strings.Contains(errOut, "would be rejected; nothing was changed") || !strings.Contains(errOut, "192.0.2.12 (default/web2): it would be in no pool") {
		t.Errorf("dry run of a stranding reload: exit %d\n%s", code, errOut)
	}
	code, _, errOut = lbd(t, "reload", "--socket", n.socket)
	if code != 1 || !strings.Contains(errOut, "192.0.2.12 (default/web2): it would be in no pool") ||
		!strings.Contains(errOut, "192.0.2.13 (default/dual): it would be in no pool") {
		t.Errorf("stranding reload: exit %d\n%s", code, errOut)
	}

	// Restart lbd: no address changes.
	before := allStatus(t, c)
	n.cmd.Process.Signal(syscall.SIGTERM)
	<-n.done
	write(t, n.path, nodeConfig(t, kc, "node-a", n.socket, n.http, allocPools))
	n2 := startDaemon(t, n.path, n.socket)
	waitFor(t, "the restarted lbd to lead", func() bool { return n2.status(t).Allocator != "following" })
	create(t, c, lbSvc("default", "after-restart", func(s *corev1.Service) {
		s.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv6Protocol}
	}))
	waitIPs(t, c, "default", "after-restart", "2001:db8::11")
	after := allStatus(t, c)
	delete(after, "default/after-restart")
	if !maps.Equal(before, after) {
		t.Errorf("addresses changed across a restart:\nbefore %v\nafter  %v", before, after)
	}
}

// TestAllocatorFailover runs two lbd; killing the allocator holder hands
// the role over with no address change.
func TestAllocatorFailover(t *testing.T) {
	labParallel(t, 12*time.Second) // an API server of its own; fills a slot the labs leave
	kc := startKube(t)
	c := kc.Client
	a := startNode(t, kc, "node-a", allocPools)
	waitFor(t, "a Lease holder", func() bool { return leaseHolder(t, c) != "" })
	b := startNode(t, kc, "node-b", allocPools)
	for i := range 3 {
		create(t, c, lbSvc("default", fmt.Sprintf("s%d", i)))
		waitIPs(t, c, "default", fmt.Sprintf("s%d", i), fmt.Sprintf("192.0.2.1%d", i))
	}
	before := allStatus(t, c)
	holder, other := a, b
	if leaseHolder(t, c) == "node-b" {
		holder, other = b, a
	}
	holder.cmd.Process.Kill()
	<-holder.done
	waitFor(t, other.name+" to take the allocator Lease", func() bool { return leaseHolder(t, c) == other.name })
	create(t, c, lbSvc("default", "new"))
	waitIPs(t, c, "default", "new", "192.0.2.13")
	after := allStatus(t, c)
	delete(after, "default/new")
	if !maps.Equal(before, after) {
		t.Errorf("addresses changed on hand-over:\nbefore %v\nafter  %v", before, after)
	}
	st := other.status(t)
	if !strings.HasPrefix(st.Allocator, "leading") {
		t.Errorf("status of the new holder: %+v", st)
	}
	if len(st.Pools) == 0 || st.Pools[0].Pool != "general" || st.Pools[0].Family != "IPv4" ||
		st.Pools[0].Size != 4 || st.Pools[0].Used == nil || *st.Pools[0].Used != 4 {
		t.Errorf("pool usage in status: %+v", st.Pools)
	}
	code, out, _ := lbd(t, "status", "--socket", other.socket)
	if code != 0 || !strings.Contains(out, "pool:        general IPv4: 4 addresses, 4 used (100%)") {
		t.Errorf("lbd status:\n%s", out)
	}
}

func allStatus(t testing.TB, c kubernetes.Interface) map[string]string {
	t.Helper()
	list, err := c.CoreV1().Services("").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, s := range list.Items {
		if s.Spec.Type != corev1.ServiceTypeLoadBalancer {
			continue
		}
		var ips []string
		for _, in := range s.Status.LoadBalancer.Ingress {
			ips = append(ips, in.IP)
		}
		out[s.Namespace+"/"+s.Name] = strings.Join(ips, ",")
	}
	return out
}

// TestAllocationSurvivesAPIOutage stops the API server under a running lbd:
// nothing assigned is cleared, and once the API is back lbd serves again.
func TestAllocationSurvivesAPIOutage(t *testing.T) {
	labParallel(t, 16*time.Second) // an API server of its own; fills a slot the labs leave
	kc := startKube(t)
	c := kc.Client
	n := startNode(t, kc, "node-a", allocPools)
	create(t, c, lbSvc("default", "before"))
	waitIPs(t, c, "default", "before", "192.0.2.10")
	if err := kc.KillAPIServer(); err != nil {
		t.Fatal(err)
	}
	// Longer than the allocator Lease (2s): lbd loses it and must not
	// take anything back.
	time.Sleep(4 * time.Second)
	if err := kc.StartAPIServer(); err != nil {
		t.Fatal(err)
	}
	create(t, c, lbSvc("default", "after"))
	// Not waitIPs's 15s: right after its restart the API server answers
	// "forbidden" until its RBAC cache is filled, and client-go's
	// informers then back off for up to 30s before they watch again (the
	// liveness Leases are re-listed at once; the Services are not yet).
	waitUpTo(t, 45*time.Second, "default/after to have [192.0.2.11]", func() bool {
		return slices.Equal(ingressIPs(t, c, "default", "after"), []string{"192.0.2.11"})
	})
	if ips := ingressIPs(t, c, "default", "before"); !slices.Equal(ips, []string{"192.0.2.10"}) {
		t.Errorf("default/before has %v after the outage", ips)
	}
	m := metrics(t, n.http)
	if m[`lbd_pool_used_addresses{family="ipv4",pool="general"}`] != "2" || m["lbd_allocator_leader"] != "1" {
		t.Errorf("metrics after the outage: %v", m)
	}
}

// TestTakeOverFromMetalLB starts lbd on a cluster where MetalLB assigned
// addresses: every address inside an lbd pool stays, MetalLB's annotations
// keep working, and an address outside every pool is replaced with a
// Warning that says why.
func TestTakeOverFromMetalLB(t *testing.T) {
	labParallel(t, 6*time.Second) // an API server of its own; fills a slot the labs leave
	kc := startKube(t)
	c := kc.Client
	ctx := context.Background()
	assigned := map[string]string{"web": "192.0.2.12", "api": "2001:db8::13", "stray": "198.51.100.77"}
	for name, ip := range assigned {
		s := lbSvc("default", name, func(s *corev1.Service) {
			s.Annotations = map[string]string{"metallb.io/ip-allocated-from-pool": "prod-pool"}
			if strings.Contains(ip, ":") {
				s.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv6Protocol}
			}
		})
		if name == "web" {
			s.Annotations["metallb.io/loadBalancerIPs"] = ip // pinned under MetalLB
		}
		create(t, c, s)
		patch := fmt.Sprintf(`{"status":{"loadBalancer":{"ingress":[{"ip":%q}]}}}`, ip)
		if _, err := c.CoreV1().Services("default").Patch(ctx, name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}, "status"); err != nil {
			t.Fatal(err)
		}
	}
	startNode(t, kc, "node-a", allocPools)
	waitFor(t, "lbd to annotate the Services it took over", func() bool {
		s, _ := c.CoreV1().Services("default").Get(ctx, "api", metav1.GetOptions{})
		return s.Annotations["lbd.io/allocated-from-pool"] == "general"
	})
	waitIPs(t, c, "default", "web", "192.0.2.12")
	waitIPs(t, c, "default", "api", "2001:db8::13")
	waitIPs(t, c, "default", "stray", "192.0.2.10")
	waitEvent(t, c, "default", "stray", "Warning IPAllocated: address changed from 198.51.100.77 to 192.0.2.10")
	// A new Service gets the first free address around them.
	create(t, c, lbSvc("default", "new"))
	waitIPs(t, c, "default", "new", "192.0.2.11")
}

// TestLiveness checks each lbd's liveness Lease: renewed while it runs,
// deleted when it stops cleanly, left to expire when it is killed.
func TestLiveness(t *testing.T) {
	kc := startKube(t)
	c := kc.Client
	// node-a's kill -9 and restart below must fit in its liveness Lease:
	// 8 s rather than the 3 s of the other tests, since a race-built lbd
	// on a machine busy with other tests can take seconds to start (with
	// 3 s, two runs beside four packages' builds began a new term).
	const short, long = "liveness: {duration: 3s,", "liveness: {duration: 8s,"
	a := startNodeEdited(t, kc, "node-a", allocPools, func(cfg string) string {
		if !strings.Contains(cfg, short) {
			t.Fatalf("no %q in the node configuration:\n%s", short, cfg)
		}
		return strings.Replace(cfg, short, long, 1)
	})
	b := startNode(t, kc, "node-b", allocPools)
	view := watch.NewCluster(c, "", "observer", slog.New(slog.NewTextHandler(io.Discard, nil)))
	view.WatchNodeLeases("lbd")
	ctx := t.Context()
	if !view.Start(ctx) {
		t.Fatal("informers did not sync")
	}
	alive := func() string {
		var names []string
		for n := range view.AliveNodes(time.Now()) {
			names = append(names, n)
		}
		slices.Sort(names)
		return strings.Join(names, ",")
	}
	waitFor(t, "both nodes alive", func() bool { return alive() == "node-a,node-b" })

	renewTime := func(node string) time.Time {
		l, err := c.CoordinationV1().Leases("lbd").Get(ctx, "lbd-node-"+node, metav1.GetOptions{})
		if err != nil || l.Spec.RenewTime == nil {
			return time.Time{}
		}
		return l.Spec.RenewTime.Time
	}
	first := renewTime("node-a")
	waitFor(t, "node-a to renew its Lease", func() bool { return renewTime("node-a").After(first) })

	b.cmd.Process.Signal(syscall.SIGTERM)
	<-b.done
	if _, err := c.CoordinationV1().Leases("lbd").Get(ctx, "lbd-node-node-b", metav1.GetOptions{}); err == nil {
		t.Error("node-b stopped cleanly but its liveness Lease is still there")
	}
	waitFor(t, "node-b to be gone", func() bool { return alive() == "node-a" })

	// A crash and restart within the Lease keeps the term of life (the
	// others never saw the node dead); nothing should move for it.
	acquired := func(node string) time.Time {
		l, err := c.CoordinationV1().Leases("lbd").Get(ctx, "lbd-node-"+node, metav1.GetOptions{})
		if err != nil || l.Spec.AcquireTime == nil {
			return time.Time{}
		}
		return l.Spec.AcquireTime.Time
	}
	since := acquired("node-a")
	a.cmd.Process.Kill()
	<-a.done
	a2 := startDaemon(t, a.path, a.socket)
	renewed := renewTime("node-a")
	waitFor(t, "the restarted node-a to renew", func() bool { return renewTime("node-a").After(renewed) })
	if got := acquired("node-a"); !got.Equal(since) {
		t.Errorf("a quick restart began a new term: acquireTime %v, was %v", got, since)
	}

	a2.cmd.Process.Kill()
	<-a2.done
	waitFor(t, "node-a's Lease to expire", func() bool { return alive() == "" })
	if renewTime("node-a").IsZero() {
		t.Error("a killed node's Lease should expire, not vanish")
	}
}
