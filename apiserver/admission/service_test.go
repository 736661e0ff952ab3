package admission

import (
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/utils/ptr"

	"github.com/svclab/svclab/apiserver/store"
)

func inRange(t *testing.T, what string, v, lo, hi int) {
	t.Helper()
	if v < lo || v > hi {
		t.Errorf("%s = %d, want %d-%d", what, v, lo, hi)
	}
}

// TestServiceTypeChanges walks one Service through every type, the way a
// user edits a manifest and re-applies it, and checks what is held after
// each step.
func TestServiceTypeChanges(t *testing.T) {
	a := newAdmission(t, Config{})
	cur := mustCreate(t, a, svc("web"))
	ip := cur.Spec.ClusterIP
	if diff := cmp.Diff(state{ClusterIPs: map[string]int{ip: 1}, NodePorts: map[int]int{}, LBIPs: map[string]int{}}, snapshot(a)); diff != "" {
		t.Fatalf("after create (-want +got):\n%s", diff)
	}

	// ClusterIP -> NodePort, re-sending the manifest without clusterIP.
	cur = mustUpdate(t, a, cur, svc("web", nodePort))
	if cur.Spec.ClusterIP != ip || cur.Spec.ExternalTrafficPolicy != corev1.ServiceExternalTrafficPolicyCluster {
		t.Fatalf("NodePort: clusterIP %s (want %s kept), externalTrafficPolicy %q", cur.Spec.ClusterIP, ip, cur.Spec.ExternalTrafficPolicy)
	}
	np := int(cur.Spec.Ports[0].NodePort)
	inRange(t, "dynamic nodePort", np, 30086, 32767)

	// Re-applying the same manifest keeps the allocated node port.
	cur = mustUpdate(t, a, cur, svc("web", nodePort))
	if int(cur.Spec.Ports[0].NodePort) != np {
		t.Fatalf("re-apply changed nodePort %d -> %d", np, cur.Spec.Ports[0].NodePort)
	}

	// NodePort -> LoadBalancer with externalTrafficPolicy Local.
	cur = mustUpdate(t, a, cur, svc("web", loadBalancer, func(s *corev1.Service) {
		s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
	}))
	hc := int(cur.Spec.HealthCheckNodePort)
	inRange(t, "healthCheckNodePort", hc, 30086, 32767)
	if int(cur.Spec.Ports[0].NodePort) != np || !ptr.Deref(cur.Spec.AllocateLoadBalancerNodePorts, false) {
		t.Fatalf("LoadBalancer: nodePort %d (want %d), allocateLoadBalancerNodePorts %v", cur.Spec.Ports[0].NodePort, np, cur.Spec.AllocateLoadBalancerNodePorts)
	}
	vip := corev1.LoadBalancerIPModeVIP
	if diff := cmp.Diff(corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{{IP: "172.29.255.1", IPMode: &vip}}}, cur.Status.LoadBalancer); diff != "" {
		t.Fatalf("LoadBalancer status (-want +got):\n%s", diff)
	}
	want := state{ClusterIPs: map[string]int{ip: 1}, NodePorts: map[int]int{np: 1, hc: 1}, LBIPs: map[string]int{"172.29.255.1": 1}}
	if diff := cmp.Diff(want, snapshot(a)); diff != "" {
		t.Fatalf("after LoadBalancer (-want +got):\n%s", diff)
	}

	// Re-applying keeps the ingress IP (status is preserved on updates).
	cur = mustUpdate(t, a, cur, svc("web", loadBalancer, func(s *corev1.Service) {
		s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
	}))
	if cur.Status.LoadBalancer.Ingress[0].IP != "172.29.255.1" || int(cur.Spec.HealthCheckNodePort) != hc {
		t.Fatalf("re-apply: ingress %v, healthCheckNodePort %d (want %d)", cur.Status.LoadBalancer.Ingress, cur.Spec.HealthCheckNodePort, hc)
	}

	// externalTrafficPolicy Local -> Cluster releases the health-check port.
	cur = mustUpdate(t, a, cur, svc("web", loadBalancer))
	if cur.Spec.HealthCheckNodePort != 0 {
		t.Fatalf("healthCheckNodePort %d kept after Local -> Cluster", cur.Spec.HealthCheckNodePort)
	}
	want.NodePorts = map[int]int{np: 1}
	if diff := cmp.Diff(want, snapshot(a)); diff != "" {
		t.Fatalf("after Local -> Cluster (-want +got):\n%s", diff)
	}

	// LoadBalancer -> ClusterIP, as kubectl edit does (old nodePort still in the object).
	edited := cur.DeepCopy()
	edited.Spec.Type = corev1.ServiceTypeClusterIP
	cur = mustUpdate(t, a, cur, edited)
	if cur.Spec.Ports[0].NodePort != 0 || cur.Spec.ExternalTrafficPolicy != "" || cur.Spec.AllocateLoadBalancerNodePorts != nil ||
		len(cur.Status.LoadBalancer.Ingress) != 0 {
		t.Fatalf("ClusterIP kept LoadBalancer fields: %+v / %+v", cur.Spec, cur.Status)
	}
	if diff := cmp.Diff(state{ClusterIPs: map[string]int{ip: 1}, NodePorts: map[int]int{}, LBIPs: map[string]int{}}, snapshot(a)); diff != "" {
		t.Fatalf("after -> ClusterIP (-want +got):\n%s", diff)
	}

	// ClusterIP -> ExternalName releases the cluster IP.
	cur = mustUpdate(t, a, cur, svc("web", externalName("www.example.com")))
	if cur.Spec.ClusterIP != "" || cur.Spec.ClusterIPs != nil || cur.Spec.IPFamilies != nil || cur.Spec.IPFamilyPolicy != nil {
		t.Fatalf("ExternalName kept IP fields: %+v", cur.Spec)
	}
	if got := snapshot(a); len(got.ClusterIPs) != 0 {
		t.Fatalf("ExternalName: cluster IPs still held: %v", got.ClusterIPs)
	}

	// ExternalName -> NodePort allocates a cluster IP and a node port again.
	cur = mustUpdate(t, a, cur, svc("web", nodePort))
	if cur.Spec.ClusterIP == "" || cur.Spec.Ports[0].NodePort == 0 {
		t.Fatalf("ExternalName -> NodePort: clusterIP %q nodePort %d", cur.Spec.ClusterIP, cur.Spec.Ports[0].NodePort)
	}
	if got := snapshot(a); len(got.ClusterIPs) != 1 || len(got.NodePorts) != 1 {
		t.Fatalf("ExternalName -> NodePort holds %v", got)
	}

	// Delete releases everything.
	if _, err := doDelete(t, a, cur); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(state{ClusterIPs: map[string]int{}, NodePorts: map[int]int{}, LBIPs: map[string]int{}}, snapshot(a)); diff != "" {
		t.Fatalf("after delete (-want +got):\n%s", diff)
	}
}

func TestLoadBalancerWithoutNodePorts(t *testing.T) {
	a := newAdmission(t, Config{})
	got := mustCreate(t, a, svc("web", loadBalancer, func(s *corev1.Service) { s.Spec.AllocateLoadBalancerNodePorts = ptr.To(false) }))
	if got.Spec.Ports[0].NodePort != 0 || len(got.Status.LoadBalancer.Ingress) != 1 {
		t.Fatalf("nodePort %d, ingress %v", got.Spec.Ports[0].NodePort, got.Status.LoadBalancer.Ingress)
	}
	// An explicit request is still honoured.
	got = mustCreate(t, a, svc("web2", loadBalancer, func(s *corev1.Service) {
		s.Spec.AllocateLoadBalancerNodePorts = ptr.To(false)
		s.Spec.Ports[0].NodePort = 31000
	}))
	if diff := cmp.Diff(map[int]int{31000: 1}, snapshot(a).NodePorts); diff != "" {
		t.Fatalf("node ports (-want +got):\n%s", diff)
	}
}

// TestSharedNodePort: a TCP and a UDP port of the same service port share one
// node port, allocated once and released once.
func TestSharedNodePort(t *testing.T) {
	a := newAdmission(t, Config{})
	dns := mustCreate(t, a, svc("dns", nodePort, func(s *corev1.Service) {
		s.Spec.Ports = []corev1.ServicePort{{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP}, {Name: "dns-tcp", Port: 53, Protocol: corev1.ProtocolTCP}}
	}))
	if dns.Spec.Ports[0].NodePort == 0 || dns.Spec.Ports[0].NodePort != dns.Spec.Ports[1].NodePort {
		t.Fatalf("node ports %d/%d, want one shared", dns.Spec.Ports[0].NodePort, dns.Spec.Ports[1].NodePort)
	}
	if diff := cmp.Diff(map[int]int{int(dns.Spec.Ports[0].NodePort): 1}, snapshot(a).NodePorts); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
	other := mustCreate(t, a, svc("other", nodePort))
	if _, err := doDelete(t, a, dns); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[int]int{int(other.Spec.Ports[0].NodePort): 1}, snapshot(a).NodePorts); diff != "" {
		t.Fatalf("after delete (-want +got):\n%s", diff)
	}
}

// TestUndo checks that the undo of every kind of admission restores the
// allocators exactly.
func TestUndo(t *testing.T) {
	setup := func(t *testing.T) (*Admission, *corev1.Service) {
		a := seeded(t)
		lb := mustCreate(t, a, svc("lb", loadBalancer, func(s *corev1.Service) { s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal }))
		return a, lb
	}
	tests := []struct {
		name string
		run  func(t *testing.T, a *Admission, lb *corev1.Service) (func(), error)
	}{
		{name: "create LoadBalancer", run: func(t *testing.T, a *Admission, _ *corev1.Service) (func(), error) {
			_, undo, err := doCreate(t, a, svc("web", loadBalancer, func(s *corev1.Service) { s.Spec.ClusterIP = "10.96.3.3"; s.Spec.Ports[0].NodePort = 31111 }))
			return undo, err
		}},
		{name: "LoadBalancer -> ClusterIP", run: func(t *testing.T, a *Admission, lb *corev1.Service) (func(), error) {
			_, undo, err := doUpdate(t, a, lb, svc("lb"))
			return undo, err
		}},
		{name: "LoadBalancer -> ExternalName", run: func(t *testing.T, a *Admission, lb *corev1.Service) (func(), error) {
			_, undo, err := doUpdate(t, a, lb, svc("lb", externalName("example.com")))
			return undo, err
		}},
		{name: "change node port and loadBalancerIP", run: func(t *testing.T, a *Admission, lb *corev1.Service) (func(), error) {
			edited := lb.DeepCopy()
			edited.Spec.Ports[0].NodePort = 32000
			edited.Spec.LoadBalancerIP = "172.29.255.77"
			_, undo, err := doUpdate(t, a, lb, edited)
			return undo, err
		}},
		{name: "status update", run: func(t *testing.T, a *Admission, lb *corev1.Service) (func(), error) {
			st := lb.Status.DeepCopy()
			st.LoadBalancer.Ingress[0].IP = "172.29.255.99"
			_, undo, err := doStatusUpdate(t, a, lb, *st)
			return undo, err
		}},
		{name: "delete", run: func(t *testing.T, a *Admission, lb *corev1.Service) (func(), error) {
			return doDelete(t, a, lb)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, lb := setup(t)
			before := snapshot(a)
			undo, err := tt.run(t, a, lb)
			if err != nil {
				t.Fatal(err)
			}
			if cmp.Equal(before, snapshot(a)) {
				t.Fatal("admission changed nothing; the test proves nothing")
			}
			if undo == nil {
				t.Fatal("no undo returned")
			}
			undo()
			if diff := cmp.Diff(before, snapshot(a)); diff != "" {
				t.Fatalf("undo did not restore the allocators (-before +after):\n%s", diff)
			}
		})
	}
}

// TestUndoOrder: write 1 deletes a Service (releasing node port 30080),
// write 2 creates one that takes 30080. Undoing them in either order
// restores the original state.
func TestUndoOrder(t *testing.T) {
	for _, reverse := range []bool{true, false} {
		t.Run(fmt.Sprintf("reverse=%v", reverse), func(t *testing.T) {
			a := seeded(t)
			myapp := mustUpdate(t, a, loadExamples(t, "03-myapp-nodeport.yaml")[0].(*corev1.Service), loadExamples(t, "03-myapp-nodeport.yaml")[0].(*corev1.Service))
			before := snapshot(a)
			undo1, err := doDelete(t, a, myapp)
			if err != nil {
				t.Fatal(err)
			}
			_, undo2, err := doCreate(t, a, svc("web", nodePort, func(s *corev1.Service) { s.Spec.Ports[0].NodePort = 30080 }))
			if err != nil {
				t.Fatalf("create taking the released 30080: %v", err)
			}
			if reverse {
				undo2()
				undo1()
			} else {
				undo1()
				undo2()
			}
			if diff := cmp.Diff(before, snapshot(a)); diff != "" {
				t.Fatalf("(-before +after):\n%s", diff)
			}
		})
	}
}

// TestReservedAndExhausted uses a /28 service CIDR: 14 addresses, .1 and
// .10 reserved, so 12 random allocations succeed, the 13th is kube's 500,
// and the reserved addresses can still be requested explicitly.
func TestReservedAndExhausted(t *testing.T) {
	a := newAdmission(t, Config{ServiceCIDR: netip.MustParsePrefix("10.96.0.0/28")})
	if diff := cmp.Diff([]netip.Addr{netip.MustParseAddr("10.96.0.1"), netip.MustParseAddr("10.96.0.10")}, a.Config().ReservedIPs,
		cmp.Comparer(func(x, y netip.Addr) bool { return x == y })); diff != "" {
		t.Fatalf("reserved (-want +got):\n%s", diff)
	}
	seen := map[string]bool{}
	for i := range 12 {
		s := mustCreate(t, a, svc(fmt.Sprintf("s%d", i)))
		if ip := s.Spec.ClusterIP; ip == "10.96.0.1" || ip == "10.96.0.10" || seen[ip] {
			t.Fatalf("random allocation #%d gave %s", i, ip)
		}
		seen[s.Spec.ClusterIP] = true
	}
	before := snapshot(a)
	_, _, err := doCreate(t, a, svc("full", nodePort))
	se := statusOf(t, err)
	if se.ErrStatus.Code != http.StatusInternalServerError || se.ErrStatus.Reason != "InternalError" ||
		se.ErrStatus.Message != "Internal error occurred: failed to allocate a serviceIP: range is full" {
		t.Fatalf("exhausted range: %d %s %q", se.ErrStatus.Code, se.ErrStatus.Reason, se.ErrStatus.Message)
	}
	if diff := cmp.Diff(before, snapshot(a)); diff != "" {
		t.Fatalf("failed create leaked (-before +after):\n%s", diff)
	}
	kubeDNS := svc("kube-dns", func(s *corev1.Service) { s.Namespace = "kube-system"; s.Spec.ClusterIP = "10.96.0.10" })
	mustCreate(t, a, kubeDNS)
	mustCreate(t, a, svc("kubernetes", func(s *corev1.Service) { s.Spec.ClusterIP = "10.96.0.1" }))
	_, _, err = doCreate(t, a, svc("impostor", func(s *corev1.Service) { s.Spec.ClusterIP = "10.96.0.10" }))
	if got := causeStrings(statusOf(t, err)); len(got) != 1 || !strings.HasSuffix(got[0], "failed to allocate IP 10.96.0.10: provided IP is already allocated") {
		t.Fatalf("second request of 10.96.0.10: %v", got)
	}
}

// TestDefaultConfigReservesDNS checks the default 10.96.0.0/12: random
// allocation keeps out of the static band 10.96.0.1-10.96.1.0 (so also off
// 10.96.0.1 and 10.96.0.10) while the upper band has room.
func TestDefaultConfigReservesDNS(t *testing.T) {
	a := newAdmission(t, Config{})
	if got := a.Config().ReservedIPs; len(got) != 2 || got[0].String() != "10.96.0.1" || got[1].String() != "10.96.0.10" {
		t.Fatalf("reserved %v", got)
	}
	if !a.services.ips.IsReserved(netip.MustParseAddr("10.96.0.10")) {
		t.Fatal("10.96.0.10 not reserved")
	}
	band := netip.MustParseAddr("10.96.1.0")
	for i := range 200 {
		s := mustCreate(t, a, svc(fmt.Sprintf("s%d", i)))
		if netip.MustParseAddr(s.Spec.ClusterIP).Compare(band) <= 0 {
			t.Fatalf("dynamic clusterIP %s in the static band", s.Spec.ClusterIP)
		}
	}
}

func TestNodePortsExhausted(t *testing.T) {
	a := newAdmission(t, Config{NodePortRange: utilnet.PortRange{Base: 30000, Size: 5}})
	for i := range 5 {
		mustCreate(t, a, svc(fmt.Sprintf("s%d", i), nodePort))
	}
	before := snapshot(a)
	_, _, err := doCreate(t, a, svc("s5", nodePort))
	se := statusOf(t, err)
	if se.ErrStatus.Code != http.StatusInternalServerError || se.ErrStatus.Message != "Internal error occurred: failed to allocate a nodePort: range is full" {
		t.Fatalf("got %d %q", se.ErrStatus.Code, se.ErrStatus.Message)
	}
	if diff := cmp.Diff(before, snapshot(a)); diff != "" {
		t.Fatalf("failed create leaked its cluster IP (-before +after):\n%s", diff)
	}
}

// TestLoadBalancerPool: lowest free pool address first; an exhausted pool
// leaves the Service pending; the next write of it picks up a freed address;
// spec.loadBalancerIP is honoured or refused.
func TestLoadBalancerPool(t *testing.T) {
	a := newAdmission(t, Config{LBPool: netip.MustParsePrefix("172.29.255.0/30")})
	ingress := func(s *corev1.Service) string {
		if len(s.Status.LoadBalancer.Ingress) == 0 {
			return "<pending>"
		}
		return s.Status.LoadBalancer.Ingress[0].IP
	}
	lb1 := mustCreate(t, a, svc("lb1", loadBalancer))
	lb2 := mustCreate(t, a, svc("lb2", loadBalancer))
	lb3 := mustCreate(t, a, svc("lb3", loadBalancer))
	if got := []string{ingress(lb1), ingress(lb2), ingress(lb3)}; !cmp.Equal(got, []string{"172.29.255.1", "172.29.255.2", "<pending>"}) {
		t.Fatalf("ingress IPs %v", got)
	}
	if _, err := doDelete(t, a, lb1); err != nil {
		t.Fatal(err)
	}
	lb3 = mustUpdate(t, a, lb3, lb3)
	if ingress(lb3) != "172.29.255.1" {
		t.Fatalf("pending service got %s after a release", ingress(lb3))
	}
	_, _, err := doCreate(t, a, svc("lb4", loadBalancer, func(s *corev1.Service) { s.Spec.LoadBalancerIP = "172.29.255.2" }))
	if got := causeStrings(statusOf(t, err)); len(got) != 1 || got[0] != `spec.loadBalancerIP|FieldValueInvalid|Invalid value: "172.29.255.2": failed to allocate IP 172.29.255.2: provided IP is already allocated` {
		t.Fatalf("taken loadBalancerIP: %v", got)
	}
}

// TestStatusSubresource: pool IPs follow the ingress list written through
// the status subresource; a taken one, or ingress on a non-LoadBalancer,
// is refused.
func TestStatusSubresource(t *testing.T) {
	a := newAdmission(t, Config{})
	lb := mustCreate(t, a, svc("lb", loadBalancer))
	other := mustCreate(t, a, svc("other", loadBalancer))
	moved, _, err := doStatusUpdate(t, a, lb, corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{
		Ingress: []corev1.LoadBalancerIngress{{IP: "172.29.255.50"}}}})
	if err != nil {
		t.Fatal(err)
	}
	if m := moved.Status.LoadBalancer.Ingress[0].IPMode; m == nil || *m != corev1.LoadBalancerIPModeVIP {
		t.Fatalf("ipMode not defaulted: %v", m)
	}
	if diff := cmp.Diff(map[string]int{"172.29.255.50": 1, "172.29.255.2": 1}, snapshot(a).LBIPs); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
	_, _, err = doStatusUpdate(t, a, moved, *other.Status.DeepCopy())
	if got := causeStrings(statusOf(t, err)); len(got) != 1 || got[0] != `status.loadBalancer.ingress[0].ip|FieldValueInvalid|Invalid value: "172.29.255.2": failed to allocate IP 172.29.255.2: provided IP is already allocated` {
		t.Fatalf("taken ingress IP: %v", got)
	}
	plain := mustCreate(t, a, svc("plain"))
	_, _, err = doStatusUpdate(t, a, plain, *other.Status.DeepCopy())
	if got := causeStrings(statusOf(t, err)); len(got) != 1 || got[0] != "status.loadBalancer.ingress|FieldValueForbidden|Forbidden: may only be used when `spec.type` is 'LoadBalancer'" {
		t.Fatalf("ingress on ClusterIP: %v", got)
	}
}

// TestRebuild restores the allocators from stored objects, including odd
// ones: an out-of-range clusterIP (logged, skipped) and a node port held by
// two Services (held twice, so deleting one keeps it for the other).
func TestRebuild(t *testing.T) {
	a := newAdmission(t, Config{})
	var stored []*corev1.Service
	for _, s := range []*corev1.Service{
		loadExamples(t, "01-redis-clusterip.yaml")[0].(*corev1.Service),
		loadExamples(t, "03-myapp-nodeport.yaml")[0].(*corev1.Service),
		loadExamples(t, "05-testsvc-loadbalancer.yaml")[0].(*corev1.Service),
		svc("lb", loadBalancer, func(s *corev1.Service) { s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal }),
		svc("np", nodePort), svc("headless", func(s *corev1.Service) { s.Spec.ClusterIP = "None" }),
		svc("ext", externalName("example.com")),
	} {
		stored = append(stored, mustCreate(t, a, s))
	}
	want := snapshot(a)

	r := newAdmission(t, Config{})
	mustCreate(t, r, svc("stale")) // state that Rebuild must discard
	objs := make([]store.Object, 0, len(stored))
	for _, s := range stored {
		objs = append(objs, s.DeepCopy())
	}
	if err := r.Admitters()["services"].Rebuild(objs); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, snapshot(r)); diff != "" {
		t.Fatalf("rebuilt allocators differ (-want +got):\n%s", diff)
	}
	_, _, err := doCreate(t, r, svc("dup", func(s *corev1.Service) { s.Spec.ClusterIP = "10.96.0.100" }))
	if err == nil || !strings.Contains(err.Error(), "provided IP is already allocated") {
		t.Fatalf("requesting a rebuilt IP: %v", err)
	}

	// Odd stored state.
	odd1 := svc("odd1", nodePort, func(s *corev1.Service) {
		s.Spec.ClusterIP, s.Spec.ClusterIPs = "192.168.7.7", []string{"192.168.7.7"}
		s.Spec.Ports[0].NodePort = 30500
	})
	odd2 := svc("odd2", nodePort, func(s *corev1.Service) { s.Spec.Ports[0].NodePort = 30500 })
	r2 := newAdmission(t, Config{})
	if err := r2.Admitters()["services"].Rebuild([]store.Object{odd1, odd2}); err != nil {
		t.Fatal(err)
	}
	if got := snapshot(r2); len(got.ClusterIPs) != 0 || got.NodePorts[30500] != 2 {
		t.Fatalf("odd rebuild: %+v", got)
	}
	if _, err := doDelete(t, r2, odd1); err != nil {
		t.Fatal(err)
	}
	if got := snapshot(r2).NodePorts[30500]; got != 1 {
		t.Fatalf("after deleting one of two holders, 30500 has %d holds, want 1", got)
	}
}

// TestConcurrentAdmits: 64 creates at once get distinct IPs and node ports.
func TestConcurrentAdmits(t *testing.T) {
	a := newAdmission(t, Config{})
	const n = 64
	out := make([]*corev1.Service, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			out[i], _, errs[i] = doCreate(t, a, svc(fmt.Sprintf("s%d", i), nodePort))
		})
	}
	wg.Wait()
	ips, ports := map[string]bool{}, map[int32]bool{}
	for i, s := range out {
		if errs[i] != nil {
			t.Fatalf("create %d: %v", i, errs[i])
		}
		if ips[s.Spec.ClusterIP] || ports[s.Spec.Ports[0].NodePort] {
			t.Fatalf("duplicate allocation %s / %d", s.Spec.ClusterIP, s.Spec.Ports[0].NodePort)
		}
		ips[s.Spec.ClusterIP], ports[s.Spec.Ports[0].NodePort] = true, true
	}
	if st := a.Stats(); st.ClusterIPs.Used != n || st.NodePorts.Used != n {
		t.Fatalf("stats %+v", st)
	}
}

func TestNewErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{name: "service CIDR too small", cfg: Config{ServiceCIDR: netip.MustParsePrefix("10.96.0.0/31")},
			want: "service CIDR: CIDR 10.96.0.0/31 is too small: it has no allocatable address"},
		{name: "service CIDR too large", cfg: Config{ServiceCIDR: netip.MustParsePrefix("10.0.0.0/8")},
			want: "service CIDR: CIDR 10.0.0.0/8 is too large; for 32-bit addresses, the mask must be >= 12"},
		{name: "reserved IP outside the range", cfg: Config{ReservedIPs: []netip.Addr{netip.MustParseAddr("10.200.0.10")}},
			want: "reserved IP 10.200.0.10: the provided IP (10.200.0.10) is not in the valid range. The range of valid IPs is 10.96.0.0/12"},
		{name: "reserved network address", cfg: Config{ReservedIPs: []netip.Addr{netip.MustParseAddr("10.96.0.0")}},
			want: "reserved IP 10.96.0.0: the provided IP (10.96.0.0) is not in the valid range. The range of valid IPs is 10.96.0.0/12"},
		{name: "LB pool too small", cfg: Config{LBPool: netip.MustParsePrefix("172.29.255.7/32")},
			want: "LB pool: CIDR 172.29.255.7/32 is too small: it has no allocatable address"},
		{name: "LB pool overlapping", cfg: Config{LBPool: netip.MustParsePrefix("10.100.0.0/24")},
			want: "LB pool 10.100.0.0/24 overlaps the service CIDR 10.96.0.0/12"},
		{name: "node ports beyond 65535", cfg: Config{NodePortRange: utilnet.PortRange{Base: 65000, Size: 1000}},
			want: "node port range: port range 65000-65999 is outside 1-65535"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg, discard)
			if err == nil || err.Error() != tt.want {
				t.Fatalf("New: %v\nwant %s", err, tt.want)
			}
		})
	}
	// A tiny CIDR simply has no tenth address to reserve.
	a := newAdmission(t, Config{ServiceCIDR: netip.MustParsePrefix("10.96.0.0/30")})
	if got := a.Config().ReservedIPs; len(got) != 1 || got[0].String() != "10.96.0.1" {
		t.Fatalf("reserved on a /30: %v", got)
	}
	if st := a.Stats(); st.ClusterIPs.Size != 2 || st.NodePorts.Size != 2768 || st.LBIPs.Size != 254 {
		t.Fatalf("stats %+v", st)
	}
}

func TestPodAndNamespaceRules(t *testing.T) {
	a := newAdmission(t, Config{})
	p := mustCreate(t, a, pod("web-0"))
	p = mustUpdate(t, a, p, pod("web-0", func(p *corev1.Pod) { p.Spec.NodeName = "node-1" })) // the scheduler's bind
	// kubectl edit of the image: allowed. (A fresh manifest with a tagged image
	// would also default imagePullPolicy differently and be refused, as in kube.)
	edited := p.DeepCopy()
	edited.Spec.Containers[0].Image = "svclab/echo:v2"
	p = mustUpdate(t, a, p, edited)
	if p.Spec.NodeName != "node-1" || p.Spec.Containers[0].Image != "svclab/echo:v2" || p.Spec.Containers[0].ImagePullPolicy != corev1.PullAlways {
		t.Fatalf("pod after updates: %+v", p.Spec)
	}

	team := mustCreate(t, a, namespaceNamed("team-a"))
	if team.Labels[corev1.LabelMetadataName] != "team-a" || len(team.Spec.Finalizers) != 1 || team.Spec.Finalizers[0] != corev1.FinalizerKubernetes {
		t.Fatalf("namespace defaults: %+v", team)
	}
	if _, err := doDelete(t, a, team); err != nil {
		t.Fatalf("delete team-a: %v", err)
	}
	for _, name := range []string{"default", "kube-system", "kube-public"} {
		_, err := doDelete(t, a, namespaceNamed(name))
		if !apierrors.IsForbidden(err) || err.Error() != fmt.Sprintf(`namespaces %q is forbidden: this namespace may not be deleted`, name) {
			t.Fatalf("delete %s: %v", name, err)
		}
	}
}

func namespaceNamed(name string) *corev1.Namespace {
	ns := &corev1.Namespace{}
	ns.Name = name
	return ns
}

// TestHeadlessFamilies checks kube's IP family defaults for headless
// Services: with a selector SingleStack; without one RequireDualStack with
// both families, even on a single-stack cluster (as kube-apiserver does).
func TestHeadlessFamilies(t *testing.T) {
	a := newAdmission(t, Config{})
	withSel := mustCreate(t, a, svc("hl", func(s *corev1.Service) { s.Spec.ClusterIP = "None" }))
	noSel := mustCreate(t, a, svc("hl2", func(s *corev1.Service) { s.Spec.ClusterIP = "None"; s.Spec.Selector = nil }))
	type fam struct {
		Policy   corev1.IPFamilyPolicy
		Families []corev1.IPFamily
		IPs      []string
	}
	got := []fam{
		{ptr.Deref(withSel.Spec.IPFamilyPolicy, ""), withSel.Spec.IPFamilies, withSel.Spec.ClusterIPs},
		{ptr.Deref(noSel.Spec.IPFamilyPolicy, ""), noSel.Spec.IPFamilies, noSel.Spec.ClusterIPs},
	}
	want := []fam{
		{corev1.IPFamilyPolicySingleStack, []corev1.IPFamily{corev1.IPv4Protocol}, []string{"None"}},
		{corev1.IPFamilyPolicyRequireDualStack, []corev1.IPFamily{corev1.IPv4Protocol, corev1.IPv6Protocol}, []string{"None"}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
	if st := a.Stats(); st.ClusterIPs.Used != 0 {
		t.Fatalf("headless services hold %d cluster IPs", st.ClusterIPs.Used)
	}
}

// TestIPv6Cluster: an IPv6 service CIDR makes an IPv6 single-stack cluster.
func TestIPv6Cluster(t *testing.T) {
	a := newAdmission(t, Config{ServiceCIDR: netip.MustParsePrefix("fd00:10:96::/108"), LBPool: netip.MustParsePrefix("fd00:29::/120")})
	if got := fmt.Sprint(a.Config().ReservedIPs); got != "[fd00:10:96::1 fd00:10:96::a]" {
		t.Fatalf("reserved %s", got)
	}
	s := mustCreate(t, a, svc("web", loadBalancer))
	ip := netip.MustParseAddr(s.Spec.ClusterIP)
	if !ip.Is6() || !netip.MustParsePrefix("fd00:10:96::/108").Contains(ip) || len(s.Spec.IPFamilies) != 1 || s.Spec.IPFamilies[0] != corev1.IPv6Protocol {
		t.Fatalf("clusterIP %s families %v", ip, s.Spec.IPFamilies)
	}
	if s.Status.LoadBalancer.Ingress[0].IP != "fd00:29::1" {
		t.Fatalf("ingress %v", s.Status.LoadBalancer.Ingress)
	}
	_, _, err := doCreate(t, a, svc("v4", func(s *corev1.Service) { s.Spec.ClusterIP = "10.96.0.5" }))
	if got := causeStrings(statusOf(t, err)); len(got) != 1 || got[0] != `spec.clusterIPs[0]|FieldValueInvalid|Invalid value: ["10.96.0.5"]: IPv4 is not configured on this cluster` {
		t.Fatalf("IPv4 clusterIP on an IPv6 cluster: %v", got)
	}
}
