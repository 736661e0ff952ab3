package controllers

import (
	"fmt"
	"slices"
	"sort"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/svclab/svclab/apiserver/store"
)

// sliceView summarizes the stored slices of a Service, sorted.
func sliceView(t testing.TB, st *store.Store, ns, svc string) []sliceSummary {
	t.Helper()
	var out []sliceSummary
	for _, s := range listSlices(t, st, ns, svc) {
		sum := summarize(s)
		sum.Name = "" // random suffix
		sort.Strings(sum.Endpoints)
		out = append(out, sum)
	}
	sort.Slice(out, func(i, j int) bool { return fmt.Sprint(out[i]) < fmt.Sprint(out[j]) })
	return out
}

func TestEndpointSliceLifecycle(t *testing.T) {
	st := openStore(t, storePath(t))
	twoNodes(t, st)
	l := startLab(t, st, Config{}, newFakeRuntime())
	svc := mustCreate(t, st, store.Services, testService("default", "web", "10.96.0.50", map[string]string{"app": "web"},
		svcPort("http", 80, intstr.FromInt32(8080)))).(*corev1.Service)
	l.sync()

	// No pods: one placeholder.
	got := listSlices(t, st, "default", "web")
	if len(got) != 1 || len(got[0].Endpoints) != 0 || got[0].Ports != nil {
		t.Fatalf("slices without pods = %+v, want one placeholder", got)
	}
	placeholder := got[0].Name

	createPod(t, st, "default", "web-0", withLabels("app", "web"), withNode("node-1"))
	createPod(t, st, "default", "web-1", withLabels("app", "web"), withNode("node-2"))
	createPod(t, st, "default", "other", withLabels("app", "other"), withNode("node-1"))
	l.sync()

	got = listSlices(t, st, "default", "web")
	if len(got) != 1 {
		t.Fatalf("got %d slices, want 1", len(got))
	}
	s := got[0]
	if s.Name != placeholder {
		t.Errorf("slice %s replaced the placeholder %s (want it reused in place)", s.Name, placeholder)
	}
	pod0 := getPod(t, st, "default", "web-0")
	pod1 := getPod(t, st, "default", "web-1")
	ready := discoveryv1.EndpointConditions{Ready: ptr.To(true), Serving: ptr.To(true), Terminating: ptr.To(false)}
	wantEndpoints := []discoveryv1.Endpoint{
		{Addresses: []string{"10.244.1.2"}, Conditions: ready, NodeName: ptr.To("node-1"),
			TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: "default", Name: "web-0", UID: pod0.UID}},
		{Addresses: []string{"10.244.2.2"}, Conditions: ready, NodeName: ptr.To("node-2"),
			TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: "default", Name: "web-1", UID: pod1.UID}},
	}
	// Endpoints keep the order in which they were added, which depends on
	// which pod became ready first.
	gotEndpoints := slices.Clone(s.Endpoints)
	sort.Slice(gotEndpoints, func(i, j int) bool { return gotEndpoints[i].TargetRef.Name < gotEndpoints[j].TargetRef.Name })
	if diff := cmp.Diff(wantEndpoints, gotEndpoints); diff != "" {
		t.Errorf("endpoints (-want +got):\n%s", diff)
	}
	wantMeta := struct {
		GenerateName string
		Labels       map[string]string
		Owners       []metav1.OwnerReference
		Ports        []discoveryv1.EndpointPort
		AddressType  discoveryv1.AddressType
	}{
		"web-",
		map[string]string{discoveryv1.LabelServiceName: "web", discoveryv1.LabelManagedBy: EndpointSliceControllerName},
		[]metav1.OwnerReference{{APIVersion: "v1", Kind: "Service", Name: "web", UID: svc.UID, Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true)}},
		[]discoveryv1.EndpointPort{{Name: ptr.To("http"), Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To[int32](8080)}},
		discoveryv1.AddressTypeIPv4,
	}
	gotMeta := wantMeta
	gotMeta.GenerateName, gotMeta.Labels, gotMeta.Owners, gotMeta.Ports, gotMeta.AddressType = s.GenerateName, s.Labels, s.OwnerReferences, s.Ports, s.AddressType
	if diff := cmp.Diff(wantMeta, gotMeta); diff != "" {
		t.Errorf("slice metadata (-want +got):\n%s", diff)
	}
	if s.Annotations[corev1.EndpointsLastChangeTriggerTime] == "" {
		t.Error("no last-change-trigger-time annotation")
	}

	// A change that does not concern endpoints writes nothing.
	rv := s.ResourceVersion
	mustUpdate(t, st, store.Pods, "default", "web-0", "", func(p *corev1.Pod) { p.Annotations = map[string]string{"note": "x"} })
	l.sync()
	if got := listSlices(t, st, "default", "web")[0].ResourceVersion; got != rv {
		t.Errorf("slice rewritten (rv %s → %s) for an irrelevant pod change", rv, got)
	}

	// A pod turns unready: updated in place.
	mustUpdate(t, st, store.Pods, "default", "web-1", "", func(p *corev1.Pod) { p.Annotations = map[string]string{AnnotationReady: "false"} })
	l.sync()
	want := []sliceSummary{{Ports: []string{"http/TCP/8080"}, Endpoints: []string{
		"10.244.1.2 node-1 true/true/false", "10.244.2.2 node-2 false/false/false"}}}
	if diff := cmp.Diff(want, sliceView(t, st, "default", "web")); diff != "" {
		t.Errorf("after unready (-want +got):\n%s", diff)
	}

	// Service deleted: its slices go (kube's garbage collector), and its Endpoints.
	mustDelete(t, st, store.Services, "default", "web")
	l.sync()
	if got := listSlices(t, st, "default", "web"); len(got) != 0 {
		t.Errorf("slices after service deletion: %d", len(got))
	}
	if _, err := st.Get(ctxT(t), store.Endpoints, "default", "web"); err == nil {
		t.Error("Endpoints survived the service")
	}
}

func TestEndpointSliceNamedPorts(t *testing.T) {
	st := openStore(t, storePath(t))
	twoNodes(t, st)
	l := startLab(t, st, Config{}, newFakeRuntime())
	mustCreate(t, st, store.Services, testService("default", "web", "10.96.0.50", map[string]string{"app": "web"},
		svcPort("http", 80, intstr.FromString("http")),
		corev1.ServicePort{Name: "dns", Port: 53, TargetPort: intstr.FromString("dns"), Protocol: corev1.ProtocolUDP}))
	createPod(t, st, "default", "a", withLabels("app", "web"), withNode("node-1"),
		withPorts(tcpPort("http", 8080), corev1.ContainerPort{Name: "dns", ContainerPort: 5353, Protocol: corev1.ProtocolUDP}))
	createPod(t, st, "default", "b", withLabels("app", "web"), withNode("node-1"), withPorts(tcpPort("http", 9090)))
	createPod(t, st, "default", "c", withLabels("app", "web"), withNode("node-1"), withPorts(tcpPort("dns", 53))) // TCP, not UDP
	l.sync()
	// Pod c resolves no port (its "dns" is TCP): kube still lists it, in a
	// slice without ports, which proxies then ignore.
	want := []sliceSummary{
		{Endpoints: []string{"10.244.1.4 node-1 true/true/false"}},
		{Endpoints: []string{"10.244.1.2 node-1 true/true/false"}, Ports: []string{"dns/UDP/5353", "http/TCP/8080"}},
		{Endpoints: []string{"10.244.1.3 node-1 true/true/false"}, Ports: []string{"http/TCP/9090"}},
	}
	if diff := cmp.Diff(want, sliceView(t, st, "default", "web")); diff != "" {
		t.Errorf("slices (-want +got):\n%s", diff)
	}
	ep := getEndpoints(t, st, "default", "web")
	var lines []string
	for _, ss := range ep.Subsets {
		for _, a := range ss.Addresses {
			for _, p := range ss.Ports {
				lines = append(lines, fmt.Sprintf("%s %s/%s/%d", a.IP, p.Name, p.Protocol, p.Port))
			}
		}
	}
	slices.Sort(lines)
	wantLines := []string{"10.244.1.2 dns/UDP/5353", "10.244.1.2 http/TCP/8080", "10.244.1.3 http/TCP/9090"}
	if diff := cmp.Diff(wantLines, lines); diff != "" {
		t.Errorf("Endpoints address/ports (-want +got):\n%s", diff)
	}
}

func TestEndpointSliceScaleUpDown(t *testing.T) {
	st := openStore(t, storePath(t))
	twoNodes(t, st)
	l := startLab(t, st, Config{}, &SimulatedRuntime{})
	mustCreate(t, st, store.Services, testService("default", "web", "10.96.0.50", map[string]string{"app": "web"},
		svcPort("http", 80, intstr.FromInt32(80))))
	createPod(t, st, "default", "p-000", withLabels("app", "web"))
	l.sync()
	first := listSlices(t, st, "default", "web")
	if len(first) != 1 || len(first[0].Endpoints) != 1 {
		t.Fatalf("1 pod: slices %+v", first)
	}
	for i := 1; i < 150; i++ {
		createPod(t, st, "default", fmt.Sprintf("p-%03d", i), withLabels("app", "web"))
	}
	l.sync()
	check := func(wantTotal int, wantSlices int) map[string]bool {
		t.Helper()
		got := listSlices(t, st, "default", "web")
		seen := map[string]bool{}
		names := map[string]bool{}
		for _, s := range got {
			names[s.Name] = true
			if len(s.Endpoints) > 100 {
				t.Errorf("slice %s has %d endpoints, max 100", s.Name, len(s.Endpoints))
			}
			for _, e := range s.Endpoints {
				if seen[e.TargetRef.Name] {
					t.Errorf("pod %s in two slices", e.TargetRef.Name)
				}
				seen[e.TargetRef.Name] = true
			}
		}
		if len(got) != wantSlices || len(seen) != wantTotal {
			t.Errorf("%d slices with %d endpoints, want %d with %d", len(got), len(seen), wantSlices, wantTotal)
		}
		return names
	}
	names := check(150, 2)
	if !names[first[0].Name] {
		t.Errorf("first slice %s was replaced while scaling up", first[0].Name)
	}
	ep := getEndpoints(t, st, "default", "web")
	if len(ep.Subsets) != 1 || len(ep.Subsets[0].Addresses) != 150 {
		t.Errorf("Endpoints subsets = %d, want 1 with 150 addresses", len(ep.Subsets))
	}
	for i := 1; i < 150; i++ {
		mustDelete(t, st, store.Pods, "default", fmt.Sprintf("p-%03d", i))
	}
	l.sync()
	names = check(1, 1)
	if !names[first[0].Name] {
		t.Errorf("first slice %s was replaced while scaling down", first[0].Name)
	}
}

func TestEndpointSliceSelectorChange(t *testing.T) {
	st := openStore(t, storePath(t))
	twoNodes(t, st)
	l := startLab(t, st, Config{}, newFakeRuntime())
	mustCreate(t, st, store.Services, testService("default", "web", "10.96.0.50", map[string]string{"app": "blue"},
		svcPort("http", 80, intstr.FromInt32(80))))
	createPod(t, st, "default", "blue", withLabels("app", "blue"), withNode("node-1"))
	createPod(t, st, "default", "green", withLabels("app", "green"), withNode("node-2"))
	l.sync()
	only := func(want string) {
		t.Helper()
		var got []string
		for _, s := range listSlices(t, st, "default", "web") {
			for _, e := range s.Endpoints {
				got = append(got, e.TargetRef.Name)
			}
		}
		if diff := cmp.Diff([]string{want}, got); diff != "" {
			t.Errorf("endpoints (-want +got):\n%s", diff)
		}
		ep := getEndpoints(t, st, "default", "web")
		if len(ep.Subsets) != 1 || len(ep.Subsets[0].Addresses) != 1 || ep.Subsets[0].Addresses[0].TargetRef.Name != want {
			t.Errorf("Endpoints = %+v, want only %s", ep.Subsets, want)
		}
	}
	only("blue")
	mustUpdate(t, st, store.Services, "default", "web", "", func(s *corev1.Service) { s.Spec.Selector = map[string]string{"app": "green"} })
	l.sync()
	only("green")
	// The pod's labels change instead: it leaves and joins.
	mustUpdate(t, st, store.Pods, "default", "blue", "", func(p *corev1.Pod) { p.Labels["app"] = "green" })
	mustUpdate(t, st, store.Pods, "default", "green", "", func(p *corev1.Pod) { p.Labels["app"] = "blue" })
	l.sync()
	only("blue")
}

func TestEndpointSliceSelectorlessServiceLeftAlone(t *testing.T) {
	st := openStore(t, storePath(t))
	twoNodes(t, st)
	l := startLab(t, st, Config{}, newFakeRuntime())
	mustCreate(t, st, store.Services, testService("default", "ext", "10.96.0.60", nil, svcPort("http", 80, intstr.FromInt32(80))))
	user := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: "default", Name: "ext-1", Labels: map[string]string{discoveryv1.LabelServiceName: "ext"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"192.0.2.10"}}},
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To[int32](80)}},
	}
	created := mustCreate(t, st, store.EndpointSlices, user)
	userEP := mustCreate(t, st, store.Endpoints, &corev1.Endpoints{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "ext"},
		Subsets:    []corev1.EndpointSubset{{Addresses: []corev1.EndpointAddress{{IP: "192.0.2.10"}}, Ports: []corev1.EndpointPort{{Port: 80}}}},
	})
	createPod(t, st, "default", "x", withLabels("app", "web"))
	l.sync()
	var mine []*discoveryv1.EndpointSlice
	for _, s := range listSlices(t, st, "default", "ext") {
		switch {
		case s.Name == "ext-1":
			if s.ResourceVersion != created.GetResourceVersion() {
				t.Errorf("user slice rewritten")
			}
		case s.Labels[discoveryv1.LabelManagedBy] == EndpointSliceControllerName:
			mine = append(mine, s)
		}
	}
	if len(mine) != 0 {
		t.Errorf("endpointslice controller wrote %d slices for a selectorless service", len(mine))
	}
	if ep := getEndpoints(t, st, "default", "ext"); ep.ResourceVersion != userEP.GetResourceVersion() {
		t.Errorf("user Endpoints rewritten")
	}
	// ExternalName Services get nothing either.
	mustCreate(t, st, store.Services, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "search"},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "www.example.com", Selector: map[string]string{"app": "web"}},
	})
	l.sync()
	if got := listSlices(t, st, "default", "search"); len(got) != 0 {
		t.Errorf("ExternalName service got %d slices", len(got))
	}
}

func TestEndpointSliceHostnameSubdomain(t *testing.T) {
	st := openStore(t, storePath(t))
	twoNodes(t, st)
	l := startLab(t, st, Config{}, newFakeRuntime())
	mustCreate(t, st, store.Services, testService("default", "db", corev1.ClusterIPNone, map[string]string{"app": "db"},
		svcPort("pg", 5432, intstr.FromInt32(5432))))
	createPod(t, st, "default", "db-0", withLabels("app", "db"), withNode("node-1"), withHostname("db-0", "db"))
	createPod(t, st, "default", "db-1", withLabels("app", "db"), withNode("node-1"), withHostname("db-1", "elsewhere"))
	l.sync()
	want := []sliceSummary{{Ports: []string{"pg/TCP/5432"}, Endpoints: []string{
		"10.244.1.2 node-1 true/true/false db-0", "10.244.1.3 node-1 true/true/false"}}}
	if diff := cmp.Diff(want, sliceView(t, st, "default", "db")); diff != "" {
		t.Errorf("slices (-want +got):\n%s", diff)
	}
	s := listSlices(t, st, "default", "db")[0]
	if v, ok := s.Labels[corev1.IsHeadlessService]; !ok || v != "" {
		t.Errorf("headless slice labels = %v", s.Labels)
	}
	ep := getEndpoints(t, st, "default", "db")
	if len(ep.Subsets) != 1 || len(ep.Subsets[0].Addresses) != 2 || ep.Subsets[0].Addresses[0].Hostname != "db-0" || ep.Subsets[0].Addresses[1].Hostname != "" {
		t.Errorf("Endpoints hostnames = %+v", ep.Subsets)
	}
	if _, ok := ep.Labels[corev1.IsHeadlessService]; !ok {
		t.Errorf("headless Endpoints labels = %v", ep.Labels)
	}
}

func TestEndpointSliceOrphansCleanedAtStart(t *testing.T) {
	// Slices and Endpoints of a Service deleted while the controllers were
	// down are removed when they start (GC and checkLeftoverEndpoints).
	st := openStore(t, storePath(t))
	twoNodes(t, st)
	svc := mustCreate(t, st, store.Services, testService("default", "gone", "10.96.0.70", map[string]string{"app": "x"}))
	orphan := newEndpointSlice(svc.(*corev1.Service), &endpointMeta{addressType: discoveryv1.AddressTypeIPv4})
	mustCreate(t, st, store.EndpointSlices, orphan)
	mustCreate(t, st, store.Endpoints, &corev1.Endpoints{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "gone"}})
	mustDelete(t, st, store.Services, "default", "gone")
	startLab(t, st, Config{}, newFakeRuntime())
	if got := listSlices(t, st, "default", "gone"); len(got) != 0 {
		t.Errorf("orphan slices left: %d", len(got))
	}
	if _, err := st.Get(ctxT(t), store.Endpoints, "default", "gone"); err == nil {
		t.Error("orphan Endpoints left")
	}
}
