package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/svclab/svclab/netlab"
)

// echoPort is the container port of the tests' backends.
const echoPort = 8080

// programmedEndpoints returns, per endpoint "IP:port", whether a KUBE-SVC/KUBE-SVL rule of the
// service port (comment "ns/name[:port] -> IP:port") jumps to it in an iptables-save dump.
func programmedEndpoints(save, svcPortName string) []string {
	re := regexp.MustCompile(`--comment "` + regexp.QuoteMeta(svcPortName) + ` -> ([^"]+)"`)
	seen := map[string]bool{}
	for _, line := range strings.Split(save, "\n") {
		if !strings.HasPrefix(line, "-A KUBE-SVC-") && !strings.HasPrefix(line, "-A KUBE-SVL-") {
			continue
		}
		if m := re.FindStringSubmatch(line); m != nil {
			seen[m[1]] = true
		}
	}
	var out []string
	for ep := range seen {
		out = append(out, ep)
	}
	slices.Sort(out)
	return out
}

// waitProgrammed waits until every listed node (all when none) jumps to exactly these endpoints
// for the service port.
func (l *lab) waitProgrammed(tb testing.TB, svcPortName string, endpoints []string, nodes ...string) {
	tb.Helper()
	want := slices.Sorted(slices.Values(endpoints))
	if len(nodes) == 0 {
		for _, n := range l.nodes(tb) {
			nodes = append(nodes, n.name)
		}
	}
	for _, node := range nodes {
		eventually(tb, 30*time.Second, fmt.Sprintf("%s programmed on %s", svcPortName, node), func() (bool, string) {
			got := programmedEndpoints(l.iptablesSave(tb, node), svcPortName)
			return slices.Equal(got, want), fmt.Sprintf("endpoints %v, want %v", got, want)
		})
	}
}

// endpointsOf are the "IP:port" strings of pods on port.
func endpointsOf(pods []*corev1.Pod, port int32) []string {
	var out []string
	for _, p := range pods {
		out = append(out, hostPort(p.Status.PodIP, port))
	}
	return out
}

// labelsFor is the label set the tests' Services select.
func labelsFor(name string) map[string]string { return map[string]string{"e2e": name} }

// backendsOn creates one echo pod per node entry (pinned there; "" lets the scheduler choose),
// labelled for name, serving echoPort over TCP.
func backendsOn(name string, nodes ...string) []*corev1.Pod {
	var pods []*corev1.Pod
	for i, n := range nodes {
		pods = append(pods, echoPod(fmt.Sprintf("%s-%d", name, i), n, labelsFor(name), tcpPort(echoPort)))
	}
	return pods
}

// clientPod is a pod to send from, pinned to node.
func clientPod(name, node string) *corev1.Pod {
	return echoPod(name, node, map[string]string{"e2e-client": name}, tcpPort(echoPort))
}

// echoVia connects from the namespace at nsPath to addr until the echo answers (rules may still
// be in flight), and returns the first answer.
func echoVia(tb testing.TB, nsPath, addr string) netlab.EchoReply {
	tb.Helper()
	var rep netlab.EchoReply
	eventually(tb, 20*time.Second, "echo answers at "+addr, func() (bool, string) {
		var err error
		rep, err = echoTCP(nsPath, addr, 2*time.Second)
		return err == nil, fmt.Sprint(err)
	})
	return rep
}

// checkClusterIPPath sends from a client pod on clientNode to a Service whose only backend is on
// backendNode and checks who answered and which client address it saw (the client pod's own:
// pod-to-Service traffic is not masqueraded).
func checkClusterIPPath(t *testing.T, clientNode, backendNode string) {
	l := demoLab(t)
	name := uniq("cip")
	pods := l.createPods(t, clientPod(name+"-client", clientNode), backendsOn(name, backendNode)[0])
	client, backend := pods[0], pods[1]
	svc := l.createService(t, clusterIPService(name, labelsFor(name), 80, echoPort))
	l.waitProgrammed(t, "default/"+name, endpointsOf(pods[1:], echoPort), clientNode)

	got := echoVia(t, l.podNetnsPath("default", client.Name), hostPort(svc.Spec.ClusterIP, 80))
	want := netlab.EchoReply{
		Pod: backend.Name, Namespace: "default", Node: backendNode, Hostname: backend.Name,
		IP: backend.Status.PodIP, Port: echoPort, Protocol: "TCP", Client: got.Client,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("echo via %s:80 (-want +got):\n%s", svc.Spec.ClusterIP, diff)
	}
	if ip := clientIP(got); ip != client.Status.PodIP {
		t.Errorf("the backend saw client %s, want the client pod's own IP %s (no SNAT for pod traffic)", got.Client, client.Status.PodIP)
	}
}

func TestClusterIPSameNode(t *testing.T) { checkClusterIPPath(t, "node-1", "node-1") }

func TestClusterIPOtherNode(t *testing.T) { checkClusterIPPath(t, "node-1", "node-2") }

// TestClusterIPHairpin: a pod that reaches itself through its own Service gets the answer from
// itself, and sees the node's cni0 address as the client: its KUBE-SEP's `-s podIP -j
// KUBE-MARK-MASQ` marks the packet and KUBE-POSTROUTING masquerades it to the bridge's IP, so the
// reply comes back through the bridge instead of short-cutting inside the pod.
func TestClusterIPHairpin(t *testing.T) {
	l := demoLab(t)
	name := uniq("hairpin")
	pod := l.createPod(t, backendsOn(name, "node-2")[0])
	svc := l.createService(t, clusterIPService(name, labelsFor(name), 80, echoPort))
	l.waitProgrammed(t, "default/"+name, endpointsOf([]*corev1.Pod{pod}, echoPort), "node-2")

	got := echoVia(t, l.podNetnsPath("default", pod.Name), hostPort(svc.Spec.ClusterIP, 80))
	if got.Pod != pod.Name || got.IP != pod.Status.PodIP {
		t.Errorf("answered by %s (%s), want the pod itself %s (%s)", got.Pod, got.IP, pod.Name, pod.Status.PodIP)
	}
	if gw := l.node(t, "node-2").gateway; clientIP(got) != gw {
		t.Errorf("the pod saw client %s, want node-2's cni0 gateway %s (hairpin masquerade)", got.Client, gw)
	}
}

// TestClusterIPLoadBalancesEvenly: three backends, 3,000 new connections from one pod: each
// backend gets a third of them within ±15%.
func TestClusterIPLoadBalancesEvenly(t *testing.T) {
	l := demoLab(t)
	name := uniq("spread")
	pods := l.createPods(t, append([]*corev1.Pod{clientPod(name+"-client", "node-1")}, backendsOn(name, "node-1", "node-2", "node-3")...)...)
	client, backends := pods[0], pods[1:]
	svc := l.createService(t, clusterIPService(name, labelsFor(name), 80, echoPort))
	l.waitProgrammed(t, "default/"+name, endpointsOf(backends, echoPort), "node-1")

	const conns = 3000
	counts, errs := fanOut(l.podNetnsPath("default", client.Name), hostPort(svc.Spec.ClusterIP, 80), conns, 16)
	if len(errs) > 0 {
		t.Fatalf("%d of %d connections failed, first: %v", len(errs), conns, errs[0])
	}
	t.Logf("%d connections: %v", conns, counts)
	for _, b := range backends {
		if n := counts[b.Name]; n < conns/3*85/100 || n > conns/3*115/100 {
			t.Errorf("%s got %d connections, want %d ±15%%", b.Name, n, conns/3)
		}
	}
	if len(counts) != len(backends) {
		t.Errorf("answers came from %v, want only the %d backends", counts, len(backends))
	}
}

// fanOut makes n connections from nsPath to addr with the given parallelism and counts the
// answering pods.
func fanOut(nsPath, addr string, n, workers int) (map[string]int, []error) {
	type result struct {
		pod string
		err error
	}
	jobs := make(chan struct{})
	results := make(chan result)
	for range workers {
		go func() {
			for range jobs {
				rep, err := echoTCP(nsPath, addr, 5*time.Second)
				results <- result{rep.Pod, err}
			}
		}()
	}
	go func() {
		for range n {
			jobs <- struct{}{}
		}
		close(jobs)
	}()
	counts := map[string]int{}
	var errs []error
	for range n {
		r := <-results
		if r.err != nil {
			errs = append(errs, r.err)
			continue
		}
		counts[r.pod]++
	}
	return counts, errs
}

// nodePortService is a NodePort Service on port 80 selecting name's backends.
func nodePortService(name string, etp corev1.ServiceExternalTrafficPolicy) *corev1.Service {
	svc := clusterIPService(name, labelsFor(name), 80, echoPort)
	svc.Spec.Type = corev1.ServiceTypeNodePort
	svc.Spec.ExternalTrafficPolicy = etp
	return svc
}

// TestNodePortFromHost: the host reaches a NodePort through every node's IP, also through nodes
// without a backend; the backend sees the node as the client (SNAT): the hit node's underlay IP
// when the backend is elsewhere, its cni0 address when the backend is on that node.
func TestNodePortFromHost(t *testing.T) {
	l := demoLab(t)
	name := uniq("np")
	backend := l.createPod(t, backendsOn(name, "node-1")[0])
	svc := l.createService(t, nodePortService(name, corev1.ServiceExternalTrafficPolicyCluster))
	np := svc.Spec.Ports[0].NodePort
	l.waitProgrammed(t, "default/"+name, endpointsOf([]*corev1.Pod{backend}, echoPort))

	for _, n := range l.nodes(t) {
		t.Run(n.name, func(t *testing.T) {
			got := echoVia(t, l.hostPath, hostPort(n.ip, np))
			if got.Pod != backend.Name {
				t.Errorf("answered by %s, want %s", got.Pod, backend.Name)
			}
			want := n.ip
			if n.name == backend.Spec.NodeName {
				want = n.gateway
			}
			if clientIP(got) != want {
				t.Errorf("backend saw client %s, want %s (%s SNATs external traffic)", got.Client, want, n.name)
			}
		})
	}
}

// probeDropped connects from nsPath to addr until an attempt times out (dropped by a rule) rather
// than being refused (no rule yet), then checks that a few more attempts time out too.
func probeDropped(tb testing.TB, nsPath, addr string) {
	tb.Helper()
	eventually(tb, 20*time.Second, addr+" drops", func() (bool, string) {
		_, err := echoTCP(nsPath, addr, 500*time.Millisecond)
		return isTimeout(err), fmt.Sprintf("got %v, want a timeout", err)
	})
	for range 3 {
		if rep, err := echoTCP(nsPath, addr, 500*time.Millisecond); !isTimeout(err) {
			tb.Errorf("connect to %s: got %+v, %v; want a timeout (dropped)", addr, rep, err)
		}
	}
}

// TestNodePortExternalTrafficPolicyLocal: with externalTrafficPolicy Local the backend sees the
// host's own address, and nodes without a local backend drop the connection (a timeout, not a
// refusal).
func TestNodePortExternalTrafficPolicyLocal(t *testing.T) {
	l := demoLab(t)
	name := uniq("nplocal")
	backend := l.createPod(t, backendsOn(name, "node-1")[0])
	svc := l.createService(t, nodePortService(name, corev1.ServiceExternalTrafficPolicyLocal))
	np := svc.Spec.Ports[0].NodePort

	for _, n := range l.nodes(t) {
		t.Run(n.name, func(t *testing.T) {
			addr := hostPort(n.ip, np)
			if n.name != backend.Spec.NodeName {
				probeDropped(t, l.hostPath, addr)
				return
			}
			got := echoVia(t, l.hostPath, addr)
			if got.Pod != backend.Name || clientIP(got) != hostIP {
				t.Errorf("answered by %s seeing client %s, want %s seeing the host %s", got.Pod, got.Client, backend.Name, hostIP)
			}
		})
	}
}

// TestLoadBalancer: the host reaches a LoadBalancer VIP; loadBalancerSourceRanges that exclude
// the host drop it; ranges that include the host's underlay let it through again.
func TestLoadBalancer(t *testing.T) {
	l := demoLab(t)
	name := uniq("lb")
	backend := l.createPod(t, backendsOn(name, "node-2")[0])
	svc := clusterIPService(name, labelsFor(name), 80, echoPort)
	svc.Spec.Type = corev1.ServiceTypeLoadBalancer
	l.createService(t, svc)
	var vip string
	eventually(t, 10*time.Second, "load balancer ingress IP", func() (bool, string) {
		s := l.getService(t, "default", name)
		if len(s.Status.LoadBalancer.Ingress) == 0 || s.Status.LoadBalancer.Ingress[0].IP == "" {
			return false, fmt.Sprintf("status %+v", s.Status)
		}
		vip = s.Status.LoadBalancer.Ingress[0].IP
		return true, ""
	})
	addr := hostPort(vip, 80)
	works := func(t *testing.T) {
		got := echoVia(t, l.hostPath, addr)
		for range 5 { // the host spreads VIP flows over the nodes (ECMP): try a few
			if got.Pod != backend.Name {
				t.Fatalf("answered by %s, want %s", got.Pod, backend.Name)
			}
			var err error
			if got, err = echoTCP(l.hostPath, addr, 2*time.Second); err != nil {
				t.Fatalf("connect to %s: %v", addr, err)
			}
		}
	}
	t.Run("no source ranges", works)
	t.Run("ranges exclude the host", func(t *testing.T) {
		l.patchService(t, "default", name, map[string]any{"spec": map[string]any{"loadBalancerSourceRanges": []string{"192.0.2.0/24"}}})
		probeDropped(t, l.hostPath, addr)
	})
	t.Run("ranges include the host", func(t *testing.T) {
		l.patchService(t, "default", name, map[string]any{"spec": map[string]any{"loadBalancerSourceRanges": []string{"172.29.0.0/16"}}})
		works(t)
	})
}

// TestSessionAffinityClientIP: with sessionAffinity ClientIP, 50 connections from one client all
// reach the same one of three backends.
func TestSessionAffinityClientIP(t *testing.T) {
	l := demoLab(t)
	name := uniq("affinity")
	pods := l.createPods(t, append([]*corev1.Pod{clientPod(name+"-client", "node-3")}, backendsOn(name, "node-1", "node-2", "node-3")...)...)
	// The way a user would write it, through the apply endpoint.
	res := l.apply(t, fmt.Sprintf(`apiVersion: v1
kind: Service
metadata:
  name: %s
  namespace: default
spec:
  selector: {e2e: %s}
  sessionAffinity: ClientIP
  ports:
  - port: 80
    targetPort: %d
`, name, name, echoPort))
	if len(res) != 1 || res[0].Action != "created" {
		t.Fatalf("apply: %+v, want one Service created", res)
	}
	svc := l.getService(t, "default", name)
	if svc.Spec.SessionAffinityConfig == nil || svc.Spec.SessionAffinityConfig.ClientIP == nil ||
		svc.Spec.SessionAffinityConfig.ClientIP.TimeoutSeconds == nil || *svc.Spec.SessionAffinityConfig.ClientIP.TimeoutSeconds != 10800 {
		t.Errorf("sessionAffinityConfig %+v, want kube's default timeout 10800 s", svc.Spec.SessionAffinityConfig)
	}
	l.waitProgrammed(t, "default/"+name, endpointsOf(pods[1:], echoPort), "node-3")

	counts, errs := fanOut(l.podNetnsPath("default", pods[0].Name), hostPort(svc.Spec.ClusterIP, 80), 50, 1)
	if len(errs) > 0 {
		t.Fatalf("%d connections failed, first: %v", len(errs), errs[0])
	}
	if len(counts) != 1 {
		t.Errorf("50 connections from one client reached %v, want a single backend", counts)
	}
}

// TestNoEndpointsRejectsThenFlows: a Service without endpoints refuses connections at once
// (REJECT, ECONNREFUSED), not a timeout; when a matching pod appears, traffic flows. The time from
// the pod's creation to the first answer is logged.
func TestNoEndpointsRejectsThenFlows(t *testing.T) {
	l := demoLab(t)
	name := uniq("noeps")
	client := l.createPod(t, clientPod(name+"-client", "node-2"))
	svc := l.createService(t, clusterIPService(name, labelsFor(name), 80, echoPort))
	addr := hostPort(svc.Spec.ClusterIP, 80)
	from := l.podNetnsPath("default", client.Name)
	eventually(t, 30*time.Second, "the no-endpoints REJECT rule on node-2", func() (bool, string) {
		return strings.Contains(l.iptablesSave(t, "node-2"), `"default/`+name+` has no endpoints"`), ""
	})
	_, err := echoTCP(from, addr, 3*time.Second)
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("connect to a Service without endpoints: %v, want connection refused", err)
	}

	start := time.Now()
	backend := backendsOn(name, "node-1")[0]
	l.call(t, http.MethodPost, podPath("default", ""), "application/json", backend, nil, http.StatusCreated)
	// Note when the API first shows the pod Ready, to split the figure into the node side (pod
	// network and workload up) and the endpoint → rules → packets part the 100 ms
	// target is about.
	readyAt := make(chan time.Time, 1)
	go func() {
		for time.Since(start) < 60*time.Second {
			var p corev1.Pod // not l.getPod: no t.Fatal outside the test's goroutine
			if l.callErr(http.MethodGet, podPath("default", backend.Name), "", nil, &p, http.StatusOK) == nil && podReady(&p) {
				readyAt <- time.Now()
				return
			}
			time.Sleep(2 * time.Millisecond)
		}
		readyAt <- time.Time{}
	}()
	// Probe with 20 ms connect timeouts: the node answers rejected SYNs with ICMP port
	// unreachable, which the kernel rate-limits per client (a burst of 6, then one a second),
	// so after a few refusals a rejected attempt looks like a timeout.
	var conn net.Conn
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		conn, err = netlab.DialInNetns(ctx, from, "tcp", addr)
		cancel()
		if err == nil {
			break
		}
		if time.Since(start) > 60*time.Second {
			t.Fatalf("no connection 60s after the pod was created; last: %v", err)
		}
		time.Sleep(2 * time.Millisecond)
	}
	flowing := time.Now()
	conn.Close()
	rep := echoVia(t, from, addr)
	ready := <-readyAt
	t.Logf("pod create → first connection through the Service: %v (answered by %s); pod create → Ready in the API: %v; Ready → first connection: %v",
		flowing.Sub(start).Round(time.Millisecond), rep.Pod, ready.Sub(start).Round(time.Millisecond), flowing.Sub(ready).Round(time.Millisecond))
}

// TestNoChainsForExternalNameAndHeadless: kube-proxy writes nothing for ExternalName and headless
// Services: the demo's default/search and default/myapp-nohead appear in no node's rules, while
// default/redis does.
func TestNoChainsForExternalNameAndHeadless(t *testing.T) {
	l := demoLab(t)
	for _, n := range l.nodes(t) {
		save := l.iptablesSave(t, n.name)
		if !strings.Contains(save, `"default/redis cluster IP"`) {
			t.Fatalf("%s has no rules for default/redis; the check below would prove nothing", n.name)
		}
		for _, line := range strings.Split(save, "\n") {
			if strings.Contains(line, "default/search") || strings.Contains(line, "default/myapp-nohead") {
				t.Errorf("%s: rule for an ExternalName or headless Service: %s", n.name, line)
			}
		}
	}
}

// chainRules returns the rules of chain in an iptables-save dump, in order, with the "-A CHAIN "
// prefix cut off.
func chainRules(save, chain string) []string {
	var out []string
	for _, line := range strings.Split(save, "\n") {
		if r, ok := strings.CutPrefix(line, "-A "+chain+" "); ok {
			out = append(out, r)
		}
	}
	return out
}

// jumpTarget returns the -j target of a rule.
func jumpTarget(rule string) string {
	_, t, _ := strings.Cut(rule, " -j ")
	t, _, _ = strings.Cut(t, " ")
	return t
}

// svcChainOf finds the chain KUBE-SERVICES sends a service port's cluster IP to.
func svcChainOf(tb testing.TB, save, svcPortName string) string {
	tb.Helper()
	for _, r := range chainRules(save, "KUBE-SERVICES") {
		if strings.Contains(r, `--comment "`+svcPortName+` cluster IP"`) {
			return jumpTarget(r)
		}
	}
	tb.Fatalf("no KUBE-SERVICES rule for %s cluster IP", svcPortName)
	return ""
}

var probabilityRE = regexp.MustCompile(`--probability (\S+)`)

// sepProbabilities lists, in order, the probability of each jump from a KUBE-SVC chain to a
// KUBE-SEP chain ("" for a jump without statistic match).
func sepProbabilities(save, chain string) []string {
	var out []string
	for _, r := range chainRules(save, chain) {
		if !strings.HasPrefix(jumpTarget(r), "KUBE-SEP-") {
			continue
		}
		p := ""
		if m := probabilityRE.FindStringSubmatch(r); m != nil {
			p = m[1]
		}
		out = append(out, p)
	}
	return out
}

// savedProbabilities are the probabilities iptables-save shows for a KUBE-SVC chain with n
// endpoints. kube-proxy writes 1/(n-i) as %0.10f (0.1428571428, 0.1666666667, …); the kernel's
// statistic match keeps round(p·2³¹) and iptables-save prints that back as %.11f, so a node
// shows 0.14285714272, 0.16666666651, 0.20000000019, 0.25000000000, 0.33333333349,
// 0.50000000000 and "" for the last jump — what `iptables-save` prints on a real kube node.
func savedProbabilities(n int) []string {
	var out []string
	for i := range n - 1 {
		written, err := strconv.ParseFloat(fmt.Sprintf("%0.10f", 1/float64(n-i)), 64)
		if err != nil {
			panic(err)
		}
		out = append(out, fmt.Sprintf("%.11f", math.Round(written*(1<<31))/(1<<31)))
	}
	return append(out, "")
}

func TestSavedProbabilities(t *testing.T) {
	// The figures read off a node running kube-proxy with seven endpoints.
	want := []string{"0.14285714272", "0.16666666651", "0.20000000019", "0.25000000000", "0.33333333349", "0.50000000000", ""}
	if diff := cmp.Diff(want, savedProbabilities(7)); diff != "" {
		t.Errorf("savedProbabilities(7) (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"0.50000000000", ""}, savedProbabilities(2)); diff != "" {
		t.Errorf("savedProbabilities(2) (-want +got):\n%s", diff)
	}
}

// TestScaleProbabilities scales a Service's pods 1→7→2: the KUBE-SVC chain shows the
// probabilities 1/7…1/2 and a last jump without one, then 1/2 only; traffic follows (all seven,
// then only the two remaining backends answer).
func TestScaleProbabilities(t *testing.T) {
	l := demoLab(t)
	name := uniq("scale")
	spn := "default/" + name
	nodes := []string{"node-1", "node-2", "node-3", "node-1", "node-2", "node-3", "node-1"}
	all := backendsOn(name, nodes...)
	pods := l.createPods(t, clientPod(name+"-client", "node-1"), all[0])
	client, first := pods[0], pods[1]
	svc := l.createService(t, clusterIPService(name, labelsFor(name), 80, echoPort))
	from, addr := l.podNetnsPath("default", client.Name), hostPort(svc.Spec.ClusterIP, 80)
	l.waitProgrammed(t, spn, endpointsOf([]*corev1.Pod{first}, echoPort), "node-1")
	if got := sepProbabilities(l.iptablesSave(t, "node-1"), svcChainOf(t, l.iptablesSave(t, "node-1"), spn)); !slices.Equal(got, []string{""}) {
		t.Errorf("one endpoint: probabilities %q, want one jump without a statistic match", got)
	}

	seven := append([]*corev1.Pod{first}, l.createPods(t, all[1:]...)...)
	l.waitProgrammed(t, spn, endpointsOf(seven, echoPort))
	for _, n := range l.nodes(t) {
		save := l.iptablesSave(t, n.name)
		if diff := cmp.Diff(savedProbabilities(7), sepProbabilities(save, svcChainOf(t, save, spn))); diff != "" {
			t.Errorf("%s: seven endpoints, probabilities (-want +got):\n%s", n.name, diff)
		}
	}
	seen := map[string]bool{}
	for i := 0; len(seen) < 7 && i < 700; i++ {
		rep, err := echoTCP(from, addr, 2*time.Second)
		if err != nil {
			t.Fatalf("connect %d: %v", i, err)
		}
		seen[rep.Pod] = true
	}
	if len(seen) != 7 {
		t.Errorf("700 connections reached %d backends (%v), want all 7", len(seen), seen)
	}

	for _, p := range seven[2:] {
		l.deletePod(t, "default", p.Name)
	}
	two := seven[:2]
	l.waitProgrammed(t, spn, endpointsOf(two, echoPort))
	for _, n := range l.nodes(t) {
		save := l.iptablesSave(t, n.name)
		if diff := cmp.Diff(savedProbabilities(2), sepProbabilities(save, svcChainOf(t, save, spn))); diff != "" {
			t.Errorf("%s: two endpoints, probabilities (-want +got):\n%s", n.name, diff)
		}
	}
	counts, errs := fanOut(from, addr, 100, 4)
	if len(errs) > 0 {
		t.Fatalf("%d connections failed, first: %v", len(errs), errs[0])
	}
	if len(counts) != 2 || counts[two[0].Name] == 0 || counts[two[1].Name] == 0 {
		t.Errorf("after scaling to 2, 100 connections reached %v, want both of %s and %s and nothing else", counts, two[0].Name, two[1].Name)
	}
}

// chainHash is kube-proxy's per-port chain suffix: the first 16 characters of base32(sha256(s)).
func chainHash(s string) string {
	h := sha256.Sum256([]byte(s))
	return base32.StdEncoding.EncodeToString(h[:])[:16]
}

func TestChainHash(t *testing.T) {
	// Known values from kube-proxy's tests.
	if got := "KUBE-SVC-" + chainHash("ns1/svc1:p80"+"tcp"); got != "KUBE-SVC-XPGD46QRK7WJZT7O" {
		t.Errorf("service chain %s, want KUBE-SVC-XPGD46QRK7WJZT7O", got)
	}
	if got := "KUBE-SEP-" + chainHash("ns1/svc1:p80"+"tcp"+"10.180.0.1:80"); got != "KUBE-SEP-SXIVWICOYRO3J4NJ" {
		t.Errorf("endpoint chain %s, want KUBE-SEP-SXIVWICOYRO3J4NJ", got)
	}
}

// TestSeedWalkthroughTestsvc follows the seed's walkthrough (8.7) on the demo's testsvc
// (LoadBalancer, seven backends, 443→80, nodePort 30031) with today's chain names, comparing every
// node's testsvc rules with what kube-proxy writes: KUBE-SERVICES → KUBE-SVC for the cluster IP
// and KUBE-EXT for the LB IP, KUBE-NODEPORTS → KUBE-EXT, KUBE-EXT masquerades and → KUBE-SVC,
// KUBE-SVC masquerades off-cluster sources and jumps to seven KUBE-SEP chains with 1/7…1/2 and a
// last one without, each KUBE-SEP with the hairpin MARK-MASQ and the DNAT to podIP:80. Then the
// three ways in answer.
func TestSeedWalkthroughTestsvc(t *testing.T) {
	l := demoLab(t)
	svc := l.getService(t, "default", "testsvc")
	if len(svc.Status.LoadBalancer.Ingress) == 0 {
		t.Fatalf("testsvc has no load balancer IP: %+v", svc.Status)
	}
	cip, lbIP := svc.Spec.ClusterIP, svc.Status.LoadBalancer.Ingress[0].IP
	var eps []string
	for _, p := range l.listPods(t, "default", "app=testsvc") {
		eps = append(eps, hostPort(p.Status.PodIP, 80))
	}
	if len(eps) != 7 {
		t.Fatalf("testsvc has %d pods, want 7", len(eps))
	}
	slices.Sort(eps) // kube-proxy orders endpoints by their "IP:port" string

	const spn = "default/testsvc"
	h := chainHash(spn + "tcp")
	svcChain, extChain := "KUBE-SVC-"+h, "KUBE-EXT-"+h
	want := map[string][]string{
		"KUBE-SERVICES": {
			fmt.Sprintf(`-d %s/32 -p tcp -m comment --comment "%s cluster IP" -m tcp --dport 443 -j %s`, cip, spn, svcChain),
			fmt.Sprintf(`-d %s/32 -p tcp -m comment --comment "%s loadbalancer IP" -m tcp --dport 443 -j %s`, lbIP, spn, extChain),
		},
		"KUBE-NODEPORTS": {fmt.Sprintf(`-p tcp -m comment --comment "%s" -m tcp --dport 30031 -j %s`, spn, extChain)},
		extChain: {
			fmt.Sprintf(`-m comment --comment "masquerade traffic for %s external destinations" -j KUBE-MARK-MASQ`, spn),
			"-j " + svcChain,
		},
		svcChain: {fmt.Sprintf(`! -s %s -d %s/32 -p tcp -m comment --comment "%s cluster IP" -m tcp --dport 443 -j KUBE-MARK-MASQ`, clusterCIDR, cip, spn)},
	}
	probs := savedProbabilities(len(eps))
	for i, ep := range eps {
		sep := "KUBE-SEP-" + chainHash(spn+"tcp"+ep)
		stat := ""
		if probs[i] != "" {
			stat = " -m statistic --mode random --probability " + probs[i]
		}
		want[svcChain] = append(want[svcChain], fmt.Sprintf(`-m comment --comment "%s -> %s"%s -j %s`, spn, ep, stat, sep))
		ip, _, _ := strings.Cut(ep, ":")
		want[sep] = []string{
			fmt.Sprintf(`-s %s/32 -m comment --comment "%s" -j KUBE-MARK-MASQ`, ip, spn),
			fmt.Sprintf(`-p tcp -m comment --comment "%s" -m tcp -j DNAT --to-destination %s`, spn, ep),
		}
	}
	for _, n := range l.nodes(t) {
		save := l.iptablesSave(t, n.name)
		nat := tableOf(save, "nat")
		got := map[string][]string{}
		for chain := range want {
			for _, r := range chainRules(nat, chain) {
				if chain == "KUBE-SERVICES" || chain == "KUBE-NODEPORTS" {
					if !strings.Contains(r, `"`+spn+` `) && !strings.Contains(r, `"`+spn+`"`) {
						continue
					}
				}
				got[chain] = append(got[chain], r)
			}
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s: testsvc's nat rules (-want +got):\n%s", n.name, diff)
		}
	}

	client := "client"
	if rep := echoVia(t, l.podNetnsPath("default", client), hostPort(cip, 443)); !strings.HasPrefix(rep.Pod, "testsvc-") || rep.Port != 80 {
		t.Errorf("client → %s:443 answered by %s port %d, want a testsvc pod on 80", cip, rep.Pod, rep.Port)
	}
	if rep := echoVia(t, l.hostPath, hostPort(lbIP, 443)); !strings.HasPrefix(rep.Pod, "testsvc-") {
		t.Errorf("host → %s:443 answered by %s, want a testsvc pod", lbIP, rep.Pod)
	}
	for _, n := range l.nodes(t) {
		if rep := echoVia(t, l.hostPath, hostPort(n.ip, 30031)); !strings.HasPrefix(rep.Pod, "testsvc-") {
			t.Errorf("host → %s:30031 answered by %s, want a testsvc pod", n.ip, rep.Pod)
		}
	}
}

// tableOf cuts one table ("*nat" … "COMMIT") out of an iptables-save dump.
func tableOf(save, table string) string {
	_, rest, ok := strings.Cut(save, "*"+table+"\n")
	if !ok {
		return ""
	}
	body, _, _ := strings.Cut(rest, "\nCOMMIT")
	return body
}

// conntrackReplySources lists the reply-direction source addresses of a node's UDP conntrack
// entries whose original destination is dst.
func (l *lab) conntrackReplySources(tb testing.TB, node, dst string) []string {
	tb.Helper()
	r := l.execNode(tb, node, "conntrack", "-L", "-p", "udp", "--orig-dst", dst)
	if r.code != 0 {
		tb.Fatalf("conntrack -L in %s: %s", node, r)
	}
	var out []string
	for _, line := range strings.Split(r.stdout, "\n") {
		var srcs []string
		for _, f := range strings.Fields(line) {
			if v, ok := strings.CutPrefix(f, "src="); ok {
				srcs = append(srcs, v)
			}
		}
		if len(srcs) == 2 {
			out = append(out, srcs[1])
		}
	}
	return out
}

// udpExchange sends a datagram on c until an answer arrives (datagrams may be lost while rules
// change) and parses it.
func udpExchange(tb testing.TB, c net.Conn) netlab.EchoReply {
	tb.Helper()
	var rep netlab.EchoReply
	eventually(tb, 20*time.Second, "UDP echo answers on "+c.RemoteAddr().String(), func() (bool, string) {
		if _, err := c.Write([]byte("e2e\n")); err != nil {
			return false, err.Error()
		}
		c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		buf := make([]byte, 2048)
		n, err := c.Read(buf)
		if err != nil {
			return false, err.Error()
		}
		rep, err = parseEchoLine(string(buf[:n]))
		return err == nil, fmt.Sprint(err)
	})
	return rep
}

// TestUDPConntrackCleanup: a UDP flow to a Service leaves a conntrack entry on the client's node
// pointing at the backend; when that backend is deleted the entry goes with it, so the same flow
// (same socket, same 5-tuple) reaches the new backend instead of a blackhole.
func TestUDPConntrackCleanup(t *testing.T) {
	l := demoLab(t)
	name := uniq("udp")
	a := echoPod(name+"-a", "node-2", labelsFor(name), udpPort(5300))
	pods := l.createPods(t, clientPod(name+"-client", "node-1"), a)
	client, podA := pods[0], pods[1]
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: corev1.ServiceSpec{Selector: labelsFor(name), Ports: []corev1.ServicePort{{
			Protocol: corev1.ProtocolUDP, Port: 53, TargetPort: intstr.FromInt32(5300),
		}}},
	}
	svc = l.createService(t, svc)
	spn := "default/" + name
	l.waitProgrammed(t, spn, []string{hostPort(podA.Status.PodIP, 5300)}, "node-1")

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := netlab.DialInNetns(ctx, l.podNetnsPath("default", client.Name), "udp", hostPort(svc.Spec.ClusterIP, 53))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if rep := udpExchange(t, c); rep.Pod != podA.Name {
		t.Fatalf("UDP answered by %s, want %s", rep.Pod, podA.Name)
	}
	if got := l.conntrackReplySources(t, "node-1", svc.Spec.ClusterIP); !slices.Contains(got, podA.Status.PodIP) {
		t.Fatalf("node-1 has no conntrack entry to %s via %s (reply sources %v)", podA.Status.PodIP, svc.Spec.ClusterIP, got)
	}

	podB := l.createPod(t, echoPod(name+"-b", "node-3", labelsFor(name), udpPort(5300)))
	l.deletePod(t, "default", podA.Name)
	l.waitProgrammed(t, spn, []string{hostPort(podB.Status.PodIP, 5300)}, "node-1")
	eventually(t, 10*time.Second, "the conntrack entry to the deleted backend gone", func() (bool, string) {
		got := l.conntrackReplySources(t, "node-1", svc.Spec.ClusterIP)
		return !slices.Contains(got, podA.Status.PodIP), fmt.Sprintf("reply sources %v", got)
	})
	if rep := udpExchange(t, c); rep.Pod != podB.Name {
		t.Errorf("after the backend moved, the same UDP flow reached %s, want %s", rep.Pod, podB.Name)
	}
}

// TestCanaryFlushResync: someone flushes a node's nat table by hand; the proxy notices its canary
// chain is gone and rewrites everything.
func TestCanaryFlushResync(t *testing.T) {
	l := startLab(t, labOptions{})
	const rule = `"kube-system/kube-dns:dns cluster IP"`
	eventually(t, 30*time.Second, "kube-dns rules on node-1", func() (bool, string) {
		return strings.Contains(l.iptablesSave(t, "node-1"), rule), ""
	})
	for _, argv := range [][]string{{"iptables", "-t", "nat", "-F"}, {"iptables", "-t", "nat", "-X"}} {
		if r := l.execNode(t, "node-1", argv...); r.code != 0 {
			t.Fatalf("%s: %s", strings.Join(argv, " "), r)
		}
	}
	if nat := tableOf(l.iptablesSave(t, "node-1"), "nat"); strings.Contains(nat, "KUBE-") {
		t.Fatalf("the nat table still has kube chains after -F and -X:\n%s", nat)
	}
	took := eventually(t, 90*time.Second, "KUBE-SERVICES back on node-1", func() (bool, string) {
		nat := tableOf(l.iptablesSave(t, "node-1"), "nat")
		return strings.Contains(nat, rule) && strings.Contains(nat, ":KUBE-PROXY-CANARY"), ""
	})
	t.Logf("nat table flushed → rules back: %v", took.Round(time.Millisecond))
}

// TestRulesPayloadProbabilities checks what kube-proxy writes, before the kernel rounds it: the
// payload of `svclab rules` (the same renderer the nodes' proxies use) prints 1/(n-i) as %0.10f.
func TestRulesPayloadProbabilities(t *testing.T) {
	requireLabs(t)
	manifest := `apiVersion: v1
kind: Service
metadata: {name: seven, namespace: default}
spec:
  clusterIP: 10.96.0.50
  ports: [{port: 80, targetPort: 8080, protocol: TCP}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: seven-abc, namespace: default, labels: {kubernetes.io/service-name: seven}}
addressType: IPv4
ports: [{name: "", port: 8080, protocol: TCP}]
endpoints:
`
	for _, ip := range []string{"10.244.1.2", "10.244.1.3", "10.244.1.4", "10.244.2.2", "10.244.2.3", "10.244.2.4", "10.244.2.5"} {
		manifest += "- addresses: [" + ip + "]\n"
	}
	file := filepath.Join(t.TempDir(), "seven.yaml")
	if err := os.WriteFile(file, []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	r := run(t, svclabBin, "rules", "-f", file)
	if r.code != 0 {
		t.Fatalf("svclab rules: %s", r)
	}
	chain := svcChainOf(t, r.stdout, "default/seven")
	want := []string{"0.1428571429", "0.1666666667", "0.2000000000", "0.2500000000", "0.3333333333", "0.5000000000", ""}
	if diff := cmp.Diff(want, sepProbabilities(r.stdout, chain)); diff != "" {
		t.Errorf("probabilities in the payload (-want +got):\n%s", diff)
	}
}

// TestKubernetesServiceFromPod: the kubernetes Service's endpoint is the API's HTTPS listener on
// node-1's address, as kind's is its control-plane node's (172.18.0.2:6443 there); pods on every
// node reach the API through the Service by name, and the certificate `up` wrote verifies it.
func TestKubernetesServiceFromPod(t *testing.T) {
	l := demoLab(t)
	var ep corev1.Endpoints
	l.call(t, http.MethodGet, "/api/v1/namespaces/default/endpoints/kubernetes", "", nil, &ep, http.StatusOK)
	want := []corev1.EndpointSubset{{
		Addresses: []corev1.EndpointAddress{{IP: "172.29.0.2"}},
		Ports:     []corev1.EndpointPort{{Name: "https", Port: 6443, Protocol: corev1.ProtocolTCP}},
	}}
	if diff := cmp.Diff(want, ep.Subsets); diff != "" {
		t.Errorf("endpoints of default/kubernetes (-want +got):\n%s", diff)
	}
	l.waitProgrammed(t, "default/kubernetes:https", []string{"172.29.0.2:6443"})

	cert := filepath.Join(l.dataDir, l.name+"-apiserver.crt")
	name := uniq("apiclient")
	var pods []*corev1.Pod
	for _, n := range l.nodes(t) {
		pods = append(pods, clientPod(name+"-"+n.name, n.name))
	}
	for _, p := range l.createPods(t, pods...) {
		r := l.exec(t, "default", p.Name, "curl", "-sS", "--max-time", "10", "--cacert", cert, "https://kubernetes.default.svc/version")
		if r.code != 0 {
			t.Fatalf("curl https://kubernetes.default.svc/version from a pod on %s: %s", p.Spec.NodeName, r)
		}
		var v struct {
			GitVersion string `json:"gitVersion"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &v); err != nil || v.GitVersion == "" {
			t.Errorf("GET /version through the kubernetes Service from %s = %q (%v), want the API's version document", p.Spec.NodeName, r.stdout, err)
		}
	}
	// The certificate is real: without it curl refuses the server (exit 60, peer certificate
	// cannot be authenticated with known CA certificates).
	if r := l.exec(t, "default", pods[0].Name, "curl", "-sS", "--max-time", "10", "--cacert", "/dev/null", "https://kubernetes.default.svc/version"); r.code != 60 && r.code != 77 {
		t.Errorf("curl without the lab's certificate: %s, want exit 60 (untrusted certificate)", r)
	}
}
