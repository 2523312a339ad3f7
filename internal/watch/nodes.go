package watch

import (
	"net/netip"
	"sort"

	"github.com/lbdproject/lbd/internal/cluster"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/tools/cache"
)

// LabelExcludeLB is the well-known label that keeps a node out of external
// load balancers.
const LabelExcludeLB = "node.kubernetes.io/exclude-from-external-load-balancers"

func convertNode(n *corev1.Node) cluster.Node {
	out := cluster.Node{Name: n.Name, Labels: n.Labels, Cordoned: n.Spec.Unschedulable}
	_, out.Excluded = n.Labels[LabelExcludeLB]
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			out.Ready = c.Status == corev1.ConditionTrue
		}
	}
	for _, a := range n.Status.Addresses {
		if ip, err := netip.ParseAddr(a.Address); err == nil && a.Type == corev1.NodeInternalIP {
			out.InternalIPs = append(out.InternalIPs, ip)
		}
	}
	return out
}

// Nodes returns every Node, by name.
func (c *Cluster) Nodes() []cluster.Node {
	all, _ := c.cur().nodeLister.List(labels.Everything())
	out := make([]cluster.Node, len(all))
	for i, n := range all {
		out[i] = convertNode(n)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// byService indexes EndpointSlices by the namespace/name of their Service.
const byService = "service"

func sliceService(obj any) ([]string, error) {
	s, ok := obj.(*discoveryv1.EndpointSlice)
	if !ok {
		return nil, nil
	}
	name := s.Labels[discoveryv1.LabelServiceName]
	if name == "" {
		return nil, nil
	}
	return []string{s.Namespace + "/" + name}, nil
}

// EndpointNodes returns the nodes that have an endpoint of the Service
// able to take traffic: ready, or serving while terminating (so a draining
// pod keeps its node eligible until it stops serving).
func (c *Cluster) EndpointNodes(serviceKey string) map[string]bool {
	objs, _ := c.cur().slices.GetIndexer().ByIndex(byService, serviceKey)
	out := map[string]bool{}
	for _, o := range objs {
		s := o.(*discoveryv1.EndpointSlice)
		for _, ep := range s.Endpoints {
			if ep.NodeName == nil || !usable(ep.Conditions) {
				continue
			}
			out[*ep.NodeName] = true
		}
	}
	return out
}

func usable(c discoveryv1.EndpointConditions) bool {
	if c.Ready == nil || *c.Ready { // nil means ready, per the API
		return true
	}
	return c.Serving != nil && *c.Serving
}

// OnEndpointsChange calls fn with the Service key of every EndpointSlice
// added, changed or deleted. Register before Start; fn must not block.
func (c *Cluster) OnEndpointsChange(fn func(serviceKey string)) {
	handler := func(obj any) {
		if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = d.Obj
		}
		if keys, _ := sliceService(obj); len(keys) == 1 {
			fn(keys[0])
		}
	}
	c.sliceHandlers = append(c.sliceHandlers, cache.ResourceEventHandlerFuncs{
		AddFunc:    handler,
		UpdateFunc: func(_, obj any) { handler(obj) },
		DeleteFunc: handler,
	})
}

// OnNodeChange calls fn with the name of every Node added, changed or
// deleted. Register before Start; fn must not block.
func (c *Cluster) OnNodeChange(fn func(name string)) {
	c.nodeHandlers = append(c.nodeHandlers, onKey(fn))
}

// NodeLabels returns the labels of the named Node; nil when it is not
// known (yet), an empty map when it has none.
func (c *Cluster) NodeLabels(name string) map[string]string {
	n, err := c.cur().nodeLister.Get(name)
	if err != nil {
		return nil
	}
	if n.Labels == nil {
		return map[string]string{}
	}
	return n.Labels
}
