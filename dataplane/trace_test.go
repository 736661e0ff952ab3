package dataplane

import (
	"fmt"
	"math"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// traceCluster is a two-node cluster seen from node-1 (192.168.0.2): pods on
// node-1 are 10.244.1.x, pods on node-2 are 10.244.2.x, cluster CIDR
// 10.244.0.0/16.
func traceCluster() Input {
	node1, node2 := "node-1", "node-2"
	type ep struct {
		ip   string
		node string
	}
	svc := func(name string, ip string, port, target int32, mut func(*corev1.Service), eps ...ep) (*corev1.Service, *discoveryv1.EndpointSlice) {
		s := makeService("default", name, func(s *corev1.Service) {
			s.Spec.ClusterIP = ip
			s.Spec.Ports = []corev1.ServicePort{{Name: "http", Port: port, Protocol: corev1.ProtocolTCP}}
			if mut != nil {
				mut(s)
			}
		})
		if len(eps) == 0 {
			return s, nil
		}
		es := makeSlice("default", name, name+"-abcde", func(es *discoveryv1.EndpointSlice) {
			for _, e := range eps {
				es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{Addresses: []string{e.ip}, NodeName: ptrTo(e.node)})
			}
			es.Ports = []discoveryv1.EndpointPort{tcpPort("http", target)}
		})
		return s, es
	}
	in := Input{
		Node:   Node{Name: node1, IPs: []netip.Addr{mustAddr("192.168.0.2")}},
		Config: Config{ClusterCIDR: mustPrefix("10.244.0.0/16")},
	}
	add := func(s *corev1.Service, es *discoveryv1.EndpointSlice) {
		in.Services = append(in.Services, s)
		if es != nil {
			in.EndpointSlices = append(in.EndpointSlices, es)
		}
	}
	nodePort := func(np int32, local bool) func(*corev1.Service) {
		return func(s *corev1.Service) {
			s.Spec.Type = corev1.ServiceTypeNodePort
			s.Spec.Ports[0].NodePort = np
			s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyCluster
			if local {
				s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
			}
		}
	}
	itpLocal := func(s *corev1.Service) {
		s.Spec.InternalTrafficPolicy = ptrTo(corev1.ServiceInternalTrafficPolicyLocal)
	}
	add(svc("web", "10.96.0.20", 80, 8080, nil, ep{"10.244.1.2", node1}, ep{"10.244.2.2", node2}))
	add(svc("np", "10.96.0.21", 80, 80, nodePort(30080, false), ep{"10.244.1.3", node1}, ep{"10.244.2.3", node2}))
	add(svc("nplocal", "10.96.0.22", 80, 80, nodePort(30081, true), ep{"10.244.1.4", node1}, ep{"10.244.2.4", node2}))
	add(svc("nplocal-remote", "10.96.0.23", 80, 80, nodePort(30082, true), ep{"10.244.2.5", node2}))
	add(svc("lb", "10.96.0.27", 443, 8443, func(s *corev1.Service) {
		s.Spec.Type = corev1.ServiceTypeLoadBalancer
		s.Spec.Ports[0].NodePort = 30443
		s.Spec.LoadBalancerSourceRanges = []string{"198.51.100.0/24"}
		s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "203.0.113.10"}}
	}, ep{"10.244.2.6", node2}))
	add(svc("empty", "10.96.0.24", 80, 80, nodePort(30084, false)))
	add(svc("itp", "10.96.0.25", 80, 80, itpLocal, ep{"10.244.1.7", node1}, ep{"10.244.2.7", node2}))
	add(svc("itp-remote", "10.96.0.28", 80, 80, itpLocal, ep{"10.244.2.8", node2}))
	add(svc("sticky", "10.96.0.26", 80, 80, func(s *corev1.Service) {
		s.Spec.SessionAffinity = corev1.ServiceAffinityClientIP
		s.Spec.SessionAffinityConfig = &corev1.SessionAffinityConfig{ClientIP: &corev1.ClientIPConfig{TimeoutSeconds: ptrTo[int32](600)}}
	}, ep{"10.244.1.9", node1}, ep{"10.244.2.9", node2}))
	add(svc("three", "10.96.0.29", 80, 80, nil, ep{"10.244.1.10", node1}, ep{"10.244.2.10", node2}, ep{"10.244.2.11", node2}))
	return in
}

func TestTracePacketFlows(t *testing.T) {
	rs, err := ParseSave(Render(traceCluster()).Payload)
	if err != nil {
		t.Fatal(err)
	}
	nodeIP := "192.168.0.2"
	const (
		pod      = "10.244.1.99"  // a client pod on node-1
		outside  = "198.51.100.7" // off-cluster client inside the LB source range
		stranger = "192.0.2.99"   // off-cluster client outside the source range
	)
	for _, tc := range []struct {
		name  string
		hook  Hook
		src   string
		proto string
		dst   string
		port  uint16
		want  string
	}{
		{"pod to ClusterIP", HookPrerouting, pod, "tcp", "10.96.0.20", 80,
			"10.244.1.2:8080 p=0.5000 | 10.244.2.2:8080 p=0.5000"},
		{"pod to ClusterIP wrong port is not a service", HookPrerouting, pod, "tcp", "10.96.0.20", 81,
			"ACCEPT 10.96.0.20"},
		{"pod to ClusterIP over UDP is not a service", HookPrerouting, pod, "udp", "10.96.0.20", 80,
			"ACCEPT 10.96.0.20"},
		{"off-cluster source to ClusterIP is masqueraded", HookPrerouting, outside, "tcp", "10.96.0.20", 80,
			"10.244.1.2:8080 p=0.5000 masq | 10.244.2.2:8080 p=0.5000 masq"},
		{"host to ClusterIP is masqueraded", HookOutput, nodeIP, "tcp", "10.96.0.20", 80,
			"10.244.1.2:8080 p=0.5000 masq | 10.244.2.2:8080 p=0.5000 masq"},
		{"host with a second address to NodePort on it", HookOutput, "192.168.7.7", "tcp", "192.168.7.7", 30080,
			"10.244.1.3:80 p=0.5000 masq | 10.244.2.3:80 p=0.5000 masq"},
		{"host to ClusterIP from loopback", HookOutput, "127.0.0.1", "tcp", "10.96.0.20", 80,
			"10.244.1.2:8080 p=0.5000 masq | 10.244.2.2:8080 p=0.5000 masq"},
		{"hairpin: pod to its own service", HookPrerouting, "10.244.1.2", "tcp", "10.96.0.20", 80,
			"10.244.1.2:8080 p=0.5000 masq | 10.244.2.2:8080 p=0.5000"},
		{"three endpoints get a third each", HookPrerouting, pod, "tcp", "10.96.0.29", 80,
			"10.244.1.10:80 p=0.3333 | 10.244.2.10:80 p=0.3333 | 10.244.2.11:80 p=0.3333"},
		{"host to own NodePort", HookOutput, nodeIP, "tcp", nodeIP, 30080,
			"10.244.1.3:80 p=0.5000 masq | 10.244.2.3:80 p=0.5000 masq"},
		{"off-node client to NodePort (Cluster policy)", HookPrerouting, outside, "tcp", nodeIP, 30080,
			"10.244.1.3:80 p=0.5000 masq | 10.244.2.3:80 p=0.5000 masq"},
		{"off-node client to NodePort, externalTrafficPolicy Local", HookPrerouting, outside, "tcp", nodeIP, 30081,
			"10.244.1.4:80 p=1.0000"},
		{"host to NodePort, externalTrafficPolicy Local: routed to all, masqueraded", HookOutput, nodeIP, "tcp", nodeIP, 30081,
			"10.244.1.4:80 p=0.5000 masq | 10.244.2.4:80 p=0.5000 masq"},
		{"pod to NodePort, externalTrafficPolicy Local: short-circuited to all", HookPrerouting, pod, "tcp", nodeIP, 30081,
			"10.244.1.4:80 p=0.5000 | 10.244.2.4:80 p=0.5000"},
		{"externalTrafficPolicy Local without local endpoints", HookPrerouting, outside, "tcp", nodeIP, 30082,
			"DROP"},
		{"LB VIP from an allowed source range", HookPrerouting, outside, "tcp", "203.0.113.10", 443,
			"10.244.2.6:8443 p=1.0000 masq"},
		{"LB VIP from outside the source ranges", HookPrerouting, stranger, "tcp", "203.0.113.10", 443,
			"DROP"},
		{"NodePort of an LB service ignores source ranges", HookPrerouting, stranger, "tcp", nodeIP, 30443,
			"10.244.2.6:8443 p=1.0000 masq"},
		{"no endpoints: ClusterIP rejects", HookPrerouting, pod, "tcp", "10.96.0.24", 80,
			"REJECT"},
		{"no endpoints: host to ClusterIP rejects", HookOutput, nodeIP, "tcp", "10.96.0.24", 80,
			"REJECT"},
		{"no endpoints: NodePort rejects", HookPrerouting, outside, "tcp", nodeIP, 30084,
			"REJECT"},
		{"internalTrafficPolicy Local picks the local endpoint", HookPrerouting, pod, "tcp", "10.96.0.25", 80,
			"10.244.1.7:80 p=1.0000"},
		{"internalTrafficPolicy Local without local endpoints drops", HookPrerouting, pod, "tcp", "10.96.0.28", 80,
			"DROP"},
		{"session affinity", HookPrerouting, pod, "tcp", "10.96.0.26", 80,
			"10.244.1.9:80 p=0.5000 | 10.244.2.9:80 p=0.5000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := Trace(rs, Packet{
				Src: mustAddr(tc.src), Dst: mustAddr(tc.dst), Proto: tc.proto, DstPort: tc.port,
				Hook: tc.hook, LocalAddrs: []netip.Addr{mustAddr(nodeIP)},
			}, TraceOptions{})
			if diff := cmp.Diff(tc.want, res.Summary()); diff != "" {
				t.Errorf("summary (-want +got):\n%s\n%s", diff, dumpPaths(res))
			}
			if len(res.Unsupported) > 0 {
				t.Errorf("unsupported: %v", res.Unsupported)
			}
			sum := 0.0
			for _, p := range res.Paths {
				sum += p.Probability
			}
			if math.Abs(sum-1) > 1e-9 {
				t.Errorf("path probabilities sum to %v, want 1\n%s", sum, dumpPaths(res))
			}
		})
	}
}

func TestTraceSessionAffinityPaths(t *testing.T) {
	rs, err := ParseSave(Render(traceCluster()).Payload)
	if err != nil {
		t.Fatal(err)
	}
	res := Trace(rs, Packet{Src: mustAddr("10.244.1.99"), Dst: mustAddr("10.96.0.26"), Proto: "tcp", DstPort: 80, Hook: HookPrerouting}, TraceOptions{})
	var affinity []string
	for _, p := range res.Paths {
		if p.Affinity != "" {
			affinity = append(affinity, p.DNAT.String()+" via "+p.Affinity)
			if p.Probability != 0 {
				t.Errorf("affinity path has probability %v, want 0", p.Probability)
			}
		}
	}
	want := []string{
		"10.244.1.9:80 via " + EndpointChainName("default/sticky:http", "tcp", "10.244.1.9:80"),
		"10.244.2.9:80 via " + EndpointChainName("default/sticky:http", "tcp", "10.244.2.9:80"),
	}
	if diff := cmp.Diff(want, affinity); diff != "" {
		t.Errorf("affinity paths (-want +got):\n%s", diff)
	}
}

func TestTraceStepsOfClusterIPPath(t *testing.T) {
	in := traceCluster()
	rs, err := ParseSave(Render(in).Payload)
	if err != nil {
		t.Fatal(err)
	}
	res := Trace(rs, Packet{Src: mustAddr("192.0.2.1"), Dst: mustAddr("10.96.0.29"), Proto: "tcp", DstPort: 80, Hook: HookPrerouting}, TraceOptions{})
	var p *Path
	for i := range res.Paths {
		if res.Paths[i].DNAT.String() == "10.244.2.10:80" {
			p = &res.Paths[i]
		}
	}
	if p == nil {
		t.Fatalf("no path to 10.244.2.10:80:\n%s", dumpPaths(res))
	}
	svcChain := ServicePortChainName(PrefixSVC, "default/three:http", "tcp")
	sep1 := EndpointChainName("default/three:http", "tcp", "10.244.1.10:80")
	sep2 := EndpointChainName("default/three:http", "tcp", "10.244.2.10:80")
	var got []string
	for _, s := range p.Steps {
		line := fmt.Sprintf("%s %s %s #%d", s.Table, s.Chain, s.Target, s.Num)
		if s.Synthetic {
			line += " synthetic"
		}
		if s.Note != "" {
			line += " " + s.Note
		}
		got = append(got, line)
	}
	want := []string{
		"nat PREROUTING KUBE-SERVICES #1 synthetic",
		"nat KUBE-SERVICES " + svcChain + " #8", // itp, lb×2, np, nplocal, nplocal-remote, sticky come first
		"nat " + svcChain + " KUBE-MARK-MASQ #1",
		"nat KUBE-MARK-MASQ MARK #1",
		"nat " + svcChain + " " + sep1 + " #2 statistic random 0.3333333333: not taken",
		"nat " + svcChain + " " + sep2 + " #3 statistic random 0.5000000000: taken",
		"nat " + sep2 + " DNAT #2",
		"filter FORWARD KUBE-PROXY-FIREWALL #1 synthetic",
		"filter FORWARD KUBE-FORWARD #2 synthetic",
		"filter KUBE-FORWARD ACCEPT #2",
		"nat POSTROUTING KUBE-POSTROUTING #1 synthetic",
		"nat KUBE-POSTROUTING MARK #2",
		"nat KUBE-POSTROUTING MASQUERADE #3",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("steps (-want +got):\n%s", diff)
	}
	if !p.Masqueraded || p.Mark != 0 || p.MarkAtPostrouting != 0x4000 || math.Abs(p.Probability-1.0/3) > 1e-9 {
		t.Errorf("path = masq %v mark %#x at postrouting %#x p %v, want masqueraded, 0x4000 at POSTROUTING, cleared after, p=1/3",
			p.Masqueraded, p.Mark, p.MarkAtPostrouting, p.Probability)
	}
}

func dumpPaths(res TraceResult) string {
	var b strings.Builder
	for i, p := range res.Paths {
		fmt.Fprintf(&b, "path %d: %s p=%.4f dnat=%v masq=%v aff=%q delivery=%s\n", i, p.Verdict, p.Probability, p.DNAT, p.Masqueraded, p.Affinity, p.Delivery)
		for _, s := range p.Steps {
			fmt.Fprintf(&b, "   %s/%s #%d -> %s %s\n", s.Table, s.Chain, s.Num, s.Target, s.Note)
		}
	}
	return b.String()
}
