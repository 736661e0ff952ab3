package admission

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/svclab/svclab/apiserver/store"
)

// openStore opens a real store at path with a fresh Admission's admitters.
func openStore(t *testing.T, path string) (*store.Store, *Admission) {
	t.Helper()
	adm := newAdmission(t, Config{})
	st, err := store.Open(path, store.Options{Logger: discard, Admitters: adm.Admitters()})
	if err != nil {
		t.Fatalf("store.Open: %v", err)
	}
	return st, adm
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func listServices(t *testing.T, ctx context.Context, st *store.Store) []*corev1.Service {
	t.Helper()
	objs, _, err := st.List(ctx, store.Services, "", store.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out := make([]*corev1.Service, len(objs))
	for i, o := range objs {
		out[i] = o.(*corev1.Service)
	}
	return out
}

// uniqueAllocations fails the test when two stored Services share a cluster
// IP or a node port, and returns who holds what.
func uniqueAllocations(t *testing.T, svcs []*corev1.Service) (ips map[string]string, ports map[int32]string) {
	t.Helper()
	ips, ports = map[string]string{}, map[int32]string{}
	for _, s := range svcs {
		if ip := s.Spec.ClusterIP; ip != "" && ip != corev1.ClusterIPNone {
			if other, dup := ips[ip]; dup {
				t.Fatalf("%s and %s share clusterIP %s", other, s.Name, ip)
			}
			ips[ip] = s.Name
		}
		for _, p := range s.Spec.Ports {
			if p.NodePort != 0 {
				if other, dup := ports[p.NodePort]; dup {
					t.Fatalf("%s and %s share nodePort %d", other, s.Name, p.NodePort)
				}
				ports[p.NodePort] = s.Name
			}
		}
	}
	return ips, ports
}

// TestThroughStore runs the admitters inside the real store: the seed's
// examples, 64 concurrent Service creates (unique cluster IPs and node
// ports, nothing lost), type changes and status writes, refusals passed
// through unchanged, then a close/reopen that resumes allocation exactly.
func TestThroughStore(t *testing.T) {
	ctx := ctxT(t)
	path := filepath.Join(t.TempDir(), "svclab.db")
	st, adm := openStore(t, path)
	defer func() { st.Close() }()

	for _, ns := range []string{"default", "kube-system"} {
		if _, err := st.Create(ctx, store.Namespaces, namespaceNamed(ns)); err != nil {
			t.Fatalf("create namespace %s: %v", ns, err)
		}
	}
	for _, f := range []string{"01-redis-clusterip.yaml", "02-myapp-nohead.yaml", "03-myapp-nodeport.yaml", "04-external-name.yaml", "05-testsvc-loadbalancer.yaml", "10-pods.yaml"} {
		for _, o := range loadExamples(t, f) {
			res := store.Services
			if _, ok := o.(*corev1.Pod); ok {
				res = store.Pods
			}
			if _, err := st.Create(ctx, res, o); err != nil {
				t.Fatalf("%s: create %s: %v", f, o.GetName(), err)
			}
		}
	}
	got, err := st.Get(ctx, store.Services, "default", "testsvc")
	if err != nil {
		t.Fatal(err)
	}
	if lb := got.(*corev1.Service); lb.Spec.Ports[0].NodePort != 30031 || len(lb.Status.LoadBalancer.Ingress) != 1 || lb.Status.LoadBalancer.Ingress[0].IP != "172.29.255.1" {
		t.Fatalf("stored testsvc: ports %v status %v", lb.Spec.Ports, lb.Status)
	}

	// 64 concurrent creates, half NodePort.
	const n = 64
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			s := svc(fmt.Sprintf("load-%02d", i))
			if i%2 == 0 {
				nodePort(s)
			}
			_, errs[i] = st.Create(ctx, store.Services, s)
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("concurrent create %d: %v", i, err)
		}
	}
	svcs := listServices(t, ctx, st)
	if len(svcs) != n+5 {
		t.Fatalf("%d services stored, want %d", len(svcs), n+5)
	}
	ips, ports := uniqueAllocations(t, svcs)
	if st := adm.Stats(); st.ClusterIPs.Used != len(ips) || st.NodePorts.Used != len(ports) || st.LBIPs.Used != 1 {
		t.Fatalf("allocators hold %+v, stored objects use %d IPs and %d ports", st, len(ips), len(ports))
	}
	if len(ips) != n+3 || len(ports) != n/2+2 {
		t.Fatalf("%d cluster IPs and %d node ports, want %d and %d", len(ips), len(ports), n+3, n/2+2)
	}

	// A refusal comes back as the admitter's StatusError.
	_, err = st.Create(ctx, store.Services, svc("dup", func(s *corev1.Service) { s.Spec.ClusterIP = "10.96.0.100" }))
	var se *apierrors.StatusError
	if !errors.As(err, &se) || se.ErrStatus.Code != http.StatusUnprocessableEntity {
		t.Fatalf("duplicate clusterIP through the store: %v", err)
	}
	if _, err := st.Delete(ctx, store.Namespaces, "", "default", ""); !apierrors.IsForbidden(err) {
		t.Fatalf("delete namespace default: %v", err)
	}

	// A type change through Update: the status the admitter writes is stored.
	cur, err := st.Get(ctx, store.Services, "default", "load-01")
	if err != nil {
		t.Fatal(err)
	}
	lb := cur.(*corev1.Service).DeepCopy()
	lb.Spec.Type = corev1.ServiceTypeLoadBalancer
	out, err := st.Update(ctx, store.Services, lb, store.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ing := out.(*corev1.Service).Status.LoadBalancer.Ingress; len(ing) != 1 || ing[0].IP != "172.29.255.2" {
		t.Fatalf("ClusterIP -> LoadBalancer through the store: ingress %v", ing)
	}
	// A status subresource write moves the LB IP.
	moved := out.(*corev1.Service).DeepCopy()
	moved.Status.LoadBalancer.Ingress[0].IP = "172.29.255.200"
	if _, err := st.Update(ctx, store.Services, moved, store.UpdateOptions{Subresource: "status"}); err != nil {
		t.Fatal(err)
	}
	// Deleting a service releases its values.
	if _, err := st.Delete(ctx, store.Services, "default", "load-02", ""); err != nil {
		t.Fatal(err)
	}

	before := snapshot(adm)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	// Reopen with fresh allocators: Rebuild restores the exact state.
	st, adm = openStore(t, path)
	if diff := cmp.Diff(before, snapshot(adm)); diff != "" {
		t.Fatalf("allocators after reopen (-before +after):\n%s", diff)
	}
	if lbs := snapshot(adm).LBIPs; lbs["172.29.255.200"] != 1 || lbs["172.29.255.2"] != 0 {
		t.Fatalf("LB IPs after the status write and reopen: %v", lbs)
	}
	_, err = st.Create(ctx, store.Services, svc("again", nodePort, func(s *corev1.Service) { s.Spec.Ports[0].NodePort = 30080 }))
	if !errors.As(err, &se) || len(se.ErrStatus.Details.Causes) != 1 ||
		se.ErrStatus.Details.Causes[0].Message != "Invalid value: 30080: provided port is already allocated" {
		t.Fatalf("taking 30080 after reopen: %v", err)
	}
	if _, err := st.Create(ctx, store.Services, svc("fresh", nodePort)); err != nil {
		t.Fatal(err)
	}
	if _, ports := uniqueAllocations(t, listServices(t, ctx, st)); len(ports) != n/2+3 {
		// +1: load-01 became a LoadBalancer
		t.Fatalf("%d node ports in use after delete+create, want %d", len(ports), n/2+3)
	}
	// Pod spec immutability through the store: bind once, never move.
	p, err := st.Get(ctx, store.Pods, "default", "redis-0")
	if err != nil {
		t.Fatal(err)
	}
	bound := p.(*corev1.Pod).DeepCopy()
	bound.Spec.NodeName = "node-1"
	if _, err := st.Update(ctx, store.Pods, bound, store.UpdateOptions{}); err != nil {
		t.Fatalf("binding redis-0: %v", err)
	}
	moved2 := bound.DeepCopy()
	moved2.ResourceVersion = ""
	moved2.Spec.NodeName = "node-2"
	if _, err := st.Update(ctx, store.Pods, moved2, store.UpdateOptions{}); !apierrors.IsInvalid(err) {
		t.Fatalf("moving a bound pod: %v", err)
	}
}
