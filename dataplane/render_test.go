package dataplane

import (
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
)

const testNodeName = "test-node"

// kubeProxyOverallInput mirrors the Services and EndpointSlices of kube-proxy's
// TestOverallIPTablesRules (pkg/proxy/iptables/proxier_test.go): node
// "test-node" with IP 192.168.0.2, cluster CIDR 10.0.0.0/8.
func kubeProxyOverallInput() Input {
	return Input{
		Node:   Node{Name: testNodeName, IPs: []netip.Addr{mustAddr("192.168.0.2")}},
		Config: Config{ClusterCIDR: mustPrefix("10.0.0.0/8")},
		Services: []*corev1.Service{
			makeService("ns1", "svc1", func(s *corev1.Service) {
				s.Spec.ClusterIP = "172.30.0.41"
				s.Spec.Ports = []corev1.ServicePort{{Name: "p80", Port: 80, Protocol: corev1.ProtocolTCP}}
			}),
			makeService("ns2", "svc2", func(s *corev1.Service) {
				s.Spec.Type = corev1.ServiceTypeLoadBalancer
				s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
				s.Spec.ClusterIP = "172.30.0.42"
				s.Spec.Ports = []corev1.ServicePort{{Name: "p80", Port: 80, Protocol: corev1.ProtocolTCP, NodePort: 3001}}
				s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "1.2.3.4"}}
				s.Spec.ExternalIPs = []string{"192.168.99.22"}
				s.Spec.HealthCheckNodePort = 30000
			}),
			makeService("ns3", "svc3", func(s *corev1.Service) {
				s.Spec.Type = corev1.ServiceTypeNodePort
				s.Spec.ClusterIP = "172.30.0.43"
				s.Spec.Ports = []corev1.ServicePort{{Name: "p80", Port: 80, Protocol: corev1.ProtocolTCP, NodePort: 3003}}
			}),
			makeService("ns4", "svc4", func(s *corev1.Service) {
				s.Spec.Type = corev1.ServiceTypeNodePort
				s.Spec.ClusterIP = "172.30.0.44"
				s.Spec.ExternalIPs = []string{"192.168.99.33"}
				s.Spec.Ports = []corev1.ServicePort{{Name: "p80", Port: 80, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(80)}}
			}),
			makeService("ns5", "svc5", func(s *corev1.Service) {
				s.Spec.Type = corev1.ServiceTypeLoadBalancer
				s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyCluster
				s.Spec.ClusterIP = "172.30.0.45"
				s.Spec.Ports = []corev1.ServicePort{{Name: "p80", Port: 80, Protocol: corev1.ProtocolTCP, NodePort: 3002}}
				s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "5.6.7.8"}}
				s.Spec.HealthCheckNodePort = 30000
				s.Spec.LoadBalancerSourceRanges = []string{" 203.0.113.0/25"}
				s.Spec.SessionAffinity = corev1.ServiceAffinityClientIP
				s.Spec.SessionAffinityConfig = &corev1.SessionAffinityConfig{ClientIP: &corev1.ClientIPConfig{TimeoutSeconds: ptrTo[int32](10800)}}
			}),
			makeService("ns6", "svc6", func(s *corev1.Service) {
				s.Spec.ClusterIP = "172.30.0.46"
				s.Spec.Ports = []corev1.ServicePort{{Name: "p80", Port: 80, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(80)}}
			}),
		},
		EndpointSlices: []*discoveryv1.EndpointSlice{
			makeSlice("ns1", "svc1", "svc1-1", func(es *discoveryv1.EndpointSlice) {
				es.Endpoints = []discoveryv1.Endpoint{{Addresses: []string{"10.180.0.1"}}}
				es.Ports = []discoveryv1.EndpointPort{tcpPort("p80", 80)}
			}),
			makeSlice("ns2", "svc2", "svc2-1", func(es *discoveryv1.EndpointSlice) {
				es.Endpoints = []discoveryv1.Endpoint{{Addresses: []string{"10.180.0.2"}}}
				es.Ports = []discoveryv1.EndpointPort{tcpPort("p80", 80)}
			}),
			makeSlice("ns3", "svc3", "svc3-1", func(es *discoveryv1.EndpointSlice) {
				es.Endpoints = []discoveryv1.Endpoint{{Addresses: []string{"10.180.0.3"}}}
				es.Ports = []discoveryv1.EndpointPort{tcpPort("p80", 80)}
			}),
			makeSlice("ns4", "svc4", "svc4-1", func(es *discoveryv1.EndpointSlice) {
				es.Endpoints = []discoveryv1.Endpoint{
					{Addresses: []string{"10.180.0.4"}},
					{Addresses: []string{"10.180.0.5"}, NodeName: ptrTo(testNodeName)},
				}
				es.Ports = []discoveryv1.EndpointPort{tcpPort("p80", 80)}
			}),
			makeSlice("ns5", "svc5", "svc5-1", func(es *discoveryv1.EndpointSlice) {
				es.Endpoints = []discoveryv1.Endpoint{{Addresses: []string{"10.180.0.3"}}}
				es.Ports = []discoveryv1.EndpointPort{tcpPort("p80", 80)}
			}),
		},
	}
}

func TestRenderKubeProxyOverall(t *testing.T) {
	res := Render(kubeProxyOverallInput())
	assertGolden(t, "kubeproxy-overall.golden", string(res.Payload))
	assertGolden(t, "kubeproxy-overall.sorted.golden", sortedPayload(t, res.Payload))
}

// seedTestsvcInput is the Service of the seed capture (§8.7): default/testsvc,
// LoadBalancer 172.30.5.207, 443→80, nodePort 30031, LB IP 172.6.6.6, seven
// endpoints, pod CIDR 172.31.0.0/16. The capture's KUBE-XLB chain and its
// "has no local endpoints" rule show externalTrafficPolicy Local with no
// endpoint on the captured node; 172.31.9.52 is the endpoint the capture
// names, the other six addresses are made up. localOnNode lists endpoints
// placed on the rendered node ("node-a").
func seedTestsvcInput(localOnNode ...string) Input {
	ips := []string{"172.31.9.52", "172.31.2.14", "172.31.3.27", "172.31.4.33", "172.31.5.41", "172.31.6.58", "172.31.7.66"}
	return Input{
		Node:   Node{Name: "node-a", IPs: []netip.Addr{mustAddr("192.168.0.11")}},
		Config: Config{ClusterCIDR: mustPrefix("172.31.0.0/16")},
		Services: []*corev1.Service{makeService("default", "testsvc", func(s *corev1.Service) {
			s.Spec.Type = corev1.ServiceTypeLoadBalancer
			s.Spec.ClusterIP = "172.30.5.207"
			s.Spec.ClusterIPs = []string{"172.30.5.207"}
			s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
			s.Spec.HealthCheckNodePort = 30032
			s.Spec.Ports = []corev1.ServicePort{{Port: 443, TargetPort: intstr.FromInt32(80), NodePort: 30031, Protocol: corev1.ProtocolTCP}}
			s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "172.6.6.6"}}
		})},
		EndpointSlices: []*discoveryv1.EndpointSlice{makeSlice("default", "testsvc", "testsvc-x7k2p", func(es *discoveryv1.EndpointSlice) {
			for i, ip := range ips {
				node := fmt.Sprintf("node-%c", 'b'+i%3)
				if slices.Contains(localOnNode, ip) {
					node = "node-a"
				}
				es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{Addresses: []string{ip}, NodeName: ptrTo(node)})
			}
			es.Ports = []discoveryv1.EndpointPort{{Name: ptrTo(""), Port: ptrTo[int32](80), Protocol: ptrTo(corev1.ProtocolTCP)}}
		})},
	}
}

func TestRenderSeedTestsvcGolden(t *testing.T) {
	assertGolden(t, "seed-testsvc-remote.golden", string(Render(seedTestsvcInput()).Payload))
	assertGolden(t, "seed-testsvc-local.golden", string(Render(seedTestsvcInput("172.31.2.14", "172.31.9.52")).Payload))
}

// TestSeedTestsvcStructure maps the seed capture's chains onto today's:
// KUBE-SERVICES → KUBE-SVC-H for the cluster IP (the seed's separate
// KUBE-MARK-MASQ jump now lives inside KUBE-SVC-H), the LB IP → KUBE-EXT-H
// (the seed's KUBE-FW → KUBE-XLB; without loadBalancerSourceRanges there is
// no KUBE-FW any more), KUBE-SVC-H → seven KUBE-SEP with probabilities
// 1/7 … 1/2 and a last rule without one.
func TestSeedTestsvcStructure(t *testing.T) {
	res := Render(seedTestsvcInput())
	rs, err := ParseSave(res.Payload)
	if err != nil {
		t.Fatal(err)
	}
	spn := "default/testsvc" // unnamed port: no ":port" suffix
	svc := ServicePortChainName(PrefixSVC, spn, "tcp")
	ext := ServicePortChainName(PrefixEXT, spn, "tcp")
	var services []string
	for _, r := range rs.Chain(TableNAT, ChainServices).Rules {
		services = append(services, r.Comment+" -> "+r.Target)
	}
	wantServices := []string{
		"default/testsvc cluster IP -> " + svc,
		"default/testsvc loadbalancer IP -> " + ext,
		"kubernetes service nodeports; NOTE: this must be the last rule in this chain -> KUBE-NODEPORTS",
	}
	if diff := cmp.Diff(wantServices, services); diff != "" {
		t.Errorf("nat KUBE-SERVICES (-want +got):\n%s", diff)
	}
	var probs []string
	var saved []string
	for _, r := range rs.Chain(TableNAT, svc).Rules[1:] {
		if r.Statistic == nil {
			probs = append(probs, "-")
			continue
		}
		probs = append(probs, r.Args[slices.Index(r.Args, "--probability")+1])
		saved = append(saved, r.SaveText()[strings.Index(r.SaveText(), "--probability")+14:][:13])
	}
	wantProbs := []string{"0.1428571429", "0.1666666667", "0.2000000000", "0.2500000000", "0.3333333333", "0.5000000000", "-"}
	if diff := cmp.Diff(wantProbs, probs); diff != "" {
		t.Errorf("KUBE-SVC probabilities (-want +got):\n%s", diff)
	}
	// What iptables-save shows for them (the kernel keeps a 31-bit fraction).
	wantSaved := []string{"0.14285714272", "0.16666666651", "0.20000000019", "0.25000000000", "0.33333333349", "0.50000000000"}
	if diff := cmp.Diff(wantSaved, saved); diff != "" {
		t.Errorf("KUBE-SVC probabilities as saved (-want +got):\n%s", diff)
	}
	var extRules []string
	for _, r := range rs.Chain(TableNAT, ext).Rules {
		extRules = append(extRules, r.Comment+" -> "+r.Target)
	}
	wantExt := []string{
		"pod traffic for default/testsvc external destinations -> " + svc,
		"masquerade LOCAL traffic for default/testsvc external destinations -> KUBE-MARK-MASQ",
		"route LOCAL traffic for default/testsvc external destinations -> " + svc,
	}
	if diff := cmp.Diff(wantExt, extRules); diff != "" {
		t.Errorf("KUBE-EXT (the seed's KUBE-XLB) (-want +got):\n%s", diff)
	}
	var drops []string
	for _, r := range rs.Chain(TableFilter, ChainExternalServices).Rules {
		drops = append(drops, r.Comment+" -> "+r.Target)
	}
	wantDrops := []string{"default/testsvc has no local endpoints -> DROP", "default/testsvc has no local endpoints -> DROP"}
	if diff := cmp.Diff(wantDrops, drops); diff != "" {
		t.Errorf("filter KUBE-EXTERNAL-SERVICES (the seed's KUBE-MARK-DROP) (-want +got):\n%s", diff)
	}
	sep := EndpointChainName(spn, "tcp", "172.31.9.52:80")
	var sepRules []string
	for _, r := range rs.Chain(TableNAT, sep).Rules {
		sepRules = append(sepRules, r.SaveText())
	}
	wantSep := []string{
		"-A " + sep + " -s 172.31.9.52/32 -m comment --comment \"default/testsvc\" -j KUBE-MARK-MASQ",
		"-A " + sep + " -p tcp -m comment --comment \"default/testsvc\" -m tcp -j DNAT --to-destination 172.31.9.52:80",
	}
	if diff := cmp.Diff(wantSep, sepRules); diff != "" {
		t.Errorf("KUBE-SEP for the seed's 172.31.9.52 (-want +got):\n%s", diff)
	}
}

// TestSeedProbabilitiesAsSaved checks the kernel round trip of --probability
// against the seed capture, whose kube-proxy wrote 5 decimals (0.14286) and
// whose iptables printed 0.14286000002.
func TestSeedProbabilitiesAsSaved(t *testing.T) {
	for in, want := range map[string]string{
		"0.14286": "0.14286000002", "0.16667": "0.16667000018", "0.20000": "0.20000000019",
		"0.25000": "0.25000000000", "0.33333": "0.33332999982", "0.50000": "0.50000000000",
	} {
		r, err := parseRuleArgs(TableNAT, "KUBE-SVC-X", []string{"-m", "statistic", "--mode", "random", "--probability", in, "-j", "KUBE-SEP-Y"})
		if err != nil {
			t.Fatal(err)
		}
		got := r.SaveText()
		if w := "-A KUBE-SVC-X -m statistic --mode random --probability " + want + " -j KUBE-SEP-Y"; got != w {
			t.Errorf("SaveText(%s) = %q, want %q", in, got, w)
		}
	}
}

func TestProbability(t *testing.T) {
	want := map[int]string{1: "1.0000000000", 2: "0.5000000000", 3: "0.3333333333", 4: "0.2500000000", 5: "0.2000000000", 6: "0.1666666667", 7: "0.1428571429"}
	for n, w := range want {
		if got := Probability(n); got != w {
			t.Errorf("Probability(%d) = %q, want %q", n, got, w)
		}
	}
}

// TestProbabilitiesGiveEqualShares checks the seed's "why does the
// probability grow": 1/n, 1/(n-1), … give every endpoint 1/n of the traffic.
func TestProbabilitiesGiveEqualShares(t *testing.T) {
	for n := 1; n <= 7; n++ {
		remaining := 1.0
		for i := 0; i < n; i++ {
			p := 1.0
			if i < n-1 {
				var err error
				if p, err = strconv.ParseFloat(Probability(n-i), 64); err != nil {
					t.Fatal(err)
				}
			}
			share := remaining * p
			remaining -= share
			if math.Abs(share-1/float64(n)) > 1e-9 {
				t.Errorf("n=%d endpoint %d gets %v, want %v", n, i, share, 1/float64(n))
			}
		}
	}
}

// mixedInput covers many features at once, seen from node-1 (10.0.1.1).
func mixedInput() Input {
	node1, node2 := "node-1", "node-2"
	in := Input{
		Node:   Node{Name: node1, IPs: []netip.Addr{mustAddr("10.0.1.1")}},
		Config: Config{ClusterCIDR: mustPrefix("10.244.0.0/16")},
	}
	in.Services = []*corev1.Service{
		// Two ports, two protocols, named ports.
		makeService("kube-system", "kube-dns", func(s *corev1.Service) {
			s.Spec.ClusterIP = "10.96.0.10"
			s.Spec.Ports = []corev1.ServicePort{
				{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP},
				{Name: "dns-tcp", Port: 53, Protocol: corev1.ProtocolTCP},
			}
		}),
		// NodePort + externalIPs, Cluster policy, SCTP.
		makeService("shop", "sctp-gw", func(s *corev1.Service) {
			s.Spec.Type = corev1.ServiceTypeNodePort
			s.Spec.ClusterIP = "10.96.3.3"
			s.Spec.ExternalIPs = []string{"192.0.2.50"}
			s.Spec.Ports = []corev1.ServicePort{{Name: "sig", Port: 3868, Protocol: corev1.ProtocolSCTP, NodePort: 31868}}
		}),
		// LoadBalancer with source ranges covering the node, Local policy,
		// one local endpoint, session affinity.
		makeService("shop", "front", func(s *corev1.Service) {
			s.Spec.Type = corev1.ServiceTypeLoadBalancer
			s.Spec.ClusterIP = "10.96.1.1"
			s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
			s.Spec.HealthCheckNodePort = 32100
			s.Spec.LoadBalancerSourceRanges = []string{"203.0.113.0/24", "10.0.0.0/16"}
			s.Spec.SessionAffinity = corev1.ServiceAffinityClientIP
			s.Spec.SessionAffinityConfig = &corev1.SessionAffinityConfig{ClientIP: &corev1.ClientIPConfig{TimeoutSeconds: ptrTo[int32](300)}}
			s.Spec.Ports = []corev1.ServicePort{{Name: "https", Port: 443, Protocol: corev1.ProtocolTCP, NodePort: 30443}}
			s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "198.51.100.10"}, {Hostname: "lb.example.com"}}
		}),
		// internalTrafficPolicy Local with a local endpoint.
		makeService("shop", "cache", func(s *corev1.Service) {
			s.Spec.ClusterIP = "10.96.1.2"
			s.Spec.InternalTrafficPolicy = ptrTo(corev1.ServiceInternalTrafficPolicyLocal)
			s.Spec.Ports = []corev1.ServicePort{{Port: 6379, Protocol: corev1.ProtocolTCP}}
		}),
		// internalTrafficPolicy Local, no local endpoint: DROP.
		makeService("shop", "audit", func(s *corev1.Service) {
			s.Spec.ClusterIP = "10.96.1.3"
			s.Spec.InternalTrafficPolicy = ptrTo(corev1.ServiceInternalTrafficPolicyLocal)
			s.Spec.Ports = []corev1.ServicePort{{Port: 9000, Protocol: corev1.ProtocolTCP}}
		}),
		// Only terminating (still serving) endpoints: used as fallback.
		makeService("shop", "draining", func(s *corev1.Service) {
			s.Spec.ClusterIP = "10.96.1.4"
			s.Spec.Ports = []corev1.ServicePort{{Port: 80, Protocol: corev1.ProtocolTCP}}
		}),
		// Only not-ready endpoints: REJECT everywhere.
		makeService("shop", "broken", func(s *corev1.Service) {
			s.Spec.Type = corev1.ServiceTypeNodePort
			s.Spec.ClusterIP = "10.96.1.5"
			s.Spec.ExternalIPs = []string{"192.0.2.51"}
			s.Spec.Ports = []corev1.ServicePort{{Port: 80, Protocol: corev1.ProtocolTCP, NodePort: 30005}}
		}),
		// Endpoints split over two slices with a duplicate.
		makeService("shop", "api", func(s *corev1.Service) {
			s.Spec.ClusterIP = "10.96.1.6"
			s.Spec.Ports = []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP}}
		}),
		// Headless and ExternalName: no rules.
		makeService("shop", "db", func(s *corev1.Service) {
			s.Spec.ClusterIP = corev1.ClusterIPNone
			s.Spec.Ports = []corev1.ServicePort{{Port: 5432, Protocol: corev1.ProtocolTCP}}
		}),
		makeService("shop", "search", func(s *corev1.Service) {
			s.Spec.Type = corev1.ServiceTypeExternalName
			s.Spec.ExternalName = "www.example.com"
		}),
	}
	ep := func(ip, node string, ready, serving, terminating *bool) discoveryv1.Endpoint {
		return discoveryv1.Endpoint{Addresses: []string{ip}, NodeName: ptrTo(node),
			Conditions: discoveryv1.EndpointConditions{Ready: ready, Serving: serving, Terminating: terminating}}
	}
	yes, no := ptrTo(true), ptrTo(false)
	in.EndpointSlices = []*discoveryv1.EndpointSlice{
		makeSlice("kube-system", "kube-dns", "kube-dns-aaaaa", func(es *discoveryv1.EndpointSlice) {
			es.Endpoints = []discoveryv1.Endpoint{ep("10.244.1.10", node1, nil, nil, nil), ep("10.244.2.10", node2, yes, yes, no)}
			es.Ports = []discoveryv1.EndpointPort{
				{Name: ptrTo("dns"), Port: ptrTo[int32](53), Protocol: ptrTo(corev1.ProtocolUDP)},
				{Name: ptrTo("dns-tcp"), Port: ptrTo[int32](53), Protocol: ptrTo(corev1.ProtocolTCP)},
			}
		}),
		makeSlice("shop", "sctp-gw", "sctp-gw-aaaaa", func(es *discoveryv1.EndpointSlice) {
			es.Endpoints = []discoveryv1.Endpoint{ep("10.244.2.20", node2, nil, nil, nil)}
			es.Ports = []discoveryv1.EndpointPort{{Name: ptrTo("sig"), Port: ptrTo[int32](3868), Protocol: ptrTo(corev1.ProtocolSCTP)}}
		}),
		makeSlice("shop", "front", "front-aaaaa", func(es *discoveryv1.EndpointSlice) {
			es.Endpoints = []discoveryv1.Endpoint{ep("10.244.1.30", node1, nil, nil, nil), ep("10.244.2.30", node2, nil, nil, nil), ep("10.244.2.31", node2, nil, nil, nil)}
			es.Ports = []discoveryv1.EndpointPort{tcpPort("https", 8443)}
		}),
		makeSlice("shop", "cache", "cache-aaaaa", func(es *discoveryv1.EndpointSlice) {
			es.Endpoints = []discoveryv1.Endpoint{ep("10.244.1.40", node1, nil, nil, nil), ep("10.244.2.40", node2, nil, nil, nil)}
			es.Ports = []discoveryv1.EndpointPort{tcpPort("", 6379)}
		}),
		makeSlice("shop", "audit", "audit-aaaaa", func(es *discoveryv1.EndpointSlice) {
			es.Endpoints = []discoveryv1.Endpoint{ep("10.244.2.50", node2, nil, nil, nil)}
			es.Ports = []discoveryv1.EndpointPort{tcpPort("", 9000)}
		}),
		makeSlice("shop", "draining", "draining-aaaaa", func(es *discoveryv1.EndpointSlice) {
			es.Endpoints = []discoveryv1.Endpoint{
				ep("10.244.1.60", node1, no, yes, yes),
				ep("10.244.2.60", node2, no, yes, yes),
				ep("10.244.2.61", node2, no, no, yes), // terminating and not serving: unused
			}
			es.Ports = []discoveryv1.EndpointPort{tcpPort("", 8080)}
		}),
		makeSlice("shop", "broken", "broken-aaaaa", func(es *discoveryv1.EndpointSlice) {
			es.Endpoints = []discoveryv1.Endpoint{ep("10.244.1.70", node1, no, no, no)}
			es.Ports = []discoveryv1.EndpointPort{tcpPort("", 80)}
		}),
		makeSlice("shop", "api", "api-aaaaa", func(es *discoveryv1.EndpointSlice) {
			es.Endpoints = []discoveryv1.Endpoint{ep("10.244.1.80", node1, nil, nil, nil), ep("10.244.2.81", node2, nil, nil, nil)}
			es.Ports = []discoveryv1.EndpointPort{tcpPort("http", 8080)}
		}),
		makeSlice("shop", "api", "api-bbbbb", func(es *discoveryv1.EndpointSlice) {
			// 10.244.2.81 moved here and is seen twice; 10.244.2.9 sorts after 10.244.2.81.
			es.Endpoints = []discoveryv1.Endpoint{ep("10.244.2.81", node2, nil, nil, nil), ep("10.244.2.9", node2, nil, nil, nil)}
			es.Ports = []discoveryv1.EndpointPort{tcpPort("http", 8080)}
		}),
		// An IPv6 slice and one without the service-name label are ignored.
		makeSlice("shop", "api", "api-v6", func(es *discoveryv1.EndpointSlice) {
			es.AddressType = discoveryv1.AddressTypeIPv6
			es.Endpoints = []discoveryv1.Endpoint{{Addresses: []string{"fd00::1"}}}
			es.Ports = []discoveryv1.EndpointPort{tcpPort("http", 8080)}
		}),
		makeSlice("shop", "", "orphan", func(es *discoveryv1.EndpointSlice) {
			es.Endpoints = []discoveryv1.Endpoint{{Addresses: []string{"10.244.9.9"}}}
			es.Ports = []discoveryv1.EndpointPort{tcpPort("http", 8080)}
		}),
	}
	return in
}

// mixedInputAfterChange is mixedInput after shop/api lost 10.244.1.80 and
// shop/cache was deleted; it returns the Changed set a proxier would pass.
func mixedInputAfterChange() (Input, map[types.NamespacedName]bool) {
	in := mixedInput()
	in.Services = slices.DeleteFunc(in.Services, func(s *corev1.Service) bool { return s.Name == "cache" })
	in.EndpointSlices = slices.DeleteFunc(in.EndpointSlices, func(es *discoveryv1.EndpointSlice) bool { return es.Name == "cache-aaaaa" })
	for _, es := range in.EndpointSlices {
		if es.Name == "api-aaaaa" {
			es.Endpoints = es.Endpoints[1:]
		}
	}
	return in, map[types.NamespacedName]bool{{Namespace: "shop", Name: "api"}: true, {Namespace: "shop", Name: "cache"}: true}
}

func TestRenderMixedGolden(t *testing.T) {
	res := Render(mixedInput())
	assertGolden(t, "mixed.golden", string(res.Payload))
	// Bookkeeping: counts match the payload, chains are reported.
	rs, err := ParseSave(res.Payload)
	if err != nil {
		t.Fatal(err)
	}
	for _, tb := range []Table{TableFilter, TableNAT} {
		n := 0
		for _, c := range rs.Table(tb).Chains {
			n += len(c.Rules)
		}
		if res.RuleCounts[tb] != n {
			t.Errorf("RuleCounts[%s] = %d, payload has %d rules", tb, res.RuleCounts[tb], n)
		}
		var declared []string
		for _, c := range rs.Table(tb).Chains {
			declared = append(declared, c.Name)
		}
		slices.Sort(declared)
		var reported []string
		for c := range res.Chains[tb] {
			reported = append(reported, c)
		}
		slices.Sort(reported)
		if diff := cmp.Diff(declared, reported); diff != "" {
			t.Errorf("Chains[%s] (-payload +result):\n%s", tb, diff)
		}
	}
	front := types.NamespacedName{Namespace: "shop", Name: "front"}
	spn := "shop/front:https"
	wantFront := []string{
		ServicePortChainName(PrefixEXT, spn, "tcp"),
		ServicePortChainName(PrefixFW, spn, "tcp"),
		ServicePortChainName(PrefixSVC, spn, "tcp"),
		ServicePortChainName(PrefixSVL, spn, "tcp"),
		EndpointChainName(spn, "tcp", "10.244.1.30:8443"),
		EndpointChainName(spn, "tcp", "10.244.2.30:8443"),
		EndpointChainName(spn, "tcp", "10.244.2.31:8443"),
	}
	if diff := cmp.Diff(wantFront, res.ServiceChains[front]); diff != "" {
		t.Errorf("ServiceChains[shop/front] (-want +got):\n%s", diff)
	}
	for _, nn := range []string{"shop/db", "shop/search", "shop/broken", "shop/audit"} {
		ns, name, _ := strings.Cut(nn, "/")
		if c, ok := res.ServiceChains[types.NamespacedName{Namespace: ns, Name: name}]; ok {
			t.Errorf("ServiceChains[%s] = %v, want none", nn, c)
		}
	}
}

func TestRenderMasqueradeAllAndNoClusterCIDR(t *testing.T) {
	in := kubeProxyOverallInput()
	in.Config = Config{MasqueradeAll: true, MasqueradeBit: 5, RandomFully: true}
	assertGolden(t, "masquerade-all.golden", string(Render(in).Payload))
}

func TestRenderPartialSyncGolden(t *testing.T) {
	first := Render(mixedInput())
	after, changed := mixedInputAfterChange()
	after.Changed = changed
	after.Existing = first.Chains
	res := Render(after)
	assertGolden(t, "partial-sync.golden", string(res.Payload))

	full := Render(func() Input { in, _ := mixedInputAfterChange(); return in }())
	if diff := cmp.Diff(full.RuleCounts, res.RuleCounts); diff != "" {
		t.Errorf("partial sync RuleCounts differ from a full sync's (-full +partial):\n%s", diff)
	}
	if diff := cmp.Diff(full.Chains, res.Chains); diff != "" {
		t.Errorf("partial sync Chains differ from a full sync's (-full +partial):\n%s", diff)
	}
	// Unchanged services' chains are not in the partial payload.
	rs, err := ParseSave(res.Payload)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range full.ServiceChains[types.NamespacedName{Namespace: "shop", Name: "front"}] {
		if rs.Chain(TableNAT, c) != nil {
			t.Errorf("partial payload declares unchanged chain %s", c)
		}
	}
}

func TestRenderStaleChainDeletionGolden(t *testing.T) {
	in := kubeProxyOverallInput()
	in.Existing = map[Table]map[string]bool{
		TableNAT: {
			"KUBE-SVC-XPGD46QRK7WJZT7O": true, // still wanted
			"KUBE-SVC-AAAAAAAAAAAAAAAA": true, // stale service chain
			"KUBE-SEP-BBBBBBBBBBBBBBBB": true, // stale endpoint chain
			"KUBE-FW-CCCCCCCCCCCCCCCC":  true,
			"KUBE-XLB-DDDDDDDDDDDDDDDD": true, // pre-1.24 chain name: not ours any more, left alone (as kube-proxy)
			"DOCKER":                    true, // not ours
		},
		TableFilter: {"KUBE-SVC-EEEEEEEEEEEEEEEE": true}, // kube-proxy only cleans the nat table
	}
	res := Render(in)
	assertGolden(t, "stale-deletion.golden", string(res.Payload))
	rs, err := ParseSave(res.Payload)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"KUBE-FW-CCCCCCCCCCCCCCCC", "KUBE-SEP-BBBBBBBBBBBBBBBB", "KUBE-SVC-AAAAAAAAAAAAAAAA"}
	if diff := cmp.Diff(want, rs.Table(TableNAT).Deleted); diff != "" {
		t.Errorf("deleted chains (-want +got):\n%s", diff)
	}
	if res.Chains[TableNAT]["KUBE-SVC-AAAAAAAAAAAAAAAA"] {
		t.Errorf("Result.Chains still lists a deleted chain")
	}
	full := Render(kubeProxyOverallInput())
	if res.RuleCounts[TableNAT] != full.RuleCounts[TableNAT] {
		t.Errorf("RuleCounts[nat] = %d with deletions, %d without; -X lines must not count", res.RuleCounts[TableNAT], full.RuleCounts[TableNAT])
	}
}

// largeClusterInput has 1001 endpoints in total: kube-proxy's large-cluster
// mode.
func largeClusterInput() Input {
	in := Input{Node: Node{Name: "node-1"}, Config: Config{ClusterCIDR: mustPrefix("10.244.0.0/16")}}
	for i, n := range []int{600, 401} {
		name := fmt.Sprintf("big%d", i)
		in.Services = append(in.Services, makeService("default", name, func(s *corev1.Service) {
			s.Spec.ClusterIP = fmt.Sprintf("10.96.9.%d", i+1)
			s.Spec.Ports = []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP}}
		}))
		in.EndpointSlices = append(in.EndpointSlices, makeSlice("default", name, name+"-x", func(es *discoveryv1.EndpointSlice) {
			for j := 0; j < n; j++ {
				es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{Addresses: []string{fmt.Sprintf("10.244.%d.%d", 10+i*4+j/250, j%250+1)}})
			}
			es.Ports = []discoveryv1.EndpointPort{tcpPort("http", 8080)}
		}))
	}
	return in
}

func TestRenderLargeClusterModeDropsEndpointComments(t *testing.T) {
	for _, tc := range []struct {
		name          string
		drop          int // endpoints removed from big1
		wantComments  bool
		wantEndpoints int
	}{
		{"1001 endpoints", 0, false, 1001},
		{"1000 endpoints", 1, true, 1000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := largeClusterInput()
			in.EndpointSlices[1].Endpoints = in.EndpointSlices[1].Endpoints[tc.drop:]
			rs, err := ParseSave(Render(in).Payload)
			if err != nil {
				t.Fatal(err)
			}
			seps, commented := 0, 0
			for _, c := range rs.Table(TableNAT).Chains {
				if !strings.HasPrefix(c.Name, PrefixSEP) && !strings.HasPrefix(c.Name, PrefixSVC) {
					continue
				}
				if strings.HasPrefix(c.Name, PrefixSEP) {
					seps++
				}
				for _, r := range c.Rules {
					isMasq := strings.HasPrefix(c.Name, PrefixSVC) && r.Target == ChainMarkMasq
					if r.Comment != "" && !isMasq {
						commented++
					}
				}
			}
			if seps != tc.wantEndpoints {
				t.Errorf("%d SEP chains, want %d", seps, tc.wantEndpoints)
			}
			if got := commented > 0; got != tc.wantComments {
				t.Errorf("SVC→SEP/SEP rules with comments: %d, want comments=%v", commented, tc.wantComments)
			}
		})
	}
}

func TestRenderNoServices(t *testing.T) {
	res := Render(Input{})
	want := `*filter
:KUBE-SERVICES - [0:0]
:KUBE-EXTERNAL-SERVICES - [0:0]
:KUBE-FORWARD - [0:0]
:KUBE-NODEPORTS - [0:0]
:KUBE-PROXY-FIREWALL - [0:0]
:KUBE-FIREWALL - [0:0]
-A KUBE-FIREWALL -m comment --comment "block incoming localnet connections" -d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP
-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x00004000/0x00004000 -j ACCEPT
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
COMMIT
*nat
:KUBE-SERVICES - [0:0]
:KUBE-NODEPORTS - [0:0]
:KUBE-POSTROUTING - [0:0]
:KUBE-MARK-MASQ - [0:0]
-A KUBE-POSTROUTING -m mark ! --mark 0x00004000/0x00004000 -j RETURN
-A KUBE-POSTROUTING -j MARK --xor-mark 0x00004000
-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE
-A KUBE-MARK-MASQ -j MARK --or-mark 0x00004000
-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS
COMMIT
`
	if diff := cmp.Diff(want, string(res.Payload)); diff != "" {
		t.Errorf("payload (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[Table]int{TableFilter: 4, TableNAT: 5}, res.RuleCounts); diff != "" {
		t.Errorf("RuleCounts (-want +got):\n%s", diff)
	}
}

// TestRenderIsDeterministic renders the same state with inputs in different
// orders and checks the payload does not change.
func TestRenderIsDeterministic(t *testing.T) {
	in := mixedInput()
	want := Render(in).Payload
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 20; i++ {
		shuffled := in
		shuffled.Services = slices.Clone(in.Services)
		shuffled.EndpointSlices = slices.Clone(in.EndpointSlices)
		r.Shuffle(len(shuffled.Services), func(a, b int) {
			shuffled.Services[a], shuffled.Services[b] = shuffled.Services[b], shuffled.Services[a]
		})
		r.Shuffle(len(shuffled.EndpointSlices), func(a, b int) {
			shuffled.EndpointSlices[a], shuffled.EndpointSlices[b] = shuffled.EndpointSlices[b], shuffled.EndpointSlices[a]
		})
		if diff := cmp.Diff(string(want), string(Render(shuffled).Payload)); diff != "" {
			t.Fatalf("payload depends on input order (-want +got):\n%s", diff)
		}
	}
}
