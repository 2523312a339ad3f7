package watch

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/lbdproject/lbd/internal/cluster"
	"github.com/lbdproject/lbd/internal/pool"
)

// Annotations lbd reads and writes. MetalLB's and kube-vip's are honoured
// so that Services written for them work unchanged.
const (
	AnnotationIPs           = "lbd.io/loadBalancerIPs"
	AnnotationPool          = "lbd.io/address-pool"
	AnnotationSharing       = "lbd.io/allow-shared-ip"
	AnnotationAllocatedFrom = "lbd.io/allocated-from-pool"
	// AnnotationL2Owner names the node that answers ARP/NDP for the
	// Service's layer-2 addresses, written by each new owner: while that
	// node stays a candidate the addresses stay on it (l2.failback: false),
	// whatever restarted since.
	AnnotationL2Owner = "lbd.io/l2-owner"
	// AnnotationL2OwnerSince is when that node's term of life began
	// (RFC 3339), written with it.
	AnnotationL2OwnerSince = "lbd.io/l2-owner-since"
)

var (
	ipAnnotations      = []string{AnnotationIPs, "metallb.io/loadBalancerIPs", "metallb.universe.tf/loadBalancerIPs", "kube-vip.io/loadbalancerIPs"}
	poolAnnotations    = []string{AnnotationPool, "metallb.io/address-pool", "metallb.universe.tf/address-pool"}
	sharingAnnotations = []string{AnnotationSharing, "metallb.io/allow-shared-ip", "metallb.universe.tf/allow-shared-ip"}
)

// convert makes the slim view of s. class is the loadBalancerClass lbd
// serves ("" for Services without a class).
func convert(s *corev1.Service, class string) cluster.Service {
	out := cluster.Service{
		Spec: pool.Service{
			Key:       s.Namespace + "/" + s.Name,
			Namespace: s.Namespace,
			Local:     s.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal,
			Selector:  canonicalSelector(s.Spec.Selector),
		},
		Created:       s.CreationTimestamp.Time,
		AllocatedFrom: s.Annotations[AnnotationAllocatedFrom],
		L2Owner:       s.Annotations[AnnotationL2Owner],
	}
	if t, err := time.Parse(time.RFC3339Nano, s.Annotations[AnnotationL2OwnerSince]); err == nil {
		out.L2OwnerSince = t
	}
	own := ""
	if s.Spec.LoadBalancerClass != nil {
		own = *s.Spec.LoadBalancerClass
	}
	out.Served = s.Spec.Type == corev1.ServiceTypeLoadBalancer && own == class
	for _, in := range s.Status.LoadBalancer.Ingress {
		if a, err := netip.ParseAddr(in.IP); err == nil {
			out.Status = append(out.Status, a)
		}
	}
	for _, f := range s.Spec.IPFamilies {
		if f == corev1.IPv6Protocol {
			out.Spec.Families = append(out.Spec.Families, pool.IPv6)
		} else {
			out.Spec.Families = append(out.Spec.Families, pool.IPv4)
		}
	}
	if p := s.Spec.IPFamilyPolicy; p != nil {
		switch *p {
		case corev1.IPFamilyPolicyPreferDualStack:
			out.Spec.Policy = pool.PreferDualStack
		case corev1.IPFamilyPolicyRequireDualStack:
			out.Spec.Policy = pool.RequireDualStack
		}
	}
	for _, p := range s.Spec.Ports {
		out.Spec.Ports = append(out.Spec.Ports, pool.Port{Protocol: string(p.Protocol), Port: p.Port})
	}
	slices.SortFunc(out.Spec.Ports, func(a, b pool.Port) int {
		if c := strings.Compare(a.Protocol, b.Protocol); c != 0 {
			return c
		}
		return int(a.Port - b.Port)
	})

	var errs []string
	ips, err := oneOf(s.Annotations, ipAnnotations)
	if err != nil {
		errs = append(errs, err.Error())
	}
	if ips == "" && s.Spec.LoadBalancerIP != "" {
		ips = s.Spec.LoadBalancerIP
	}
	for f := range strings.SplitSeq(ips, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil || a.Zone() != "" {
			errs = append(errs, fmt.Sprintf("requested address %q is not an IP address", f))
			continue
		}
		out.Spec.Requested = append(out.Spec.Requested, a.Unmap())
	}
	if out.Spec.Pool, err = oneOf(s.Annotations, poolAnnotations); err != nil {
		errs = append(errs, err.Error())
	}
	if out.Spec.SharingKey, err = oneOf(s.Annotations, sharingAnnotations); err != nil {
		errs = append(errs, err.Error())
	}
	if len(errs) > 0 {
		out.Invalid = fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return out
}

// oneOf returns the value of whichever of names is set; two set to
// different values is an error rather than a silent choice.
func oneOf(ann map[string]string, names []string) (string, error) {
	val, from := "", ""
	for _, n := range names {
		v, ok := ann[n]
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		if from != "" && v != val {
			return "", fmt.Errorf("annotations %s=%q and %s=%q disagree", from, val, n, v)
		}
		val, from = v, n
	}
	return val, nil
}

// canonicalSelector writes a selector in one order, so that two Services
// selecting the same pods compare equal.
func canonicalSelector(sel map[string]string) string {
	keys := slices.Sorted(maps.Keys(sel))
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + sel[k]
	}
	return strings.Join(parts, ",")
}
