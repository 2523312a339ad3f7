package watch

import (
	"context"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/lbdproject/lbd/internal/cluster"
	"github.com/lbdproject/lbd/internal/kubetest"
	"github.com/lbdproject/lbd/internal/pool"
)

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestClusterAgainstAPIServer checks the informers and the writer against a
// real kube-apiserver.
func TestClusterAgainstAPIServer(t *testing.T) {
	kc := kubetest.Start(t)
	ctx := context.Background()
	c := kc.Client
	cl := NewCluster(c, "", "node-a", slog.New(slog.NewTextHandler(io.Discard, nil)))
	changed := make(chan string, 100)
	cl.OnServiceChange(func(k string) { changed <- k })
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	if !cl.Start(runCtx) {
		t.Fatal("informers did not sync")
	}

	for _, n := range []*corev1.Node{
		{ObjectMeta: metav1.ObjectMeta{Name: "a", Labels: map[string]string{"rack": "r1"}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "b", Labels: map[string]string{LabelExcludeLB: ""}}, Spec: corev1.NodeSpec{Unschedulable: true}},
	} {
		if _, err := c.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "two Nodes", func() bool { return len(cl.Nodes()) == 2 })
	nodes := cl.Nodes()
	if nodes[0].Name != "a" || nodes[0].Labels["rack"] != "r1" || nodes[0].Cordoned || nodes[0].Excluded ||
		!nodes[1].Cordoned || !nodes[1].Excluded {
		t.Errorf("nodes: %+v", nodes)
	}

	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web", Annotations: map[string]string{
			"metallb.io/loadBalancerIPs": "192.0.2.10, 2001:db8::10",
			"metallb.io/allow-shared-ip": "k",
		}},
		Spec: corev1.ServiceSpec{
			Type:                  corev1.ServiceTypeLoadBalancer,
			ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyLocal,
			Selector:              map[string]string{"b": "2", "a": "1"},
			Ports:                 []corev1.ServicePort{{Name: "https", Port: 443, Protocol: corev1.ProtocolTCP}, {Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP}},
		},
	}
	if _, err := c.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the Service", func() bool { _, ok := cl.Service("default/web"); return ok })
	s, _ := cl.Service("default/web")
	want := pool.Service{
		Key: "default/web", Namespace: "default", Families: []pool.Family{pool.IPv4},
		Requested:  []netip.Addr{netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("2001:db8::10")},
		SharingKey: "k", Ports: []pool.Port{{Protocol: "TCP", Port: 443}, {Protocol: "UDP", Port: 53}},
		Local: true, Selector: "a=1,b=2",
	}
	if !s.Served || s.Invalid != nil || !sameService(s.Spec, want) {
		t.Errorf("converted:\n%+v\nwant\n%+v (served %v, invalid %v)", s.Spec, want, s.Served, s.Invalid)
	}
	for seen := false; !seen; {
		select {
		case k := <-changed:
			seen = k == "default/web" // default/kubernetes comes too
		case <-time.After(5 * time.Second):
			t.Fatal("no change notification for default/web")
		}
	}

	// Writing status and the pool annotation, then clearing both.
	addrs := []netip.Addr{netip.MustParseAddr("192.0.2.10")}
	if err := cl.SetStatus(ctx, "default/web", addrs, "general"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the status in the cache", func() bool {
		s, _ := cl.Service("default/web")
		return slices.Equal(s.Status, addrs) && s.AllocatedFrom == "general"
	})
	if err := cl.SetStatus(ctx, "default/web", nil, ""); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the status cleared", func() bool {
		s, _ := cl.Service("default/web")
		return len(s.Status) == 0 && s.AllocatedFrom == ""
	})

	// The L2 owner record: the node and its term, read back exactly.
	since := time.Date(2026, 12, 4, 21, 0, 0, 123456000, time.UTC)
	if err := cl.SetL2Owner(ctx, "default/web", "node-a", since); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the owner record in the cache", func() bool {
		s, _ := cl.Service("default/web")
		return s.L2Owner == "node-a" && s.L2OwnerSince.Equal(since)
	})
	// A new term of the same node is a new record.
	if err := cl.SetL2Owner(ctx, "default/web", "node-a", since.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the new term in the cache", func() bool {
		s, _ := cl.Service("default/web")
		return s.L2Owner == "node-a" && s.L2OwnerSince.Equal(since.Add(time.Minute))
	})

	// Endpoints: ready on a, terminating but serving on b, neither on c.
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: "default", Name: "web-1", Labels: map[string]string{discoveryv1.LabelServiceName: "web"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{
			{Addresses: []string{"10.1.0.1"}, NodeName: new("a"), Conditions: discoveryv1.EndpointConditions{Ready: new(true)}},
			{Addresses: []string{"10.1.0.2"}, NodeName: new("b"), Conditions: discoveryv1.EndpointConditions{Ready: new(false), Serving: new(true), Terminating: new(true)}},
			{Addresses: []string{"10.1.0.3"}, NodeName: new("c"), Conditions: discoveryv1.EndpointConditions{Ready: new(false), Serving: new(false)}},
		},
	}
	if _, err := c.DiscoveryV1().EndpointSlices("default").Create(ctx, slice, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "endpoints on a and b", func() bool {
		got := cl.EndpointNodes("default/web")
		return len(got) == 2 && got["a"] && got["b"]
	})

	// Events reach the API.
	cl.Event("default/web", true, "PoolExhausted", "no address")
	eventually(t, "the Event", func() bool {
		evs, _ := c.CoreV1().Events("default").List(ctx, metav1.ListOptions{})
		for _, e := range evs.Items {
			if e.Reason == "PoolExhausted" && e.Type == "Warning" && e.Source.Component == "lbd" && e.InvolvedObject.Name == "web" {
				return true
			}
		}
		return false
	})
}

func sameService(a, b pool.Service) bool {
	return a.Key == b.Key && a.Namespace == b.Namespace && slices.Equal(a.Families, b.Families) &&
		slices.Equal(a.Requested, b.Requested) && a.SharingKey == b.SharingKey && slices.Equal(a.Ports, b.Ports) &&
		a.Local == b.Local && a.Selector == b.Selector && a.Pool == b.Pool && a.Policy == b.Policy
}

func TestConvertAnnotations(t *testing.T) {
	lb := func(ann map[string]string, mods ...func(*corev1.Service)) cluster.Service {
		s := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "s", Annotations: ann},
			Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer}}
		for _, m := range mods {
			m(s)
		}
		return convert(s, "")
	}
	if s := lb(map[string]string{"lbd.io/address-pool": "a", "metallb.io/address-pool": "b"}); s.Invalid == nil ||
		!strings.Contains(s.Invalid.Error(), `annotations lbd.io/address-pool="a" and metallb.io/address-pool="b" disagree`) {
		t.Errorf("disagreeing pools: %v", s.Invalid)
	}
	if s := lb(map[string]string{"kube-vip.io/loadbalancerIPs": "192.0.2.5"}); len(s.Spec.Requested) != 1 || s.Invalid != nil {
		t.Errorf("kube-vip annotation: %+v", s.Spec)
	}
	if s := lb(nil, func(s *corev1.Service) { s.Spec.LoadBalancerIP = "192.0.2.6" }); len(s.Spec.Requested) != 1 {
		t.Errorf("spec.loadBalancerIP: %+v", s.Spec)
	}
	if s := lb(map[string]string{"metallb.io/loadBalancerIPs": "192.0.2.300"}); s.Invalid == nil {
		t.Error("a bad address must make the Service invalid")
	}
	if s := lb(nil, func(s *corev1.Service) { s.Spec.LoadBalancerClass = new("other.io/lb") }); s.Served {
		t.Error("a Service of another class must not be served")
	}
	if s := lb(nil, func(s *corev1.Service) { s.Spec.Type = corev1.ServiceTypeNodePort }); s.Served {
		t.Error("a NodePort Service must not be served")
	}
	p := corev1.IPFamilyPolicyPreferDualStack
	if s := lb(nil, func(s *corev1.Service) {
		s.Spec.IPFamilyPolicy = &p
		s.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv6Protocol, corev1.IPv4Protocol}
	}); s.Spec.Policy != pool.PreferDualStack || !slices.Equal(s.Spec.Families, []pool.Family{pool.IPv6, pool.IPv4}) {
		t.Errorf("dual stack: %+v", s.Spec)
	}
}

// TestRestartInformers: new Service, Node and EndpointSlice informers
// list at once, call the handlers registered before Start for what they
// list, serve reads and later changes, and the old ones stop.
func TestRestartInformers(t *testing.T) {
	kc := kubetest.Start(t)
	ctx := context.Background()
	c := kc.Client
	cl := NewCluster(c, "", "node-a", slog.New(slog.NewTextHandler(io.Discard, nil)))
	services, nodes := make(chan string, 100), make(chan string, 100)
	cl.OnServiceChange(func(k string) { services <- k })
	cl.OnNodeChange(func(n string) { nodes <- n })
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	if !cl.Start(runCtx) {
		t.Fatal("informers did not sync")
	}
	await := func(ch chan string, want string) {
		t.Helper()
		for {
			select {
			case k := <-ch:
				if k == want {
					return
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("no change notification for %s", want)
			}
		}
	}
	lb := func(name string) *corev1.Service {
		return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
			Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Ports: []corev1.ServicePort{{Port: 80, Protocol: corev1.ProtocolTCP}}}}
	}
	if _, err := c.CoreV1().Services("default").Create(ctx, lb("one"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "a"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	await(services, "default/one")
	await(nodes, "a")

	old := cl.cur()
	cl.RestartInformers(runCtx)
	eventually(t, "the new informers in use", func() bool { return cl.cur() != old })
	// The new informers' listing notifies what was there.
	await(services, "default/one")
	await(nodes, "a")
	eventually(t, "the old informers stopped", func() bool { return old.services.IsStopped() && old.nodes.IsStopped() && old.slices.IsStopped() })
	if _, ok := cl.Service("default/one"); !ok || len(cl.Nodes()) != 1 {
		t.Errorf("after the restart: Service default/one %v, Nodes %v", ok, cl.Nodes())
	}
	// Later changes come through the new ones.
	if _, err := c.CoreV1().Services("default").Create(ctx, lb("two"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	await(services, "default/two")
	if _, ok := cl.Service("default/two"); !ok {
		t.Error("default/two not in the new informer's cache")
	}
	cancel()
	eventually(t, "the informers stopped with the context", func() bool { return cl.cur().services.IsStopped() })
}
