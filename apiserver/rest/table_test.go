package rest

import (
	"net/http"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/svclab/svclab/apiserver/store"
)

// TestTableCells prints one object of each kind and compares the cells with
// what kube-apiserver's printers show.
func TestTableCells(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	created := metav1.NewTime(now.Add(-90 * time.Second))
	om := func(name string) metav1.ObjectMeta {
		return metav1.ObjectMeta{Name: name, Namespace: "default", CreationTimestamp: created}
	}
	port := func(p int32) *int32 { return &p }
	svc := func(name string, typ corev1.ServiceType, mut func(*corev1.Service)) *corev1.Service {
		s := &corev1.Service{ObjectMeta: om(name), Spec: corev1.ServiceSpec{Type: typ, ClusterIP: "10.96.0.20",
			Selector: map[string]string{"app": name},
			Ports:    []corev1.ServicePort{{Port: 80, Protocol: corev1.ProtocolTCP}}}}
		if mut != nil {
			mut(s)
		}
		return s
	}
	cases := []struct {
		res  *store.Resource
		obj  store.Object
		want []any
	}{
		{store.Namespaces, &corev1.Namespace{ObjectMeta: om("shop"), Status: corev1.NamespaceStatus{Phase: corev1.NamespaceActive}},
			[]any{"shop", "Active", "90s"}},
		{store.Nodes, &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: "node-1", CreationTimestamp: created,
				Labels: map[string]string{"node-role.kubernetes.io/control-plane": "", "kubernetes.io/role": "worker"}},
			Spec: corev1.NodeSpec{Unschedulable: true},
			Status: corev1.NodeStatus{
				Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}},
				Addresses:  []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "172.29.0.2"}},
				NodeInfo:   corev1.NodeSystemInfo{KubeletVersion: "v1.37.2-svclab", OSImage: "svclab", KernelVersion: "6.1"},
			}},
			[]any{"node-1", "Ready,SchedulingDisabled", "control-plane,worker", "90s", "v1.37.2-svclab",
				"172.29.0.2", "<none>", "svclab", "6.1", "<unknown>"}},
		{store.Services, svc("redis", corev1.ServiceTypeClusterIP, nil),
			[]any{"redis", "ClusterIP", "10.96.0.20", "<none>", "80/TCP", "90s", "app=redis"}},
		{store.Services, svc("headless", corev1.ServiceTypeClusterIP, func(s *corev1.Service) {
			s.Spec.ClusterIP = "None"
			s.Spec.Selector = nil
			s.Spec.Ports = nil
		}), []any{"headless", "ClusterIP", "None", "<none>", "<none>", "90s", "<none>"}},
		{store.Services, svc("np", corev1.ServiceTypeNodePort, func(s *corev1.Service) {
			s.Spec.Ports = []corev1.ServicePort{{Port: 80, NodePort: 30080, Protocol: corev1.ProtocolTCP},
				{Port: 53, NodePort: 30053, Protocol: corev1.ProtocolUDP}}
			s.Spec.ExternalIPs = []string{"192.0.2.1"}
		}), []any{"np", "NodePort", "10.96.0.20", "192.0.2.1", "80:30080/TCP,53:30053/UDP", "90s", "app=np"}},
		{store.Services, svc("lb", corev1.ServiceTypeLoadBalancer, nil),
			[]any{"lb", "LoadBalancer", "10.96.0.20", "<pending>", "80/TCP", "90s", "app=lb"}},
		{store.Services, svc("lb2", corev1.ServiceTypeLoadBalancer, func(s *corev1.Service) {
			s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "172.29.255.1"}, {Hostname: "lb.example"}}
		}), []any{"lb2", "LoadBalancer", "10.96.0.20", "172.29.255.1,lb.example", "80/TCP", "90s", "app=lb2"}},
		{store.Services, svc("search", corev1.ServiceTypeExternalName, func(s *corev1.Service) {
			s.Spec.ClusterIP = ""
			s.Spec.ExternalName = "www.example.com"
			s.Spec.Ports = nil
			s.Spec.Selector = nil
		}), []any{"search", "ExternalName", "<none>", "www.example.com", "<none>", "90s", "<none>"}},
		{store.Pods, &corev1.Pod{ObjectMeta: om("web-0"),
			Spec: corev1.PodSpec{NodeName: "node-1", Containers: []corev1.Container{{Name: "a"}, {Name: "b"}}},
			Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.244.1.2", ContainerStatuses: []corev1.ContainerStatus{
				{Name: "a", Ready: true, RestartCount: 1}, {Name: "b", RestartCount: 2}}}},
			[]any{"web-0", "1/2", "Running", "3", "90s", "10.244.1.2", "node-1", "<none>", "<none>"}},
		{store.Endpoints, &corev1.Endpoints{ObjectMeta: om("web"), Subsets: []corev1.EndpointSubset{{
			Addresses: []corev1.EndpointAddress{{IP: "10.244.1.2"}, {IP: "10.244.1.3"}, {IP: "10.244.2.2"}},
			Ports:     []corev1.EndpointPort{{Port: 80}, {Port: 443}},
		}}}, []any{"web", "10.244.1.2:80,10.244.1.2:443,10.244.1.3:80 + 3 more...", "90s"}},
		{store.Endpoints, &corev1.Endpoints{ObjectMeta: om("none")}, []any{"none", "<none>", "90s"}},
		{store.EndpointSlices, &discoveryv1.EndpointSlice{ObjectMeta: om("web-abc"), AddressType: discoveryv1.AddressTypeIPv4,
			Ports:     []discoveryv1.EndpointPort{{Port: port(80)}},
			Endpoints: []discoveryv1.Endpoint{{Addresses: []string{"10.244.1.2"}}, {Addresses: []string{"10.244.1.3"}}}},
			[]any{"web-abc", "IPv4", "80", "10.244.1.2,10.244.1.3", "90s"}},
		{store.EndpointSlices, &discoveryv1.EndpointSlice{ObjectMeta: om("empty"), AddressType: discoveryv1.AddressTypeIPv4},
			[]any{"empty", "IPv4", "<unset>", "<unset>", "90s"}},
	}
	for _, tc := range cases {
		tbl := newTable(tc.res, []store.Object{tc.obj}, 0, "Metadata", now)
		if len(tbl.ColumnDefinitions) != len(tc.want) {
			t.Errorf("%s %s: %d columns for %d cells", tc.res.Kind, tc.obj.GetName(), len(tbl.ColumnDefinitions), len(tc.want))
		}
		if diff := cmp.Diff(tc.want, tbl.Rows[0].Cells); diff != "" {
			t.Errorf("%s %s (-want +got):\n%s", tc.res.Kind, tc.obj.GetName(), diff)
		}
		pom, ok := tbl.Rows[0].Object.Object.(*metav1.PartialObjectMetadata)
		if !ok || pom.Name != tc.obj.GetName() || pom.Kind != "PartialObjectMetadata" {
			t.Errorf("%s: row object %#v", tc.res.Kind, tbl.Rows[0].Object.Object)
		}
	}
}

// TestTableHTTP asks for a Table the way kubectl does, with each includeObject.
func TestTableHTTP(t *testing.T) {
	a := newTestAPI(t, store.Options{}, Options{})
	a.create(t, "default", testService("web", nil))
	accept := "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
	for _, tc := range []struct{ include, wantKind string }{
		{"", "PartialObjectMetadata"}, {"Object", "Service"}, {"None", ""},
	} {
		var tbl struct {
			metav1.TypeMeta `json:",inline"`
			metav1.ListMeta `json:"metadata"`
			Rows            []struct {
				Cells  []any `json:"cells"`
				Object obj   `json:"object"`
			} `json:"rows"`
		}
		a.do("GET", "/api/v1/namespaces/default/services?includeObject="+tc.include, nil, "Accept", accept).
			expect(t, http.StatusOK).into(t, &tbl)
		if tbl.Kind != "Table" || tbl.APIVersion != "meta.k8s.io/v1" || tbl.ResourceVersion == "" || len(tbl.Rows) != 1 {
			t.Fatalf("includeObject=%s: %+v", tc.include, tbl)
		}
		if got := str(tbl.Rows[0].Object, "kind"); got != tc.wantKind {
			t.Errorf("includeObject=%s: row object kind %q, want %q", tc.include, got, tc.wantKind)
		}
	}
	// A single object comes back as a one-row Table too.
	var one metav1.Table
	a.do("GET", "/api/v1/namespaces/default/services/web", nil, "Accept", accept).expect(t, http.StatusOK).into(t, &one)
	if one.Kind != "Table" || len(one.Rows) != 1 {
		t.Errorf("get as Table: %+v", one)
	}
}
