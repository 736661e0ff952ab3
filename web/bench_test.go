package web

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/svclab/svclab/dataplane"
)

// scaleLab is a node with n ClusterIP Services of two endpoints each
// (every fifth one a NodePort): the dump as iptables-save would print it
// (the payload plus kube-proxy's jumps from the built-in chains), parsed, and
// the matching Topology.
type scaleLab struct {
	dump []byte
	rs   *dataplane.Ruleset
	topo *Topology
}

var (
	scaleMu   sync.Mutex
	scaleLabs = map[int]*scaleLab{}
)

func newScaleLab(tb testing.TB, n int) *scaleLab {
	tb.Helper()
	scaleMu.Lock()
	defer scaleMu.Unlock()
	if l := scaleLabs[n]; l != nil {
		return l
	}
	in := dataplane.Input{
		Node:   dataplane.Node{Name: "node-1", IPs: []netip.Addr{netip.MustParseAddr("172.29.0.2")}},
		Config: dataplane.Config{ClusterCIDR: labClusterCIDR},
	}
	topo := &Topology{Nodes: []TopoNode{{Name: "node-1", IP: "172.29.0.2"}}}
	ptr := func(s string) *string { return &s }
	for i := range n {
		ns, name := fmt.Sprintf("ns-%d", i%50), fmt.Sprintf("svc-%d", i)
		ip := fmt.Sprintf("10.%d.%d.%d", 96+i/65536, (i/256)%256, i%256)
		svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: corev1.ServiceSpec{
			Type: corev1.ServiceTypeClusterIP, ClusterIP: ip, ClusterIPs: []string{ip},
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(8080)}},
		}}
		if i%5 == 0 {
			svc.Spec.Type = corev1.ServiceTypeNodePort
			svc.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyCluster
			svc.Spec.Ports[0].NodePort = int32(30000 + i%2768)
		}
		es := &discoveryv1.EndpointSlice{
			ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: name + "-1", Labels: map[string]string{discoveryv1.LabelServiceName: name}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Ports:       []discoveryv1.EndpointPort{tcpEndpointPort("http", 8080)},
		}
		ts := TopoService{Namespace: ns, Name: name, Type: string(svc.Spec.Type), ClusterIP: ip, Ports: []TopoServicePort{{Name: "http", Port: 80, Protocol: "TCP"}}}
		for j := range 2 {
			podIP := fmt.Sprintf("10.%d.%d.%d", 244+(2*i+j)/65536, ((2*i+j)/256)%256, (2*i+j)%256)
			ready := true
			es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{Addresses: []string{podIP}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}, NodeName: ptr("node-1")})
			pod := fmt.Sprintf("%s-%d", name, j)
			topo.Pods = append(topo.Pods, TopoPod{Namespace: ns, Name: pod, IP: podIP, Node: "node-1", Ready: true})
			ts.Endpoints = append(ts.Endpoints, TopoEndpoint{IP: podIP, Port: 8080, Ready: true, Node: "node-1", Pod: ns + "/" + pod})
		}
		in.Services = append(in.Services, svc)
		in.EndpointSlices = append(in.EndpointSlices, es)
		topo.Services = append(topo.Services, ts)
	}
	payload := dataplane.Render(in).Payload
	dump := withJumps(payload)
	rs, err := dataplane.ParseSave(dump)
	if err != nil {
		tb.Fatal(err)
	}
	l := &scaleLab{dump: dump, rs: rs, topo: topo}
	scaleLabs[n] = l
	return l
}

func tcpEndpointPort(name string, port int32) discoveryv1.EndpointPort {
	p := corev1.ProtocolTCP
	return discoveryv1.EndpointPort{Name: &name, Port: &port, Protocol: &p}
}

// withJumps adds kube-proxy's jump rules from the built-in chains to a
// restore payload, so that it parses like an iptables-save dump.
func withJumps(payload []byte) []byte {
	var out bytes.Buffer
	table := ""
	for line := range strings.SplitSeq(string(payload), "\n") {
		if strings.HasPrefix(line, "*") {
			table = line[1:]
		}
		if line == "COMMIT" {
			for _, tb := range []dataplane.Table{dataplane.TableFilter, dataplane.TableNAT} {
				if string(tb) != table {
					continue
				}
				for _, ch := range []string{"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"} {
					for _, j := range dataplane.JumpRulesFor(tb, ch) {
						out.WriteString(j.SaveText() + "\n")
					}
				}
			}
		}
		if line != "" {
			out.WriteString(line + "\n")
		}
	}
	return out.Bytes()
}

// scaleBackend returns the same parsed Ruleset every time (as a Backend
// with a cache of the parsed dump would).
type scaleBackend struct{ lab *scaleLab }

func (s scaleBackend) Nodes(context.Context) ([]string, error) { return []string{"node-1"}, nil }
func (s scaleBackend) Rules(context.Context, string) (*dataplane.Ruleset, error) {
	return s.lab.rs, nil
}
func (s scaleBackend) Topology(context.Context) (*Topology, error) { return s.lab.topo, nil }
func (s scaleBackend) Probe(context.Context, ProbeRequest) (*ProbeResult, error) {
	return nil, fmt.Errorf("no probes in benchmarks")
}
func (s scaleBackend) NodeNetns(string) string { return "" }

// benchLatency runs GET target b.N times and reports p50/p99 in ms.
func benchLatency(b *testing.B, n int, target string) {
	lab := newScaleLab(b, n)
	h := NewHandler(scaleBackend{lab}, Options{ClusterCIDR: labClusterCIDR})
	// Warm up (the topology index is built once per topologyTTL).
	if w := do(h, "GET", target, "", "", nil); w.Code != 200 {
		b.Fatalf("%s: %d %s", target, w.Code, w.Body)
	}
	durs := make([]time.Duration, 0, b.N)
	size := 0
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		w := do(h, "GET", target, "", "", nil)
		durs = append(durs, time.Since(t0))
		size = w.Body.Len()
	}
	b.StopTimer()
	slices.Sort(durs)
	pct := func(p float64) float64 {
		return float64(durs[min(len(durs)-1, int(p*float64(len(durs))))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(float64(size)/1024, "resp-KiB")
}

// BenchmarkGraphOneService10k is the graph endpoint (JSON, laid out) for one
// Service on a node with 10,000 Services.
func BenchmarkGraphOneService10k(b *testing.B) {
	benchLatency(b, 10000, "/lab/v1/graph?node=node-1&service=ns-7/svc-5007")
}

// BenchmarkCountersOneService10k is the per-second counters refresh for one
// Service with 10,000 loaded.
func BenchmarkCountersOneService10k(b *testing.B) {
	benchLatency(b, 10000, "/lab/v1/counters?node=node-1&service=ns-7/svc-5007")
}

// BenchmarkServiceSearch10k is the Service list search with 10,000 loaded.
func BenchmarkServiceSearch10k(b *testing.B) {
	benchLatency(b, 10000, "/lab/v1/services?node=node-1&q=svc-50&limit=200")
}

// BenchmarkGraphWholeNode1k draws a whole node with 1,000 Services.
func BenchmarkGraphWholeNode1k(b *testing.B) {
	benchLatency(b, 1000, "/lab/v1/graph?node=node-1")
}

// BenchmarkCountersWholeNode1k refreshes a whole node's counters, 1,000 Services.
func BenchmarkCountersWholeNode1k(b *testing.B) {
	benchLatency(b, 1000, "/lab/v1/counters?node=node-1")
}

// BenchmarkParseSave10k is what Backend.Rules costs on top of
// iptables-save at 10,000 Services: parsing the dump.
func BenchmarkParseSave10k(b *testing.B) {
	lab := newScaleLab(b, 10000)
	b.SetBytes(int64(len(lab.dump)))
	b.ResetTimer()
	for range b.N {
		if _, err := dataplane.ParseSave(lab.dump); err != nil {
			b.Fatal(err)
		}
	}
}

func TestScaleLabGraph(t *testing.T) {
	if testing.Short() {
		t.Skip("builds 1,000 Services")
	}
	lab := newScaleLab(t, 1000)
	g := BuildGraph(lab.rs, GraphOptions{Services: []string{"ns-7/svc-507"}, ClusterCIDR: labClusterCIDR})
	want := "KUBE-SERVICES: 1,001 rules — showing 2 for ns-7/svc-507"
	if !slices.Contains(g.Summaries, want) {
		t.Errorf("summaries %q, want %q", g.Summaries, want)
	}
	seps := 0
	for _, n := range g.Nodes {
		if n.Kind == KindEndpoint {
			seps++
		}
	}
	if seps != 2 {
		t.Errorf("%d endpoint chains drawn, want 2", seps)
	}
	whole := BuildGraph(lab.rs, GraphOptions{ClusterCIDR: labClusterCIDR})
	if len(whole.Summaries) != 0 || len(whole.Nodes) < 3000 {
		t.Errorf("whole node: %d nodes, summaries %v", len(whole.Nodes), whole.Summaries)
	}
}
