package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	authzv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/lbdproject/lbd/internal/kubetest"
)

// TestRBACLeastPrivilege applies the shipped etc/lbd-rbac.yaml to a real
// API server and asks its authorizer (SubjectAccessReview) what a node's
// identity may do. A worker (lbd:nodes) and a control-plane node (also
// lbd:control-plane) may never update or delete the cluster's own leader
// Leases, nor touch Leases outside lbd's namespace but the VIP's; what the
// code calls is allowed (the end-to-end tests run lbd under these rights).
func TestRBACLeastPrivilege(t *testing.T) {
	labParallel(t, 5*time.Second) // an API server of its own; fills a slot the labs leave
	kc := kubetest.Start(t)
	lbdKubeconfig(t, kc, "node-a", false, "") // applies the manifest
	worker := []string{"lbd:nodes"}
	cp := []string{"lbd:nodes", "lbd:control-plane"}
	type check struct {
		who                        string
		groups                     []string
		verb, group, res, ns, name string
		allowed                    bool
	}
	var checks []check
	for _, who := range []struct {
		name   string
		groups []string
	}{{"worker", worker}, {"control-plane", cp}} {
		for _, victim := range []string{"kube-controller-manager", "kube-scheduler"} {
			for _, verb := range []string{"update", "patch", "delete", "get", "watch"} {
				checks = append(checks, check{who.name, who.groups, verb, "coordination.k8s.io", "leases", "kube-system", victim, false})
			}
		}
		checks = append(checks,
			check{who.name, who.groups, "list", "coordination.k8s.io", "leases", "kube-system", "", false},
			check{who.name, who.groups, "deletecollection", "coordination.k8s.io", "leases", "lbd", "", false},
			check{who.name, who.groups, "update", "coordination.k8s.io", "leases", "default", "x", false},
			check{who.name, who.groups, "get", "", "secrets", "kube-system", "", false},
			check{who.name, who.groups, "update", "", "services", "default", "web", false},
			check{who.name, who.groups, "delete", "", "services", "default", "web", false},
			check{who.name, who.groups, "update", "", "nodes", "", "node-b", false},
			// What lbd does.
			check{who.name, who.groups, "list", "", "services", "", "", true},
			check{who.name, who.groups, "watch", "", "services", "", "", true},
			check{who.name, who.groups, "patch", "", "services", "default", "web", true},
			check{who.name, who.groups, "list", "", "nodes", "", "", true},
			check{who.name, who.groups, "watch", "discovery.k8s.io", "endpointslices", "", "", true},
			check{who.name, who.groups, "create", "", "events", "default", "", true},
			check{who.name, who.groups, "create", "coordination.k8s.io", "leases", "lbd", "", true},
			check{who.name, who.groups, "update", "coordination.k8s.io", "leases", "lbd", "lbd-node-node-a", true},
			check{who.name, who.groups, "delete", "coordination.k8s.io", "leases", "lbd", "lbd-node-node-a", true},
			check{who.name, who.groups, "watch", "coordination.k8s.io", "leases", "lbd", "", true},
		)
	}
	checks = append(checks,
		check{"worker", worker, "update", "coordination.k8s.io", "leases", "kube-system", "lbd-cp", false},
		check{"worker", worker, "create", "coordination.k8s.io", "leases", "kube-system", "", false},
		check{"control-plane", cp, "update", "coordination.k8s.io", "leases", "kube-system", "lbd-cp", true},
		check{"control-plane", cp, "watch", "coordination.k8s.io", "leases", "kube-system", "lbd-cp", true},
		check{"control-plane", cp, "delete", "coordination.k8s.io", "leases", "kube-system", "lbd-cp", true},
		// Create cannot be limited by name (docs/vip.md says why it is
		// harmless: it can only create a Lease that does not exist).
		check{"control-plane", cp, "create", "coordination.k8s.io", "leases", "kube-system", "", true},
	)
	for _, c := range checks {
		sar := &authzv1.SubjectAccessReview{Spec: authzv1.SubjectAccessReviewSpec{
			User: "lbd:node:node-a", Groups: c.groups,
			ResourceAttributes: &authzv1.ResourceAttributes{Verb: c.verb, Group: c.group, Resource: c.res, Namespace: c.ns, Name: c.name},
		}}
		got, err := kc.Client.AuthorizationV1().SubjectAccessReviews().Create(context.Background(), sar, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got.Status.Allowed != c.allowed {
			t.Errorf("%s: can-i %s %s/%s %q in %q = %v, want %v", c.who, c.verb, c.group, c.res, c.name, c.ns, got.Status.Allowed, c.allowed)
		}
	}
}

// TestClientCertExpiry: lbd exports when its client certificate expires
// and warns in the journal when that is within 30 days.
func TestClientCertExpiry(t *testing.T) {
	labParallel(t, 5*time.Second) // an API server of its own; fills a slot the labs leave
	kc := startKube(t)
	lbdKubeconfig(t, kc, "n1", false, "") // the manifest
	kubeconfig, err := kc.UserKubeconfig("lbd:node:n1", []string{"lbd:nodes"}, 20*24*time.Hour, "")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path, socket, httpAddr := filepath.Join(dir, "lbd.yaml"), filepath.Join(dir, "lbd.sock"), freePort(t)
	write(t, path, fmt.Sprintf("version: 1\nnode: {name: n1}\nkubernetes: {kubeconfig: %s}\nlisten: {http: %q, socket: %q}\n", kubeconfig, httpAddr, socket))
	d := startDaemon(t, path, socket)
	var got string
	waitFor(t, "the certificate expiry metric", func() bool {
		got = metrics(t, httpAddr)["lbd_kubeconfig_cert_expiry_timestamp_seconds"]
		return got != ""
	})
	exp, _ := strconv.ParseFloat(got, 64)
	if left := time.Until(time.Unix(int64(exp), 0)); left < 19*24*time.Hour || left > 20*24*time.Hour {
		t.Errorf("the metric says the certificate expires in %v, want 20 days", left)
	}
	waitFor(t, "the warning in the log", func() bool {
		return strings.Contains(d.logs(), "client certificate in the kubeconfig expires soon") && strings.Contains(d.logs(), "days=19")
	})
}
