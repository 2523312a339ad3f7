package watch

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"

	"github.com/lbdproject/lbd/internal/cluster"
)

var patchOpts = metav1.PatchOptions{FieldManager: "lbd"}

// Cluster is lbd's view of the Kubernetes API: shared informers whose
// objects are slimmed as they arrive, and the writer of Service status and
// Events. Its methods are safe for concurrent use. When the API server is
// unreachable the informers keep the last known state and retry with
// backoff; nothing is cleared.
type Cluster struct {
	client kubernetes.Interface
	class  string
	log    *slog.Logger
	// informers is the Service, Node and EndpointSlice informers in use;
	// RestartInformers replaces them.
	informers atomic.Pointer[informerSet]
	// The handlers registered before Start, added to every informer set.
	svcHandlers, nodeHandlers, sliceHandlers []cache.ResourceEventHandler
	restartMu                                sync.Mutex
	informersRestarting                      bool
	// listedAt is when the informers in use had listed (Unix ns): the
	// first sync, then each RestartInformers.
	listedAt atomic.Int64
	// leases watches liveness Leases, if asked for; RestartLeaseWatch
	// replaces it.
	leaseMu       sync.Mutex
	leases        *leaseWatch
	restarting    bool
	leasesStarted bool
	// leasesOff: the Lease informer is stopped (SetLeaseWatch).
	leasesOff     bool
	leaseNS       string
	leaseHandlers []func()
	broadcaster   record.EventBroadcaster
	recorder      record.EventRecorder
}

// informerSet is one generation of the Service, Node and EndpointSlice
// informers, stopped by closing stop.
type informerSet struct {
	factory    informers.SharedInformerFactory
	services   cache.SharedIndexInformer
	lister     corelisters.ServiceLister
	nodes      cache.SharedIndexInformer
	nodeLister corelisters.NodeLister
	slices     cache.SharedIndexInformer
	stop       chan struct{}
}

func newInformerSet(client kubernetes.Interface) *informerSet {
	factory := informers.NewSharedInformerFactory(client, 0)
	svcs := factory.Core().V1().Services()
	nodes := factory.Core().V1().Nodes()
	set := &informerSet{
		factory:  factory,
		services: svcs.Informer(),
		lister:   svcs.Lister(),
		nodes:    nodes.Informer(), nodeLister: nodes.Lister(),
		slices: factory.Discovery().V1().EndpointSlices().Informer(),
		stop:   make(chan struct{}),
	}
	_ = set.slices.AddIndexers(cache.Indexers{byService: sliceService})
	for _, inf := range []cache.SharedIndexInformer{set.services, set.nodes, set.slices} {
		// Managed fields are most of a stored object; lbd never reads them.
		_ = inf.SetTransform(func(obj any) (any, error) {
			if acc, err := meta.Accessor(obj); err == nil {
				acc.SetManagedFields(nil)
			}
			return obj, nil
		})
	}
	return set
}

func (s *informerSet) synced() []cache.InformerSynced {
	return []cache.InformerSynced{s.services.HasSynced, s.nodes.HasSynced, s.slices.HasSynced}
}

// cur is the informer set in use.
func (c *Cluster) cur() *informerSet { return c.informers.Load() }

// NewCluster prepares informers; nothing runs until Start. class is the
// loadBalancerClass lbd serves, node names the Events' source.
func NewCluster(client kubernetes.Interface, class, node string, log *slog.Logger) *Cluster {
	c := &Cluster{client: client, class: class, log: log}
	c.informers.Store(newInformerSet(client))
	c.broadcaster = record.NewBroadcaster()
	c.recorder = c.broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "lbd", Host: node})
	return c
}

// RestartInformers replaces the Service, Node and EndpointSlice informers
// by new ones, which list at once, and calls every handler for what they
// list. Call it when the API is reachable again after an outage: the old
// informers' reflectors back off exponentially, up to 30 s, and meanwhile
// this node planned with Services as they were, its own owner records
// missing from them (the others, listing sooner, chose another owner: in
// a lab nobody answered for 7 s). The old informers serve reads until the
// new ones have synced.
func (c *Cluster) RestartInformers(ctx context.Context) {
	c.restartMu.Lock()
	if c.informersRestarting || ctx.Err() != nil {
		c.restartMu.Unlock()
		return
	}
	c.informersRestarting = true
	c.restartMu.Unlock()
	set := newInformerSet(c.client)
	c.addHandlers(set)
	go func() {
		defer func() {
			c.restartMu.Lock()
			c.informersRestarting = false
			c.restartMu.Unlock()
		}()
		set.factory.Start(set.stop)
		if !cache.WaitForCacheSync(ctx.Done(), set.synced()...) {
			close(set.stop)
			return
		}
		c.restartMu.Lock()
		if ctx.Err() != nil { // Start's goroutine stopped the set in use
			c.restartMu.Unlock()
			close(set.stop)
			return
		}
		old := c.informers.Swap(set)
		c.listedAt.Store(time.Now().UnixNano())
		c.restartMu.Unlock()
		close(old.stop)
		c.log.Info("Services, Nodes and EndpointSlices listed afresh after the API came back")
		// The handlers ran as the new set listed, while reads still went
		// to the old one: tell them again, now that reads see the new.
		c.replay(set)
	}()
}

// replay calls every handler once for each object set holds.
func (c *Cluster) replay(set *informerSet) {
	for _, p := range []struct {
		inf      cache.SharedIndexInformer
		handlers []cache.ResourceEventHandler
	}{{set.services, c.svcHandlers}, {set.nodes, c.nodeHandlers}, {set.slices, c.sliceHandlers}} {
		for _, obj := range p.inf.GetStore().List() {
			for _, h := range p.handlers {
				h.OnUpdate(obj, obj)
			}
		}
	}
}

func (c *Cluster) addHandlers(set *informerSet) {
	for _, h := range c.svcHandlers {
		_, _ = set.services.AddEventHandler(h)
	}
	for _, h := range c.nodeHandlers {
		_, _ = set.nodes.AddEventHandler(h)
	}
	for _, h := range c.sliceHandlers {
		_, _ = set.slices.AddEventHandler(h)
	}
}

// OnServiceChange calls fn with the namespace/name of every Service added,
// changed or deleted. Register before Start; fn must not block.
func (c *Cluster) OnServiceChange(fn func(key string)) {
	c.svcHandlers = append(c.svcHandlers, onKey(fn))
}

// onKey calls fn with the namespace/name (or name) of every object added,
// changed or deleted.
func onKey(fn func(key string)) cache.ResourceEventHandlerFuncs {
	handler := func(obj any) {
		if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
			fn(key)
		}
	}
	return cache.ResourceEventHandlerFuncs{
		AddFunc:    handler,
		UpdateFunc: func(_, obj any) { handler(obj) },
		DeleteFunc: handler,
	}
}

// Start runs the informers and the Event sink until ctx ends and waits for
// the first full listing. It returns false if ctx ended first.
func (c *Cluster) Start(ctx context.Context) bool {
	c.broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: c.client.CoreV1().Events("")})
	go func() { <-ctx.Done(); c.broadcaster.Shutdown() }()
	set := c.cur()
	c.addHandlers(set)
	set.factory.Start(set.stop)
	go func() {
		<-ctx.Done()
		c.restartMu.Lock()
		c.informersRestarting = true // no new set from now on
		set := c.cur()
		c.restartMu.Unlock()
		close(set.stop)
	}()
	if c.leases != nil {
		c.leaseMu.Lock()
		w := c.leases
		w.start(w.stop)
		c.leasesStarted = true
		c.leaseMu.Unlock()
		go func() {
			<-ctx.Done()
			c.leaseMu.Lock()
			defer c.leaseMu.Unlock()
			if !c.leasesOff {
				close(c.leases.stop)
			}
			c.leasesOff, c.leasesStarted = true, false
		}()
	}
	ok := cache.WaitForCacheSync(ctx.Done(), append(set.synced(), c.leaseSynced)...)
	if ok {
		c.listedAt.CompareAndSwap(0, time.Now().UnixNano()) // unless a restart was quicker
	}
	return ok
}

// ServicesListedAt is when the Services (and Nodes and EndpointSlices)
// this Cluster serves were listed: at Start, then at each
// RestartInformers. Zero before the first sync.
func (c *Cluster) ServicesListedAt() time.Time {
	if ns := c.listedAt.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}

// Service returns the slim view of one Service.
func (c *Cluster) Service(key string) (cluster.Service, bool) {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return cluster.Service{}, false
	}
	s, err := c.cur().lister.Services(ns).Get(name)
	if err != nil {
		return cluster.Service{}, false
	}
	return convert(s, c.class), true
}

// Services returns every Service lbd serves, with the nodes of their
// endpoints for externalTrafficPolicy: Local.
func (c *Cluster) Services() []cluster.Service {
	all, _ := c.cur().lister.List(labels.Everything())
	out := make([]cluster.Service, 0, len(all))
	for _, s := range all {
		v := convert(s, c.class)
		if !v.Served {
			continue
		}
		if v.Spec.Local {
			v.Endpoints = c.EndpointNodes(v.Spec.Key)
		}
		out = append(out, v)
	}
	return out
}

// SetStatus writes addrs to the Service's status.loadBalancer.ingress and
// poolName to its allocated-from annotation; empty addrs clear both. It
// writes only what differs from the cached object.
func (c *Cluster) SetStatus(ctx context.Context, key string, addrs []netip.Addr, poolName string) error {
	s, err := c.cachedService(key)
	if err != nil {
		return err
	}
	ns, name := s.Namespace, s.Name
	cur := convert(s, c.class)
	if !slices.Equal(cur.Status, addrs) || len(s.Status.LoadBalancer.Ingress) != len(addrs) {
		ingress := make([]corev1.LoadBalancerIngress, len(addrs))
		for i, a := range addrs {
			ingress[i] = corev1.LoadBalancerIngress{IP: a.String()}
		}
		patch, _ := json.Marshal(map[string]any{"status": map[string]any{"loadBalancer": map[string]any{"ingress": ingress}}})
		if _, err := c.client.CoreV1().Services(ns).Patch(ctx, name, types.MergePatchType, patch, patchOpts, "status"); err != nil {
			return fmt.Errorf("write status of %s: %w", key, err)
		}
	}
	if cur.AllocatedFrom != poolName {
		var val any = poolName
		if poolName == "" {
			val = nil // removes the annotation
		}
		if err := c.annotate(ctx, s, map[string]any{AnnotationAllocatedFrom: val}); err != nil {
			return fmt.Errorf("annotate %s: %w", key, err)
		}
	}
	return nil
}

// SetL2Owner records node, in its term of life that began at since, as
// the owner of the Service's layer-2 addresses (AnnotationL2Owner,
// AnnotationL2OwnerSince). It writes only when the record differs.
func (c *Cluster) SetL2Owner(ctx context.Context, key, node string, since time.Time) error {
	s, err := c.cachedService(key)
	if err != nil {
		return err
	}
	sinceText := since.UTC().Format(time.RFC3339Nano)
	if s.Annotations[AnnotationL2Owner] == node && s.Annotations[AnnotationL2OwnerSince] == sinceText {
		return nil
	}
	if err := c.annotate(ctx, s, map[string]any{AnnotationL2Owner: node, AnnotationL2OwnerSince: sinceText}); err != nil {
		return fmt.Errorf("record the owner of %s: %w", key, err)
	}
	return nil
}

// cachedService is the informer's copy of the Service namespace/name.
func (c *Cluster) cachedService(key string) (*corev1.Service, error) {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil, err
	}
	s, err := c.cur().lister.Services(ns).Get(name)
	if err != nil {
		return nil, fmt.Errorf("service %s: %w", key, err)
	}
	return s, nil
}

// annotate sets one annotation of s (nil val removes it) with a merge patch.
func (c *Cluster) annotate(ctx context.Context, s *corev1.Service, annotations map[string]any) error {
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": annotations}})
	_, err := c.client.CoreV1().Services(s.Namespace).Patch(ctx, s.Name, types.MergePatchType, patch, patchOpts)
	return err
}

// Event records an Event on a Service. It never blocks on the API.
func (c *Cluster) Event(key string, warning bool, reason, msg string) {
	s, err := c.cachedService(key)
	if err != nil {
		return
	}
	typ := corev1.EventTypeNormal
	if warning {
		typ = corev1.EventTypeWarning
	}
	ref := &corev1.ObjectReference{Kind: "Service", APIVersion: "v1", Namespace: s.Namespace, Name: s.Name, UID: s.UID, ResourceVersion: s.ResourceVersion}
	c.recorder.Event(ref, typ, reason, msg)
}
