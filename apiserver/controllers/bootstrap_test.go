package controllers

import (
	"net/netip"
	"regexp"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/svclab/svclab/apiserver/store"
)

func bootstrap(t testing.TB, st *store.Store, cfg BootstrapConfig) {
	t.Helper()
	cfg.Logger = testLogger(t)
	if err := Bootstrap(ctxT(t), st, cfg); err != nil {
		t.Fatalf("Bootstrap: %v", err)
	}
}

func objNames(objs []store.Object) []string {
	var out []string
	for _, o := range objs {
		out = append(out, o.GetName())
	}
	return out
}

func list(t testing.TB, st *store.Store, res *store.Resource, ns string) []store.Object {
	t.Helper()
	objs, _, err := st.List(ctxT(t), res, ns, store.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

func TestBootstrapCreatesCluster(t *testing.T) {
	st := openStore(t, storePath(t))
	bootstrap(t, st, BootstrapConfig{})

	if diff := cmp.Diff([]string{"default", "kube-node-lease", "kube-public", "kube-system"}, objNames(list(t, st, store.Namespaces, ""))); diff != "" {
		t.Errorf("namespaces (-want +got):\n%s", diff)
	}
	nodes := list(t, st, store.Nodes, "")
	if diff := cmp.Diff([]string{"node-1", "node-2"}, objNames(nodes)); diff != "" {
		t.Errorf("nodes (-want +got):\n%s", diff)
	}
	n2 := nodes[1].(*corev1.Node)
	if n2.Spec.PodCIDR != "10.244.2.0/24" || !slices.Equal(n2.Spec.PodCIDRs, []string{"10.244.2.0/24"}) {
		t.Errorf("node-2 pod CIDR = %q %v", n2.Spec.PodCIDR, n2.Spec.PodCIDRs)
	}
	wantAddrs := []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "172.29.0.3"}, {Type: corev1.NodeHostName, Address: "node-2"}}
	if diff := cmp.Diff(wantAddrs, n2.Status.Addresses); diff != "" {
		t.Errorf("node-2 addresses (-want +got):\n%s", diff)
	}
	if c := nodeReady(n2); c == nil || c.Status != corev1.ConditionTrue || c.Reason != "KubeletReady" {
		t.Errorf("node-2 Ready = %+v", c)
	}
	if n2.Labels[corev1.LabelHostname] != "node-2" || n2.Labels[corev1.LabelOSStable] != "linux" {
		t.Errorf("node-2 labels = %v", n2.Labels)
	}
	if v := n2.Status.NodeInfo.KubeletVersion; !regexp.MustCompile(`^v1\.\d+\.\d+-svclab$`).MatchString(v) {
		t.Errorf("kubeletVersion = %q", v)
	}

	k := getService(t, st, "default", "kubernetes")
	wantK := corev1.ServiceSpec{
		Type: corev1.ServiceTypeClusterIP, ClusterIP: "10.96.0.1", ClusterIPs: []string{"10.96.0.1"},
		IPFamilies: []corev1.IPFamily{corev1.IPv4Protocol}, IPFamilyPolicy: ptr.To(corev1.IPFamilyPolicySingleStack),
		SessionAffinity: corev1.ServiceAffinityNone, InternalTrafficPolicy: ptr.To(corev1.ServiceInternalTrafficPolicyCluster),
		Ports: []corev1.ServicePort{{Name: "https", Protocol: corev1.ProtocolTCP, Port: 443, TargetPort: intstr.FromInt32(6443)}},
	}
	if diff := cmp.Diff(wantK, k.Spec); diff != "" {
		t.Errorf("kubernetes spec (-want +got):\n%s", diff)
	}
	if _, err := st.Get(ctxT(t), store.EndpointSlices, "default", "kubernetes"); err == nil {
		t.Error("kubernetes EndpointSlice written without an API server address")
	}

	dns := getService(t, st, "kube-system", "kube-dns")
	wantDNS := []corev1.ServicePort{
		{Name: "dns", Protocol: corev1.ProtocolUDP, Port: 53, TargetPort: intstr.FromInt32(53)},
		{Name: "dns-tcp", Protocol: corev1.ProtocolTCP, Port: 53, TargetPort: intstr.FromInt32(53)},
		{Name: "metrics", Protocol: corev1.ProtocolTCP, Port: 9153, TargetPort: intstr.FromInt32(9153)},
	}
	if diff := cmp.Diff(wantDNS, dns.Spec.Ports); diff != "" {
		t.Errorf("kube-dns ports (-want +got):\n%s", diff)
	}
	if dns.Spec.ClusterIP != "10.96.0.10" || dns.Spec.Selector["k8s-app"] != "kube-dns" ||
		dns.Labels["kubernetes.io/name"] != "CoreDNS" || dns.Labels["kubernetes.io/cluster-service"] != "true" {
		t.Errorf("kube-dns = %+v %+v", dns.ObjectMeta, dns.Spec)
	}

	pods := list(t, st, store.Pods, "kube-system")
	if len(pods) != 2 {
		t.Fatalf("coredns pods = %v", objNames(pods))
	}
	shape := regexp.MustCompile(`^coredns-[bcdfghjklmnpqrstvwxz2456789]{1,10}-[bcdfghjklmnpqrstvwxz2456789]{5}$`)
	for _, o := range pods {
		p := o.(*corev1.Pod)
		if !shape.MatchString(p.Name) {
			t.Errorf("coredns pod name %q is not shaped like a Deployment's pod", p.Name)
		}
		if p.Annotations[AnnotationWorkload] != WorkloadDNS || p.Labels["k8s-app"] != "kube-dns" {
			t.Errorf("coredns pod %s: labels %v annotations %v", p.Name, p.Labels, p.Annotations)
		}
		var ports []string
		for _, cp := range p.Spec.Containers[0].Ports {
			ports = append(ports, cp.Name+"/"+string(cp.Protocol))
		}
		if diff := cmp.Diff([]string{"dns/UDP", "dns-tcp/TCP", "metrics/TCP"}, ports); diff != "" {
			t.Errorf("coredns container ports (-want +got):\n%s", diff)
		}
	}
}

func nodeReady(n *corev1.Node) *corev1.NodeCondition {
	for i := range n.Status.Conditions {
		if n.Status.Conditions[i].Type == corev1.NodeReady {
			return &n.Status.Conditions[i]
		}
	}
	return nil
}

func getService(t testing.TB, st *store.Store, ns, name string) *corev1.Service {
	t.Helper()
	o, err := st.Get(ctxT(t), store.Services, ns, name)
	if err != nil {
		t.Fatalf("get service %s/%s: %v", ns, name, err)
	}
	return o.(*corev1.Service)
}

func TestBootstrapIdempotentAcrossRestart(t *testing.T) {
	path := storePath(t)
	st := openStore(t, path)
	bootstrap(t, st, BootstrapConfig{})
	before := map[string]string{} // kind/ns/name → uid
	for _, res := range store.Resources() {
		for _, o := range list(t, st, res, "") {
			before[res.Name+"/"+o.GetNamespace()+"/"+o.GetName()] = string(o.GetUID())
		}
	}
	// A user edit of kube-dns must survive.
	mustUpdate(t, st, store.Services, "kube-system", "kube-dns", "", func(s *corev1.Service) { s.Labels["edited"] = "yes" })
	rv := st.ResourceVersion()
	bootstrap(t, st, BootstrapConfig{})
	if got := st.ResourceVersion(); got != rv {
		t.Errorf("second Bootstrap wrote: resourceVersion %d → %d", rv, got)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	st = openStore(t, path)
	bootstrap(t, st, BootstrapConfig{})
	if got := st.ResourceVersion(); got != rv {
		t.Errorf("Bootstrap after reopen wrote: resourceVersion %d → %d", rv, got)
	}
	after := map[string]string{}
	for _, res := range store.Resources() {
		for _, o := range list(t, st, res, "") {
			after[res.Name+"/"+o.GetNamespace()+"/"+o.GetName()] = string(o.GetUID())
		}
	}
	if diff := cmp.Diff(before, after); diff != "" {
		t.Errorf("objects (kind/ns/name → uid) changed across restart (-before +after):\n%s", diff)
	}
	if getService(t, st, "kube-system", "kube-dns").Labels["edited"] != "yes" {
		t.Error("user edit of kube-dns lost")
	}
}

func TestBootstrapConvergesNodes(t *testing.T) {
	st := openStore(t, storePath(t))
	bootstrap(t, st, BootstrapConfig{Nodes: 3})
	createNode(t, st, "edge-1", "10.245.0.0/24", "172.29.1.1", true) // the user's, not bootstrap's
	createPod(t, st, "default", "on-3", withNode("node-3"))
	createPod(t, st, "default", "on-1", withNode("node-1"))
	createPod(t, st, "default", "on-edge", withNode("edge-1"))
	// node-2 was broken meanwhile (NotReady, a user label, a taint).
	mustUpdate(t, st, store.Nodes, "", "node-2", "", func(n *corev1.Node) {
		n.Labels["zone"] = "a"
		n.Spec.Taints = []corev1.Taint{{Key: "x", Effect: corev1.TaintEffectNoSchedule}}
	})
	mustUpdate(t, st, store.Nodes, "", "node-2", "status", func(n *corev1.Node) {
		n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionFalse}}
	})

	bootstrap(t, st, BootstrapConfig{Nodes: 2})
	if diff := cmp.Diff([]string{"edge-1", "node-1", "node-2"}, objNames(list(t, st, store.Nodes, ""))); diff != "" {
		t.Errorf("nodes (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"on-1", "on-edge"}, objNames(list(t, st, store.Pods, "default"))); diff != "" {
		t.Errorf("pods (-want +got):\n%s", diff)
	}
	o, _ := st.Get(ctxT(t), store.Nodes, "", "node-2")
	n2 := o.(*corev1.Node)
	if c := nodeReady(n2); c == nil || c.Status != corev1.ConditionTrue {
		t.Errorf("node-2 Ready not re-asserted: %+v", c)
	}
	if n2.Labels["zone"] != "a" || len(n2.Spec.Taints) != 1 {
		t.Errorf("user label or taint lost: %v %v", n2.Labels, n2.Spec.Taints)
	}

	// Fewer DNS replicas: the extra CoreDNS pod goes.
	bootstrap(t, st, BootstrapConfig{Nodes: 2, DNSReplicas: 1})
	if got := list(t, st, store.Pods, "kube-system"); len(got) != 1 {
		t.Errorf("coredns pods = %v, want 1", objNames(got))
	}
}

func TestBootstrapAPIServerEndpoints(t *testing.T) {
	st := openStore(t, storePath(t))
	bootstrap(t, st, BootstrapConfig{APIServerAddress: netip.MustParseAddr("172.29.0.1"), APIServerPort: 8443})
	ep := getEndpoints(t, st, "default", "kubernetes")
	wantEP := &corev1.Endpoints{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{discoveryv1.LabelSkipMirror: "true"}},
		Subsets: []corev1.EndpointSubset{{Addresses: []corev1.EndpointAddress{{IP: "172.29.0.1"}},
			Ports: []corev1.EndpointPort{{Name: "https", Port: 8443, Protocol: corev1.ProtocolTCP}}}},
	}
	if diff := cmp.Diff(wantEP.Labels, ep.Labels); diff != "" {
		t.Errorf("Endpoints labels (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(wantEP.Subsets, ep.Subsets); diff != "" {
		t.Errorf("Endpoints subsets (-want +got):\n%s", diff)
	}
	o, err := st.Get(ctxT(t), store.EndpointSlices, "default", "kubernetes")
	if err != nil {
		t.Fatal(err)
	}
	s := o.(*discoveryv1.EndpointSlice)
	if diff := cmp.Diff(map[string]string{discoveryv1.LabelServiceName: "kubernetes"}, s.Labels); diff != "" {
		t.Errorf("slice labels (-want +got):\n%s", diff)
	}
	if len(s.Endpoints) != 1 || s.Endpoints[0].Addresses[0] != "172.29.0.1" || *s.Ports[0].Port != 8443 {
		t.Errorf("slice = %+v", s)
	}
	if got := getService(t, st, "default", "kubernetes").Spec.Ports[0].TargetPort; got != intstr.FromInt32(8443) {
		t.Errorf("kubernetes targetPort = %v, want 8443", got)
	}

	// The controllers leave the apiserver's objects alone.
	l := startLab(t, st, Config{}, newFakeRuntime())
	l.sync()
	if got := getEndpoints(t, st, "default", "kubernetes"); got.ResourceVersion != ep.ResourceVersion {
		t.Error("controllers rewrote the kubernetes Endpoints")
	}
	if got := listSlices(t, st, "default", "kubernetes"); len(got) != 1 || got[0].ResourceVersion != s.ResourceVersion {
		t.Errorf("controllers changed the kubernetes slices: %d", len(got))
	}
	l.stop()

	bootstrap(t, st, BootstrapConfig{})
	if _, err := st.Get(ctxT(t), store.EndpointSlices, "default", "kubernetes"); err == nil {
		t.Error("kubernetes slice kept after the address was unset")
	}
}

func TestManagerBootstrapEndToEnd(t *testing.T) {
	// The whole chain: bootstrap → scheduler → kubelet → endpoints, for kube-dns.
	st := openStore(t, storePath(t))
	rt := &SimulatedRuntime{}
	l := startLab(t, st, Config{Bootstrap: &BootstrapConfig{Logger: testLogger(t)}}, rt)
	l.sync()
	perNode := map[string]int{}
	for _, p := range listPods(t, st, "kube-system") {
		if p.Status.Phase != corev1.PodRunning || !isPodReady(p) {
			t.Errorf("coredns pod %s: phase %s ready %v", p.Name, p.Status.Phase, isPodReady(p))
		}
		perNode[p.Spec.NodeName]++
	}
	if diff := cmp.Diff(map[string]int{"node-1": 1, "node-2": 1}, perNode); diff != "" {
		t.Errorf("coredns pods per node (-want +got):\n%s", diff)
	}
	want := []sliceSummary{{
		Ports: []string{"dns-tcp/TCP/53", "dns/UDP/53", "metrics/TCP/9153"},
		Endpoints: []string{
			"10.244.1.2 node-1 true/true/false",
			"10.244.2.2 node-2 true/true/false",
		},
	}}
	if diff := cmp.Diff(want, sliceView(t, st, "kube-system", "kube-dns")); diff != "" {
		t.Errorf("kube-dns slices (-want +got):\n%s", diff)
	}
	if got := len(rt.Sandboxes()); got != 2 {
		t.Errorf("simulated sandboxes = %d, want 2", got)
	}
}
