package store

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

func TestCreateGet(t *testing.T) {
	s, _ := openTest(t, Options{})
	ctx := ctxT(t)
	ns := mustCreate(t, s, Namespaces, namespace("demo"))
	in := service("demo", "web")
	in.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "1.2.3.4"}} // reset on create, as kube does
	orig := in.DeepCopy()
	got := mustCreate(t, s, Services, in)

	if diff := cmp.Diff(orig, in); diff != "" {
		t.Errorf("Create modified its argument (-before +after):\n%s", diff)
	}
	if got.UID == "" || got.UID == ns.UID {
		t.Errorf("uid = %q (namespace's %q), want a fresh uid", got.UID, ns.UID)
	}
	if got.CreationTimestamp.IsZero() {
		t.Error("creationTimestamp not set")
	}
	want := orig.DeepCopy()
	want.TypeMeta = metav1.TypeMeta{APIVersion: "v1", Kind: "Service"}
	want.UID = got.UID
	want.CreationTimestamp = got.CreationTimestamp
	want.Generation = 0 // kube-apiserver keeps no generation for Services
	want.ResourceVersion = "2"
	want.Status = corev1.ServiceStatus{}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("created object (-want +got):\n%s", diff)
	}
	wantNS := &corev1.Namespace{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"},
		ObjectMeta: metav1.ObjectMeta{Name: "demo", UID: ns.UID, CreationTimestamp: ns.CreationTimestamp,
			ResourceVersion: "1"},
		Spec:   corev1.NamespaceSpec{Finalizers: []corev1.FinalizerName{"kubernetes"}},
		Status: corev1.NamespaceStatus{Phase: corev1.NamespaceActive},
	}
	if diff := cmp.Diff(wantNS, ns); diff != "" {
		t.Errorf("created namespace (-want +got):\n%s", diff)
	}
	// A main-resource update cannot drop the finalizers (kube: only /finalize can).
	nsUp := namespace("demo")
	nsUp.Labels = map[string]string{"team": "a"}
	gotNS, err := s.Update(ctx, Namespaces, nsUp, UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wantNS.Labels = nsUp.Labels
	wantNS.ResourceVersion = "3"
	if diff := cmp.Diff(Object(wantNS), gotNS); diff != "" {
		t.Errorf("updated namespace (-want +got):\n%s", diff)
	}

	// The returned object is a copy: mutating it changes nothing stored.
	got.Spec.Ports[0].Port = 9999
	got.Labels["app"] = "mutated"
	again, err := s.Get(ctx, Services, "demo", "web")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if diff := cmp.Diff(want, again); diff != "" {
		t.Errorf("Get after mutating a returned copy (-want +got):\n%s", diff)
	}
	if rv := s.ResourceVersion(); rv != 3 {
		t.Errorf("ResourceVersion() = %d, want 3", rv)
	}
}

func TestBuildList(t *testing.T) {
	s, _ := openTest(t, Options{})
	ctx := ctxT(t)
	mustCreate(t, s, Namespaces, namespace("demo"))
	mustCreate(t, s, EndpointSlices, slice("demo", "b"))
	mustCreate(t, s, EndpointSlices, slice("demo", "a"))
	objs, rv, err := s.List(ctx, EndpointSlices, "demo", ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	list, err := EndpointSlices.BuildList(objs, rv)
	if err != nil {
		t.Fatal(err)
	}
	want := &discoveryv1.EndpointSliceList{
		TypeMeta: metav1.TypeMeta{APIVersion: "discovery.k8s.io/v1", Kind: "EndpointSliceList"},
		ListMeta: metav1.ListMeta{ResourceVersion: "3"},
		Items:    []discoveryv1.EndpointSlice{*objs[0].(*discoveryv1.EndpointSlice), *objs[1].(*discoveryv1.EndpointSlice)},
	}
	if diff := cmp.Diff(runtime.Object(want), list); diff != "" {
		t.Errorf("BuildList (-want +got):\n%s", diff)
	}
	if want.Items[0].Name != "a" {
		t.Errorf("items not sorted: %s first", want.Items[0].Name)
	}
	empty, err := Services.BuildList(nil, 7)
	if err != nil || len(empty.(*corev1.ServiceList).Items) != 0 || empty.(*corev1.ServiceList).ResourceVersion != "7" {
		t.Errorf("empty BuildList: %#v, %v", empty, err)
	}
}

func TestAdmitterPanicAndCancelledContext(t *testing.T) {
	adm := &fakeAdmitter{mutate: func(op Operation, old, obj Object) {
		if obj.GetName() == "boom" {
			panic("allocator bug")
		}
	}}
	s, _ := openTest(t, Options{Admitters: map[string]Admitter{"services": adm}})
	ctx := ctxT(t)
	mustCreate(t, s, Namespaces, namespace("demo"))
	if _, err := s.Create(ctx, Services, service("demo", "boom")); err == nil || !strings.Contains(err.Error(), "allocator bug") {
		t.Errorf("panicking admitter: err = %v", err)
	}
	mustCreate(t, s, Services, service("demo", "fine")) // the writer survived
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.Create(cancelled, Services, service("demo", "late")); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled create: %v, want context.Canceled", err)
	}
	if rv := s.ResourceVersion(); rv != 2 {
		t.Errorf("rv = %d, want 2", rv)
	}
}

func TestCreateErrors(t *testing.T) {
	s, _ := openTest(t, Options{})
	mustCreate(t, s, Namespaces, namespace("demo"))
	mustCreate(t, s, Services, service("demo", "web"))
	tests := []struct {
		name    string
		res     *Resource
		obj     Object
		want    error
		wantMsg string
	}{
		{"namespace missing", Services, service("nope", "web"), ErrNotFound, `namespaces "nope"`},
		{"name taken", Services, service("demo", "web"), ErrAlreadyExists, `"web"`},
		{"namespace taken", Namespaces, namespace("demo"), ErrAlreadyExists, `"demo"`},
		{"no name", Services, service("demo", ""), ErrInvalid, "name"},
		{"namespaced without namespace", Services, service("", "web"), ErrInvalid, "namespace is required"},
		{"cluster-scoped with namespace", Nodes, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Namespace: "demo", Name: "n"}}, ErrInvalid, "cluster-scoped"},
		{"wrong type", Services, pod("demo", "p", ""), ErrInvalid, "*v1.Pod"},
		{"unregistered resource", &Resource{Name: "services"}, service("demo", "x"), ErrInvalid, "unregistered"},
	}
	rv := s.ResourceVersion()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.Create(context.Background(), tc.res, tc.obj)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("Create error = %v, want %v containing %q", err, tc.want, tc.wantMsg)
			}
		})
	}
	if got := s.ResourceVersion(); got != rv {
		t.Errorf("failed creates moved resourceVersion %d → %d", rv, got)
	}
}

func TestGenerateName(t *testing.T) {
	s, _ := openTest(t, Options{})
	mustCreate(t, s, Namespaces, namespace("demo"))
	seen := map[string]bool{}
	for range 20 {
		p := pod("demo", "", "")
		p.GenerateName = "web-"
		got := mustCreate(t, s, Pods, p)
		if !strings.HasPrefix(got.Name, "web-") || len(got.Name) != len("web-")+5 || seen[got.Name] {
			t.Fatalf("generated name %q: want web-xxxxx, unique", got.Name)
		}
		seen[got.Name] = true
	}
}

func TestUpdateConflict(t *testing.T) {
	s, _ := openTest(t, Options{})
	ctx := ctxT(t)
	mustCreate(t, s, Namespaces, namespace("demo"))
	v1 := mustCreate(t, s, Services, service("demo", "web"))

	v2in := v1.DeepCopy()
	v2in.Labels["tier"] = "front"
	v2, err := s.Update(ctx, Services, v2in, UpdateOptions{})
	if err != nil {
		t.Fatalf("Update with current rv: %v", err)
	}
	if v2.GetResourceVersion() != "3" {
		t.Errorf("rv after update = %s, want 3", v2.GetResourceVersion())
	}

	stale := v1.DeepCopy()
	stale.Labels["tier"] = "back"
	if _, err := s.Update(ctx, Services, stale, UpdateOptions{}); !errors.Is(err, ErrConflict) {
		t.Errorf("Update with stale rv: err = %v, want ErrConflict", err)
	}
	wrongUID := v2.(*corev1.Service).DeepCopy()
	wrongUID.UID = "not-the-uid"
	wrongUID.Labels["tier"] = "back"
	if _, err := s.Update(ctx, Services, wrongUID, UpdateOptions{}); !errors.Is(err, ErrConflict) {
		t.Errorf("Update with other uid: err = %v, want ErrConflict", err)
	}

	// Empty resourceVersion (and uid, creationTimestamp): unconditional, system fields kept.
	blind := service("demo", "web")
	blind.Labels["tier"] = "back"
	v3, err := s.Update(ctx, Services, blind, UpdateOptions{})
	if err != nil {
		t.Fatalf("unconditional Update: %v", err)
	}
	if v3.GetUID() != v1.UID || !v3.GetCreationTimestamp().Time.Equal(v1.CreationTimestamp.Time) || v3.GetResourceVersion() != "4" {
		t.Errorf("unconditional update: uid %s ts %v rv %s, want %s %v 4", v3.GetUID(), v3.GetCreationTimestamp(), v3.GetResourceVersion(), v1.UID, v1.CreationTimestamp)
	}
	if _, err := s.Update(ctx, Services, service("demo", "absent"), UpdateOptions{}); !errors.Is(err, ErrNotFound) {
		t.Errorf("Update of a missing object: err = %v, want ErrNotFound", err)
	}
}

func TestNoopUpdateWritesNothing(t *testing.T) {
	s, _ := openTest(t, Options{})
	ctx := ctxT(t)
	mustCreate(t, s, Namespaces, namespace("demo"))
	v1 := mustCreate(t, s, Services, service("demo", "web"))
	ch, err := s.Watch(ctx, nil, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Update(ctx, Services, v1, UpdateOptions{})
	if err != nil {
		t.Fatalf("no-op Update: %v", err)
	}
	if diff := cmp.Diff(Object(v1), got); diff != "" {
		t.Errorf("no-op update result (-want +got):\n%s", diff)
	}
	got, err = s.GuaranteedUpdate(ctx, Services, "demo", "web", UpdateOptions{}, func(cur Object) (Object, error) { return cur, nil })
	if err != nil || got.GetResourceVersion() != v1.ResourceVersion {
		t.Fatalf("no-op GuaranteedUpdate: rv %v err %v, want %s", got, err, v1.ResourceVersion)
	}
	// The next real change is the next resourceVersion, and the only event.
	mustCreate(t, s, Services, service("demo", "other"))
	if ev := recv(t, ch); evString(ev) != "3 ADDED services demo/other" {
		t.Errorf("first event after no-op updates = %q, want the create at rv 3", evString(ev))
	}
}

func TestGeneration(t *testing.T) {
	s, _ := openTest(t, Options{})
	ctx := ctxT(t)
	mustCreate(t, s, Namespaces, namespace("demo"))
	mustCreate(t, s, Services, service("demo", "web"))
	mustCreate(t, s, EndpointSlices, slice("demo", "web-abc"))
	mustCreate(t, s, Pods, pod("demo", "p", ""))

	tests := []struct {
		name    string
		res     *Resource
		objName string
		sub     string
		mutate  func(Object)
		wantGen int64
	}{
		// kube-apiserver keeps no generation for Services (nor Nodes, Namespaces, Endpoints).
		{"service spec change: no generation", Services, "web", "", func(o Object) { o.(*corev1.Service).Spec.Ports[0].Port = 8080 }, 0},
		{"service status change: no generation", Services, "web", "status", func(o Object) {
			o.(*corev1.Service).Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "172.29.255.1"}}
		}, 0},
		{"pod label change does not bump", Pods, "p", "", func(o Object) { o.SetLabels(map[string]string{"x": "y"}) }, 1},
		{"pod nil vs empty is no change", Pods, "p", "", func(o Object) { o.(*corev1.Pod).Spec.Tolerations = []corev1.Toleration{} }, 1},
		{"pod spec change bumps", Pods, "p", "", func(o Object) { o.(*corev1.Pod).Spec.NodeName = "node-1" }, 2},
		{"pod status does not", Pods, "p", "status", func(o Object) { o.(*corev1.Pod).Status.PodIP = "10.244.1.2" }, 2},
		{"endpointslice endpoints bump", EndpointSlices, "web-abc", "", func(o Object) {
			o.(*discoveryv1.EndpointSlice).Endpoints[0].Addresses = []string{"10.244.1.3"}
		}, 2},
		{"endpointslice labels bump", EndpointSlices, "web-abc", "", func(o Object) { o.SetLabels(map[string]string{"x": "y"}) }, 3},
		{"endpointslice annotations do not", EndpointSlices, "web-abc", "", func(o Object) { o.SetAnnotations(map[string]string{"a": "b"}) }, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cur, err := s.Get(ctx, tc.res, "demo", tc.objName)
			if err != nil {
				t.Fatal(err)
			}
			tc.mutate(cur)
			got, err := s.Update(ctx, tc.res, cur, UpdateOptions{Subresource: tc.sub})
			if err != nil {
				t.Fatalf("Update: %v", err)
			}
			if got.GetGeneration() != tc.wantGen {
				t.Errorf("generation = %d, want %d", got.GetGeneration(), tc.wantGen)
			}
		})
	}
}

func TestStatusSubresource(t *testing.T) {
	var seenOnUpdate []string // the LB IPs of the objects the admitter saw on update of "lb"
	lb := &fakeAdmitter{mutate: func(op Operation, old, obj Object) {
		if op == Update && obj.GetName() == "lb" {
			for _, in := range obj.(*corev1.Service).Status.LoadBalancer.Ingress {
				seenOnUpdate = append(seenOnUpdate, in.IP)
			}
		}
		// Like the Service admitter: allocate a LoadBalancer IP on create/update.
		if svc, ok := obj.(*corev1.Service); ok && svc.Spec.Type == corev1.ServiceTypeLoadBalancer && len(svc.Status.LoadBalancer.Ingress) == 0 {
			svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "172.29.255.7"}}
		}
	}}
	s, _ := openTest(t, Options{Admitters: map[string]Admitter{"services": lb}})
	ctx := ctxT(t)
	mustCreate(t, s, Namespaces, namespace("demo"))
	lbSvc := service("demo", "lb")
	lbSvc.Spec.Type = corev1.ServiceTypeLoadBalancer
	created := mustCreate(t, s, Services, lbSvc)
	wantIngress := []corev1.LoadBalancerIngress{{IP: "172.29.255.7"}}
	if diff := cmp.Diff(wantIngress, created.Status.LoadBalancer.Ingress); diff != "" {
		t.Errorf("admitter's LB IP on create (-want +got):\n%s", diff)
	}

	// Main resource update: a status in the request is ignored, the stored one kept.
	up := created.DeepCopy()
	up.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "9.9.9.9"}}
	up.Spec.Ports[0].Port = 81
	got, err := s.Update(ctx, Services, up, UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	gotSvc := got.(*corev1.Service)
	if diff := cmp.Diff(wantIngress, gotSvc.Status.LoadBalancer.Ingress); diff != "" {
		t.Errorf("status after main update (-want +got):\n%s", diff)
	}
	if gotSvc.Spec.Ports[0].Port != 81 {
		t.Errorf("spec change lost: port %d", gotSvc.Spec.Ports[0].Port)
	}
	lb.mu.Lock()
	if diff := cmp.Diff([]string{"172.29.255.7"}, seenOnUpdate); diff != "" {
		t.Errorf("admitter saw on main update (-want +got): the merged object with the stored status\n%s", diff)
	}
	lb.mu.Unlock()

	// Update that turns a ClusterIP service into a LoadBalancer: the admitter's
	// status survives because the keep-old-status rule runs before Admit.
	plain := mustCreate(t, s, Services, service("demo", "plain"))
	plain.Spec.Type = corev1.ServiceTypeLoadBalancer
	got, err = s.Update(ctx, Services, plain, UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(wantIngress, got.(*corev1.Service).Status.LoadBalancer.Ingress); diff != "" {
		t.Errorf("admitter status on update (-want +got):\n%s", diff)
	}

	// Status update: only status is taken; spec, labels and annotations are ignored.
	st := gotSvc.DeepCopy()
	st.Spec.Ports[0].Port = 1
	st.Labels = map[string]string{"ignored": "yes"}
	st.Annotations = map[string]string{"ignored": "yes"}
	st.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "172.29.255.8"}}
	got, err = s.Update(ctx, Services, st, UpdateOptions{Subresource: "status"})
	if err != nil {
		t.Fatal(err)
	}
	want := gotSvc.DeepCopy()
	want.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "172.29.255.8"}}
	want.ResourceVersion = got.GetResourceVersion()
	if diff := cmp.Diff(Object(want), got); diff != "" {
		t.Errorf("after status update (-want +got):\n%s", diff)
	}

	// Stale status update conflicts; unknown subresources do not exist.
	if _, err := s.Update(ctx, Services, st, UpdateOptions{Subresource: "status"}); !errors.Is(err, ErrConflict) {
		t.Errorf("stale status update: %v, want ErrConflict", err)
	}
	ep := &corev1.Endpoints{ObjectMeta: metav1.ObjectMeta{Namespace: "demo", Name: "lb"}}
	if _, err := s.Update(ctx, Endpoints, ep, UpdateOptions{Subresource: "status"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("status of endpoints: %v, want ErrNotFound", err)
	}
	if _, err := s.Update(ctx, Services, st, UpdateOptions{Subresource: "scale"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("scale subresource: %v, want ErrNotFound", err)
	}

	// Resources without status subresource take everything in a main update.
	mustCreate(t, s, Endpoints, ep)
	ep.Subsets = []corev1.EndpointSubset{{Addresses: []corev1.EndpointAddress{{IP: "10.244.1.2"}}}}
	got, err = s.Update(ctx, Endpoints, ep, UpdateOptions{})
	if err != nil || len(got.(*corev1.Endpoints).Subsets) != 1 {
		t.Errorf("endpoints update: %v %v", got, err)
	}
}

func TestGuaranteedUpdate(t *testing.T) {
	s, _ := openTest(t, Options{})
	ctx := ctxT(t)
	mustCreate(t, s, Namespaces, namespace("demo"))
	mustCreate(t, s, Nodes, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-1"}})

	got, err := s.GuaranteedUpdate(ctx, Nodes, "", "node-1", UpdateOptions{Subresource: "status"}, func(cur Object) (Object, error) {
		n := cur.(*corev1.Node)
		n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "172.29.0.2"}}
		n.ResourceVersion = "1" // ignored: GuaranteedUpdate is unconditional
		return n, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got.GetResourceVersion() != "3" || got.(*corev1.Node).Status.Addresses[0].Address != "172.29.0.2" {
		t.Errorf("GuaranteedUpdate result rv %s status %+v", got.GetResourceVersion(), got.(*corev1.Node).Status)
	}

	abort := apierrors.NewInvalid(schema.GroupKind{Kind: "Node"}, "node-1", field.ErrorList{field.Invalid(field.NewPath("spec"), "x", "nope")})
	_, err = s.GuaranteedUpdate(ctx, Nodes, "", "node-1", UpdateOptions{}, func(cur Object) (Object, error) { return nil, abort })
	if err != abort { //nolint:errorlint // must be returned unchanged
		t.Errorf("aborting function: err = %v, want the function's error unchanged", err)
	}
	_, err = s.GuaranteedUpdate(ctx, Nodes, "", "node-1", UpdateOptions{}, func(cur Object) (Object, error) {
		cur.SetName("renamed")
		return cur, nil
	})
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("renaming function: err = %v, want ErrInvalid", err)
	}
	_, err = s.GuaranteedUpdate(ctx, Nodes, "", "node-1", UpdateOptions{}, func(cur Object) (Object, error) { panic("boom") })
	if err == nil || !strings.Contains(err.Error(), "boom") {
		t.Errorf("panicking function: err = %v", err)
	}
	_, err = s.GuaranteedUpdate(ctx, Nodes, "", "node-2", UpdateOptions{}, func(cur Object) (Object, error) { return cur, nil })
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("missing object: err = %v, want ErrNotFound", err)
	}
	if rv := s.ResourceVersion(); rv != 3 {
		t.Errorf("refused updates moved resourceVersion to %d, want 3", rv)
	}
}

func TestDelete(t *testing.T) {
	s, _ := openTest(t, Options{})
	ctx := ctxT(t)
	mustCreate(t, s, Namespaces, namespace("demo"))
	svc := mustCreate(t, s, Services, service("demo", "web"))
	if _, err := s.Delete(ctx, Services, "demo", "web", "1"); !errors.Is(err, ErrConflict) {
		t.Errorf("Delete with stale rv: %v, want ErrConflict", err)
	}
	got, err := s.Delete(ctx, Services, "demo", "web", svc.ResourceVersion)
	if err != nil {
		t.Fatal(err)
	}
	want := svc.DeepCopy()
	want.ResourceVersion = "3"
	if diff := cmp.Diff(Object(want), got); diff != "" {
		t.Errorf("deleted object (-want +got):\n%s", diff)
	}
	if _, err := s.Get(ctx, Services, "demo", "web"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get after delete: %v, want ErrNotFound", err)
	}
	if _, err := s.Delete(ctx, Services, "demo", "web", ""); !errors.Is(err, ErrNotFound) {
		t.Errorf("second Delete: %v, want ErrNotFound", err)
	}
}

func TestNamespaceCascade(t *testing.T) {
	adm := &fakeAdmitter{}
	s, _ := openTest(t, Options{Admitters: map[string]Admitter{"services": adm}})
	ctx := ctxT(t)
	mustCreate(t, s, Namespaces, namespace("demo"))
	mustCreate(t, s, Namespaces, namespace("keep"))
	mustCreate(t, s, Nodes, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-1"}})
	mustCreate(t, s, Services, service("demo", "web"))
	mustCreate(t, s, Services, service("demo", "api"))
	mustCreate(t, s, Pods, pod("demo", "web-1", "node-1"))
	mustCreate(t, s, EndpointSlices, slice("demo", "web-x"))
	mustCreate(t, s, Services, service("keep", "web"))
	start := s.ResourceVersion()

	// A refused cascaded delete refuses the whole namespace delete.
	adm.refuse = func(op Operation, old, obj Object) error {
		if op == Delete && old.GetName() == "web" {
			return apierrors.NewForbidden(schema.GroupResource{Resource: "services"}, "web", errors.New("pinned"))
		}
		return nil
	}
	if _, err := s.Delete(ctx, Namespaces, "", "demo", ""); !apierrors.IsForbidden(err) {
		t.Fatalf("refused cascade: err = %v, want the admitter's Forbidden", err)
	}
	if _, undone := adm.snapshot(); !cmp.Equal(undone, []string{"DELETE demo/api"}) {
		t.Errorf("undo after refused cascade = %v, want the admitted service api released again", undone)
	}
	if objs, _, _ := s.List(ctx, Services, "demo", ListOptions{}); len(objs) != 2 || s.ResourceVersion() != start {
		t.Fatalf("refused cascade changed something: %d services, rv %d→%d", len(objs), start, s.ResourceVersion())
	}
	adm.mu.Lock()
	adm.refuse = nil
	adm.mu.Unlock()

	ch, err := s.Watch(ctx, nil, "", start)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Delete(ctx, Namespaces, "", "demo", ""); err != nil {
		t.Fatal(err)
	}
	var got []string
	for range 5 {
		got = append(got, evString(recv(t, ch)))
	}
	want := []string{
		"9 DELETED services demo/api",
		"10 DELETED services demo/web",
		"11 DELETED pods demo/web-1",
		"12 DELETED endpointslices demo/web-x",
		"13 DELETED namespaces demo",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("cascade events (-want +got):\n%s", diff)
	}
	for _, res := range []*Resource{Services, Pods, EndpointSlices} {
		if objs, _, _ := s.List(ctx, res, "demo", ListOptions{}); len(objs) != 0 {
			t.Errorf("%s left in deleted namespace: %d", res.Name, len(objs))
		}
	}
	if _, err := s.Get(ctx, Services, "keep", "web"); err != nil {
		t.Errorf("other namespace's service: %v", err)
	}
	if _, err := s.Get(ctx, Nodes, "", "node-1"); err != nil {
		t.Errorf("cluster-scoped node: %v", err)
	}
	if _, err := s.Create(ctx, Services, service("demo", "again")); !errors.Is(err, ErrNotFound) {
		t.Errorf("create in deleted namespace: %v, want ErrNotFound", err)
	}
}

func TestRefusedWriteIsAtomic(t *testing.T) {
	invalid := apierrors.NewInvalid(schema.GroupKind{Kind: "Service"}, "bad", field.ErrorList{field.Required(field.NewPath("spec", "ports"), "")})
	adm := &fakeAdmitter{refuse: func(op Operation, old, obj Object) error {
		if obj != nil && obj.GetName() == "bad" {
			return invalid
		}
		return nil
	}}
	gate := newGate("gate")
	s, _ := openTest(t, Options{Admitters: map[string]Admitter{"services": adm, "namespaces": gate}})
	ctx := ctxT(t)
	ch, err := s.Watch(ctx, nil, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	// Hold the writer on the namespace "gate", queue good, bad and good
	// service creates into the same batch, then release it.
	gateDone := make(chan error, 1)
	go func() { _, err := s.Create(ctx, Namespaces, namespace("gate")); gateDone <- err }()
	<-gate.entered
	names := []string{"good-1", "bad", "good-2"}
	errs := make([]chan error, len(names))
	for i, n := range names {
		errs[i] = make(chan error, 1)
		go func() {
			svc := service("gate", n)
			_, err := s.Create(ctx, Services, svc)
			errs[i] <- err
		}()
		waitQueued(t, s, i+1)
	}
	close(gate.release)
	if err := <-gateDone; err != nil {
		t.Fatal(err)
	}
	for i, n := range names {
		err := <-errs[i]
		if n == "bad" {
			if err != invalid { //nolint:errorlint // must be returned unchanged
				t.Errorf("bad create: err = %v, want the admitter's StatusError unchanged", err)
			}
		} else if err != nil {
			t.Errorf("create %s: %v", n, err)
		}
	}
	if c := s.Stats().Commits; c != 2 {
		t.Errorf("%d commits, want 2: the gate's batch, then one batch of the queued creates", c)
	}
	var got []string
	for range 3 {
		got = append(got, evString(recv(t, ch)))
	}
	want := []string{"1 ADDED namespaces gate", "2 ADDED services gate/good-1", "3 ADDED services gate/good-2"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	if _, err := s.Get(ctx, Services, "gate", "bad"); !errors.Is(err, ErrNotFound) {
		t.Errorf("refused object stored: %v", err)
	}
	if rv := s.ResourceVersion(); rv != 3 {
		t.Errorf("rv = %d, want 3", rv)
	}
	// The next event is the next write, at rv 4: nothing was published for the refused one.
	mustCreate(t, s, Services, service("gate", "good-3"))
	if ev := recv(t, ch); evString(ev) != "4 ADDED services gate/good-3" {
		t.Errorf("next event %q", evString(ev))
	}
}

func TestBatchSeesEarlierWrites(t *testing.T) {
	gate := newGate("gate")
	s, _ := openTest(t, Options{Admitters: map[string]Admitter{"namespaces": gate}})
	ctx := ctxT(t)
	gateDone := make(chan error, 1)
	go func() { _, err := s.Create(ctx, Namespaces, namespace("gate")); gateDone <- err }()
	<-gate.entered

	// In one batch: a namespace, a service in it, an update and a delete of
	// that service, a re-create, and a namespace delete that must cascade to it.
	type step struct {
		name string
		do   func() (Object, error)
	}
	upd := service("b", "web")
	upd.Spec.Ports[0].Port = 8080
	steps := []step{
		{"create ns", func() (Object, error) { return s.Create(ctx, Namespaces, namespace("b")) }},
		{"create svc", func() (Object, error) { return s.Create(ctx, Services, service("b", "web")) }},
		{"update svc", func() (Object, error) { return s.Update(ctx, Services, upd, UpdateOptions{}) }},
		{"conditional update svc", func() (Object, error) {
			u := upd.DeepCopy()
			u.ResourceVersion = "4" // the rv the previous update gets in this batch
			u.Spec.Ports[0].Port = 8081
			return s.Update(ctx, Services, u, UpdateOptions{})
		}},
		{"delete svc", func() (Object, error) { return s.Delete(ctx, Services, "b", "web", "5") }},
		{"recreate svc", func() (Object, error) { return s.Create(ctx, Services, service("b", "web")) }},
		{"delete ns", func() (Object, error) { return s.Delete(ctx, Namespaces, "", "b", "") }},
	}
	type res struct {
		rv  string
		err error
	}
	results := make([]chan res, len(steps))
	for i, st := range steps {
		results[i] = make(chan res, 1)
		go func() {
			o, err := st.do()
			r := res{err: err}
			if o != nil {
				r.rv = o.GetResourceVersion()
			}
			results[i] <- r
		}()
		waitQueued(t, s, i+1)
	}
	close(gate.release)
	if err := <-gateDone; err != nil {
		t.Fatal(err)
	}
	wantRV := []string{"2", "3", "4", "5", "6", "7", "9"} // 8: the cascaded delete of the re-created service
	for i, st := range steps {
		r := <-results[i]
		if r.err != nil || r.rv != wantRV[i] {
			t.Errorf("%s: rv %q err %v, want rv %s", st.name, r.rv, r.err, wantRV[i])
		}
	}
	if st := s.Stats(); st.Commits != 2 {
		t.Errorf("commits = %d, want 2: the gate's batch, then one batch of all steps", st.Commits)
	}
	if objs, _, _ := s.List(ctx, Services, "", ListOptions{}); len(objs) != 0 {
		t.Errorf("services left: %v", objs)
	}
}

func TestCommitFailureUndo(t *testing.T) {
	adm := &fakeAdmitter{}
	gate := newGate("gate")
	s, path := openTest(t, Options{Admitters: map[string]Admitter{"services": adm, "namespaces": gate}})
	ctx := ctxT(t)
	mustCreate(t, s, Namespaces, namespace("demo"))
	ch, err := s.Watch(ctx, nil, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	gateDone := make(chan error, 1)
	go func() { _, err := s.Create(ctx, Namespaces, namespace("gate")); gateDone <- err }()
	<-gate.entered
	diskFull := errors.New("injected: no space left on device")
	s.failCommit = func() error { return diskFull } // the writer reads it after the gate opens
	names := []string{"a", "b", "c"}
	errs := make([]chan error, len(names))
	for i, n := range names {
		errs[i] = make(chan error, 1)
		go func() { _, err := s.Create(ctx, Services, service("demo", n)); errs[i] <- err }()
		waitQueued(t, s, i+1)
	}
	close(gate.release)
	if err := <-gateDone; !errors.Is(err, diskFull) {
		t.Errorf("gate namespace create: %v, want the commit error", err)
	}
	for i := range names {
		if err := <-errs[i]; !errors.Is(err, diskFull) {
			t.Errorf("create %s: %v, want the commit error", names[i], err)
		}
	}
	_, undone := adm.snapshot()
	if diff := cmp.Diff([]string{"CREATE demo/c", "CREATE demo/b", "CREATE demo/a"}, undone); diff != "" {
		t.Errorf("undo calls (-want +got), want reverse order:\n%s", diff)
	}
	if rv := s.ResourceVersion(); rv != 1 {
		t.Errorf("rv after failed commits = %d, want 1", rv)
	}
	if objs, _, _ := s.List(ctx, Services, "", ListOptions{}); len(objs) != 0 {
		t.Errorf("services of the failed batch visible: %d", len(objs))
	}

	// The disk recovers: the store continues at rv 2, the first event is that
	// write, and a restart shows nothing of the failed batches.
	s.failCommit = nil
	mustCreate(t, s, Namespaces, namespace("after"))
	if ev := recv(t, ch); evString(ev) != "2 ADDED namespaces after" {
		t.Errorf("first event after failed commits: %q", evString(ev))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(path, Options{Logger: discardLogger})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	nss, rv, err := s2.List(ctx, Namespaces, "", ListOptions{})
	if err != nil || rv != 2 || len(nss) != 2 || nss[0].GetName() != "after" || nss[1].GetName() != "demo" {
		t.Errorf("after restart: %d namespaces, rv %d, err %v; want after and demo at rv 2", len(nss), rv, err)
	}
	if objs, _, _ := s2.List(ctx, Services, "", ListOptions{}); len(objs) != 0 {
		t.Errorf("services of the failed batch persisted: %d", len(objs))
	}
}

func TestRestart(t *testing.T) {
	s, path := openTest(t, Options{})
	ctx := ctxT(t)
	mustCreate(t, s, Namespaces, namespace("demo"))
	mustCreate(t, s, Namespaces, namespace("kube-system"))
	mustCreate(t, s, Nodes, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-1"}})
	mustCreate(t, s, Services, service("demo", "web"))
	mustCreate(t, s, Services, service("kube-system", "kube-dns"))
	mustCreate(t, s, Pods, pod("demo", "web-1", "node-1"))
	mustCreate(t, s, EndpointSlices, slice("demo", "web-x"))
	if _, err := s.Delete(ctx, Pods, "demo", "web-1", ""); err != nil {
		t.Fatal(err)
	}
	before := map[string][]Object{}
	for _, res := range Resources() {
		objs, _, err := s.List(ctx, res, "", ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		before[res.Name] = objs
	}
	rv := s.ResourceVersion()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	svcAdm, nsAdm := &fakeAdmitter{}, &fakeAdmitter{}
	s2, err := Open(path, Options{Logger: discardLogger, Admitters: map[string]Admitter{"services": svcAdm, "namespaces": nsAdm}})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if got := s2.ResourceVersion(); got != rv {
		t.Errorf("rv after restart = %d, want %d", got, rv)
	}
	for _, res := range Resources() {
		objs, _, err := s2.List(ctx, res, "", ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(before[res.Name], objs); diff != "" {
			t.Errorf("%s after restart (-before +after):\n%s", res.Name, diff)
		}
	}
	if diff := cmp.Diff(before["services"], svcAdm.rebuilt); diff != "" {
		t.Errorf("services Rebuild (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(before["namespaces"], nsAdm.rebuilt); diff != "" {
		t.Errorf("namespaces Rebuild (-want +got):\n%s", diff)
	}
	n := mustCreate(t, s2, Nodes, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-2"}})
	if n.ResourceVersion != "9" {
		t.Errorf("first write after restart rv %s, want 9", n.ResourceVersion)
	}
	// History starts at the restart: resuming from before it is gone.
	if _, err := s2.Watch(ctx, nil, "", rv-1); !errors.Is(err, ErrGone) {
		t.Errorf("watch from before restart: %v, want ErrGone", err)
	}
}

func TestOpenErrors(t *testing.T) {
	_, err := Open(t.TempDir()+"/x.db", Options{Logger: discardLogger, Admitters: map[string]Admitter{"deployments": &fakeAdmitter{}}})
	if err == nil || !strings.Contains(err.Error(), "deployments") {
		t.Errorf("admitter for unknown resource: %v", err)
	}
	s, path := openTest(t, Options{})
	mustCreate(t, s, Namespaces, namespace("demo"))
	s.Close()
	failing := &rebuildFails{}
	if _, err := Open(path, Options{Logger: discardLogger, Admitters: map[string]Admitter{"namespaces": failing}}); err == nil || !strings.Contains(err.Error(), "rebuild") {
		t.Errorf("failing Rebuild: %v", err)
	}
	// The failed Open released the file: it opens again.
	s3, err := Open(path, Options{Logger: discardLogger})
	if err != nil {
		t.Fatal(err)
	}
	s3.Close()
}

type rebuildFails struct{ fakeAdmitter }

func (*rebuildFails) Rebuild([]Object) error { return errors.New("allocator full") }

func TestListSortedAndSelectors(t *testing.T) {
	s, _ := openTest(t, Options{})
	ctx := ctxT(t)
	for _, ns := range []string{"b", "a", "a-b"} {
		mustCreate(t, s, Namespaces, namespace(ns))
	}
	mk := func(ns, name, node, app string) {
		p := pod(ns, name, node)
		p.Labels = map[string]string{"app": app}
		mustCreate(t, s, Pods, p)
	}
	mk("b", "z", "node-1", "web")
	mk("a", "y", "node-2", "web")
	mk("a-b", "x", "node-1", "db")
	mk("a", "b", "node-1", "db")
	names := func(objs []Object) []string {
		var out []string
		for _, o := range objs {
			out = append(out, objName(o))
		}
		return out
	}
	tests := []struct {
		name   string
		ns     string
		labels string
		fields string
		want   []string
	}{
		{"all, sorted by namespace then name", "", "", "", []string{"a/b", "a/y", "a-b/x", "b/z"}},
		{"one namespace", "a", "", "", []string{"a/b", "a/y"}},
		{"label", "", "app=web", "", []string{"a/y", "b/z"}},
		{"label set-based", "", "app in (db)", "", []string{"a/b", "a-b/x"}},
		{"spec.nodeName", "", "", "spec.nodeName=node-1", []string{"a/b", "a-b/x", "b/z"}},
		{"nodeName and label", "", "app=db", "spec.nodeName=node-1", []string{"a/b", "a-b/x"}},
		{"metadata.name", "", "", "metadata.name=y", []string{"a/y"}},
		{"metadata.namespace !=", "", "", "metadata.namespace!=a", []string{"a-b/x", "b/z"}},
		{"status.phase", "", "", "status.phase=Pending", []string{"a/b", "a/y", "a-b/x", "b/z"}},
		{"nothing matches", "", "app=none", "", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opts := ListOptions{}
			if tc.labels != "" {
				sel, err := labels.Parse(tc.labels)
				if err != nil {
					t.Fatal(err)
				}
				opts.LabelSelector = sel
			}
			if tc.fields != "" {
				opts.FieldSelector = fields.ParseSelectorOrDie(tc.fields)
			}
			objs, rv, err := s.List(ctx, Pods, tc.ns, opts)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, names(objs)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			if rv != 7 {
				t.Errorf("list rv = %d, want 7", rv)
			}
		})
	}
	badSel := []struct {
		res *Resource
		sel string
	}{
		{Pods, "spec.hostname=x"},
		{Services, "spec.nodeName=node-1"},
		{Nodes, "metadata.namespace=a"},
	}
	for _, tc := range badSel {
		_, _, err := s.List(ctx, tc.res, "", ListOptions{FieldSelector: fields.ParseSelectorOrDie(tc.sel)})
		if !errors.Is(err, ErrInvalidSelector) {
			t.Errorf("List %s with %q: %v, want ErrInvalidSelector", tc.res.Name, tc.sel, err)
		}
	}
	if _, _, err := s.List(ctx, Nodes, "a", ListOptions{}); !errors.Is(err, ErrInvalid) {
		t.Errorf("List nodes in a namespace: %v, want ErrInvalid", err)
	}
	objs, _, err := s.List(ctx, Services, "", ListOptions{})
	if err != nil || objs == nil || len(objs) != 0 {
		t.Errorf("empty list = %#v, %v; want empty non-nil slice", objs, err)
	}
}

func TestClosedStore(t *testing.T) {
	s, _ := openTest(t, Options{})
	ctx := ctxT(t)
	mustCreate(t, s, Namespaces, namespace("demo"))
	ch, err := s.Watch(ctx, nil, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, ok := <-ch; ok {
		t.Error("watch channel not closed by Close")
	}
	if _, err := s.Create(ctx, Namespaces, namespace("x")); !errors.Is(err, ErrClosed) {
		t.Errorf("Create after Close: %v", err)
	}
	if _, err := s.Get(ctx, Namespaces, "", "demo"); !errors.Is(err, ErrClosed) {
		t.Errorf("Get after Close: %v", err)
	}
	if _, err := s.Watch(ctx, nil, "", 0); !errors.Is(err, ErrClosed) {
		t.Errorf("Watch after Close: %v", err)
	}
}

func TestBrokenStageFailsOnlyItsRequest(t *testing.T) {
	adm := &fakeAdmitter{}
	gate := newGate("gate")
	s, _ := openTest(t, Options{Admitters: map[string]Admitter{"services": adm, "namespaces": gate}})
	ctx := ctxT(t)
	ch, err := s.Watch(ctx, nil, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	gateDone := make(chan error, 1)
	go func() { _, err := s.Create(ctx, Namespaces, namespace("gate")); gateDone <- err }()
	<-gate.entered
	putFailed := errors.New("injected: bbolt put failed")
	s.failStage = func(res *Resource, obj Object) error {
		if obj.GetName() == "b" {
			return putFailed
		}
		return nil
	}
	names := []string{"a", "b", "c"}
	errs := make([]chan error, len(names))
	for i, n := range names {
		errs[i] = make(chan error, 1)
		go func() { _, err := s.Create(ctx, Services, service("gate", n)); errs[i] <- err }()
		waitQueued(t, s, i+1)
	}
	close(gate.release)
	if err := <-gateDone; err != nil {
		t.Fatal(err)
	}
	for i, n := range names {
		err := <-errs[i]
		switch {
		case n == "b" && !errors.Is(err, putFailed):
			t.Errorf("create b: %v, want the injected put error", err)
		case n != "b" && err != nil:
			t.Errorf("create %s: %v, want success in the retried batch", n, err)
		}
	}
	calls, undone := adm.snapshot()
	if diff := cmp.Diff([]string{"CREATE gate/a", "CREATE gate/b", "CREATE gate/a", "CREATE gate/c"}, calls); diff != "" {
		t.Errorf("admit calls (-want +got): the batch is retried without b\n%s", diff)
	}
	if diff := cmp.Diff([]string{"CREATE gate/b", "CREATE gate/a"}, undone); diff != "" {
		t.Errorf("undo calls (-want +got):\n%s", diff)
	}
	var got []string
	for range 3 {
		got = append(got, evString(recv(t, ch)))
	}
	want := []string{"1 ADDED namespaces gate", "2 ADDED services gate/a", "3 ADDED services gate/c"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	if st := s.Stats(); st.Commits != 2 || st.Changes != 3 {
		t.Errorf("stats %+v, want 2 commits of 3 changes", st)
	}
}

func TestHugeNameRefused(t *testing.T) {
	s, _ := openTest(t, Options{})
	mustCreate(t, s, Namespaces, namespace("demo"))
	_, err := s.Create(context.Background(), Services, service("demo", strings.Repeat("x", 40000)))
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("create with a 40000-byte name: %v, want ErrInvalid", err)
	}
	mustCreate(t, s, Services, service("demo", "after")) // the writer is fine
}
